"""Addresses: client IPs as limits must see them, and whether a URL stays on this machine.

``::ffff:203.0.113.9`` is ``203.0.113.9``: one client must not count twice by writing its address
two ways. An IPv6 client usually holds a whole /64 (SLAAC, privacy addresses), so it is counted
per /64, not per address: otherwise one host has 2^64 fresh addresses to try from.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from shared.errors import InvalidInput

IPV6_COUNTED_PREFIX = 64


def normalise_ip(raw: str) -> str:
    """The address in one canonical form; IPv4-mapped IPv6 addresses become IPv4."""
    try:
        address = ipaddress.ip_address(raw.strip())
    except ValueError:
        raise InvalidInput("client_ip is not an IPv4 or IPv6 address") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def counted_network(address: str) -> str:
    """What a per-client limit counts: the IPv4 address, or the IPv6 address's /64."""
    parsed = ipaddress.ip_address(normalise_ip(address))
    if isinstance(parsed, ipaddress.IPv4Address):
        return str(parsed)
    return str(ipaddress.IPv6Network(f"{parsed}/{IPV6_COUNTED_PREFIX}", strict=False))


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
