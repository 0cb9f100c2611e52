"""A tenant's passkeys belong to its login site: WebAuthn's relying party, its domain (the RP
id) and the exact origins its pages are served from. Checked here before Twilio ever sees them,
with WebAuthn's rules: an origin's host is the RP id or below it; https, but for ``localhost``
in development (browsers treat it as secure). Both are kept as a browser writes them, since
origins are compared as strings. Whether the RP id is a public suffix (``github.io``) is not
checked: browsers refuse those themselves."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from urllib.parse import urlsplit

import idna

from shared.errors import InvalidInput
from shared.tenants.models import Tenant
from shared.verify.port import RelyingParty

MAX_ORIGINS = 10
_LOCAL = "localhost"
_DEFAULT_PORTS = {"https": 443, "http": 80}
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def relying_party(rp_id: str, origins: Sequence[str], name: str) -> RelyingParty:
    """The relying party asked for, or ``InvalidInput`` saying what is wrong with it."""
    rp_id = _domain(rp_id.strip().rstrip("."), "the RP id")
    if not origins:
        raise InvalidInput("name at least one origin, e.g. https://login.example.com")
    if len(origins) > MAX_ORIGINS:
        raise InvalidInput(f"at most {MAX_ORIGINS} origins")
    checked = dict.fromkeys(_origin(origin, rp_id) for origin in origins)  # once each, in order
    return RelyingParty(rp_id, name, tuple(checked))


def relying_party_of(tenant: Tenant) -> RelyingParty | None:
    """The tenant's relying party; None until it is set (``twostep tenants passkeys``)."""
    if tenant.passkey_rp_id is None or not tenant.passkey_origins:
        return None
    return RelyingParty(tenant.passkey_rp_id, tenant.display_name, tuple(tenant.passkey_origins))


def _domain(name: str, what: str) -> str:
    """A host name as browsers write it in an origin: lower case, internationalised labels in
    punycode (UTS 46), letters, digits and inner hyphens only; a dot in it, but for localhost."""
    if any(mark in name for mark in "/:@ \\%*?#[]"):
        raise InvalidInput(f"{what} {name!r} is a domain alone, without scheme, port or path")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        raise InvalidInput(f"{what} {name!r} is an IP address; WebAuthn takes a domain name")
    try:
        ascii_name = idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise InvalidInput(f"{what} {name!r} is not a domain name ({exc})") from exc
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise InvalidInput(f"{what} {name!r} is not a domain name")
    if labels[-1].isdigit():
        raise InvalidInput(f"{what} {name!r} reads as an IP address; WebAuthn takes a domain name")
    if len(labels) == 1 and ascii_name != _LOCAL:
        raise InvalidInput(f"{what} {name!r} has no dot: a domain such as example.com")
    return ascii_name


def _origin(origin: str, rp_id: str) -> str:
    """The origin as a browser writes it (``clientDataJSON.origin``): scheme, host, and the port
    only when it is not the scheme's default."""
    parts = urlsplit(origin.strip())
    if "@" in parts.netloc or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise InvalidInput(f"the origin {origin!r} is a scheme, host and port, nothing else")
    if parts.scheme not in ("https", "http"):
        raise InvalidInput(f"the origin {origin!r} must be https (http only for localhost)")
    host = _domain((parts.hostname or "").rstrip("."), f"the origin {origin!r}'s host")
    if host != rp_id and not host.endswith("." + rp_id):
        raise InvalidInput(f"the origin {origin!r} is not on {rp_id} or a subdomain of it")
    if parts.scheme == "http" and rp_id != _LOCAL:
        raise InvalidInput(f"the origin {origin!r} must be https (http only for localhost)")
    try:
        port = parts.port
    except ValueError as exc:
        raise InvalidInput(f"the origin {origin!r} has no valid port") from exc
    if port == 0:
        raise InvalidInput(f"the origin {origin!r} has no valid port")
    shown = "" if port in (None, _DEFAULT_PORTS[parts.scheme]) else f":{port}"
    return f"{parts.scheme}://{host}{shown}"
