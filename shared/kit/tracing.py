"""One request, one id: the API's request id travels in each job's headers into the worker,
where every log line of the job — the provider adapter's included — carries it.

The id lives in a context variable (so it follows a request's coroutines, and the threads that
``anyio.to_thread`` runs for it) and in structlog's context (so every log line has it).
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import Iterator
from contextvars import ContextVar

import structlog

REQUEST_ID_HEADER = "X-Request-Id"
# A caller's own id is kept if it is a sane token; anything else gets a fresh one.
_ACCEPTED = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")

_current: ContextVar[str | None] = ContextVar("twostep_request_id", default=None)


def current_request_id() -> str | None:
    return _current.get()


def request_id_from(header: str | None) -> str:
    if header and _ACCEPTED.match(header):
        return header
    return uuid.uuid4().hex


@contextlib.contextmanager
def traced(request_id: str | None) -> Iterator[None]:
    """Everything in this block (and the log lines it writes) belongs to ``request_id``."""
    token = _current.set(request_id)
    try:
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            yield
    finally:
        _current.reset(token)
