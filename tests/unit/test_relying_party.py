"""A tenant's relying party is checked by WebAuthn's rules before Twilio sees it."""

from __future__ import annotations

import pytest

from shared.errors import InvalidInput
from shared.tenants.passkeys import relying_party


def test_a_site_and_its_subdomains_on_https() -> None:
    site = relying_party(
        " Example.COM. ", ["https://login.example.com", "https://example.com:8443/"], "Lantern"
    )
    assert (site.id, site.name) == ("example.com", "Lantern")
    assert site.origins == ("https://login.example.com", "https://example.com:8443")


def test_localhost_may_be_served_over_http_in_development() -> None:
    site = relying_party("localhost", ["http://localhost:8000"], "dev")
    assert site.origins == ("http://localhost:8000",)


@pytest.mark.parametrize(
    ("rp_id", "origins", "says"),
    [
        ("https://example.com", ["https://example.com"], "without scheme"),
        ("example.com:443", ["https://example.com"], "without scheme"),
        ("127.0.0.1", ["https://127.0.0.1"], "IP address"),
        ("com", ["https://com"], "no dot"),
        ("example.com", [], "at least one origin"),
        ("example.com", ["http://login.example.com"], "must be https"),
        ("example.com", ["https://example.com.evil.test"], "not on example.com"),
        ("example.com", ["https://notexample.com"], "not on example.com"),
        ("example.com", ["https://login.example.com/path"], "nothing else"),
        ("example.com", ["https://example.com"] * 11, "at most 10"),
    ],
)
def test_what_webauthn_would_refuse_is_refused_here(
    rp_id: str, origins: list[str], says: str
) -> None:
    with pytest.raises(InvalidInput, match=says):
        relying_party(rp_id, origins, "Lantern")


def test_origins_are_kept_as_a_browser_writes_them() -> None:
    site = relying_party(
        "Bücher.example",
        [
            "https://login.bücher.example:443/",
            "https://LOGIN.xn--bcher-kva.example",
            "https://bücher.example:8443",
        ],
        "Bücher",
    )
    assert site.id == "xn--bcher-kva.example"
    assert site.origins == (
        "https://login.xn--bcher-kva.example",
        "https://xn--bcher-kva.example:8443",
    )
    assert relying_party("localhost", ["http://localhost:80"], "dev").origins == (
        "http://localhost",
    )


@pytest.mark.parametrize(
    ("origin", "says"),
    [
        ("https://login.example.com:99999", "no valid port"),
        ("https://login.example.com:abc", "no valid port"),
        ("https://login.example.com:0", "no valid port"),
        ("https://:pw@login.example.com", "nothing else"),
        ("https://evil.test\\.example.com", "domain alone"),
        ("https://login%2e.example.com", "domain alone"),
        ("https://login .example.com", "domain alone"),
        ("https://*.example.com", "domain alone"),
        ("https://exa_mple.example.com", "not a domain name"),
        ("https://-bad-.example.com", "not a domain name"),
        ("javascript://example.com", "must be https"),
    ],
)
def test_origins_no_browser_could_have_are_refused(origin: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        relying_party("example.com", [origin], "Lantern")


@pytest.mark.parametrize("rp_id", ["127.1", "1.2.3.04", "exa_mple.com", "-bad-.com", "[::1]"])
def test_rp_ids_that_are_no_domain_names_are_refused(rp_id: str) -> None:
    with pytest.raises(InvalidInput):
        relying_party(rp_id, ["https://example.com"], "Lantern")
