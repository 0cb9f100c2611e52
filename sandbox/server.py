"""Run the sandbox (``twostep sandbox``)."""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path

import uvicorn

from sandbox.app import Sandbox, create_sandbox_app
from sandbox.faults import Faults
from sandbox.services import ServiceStore
from sandbox.state import VerifyState

log = logging.getLogger("twostep.sandbox")


def build_sandbox_from_env(
    *, allow_remote: bool = False, state_file: str | os.PathLike[str] | None = None
) -> Sandbox:
    """``state_file`` (or ``TWOSTEP_SANDBOX_STATE_FILE``): where services outlive a restart;
    without one, nothing is written anywhere."""
    lifetime = float(os.environ.get("TWOSTEP_SANDBOX_CODE_LIFETIME_SECONDS", "600"))
    allowed = os.environ.get("TWOSTEP_SANDBOX_ALLOW_REMOTE", "").lower() in ("1", "true", "yes")
    state_path = state_file or os.environ.get("TWOSTEP_SANDBOX_STATE_FILE") or None
    store = ServiceStore(Path(state_path)) if state_path else None
    return Sandbox(
        state=VerifyState(lifetime=timedelta(seconds=lifetime), store=store),
        faults=Faults.from_env(),
        account_sid=os.environ.get("TWILIO_ACCOUNT_SID") or None,
        auth_token=os.environ.get("TWILIO_AUTH_TOKEN") or None,
        allow_remote=allow_remote or allowed,
    )


def run(
    host: str = "127.0.0.1",
    port: int = 8765,
    log_level: str = "info",
    *,
    allow_remote: bool = False,
    state_file: str | os.PathLike[str] | None = None,
) -> None:
    sandbox = build_sandbox_from_env(allow_remote=allow_remote, state_file=state_file)
    store = sandbox.state.services.store
    log.info(
        "sandbox listening on http://%s:%d (account %s; services %s)",
        host,
        port,
        sandbox.account_sid,
        f"kept in {store.path}" if store else "in memory only",
    )
    # No access log: Twilio's paths carry phone numbers (fetch by To, Lookup).
    uvicorn.run(
        create_sandbox_app(sandbox),
        host=host,
        port=port,
        access_log=False,
        log_level=log_level.lower(),
        log_config=None,
        timeout_keep_alive=30,
        backlog=4096,
    )
