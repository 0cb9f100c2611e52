"""Run the sandbox (``twostep sandbox``)."""

from __future__ import annotations

import logging
import os
from datetime import timedelta

import uvicorn

from sandbox.app import Sandbox, create_sandbox_app
from sandbox.faults import Faults
from sandbox.state import VerifyState

log = logging.getLogger("twostep.sandbox")


def build_sandbox_from_env(*, allow_remote: bool = False) -> Sandbox:
    lifetime = float(os.environ.get("TWOSTEP_SANDBOX_CODE_LIFETIME_SECONDS", "600"))
    allowed = os.environ.get("TWOSTEP_SANDBOX_ALLOW_REMOTE", "").lower() in ("1", "true", "yes")
    return Sandbox(
        state=VerifyState(lifetime=timedelta(seconds=lifetime)),
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
) -> None:
    sandbox = build_sandbox_from_env(allow_remote=allow_remote)
    auth = (
        "exactly TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN" if sandbox.account_sid else "any credentials"
    )
    log.info("sandbox listening on http://%s:%d (accepts %s)", host, port, auth)
    # No access log: Twilio's paths carry phone numbers (fetch by To).
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
