"""The Celery app ``benchmarks/worker_pools.py`` runs under each pool: one task that makes one
provider-like call (a Verify create on the sandbox) and holds nothing else.

``sync_call`` blocks its thread (or greenlet) for the call, as a worker written with a blocking
HTTP client does; ``loop_call`` hands the call to one event loop per process and waits for it, as
twostep's worker does. Configured like twostep's app: late acks, prefetch 1, JSON.
"""

from __future__ import annotations

import os
import secrets
import threading
from typing import Any

import httpx
from celery import Celery

BROKER = os.environ.get("POOL_PROBE_BROKER", "redis://127.0.0.1:6379/0")
SANDBOX = os.environ.get("POOL_PROBE_SANDBOX", "http://127.0.0.1:8765")
_PATH = "/v2/Services/VA" + "0" * 32 + "/Verifications"
_AUTH = ("AC" + "0" * 32, "sandbox")  # the sandbox's development credentials

app = Celery("pool_probe", broker=BROKER, set_as_current=False)
app.conf.update(
    task_serializer="json",
    accept_content=["json"],
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)

_local = threading.local()
_portal_lock = threading.Lock()
_portal: Any = None
_portal_manager: Any = None  # kept: the portal stops when its manager is collected


def _number() -> str:
    return f"+1415{secrets.randbelow(800) + 200}{secrets.randbelow(10_000):04d}"


@app.task(name="probe.sync_call")
def sync_call() -> int:
    client = getattr(_local, "client", None)
    if client is None:
        client = _local.client = httpx.Client(base_url=SANDBOX, auth=_AUTH, timeout=30)
    return client.post(_PATH, data={"To": _number(), "Channel": "sms"}).status_code


def _loop() -> Any:
    global _portal, _portal_manager
    with _portal_lock:
        if _portal is None:
            from anyio.from_thread import start_blocking_portal

            _portal_manager = start_blocking_portal("asyncio")
            _portal = _portal_manager.__enter__()
    return _portal


async def _aiohttp_call() -> int:
    import aiohttp

    session = getattr(_aiohttp_call, "session", None)
    if session is None:
        session = aiohttp.ClientSession(
            base_url=SANDBOX,
            connector=aiohttp.TCPConnector(limit=2000),
            timeout=aiohttp.ClientTimeout(total=30),
        )
        _aiohttp_call.session = session  # type: ignore[attr-defined]
    headers = {"Authorization": aiohttp.encode_basic_auth(*_AUTH)}
    async with session.post(
        _PATH, data={"To": _number(), "Channel": "sms"}, headers=headers
    ) as answer:
        await answer.read()
        return answer.status


@app.task(name="probe.loop_call")
def loop_call() -> int:
    status: int = _loop().call(_aiohttp_call)
    return status
