"""The broker's transport through Redis Sentinel, kept alive across a failover.

kombu 5.7's Sentinel transport forgets its connection's address (``Transport.client = None``) when
the connection is closed, yet the channel then still rebuilds its connection pool from that
address to give back its unacknowledged messages and to acknowledge finished jobs. After a
failover that path raises ``AttributeError`` and the worker exits ("Unrecoverable error"). This
transport keeps the address it was opened with, so the channel fails over like any connection
error instead (tests/chaos/test_failover.py)."""

from __future__ import annotations

from typing import Any

from kombu.transport.redis import SentinelTransport as KombuSentinelTransport

# What Celery's ``broker_transport`` names to use it.
SENTINEL_TRANSPORT = f"{__name__}:SentinelTransport"


class SentinelTransport(KombuSentinelTransport):
    _client: Any = None

    @property
    def client(self) -> Any:
        return self._client

    @client.setter
    def client(self, value: Any) -> None:
        if value is not None:  # a closed connection's channel may still need the address
            self._client = value
