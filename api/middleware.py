"""ASGI middleware that runs before routing, parsing and authentication."""

from __future__ import annotations

import json
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import PROBLEM_JSON, bug_answer
from shared.kit import metrics
from shared.kit.tracing import REQUEST_ID_HEADER, request_id_from, traced


class BodyLimit:
    """Refuse a request body over ``max_bytes`` with ``413 payload_too_large``, before anything
    reads it: by its ``Content-Length``, or — chunked or lying — by the bytes as they stream in.
    A request within the limit is buffered (at most ``max_bytes``) and handed on unchanged, so
    an unauthenticated client can make the API hold no more than that per connection."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay(message, receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        whole: Message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay(whole, receive), send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            {
                "type": "https://twostep.dev/problems/payload-too-large",
                "title": "Content Too Large",
                "status": 413,
                "detail": f"a request body is at most {self.max_bytes} bytes",
                "code": "payload_too_large",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                    # The rest of the body is not read: the connection cannot be reused.
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _content_length(scope: Scope) -> int | None:
    declared = _header(scope, b"content-length")
    try:
        return int(declared) if declared is not None else None
    except ValueError:
        return None


def _replay(first: Message, then: Receive) -> Receive:
    """A ``receive`` that hands out ``first`` (the buffered body), then what comes next."""
    replayed = False

    async def receive() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return first
        return await then()

    return receive


class NoStore:
    """``Cache-Control: no-store`` on every ``/v1`` answer: they carry recovery codes, user
    state and masked numbers, none of which a proxy or a browser may keep."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] != b"cache-control"]
                message = {**message, "headers": [*headers, (b"cache-control", b"no-store")]}
            await send(message)

        await self.app(scope, receive, send_no_store)


class RequestObserver:
    """Every request gets an id (the caller's ``X-Request-Id`` if it is a sane token), carried by
    its log lines and its jobs and answered back in the same header, a bug's 500 included; and it
    is counted and timed by its route's template (``/v1/verifications/{verification_id}``, never
    the id itself)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(_header(scope, b"x-request-id"))
        status = 0
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (_ID_HEADER, request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            with traced(request_id):
                try:
                    await self.app(scope, receive, send_with_id)
                except Exception as exc:
                    # A bug is answered here, not by Starlette's outermost layer: so its 500
                    # carries the request id that finds its log lines.
                    if status:
                        raise
                    await bug_answer(exc)(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics.HTTP_REQUESTS.labels(
                route=template, method=scope["method"], status=str(status or 500)
            ).inc()
            metrics.HTTP_SECONDS.labels(route=template).observe(time.perf_counter() - started)


_ID_HEADER = REQUEST_ID_HEADER.lower().encode()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None
