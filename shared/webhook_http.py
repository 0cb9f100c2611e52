"""The HTTP under webhook deliveries: one aiohttp session per worker process, a timeout per
attempt, no redirects followed (a receiver answers for itself, not for another address)."""

from __future__ import annotations

import aiohttp


class AiohttpPoster:
    def __init__(self, timeout_seconds: float, *, max_connections: int = 100) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        if self._session is None:  # made on the event loop that uses it
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=self._timeout,
            )
        try:
            async with self._session.post(
                url, data=body, headers=headers, allow_redirects=False
            ) as answer:
                await answer.read()
                return answer.status
        except aiohttp.ClientError as exc:
            raise OSError(f"{type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
