"""A tenant's passkeys belong to its login site: WebAuthn's relying party, its domain (the RP
id) and the exact origins its pages are served from. Checked here before Twilio ever sees them,
with WebAuthn's rules: an origin's host is the RP id or below it; https, but for ``localhost``
in development (browsers treat it as secure)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from shared.errors import InvalidInput
from shared.tenants.models import Tenant
from shared.verify.port import RelyingParty

MAX_ORIGINS = 10
_LOCAL = "localhost"


def relying_party(rp_id: str, origins: Sequence[str], name: str) -> RelyingParty:
    """The relying party asked for, or ``InvalidInput`` saying what is wrong with it."""
    rp_id = rp_id.strip().lower().rstrip(".")
    _check_rp_id(rp_id)
    if not origins:
        raise InvalidInput("name at least one origin, e.g. https://login.example.com")
    if len(origins) > MAX_ORIGINS:
        raise InvalidInput(f"at most {MAX_ORIGINS} origins")
    return RelyingParty(rp_id, name, tuple(_origin(origin, rp_id) for origin in origins))


def relying_party_of(tenant: Tenant) -> RelyingParty | None:
    """The tenant's relying party; None until it is set (``twostep tenants passkeys``)."""
    if tenant.passkey_rp_id is None or not tenant.passkey_origins:
        return None
    return RelyingParty(tenant.passkey_rp_id, tenant.display_name, tuple(tenant.passkey_origins))


def _check_rp_id(rp_id: str) -> None:
    if not rp_id or any(mark in rp_id for mark in ("/", ":", "@", " ")):
        raise InvalidInput(
            f"the RP id {rp_id!r} is a domain alone, without scheme, port or path: example.com"
        )
    try:
        ipaddress.ip_address(rp_id)
    except ValueError:
        pass
    else:
        raise InvalidInput(f"the RP id {rp_id!r} is an IP address; WebAuthn takes a domain")
    labels = rp_id.split(".")
    if len(rp_id) > 253 or not all(0 < len(label) <= 63 for label in labels):
        raise InvalidInput(f"the RP id {rp_id!r} is not a domain name")
    if len(labels) == 1 and rp_id != _LOCAL:
        raise InvalidInput(f"the RP id {rp_id!r} is not a registrable domain (example.com)")


def _origin(origin: str, rp_id: str) -> str:
    parts = urlsplit(origin.strip())
    host = (parts.hostname or "").lower()
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise InvalidInput(f"the origin {origin!r} is a scheme, host and port, no path")
    if host != rp_id and not host.endswith("." + rp_id):
        raise InvalidInput(f"the origin {origin!r} is not on {rp_id} or a subdomain of it")
    if parts.scheme != "https" and not (parts.scheme == "http" and rp_id == _LOCAL):
        raise InvalidInput(f"the origin {origin!r} must be https (http only for localhost)")
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}"
