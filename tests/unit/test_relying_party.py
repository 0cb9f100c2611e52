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
        ("com", ["https://com"], "registrable"),
        ("example.com", [], "at least one origin"),
        ("example.com", ["http://login.example.com"], "must be https"),
        ("example.com", ["https://example.com.evil.test"], "not on example.com"),
        ("example.com", ["https://notexample.com"], "not on example.com"),
        ("example.com", ["https://login.example.com/path"], "no path"),
        ("example.com", ["https://example.com"] * 11, "at most 10"),
    ],
)
def test_what_webauthn_would_refuse_is_refused_here(
    rp_id: str, origins: list[str], says: str
) -> None:
    with pytest.raises(InvalidInput, match=says):
        relying_party(rp_id, origins, "Lantern")
