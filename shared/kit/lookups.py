"""The keyed hashes (blind indexes) that stand for personal data where it must be found again:
in SQL look-ups and in Redis key names. Always of a tenant's value: the same phone number in two
tenants is two different hashes, so no key or row links them."""

from __future__ import annotations

import uuid

from shared.kit.crypto import Keyring
from shared.kit.destinations import mailbox_of


def destination_lookup(keyring: Keyring, tenant_id: uuid.UUID, address: str) -> str:
    """Of a phone number (E.164) or an email address's inbox (``mailbox_of``: aliases of one
    inbox are one destination); the two never collide (only one has an ``@``). Its label is
    "phone", as when numbers were the only destinations: the hashes already stored still find
    their rows."""
    return keyring.blind_index("phone", str(tenant_id), mailbox_of(address))


def user_lookup(keyring: Keyring, tenant_id: uuid.UUID, user_id: str) -> str:
    return keyring.blind_index("user", str(tenant_id), user_id)


def client_lookup(keyring: Keyring, tenant_id: uuid.UUID, network: str) -> str:
    """Of the network a client is counted by (``shared.kit.network.counted_network``)."""
    return keyring.blind_index("client", str(tenant_id), network)


def idempotency_lookup(keyring: Keyring, api_key_id: uuid.UUID, key: str) -> str:
    return keyring.blind_index("idempotency", str(api_key_id), key)
