"""The HTTP under webhook deliveries: one aiohttp session per worker process, a timeout per
attempt, no redirects followed (a receiver answers for itself, not for another address).

A webhook URL is a tenant's choice, so in production a delivery reaches public addresses only:
names are resolved here and private, loopback and link-local answers dropped before connecting,
which also holds when a name is re-pointed after its registration (DNS rebinding)."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult


def is_public_address(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        return False


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class PublicOnlyResolver(AbstractResolver):
    def __init__(self) -> None:
        self._inner = aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        public = [answer for answer in answers if is_public_address(answer["host"])]
        if not public:
            raise OSError("address not allowed")
        return public

    async def close(self) -> None:
        await self._inner.close()


# What is read of a receiver's answer body, at most.
_BODY_READ_LIMIT = 4096


class AiohttpPoster:
    def __init__(
        self, timeout_seconds: float, *, public_only: bool, max_connections: int = 100
    ) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._public_only = public_only
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _connector(self) -> aiohttp.TCPConnector:
        options: dict[str, Any] = {"limit": self._max_connections}
        if self._public_only:
            options["resolver"] = PublicOnlyResolver()
        return aiohttp.TCPConnector(**options)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        host = urlsplit(url).hostname or ""
        # aiohttp connects to an address literal without asking the resolver.
        if self._public_only and is_ip_literal(host) and not is_public_address(host):
            raise OSError("address not allowed")
        if self._session is None:  # made on the event loop that uses it
            self._session = aiohttp.ClientSession(
                connector=self._connector(), timeout=self._timeout
            )
        try:
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as answer:
                # Only the status is an answer: a receiver's body is read no further than a
                # little (so a kept-alive connection can be reused), never whole.
                await answer.content.read(_BODY_READ_LIMIT)
                return answer.status
        except aiohttp.ClientError as exc:
            raise OSError(_reason(exc)) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _reason(exc: aiohttp.ClientError) -> str:
    cause = exc.__cause__ or getattr(exc, "os_error", None)
    if isinstance(cause, OSError) and str(cause) == "address not allowed":
        return "address not allowed"
    return type(exc).__name__
