"""The baseline: the seed article's inline integration, written as a team would today.

A FastAPI app whose sync (``def``) routes call the real ``twilio`` SDK inside the login request:
no queue, no database, no retries. FastAPI runs sync routes on its thread pool (40 threads), so
every request waiting on Twilio holds a thread, ``/healthz`` included.

    INLINE_TWILIO_BASE_URL=http://127.0.0.1:8765 python -m benchmarks.inline_app --port 9000

``INLINE_TWILIO_BASE_URL`` is the sandbox; ``INLINE_TWILIO_TIMEOUT_SECONDS`` (default 5) the SDK's
timeout, the same as the read timeout the benchmark gives twostep.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client
from twilio.rest.verify.v2.service.approve_challenge import ApproveChallengeList
from twilio.rest.verify.v2.service.new_challenge import NewChallengeList
from twilio.rest.verify.v2.service.new_factor import NewFactorList
from twilio.rest.verify.v2.service.new_verify_factor import NewVerifyFactorList

Answer = TypeVar("Answer", dict[str, str], dict[str, Any])

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "sandbox"  # noqa: S105  # the sandbox's development credentials, its only ones
SERVICE_SID = "VA" + "0" * 32


class SandboxHttpClient(TwilioHttpClient):  # type: ignore[misc]  # twilio ships no types
    """Sends every ``*.twilio.com`` request to the sandbox (sandbox/README.md: "Using it on its
    own")."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.base_url = base_url.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        parts = urlsplit(url)
        if parts.hostname and parts.hostname.endswith("twilio.com"):
            url = self.base_url + urlunsplit(("", "", parts.path, parts.query, ""))
        return super().request(method, url, *args, **kwargs)


client = Client(
    ACCOUNT_SID,
    AUTH_TOKEN,
    http_client=SandboxHttpClient(
        os.environ.get("INLINE_TWILIO_BASE_URL", "http://127.0.0.1:8765"),
        timeout=float(os.environ.get("INLINE_TWILIO_TIMEOUT_SECONDS", "5")),
    ),
)
verify = client.verify.v2.services(SERVICE_SID)
app = FastAPI(title="inline login baseline")


class StartBody(BaseModel):
    to: str


class CheckBody(BaseModel):
    to: str
    code: str


def _twilio_failed(exc: TwilioRestException) -> JSONResponse:
    # Pass Twilio's throttling on as it is; anything else from Twilio is a bad gateway for us.
    status = 429 if exc.status == 429 else 502
    return JSONResponse({"error": "twilio", "code": exc.code, "status": exc.status}, status)


def _timed_out(exc: requests.RequestException) -> JSONResponse:
    return JSONResponse({"error": "twilio_unreachable", "detail": type(exc).__name__}, 504)


def _answered(call: Callable[[], Answer]) -> Answer | JSONResponse:
    """``call``'s answer, or Twilio's refusal or silence as the baseline answers them."""
    try:
        return call()
    except TwilioRestException as exc:
        return _twilio_failed(exc)
    except requests.RequestException as exc:
        return _timed_out(exc)


@app.post("/login/start", response_model=None)
def login_start(body: StartBody) -> dict[str, str] | JSONResponse:
    return _answered(
        lambda: {"status": str(verify.verifications.create(to=body.to, channel="sms").status)}
    )


@app.post("/login/check", response_model=None)
def login_check(body: CheckBody) -> dict[str, str] | JSONResponse:
    return _answered(
        lambda: {
            "status": str(verify.verification_checks.create(to=body.to, code=body.code).status)
        }
    )


class AppFactorBody(BaseModel):
    entity: str


class AppCodeBody(BaseModel):
    entity: str
    factor_sid: str
    code: str


@app.post("/factors/totp", response_model=None)
def enrol_app(body: AppFactorBody) -> dict[str, str] | JSONResponse:
    """An authenticator app made at Twilio: its secret goes back to the login page."""

    def enrol() -> dict[str, str]:
        factor = verify.entities(body.entity).new_factors.create(
            friendly_name=body.entity, factor_type="totp"
        )
        return {"factor_sid": str(factor.sid), "secret": str(factor.binding["secret"])}

    return _answered(enrol)


@app.post("/factors/totp/verify", response_model=None)
def verify_app(body: AppCodeBody) -> dict[str, str] | JSONResponse:
    factor = verify.entities(body.entity).factors(body.factor_sid)
    return _answered(lambda: {"status": str(factor.update(auth_payload=body.code).status)})


@app.post("/login/totp", response_model=None)
def login_totp(body: AppCodeBody) -> dict[str, str] | JSONResponse:
    """An authenticator app's code checked inside the login request: one Twilio call."""
    challenges = verify.entities(body.entity).challenges
    return _answered(
        lambda: {
            "status": str(
                challenges.create(factor_sid=body.factor_sid, auth_payload=body.code).status
            )
        }
    )


class PasskeyFactorBody(BaseModel):
    entity: str


class CredentialBody(BaseModel):
    credential: dict[str, Any]


class AssertionBody(CredentialBody):
    challenge_sid: str


@app.post("/factors/passkey", response_model=None)
def enrol_passkey(body: PasskeyFactorBody) -> dict[str, Any] | JSONResponse:
    """A passkey's factor made at Twilio: its creation options go back to the login page."""
    request = NewFactorList.CreateNewPasskeysFactorRequest(
        {"friendly_name": body.entity, "identity": body.entity}
    )

    def enrol() -> dict[str, Any]:
        factor = verify.new_factors.create(request)
        return {"factor_sid": str(factor.sid), "options": factor.options["publicKey"]}

    return _answered(enrol)


@app.post("/factors/passkey/verify", response_model=None)
def verify_passkey(body: CredentialBody) -> dict[str, Any] | JSONResponse:
    request = NewVerifyFactorList.VerifyPasskeysFactorRequest(body.credential)
    return _answered(lambda: {"status": str(verify.new_verify_factors.update(request).status)})


@app.post("/login/passkey/start", response_model=None)
def login_passkey_start(body: PasskeyFactorBody) -> dict[str, Any] | JSONResponse:
    """A challenge of the user's passkey, made inside the login request: one Twilio call."""
    request = NewChallengeList.CreatePasskeysChallengeRequest({"identity": body.entity})

    def start() -> dict[str, Any]:
        challenge = verify.new_challenge().create(request)
        return {"challenge_sid": str(challenge.sid), "options": challenge.options["publicKey"]}

    return _answered(start)


@app.post("/login/passkey/finish", response_model=None)
def login_passkey_finish(body: AssertionBody) -> dict[str, Any] | JSONResponse:
    """The browser's assertion approved inside the login request: one Twilio call. Approved
    only when Twilio's answer is this challenge's."""
    request = ApproveChallengeList.ApprovePasskeysChallengeRequest(body.credential)

    def finish() -> dict[str, Any]:
        approved = verify.approve_challenge.update(request)
        mine = str(approved.sid) == body.challenge_sid
        return {"status": str(approved.status) if mine else "rejected"}

    return _answered(finish)


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    import argparse

    import uvicorn

    parser = argparse.ArgumentParser(description="the inline login baseline")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, access_log=False, log_level="warning")
