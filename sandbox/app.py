"""Twilio Verify v2 on the wire, served from memory, for the real ``twilio`` SDK to talk to.

Form-encoded PascalCase in, snake_case JSON out, Twilio's error bodies and timestamp format.
Beside Twilio's paths, ``/sandbox/*`` shows what was sent and sets failures. One process, one
event loop: every state change happens between two awaits, so concurrent requests are safe.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import ipaddress
import json
import secrets
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.faults import Faults
from sandbox.state import (
    Message,
    RateWindow,
    Service,
    TwilioError,
    Verification,
    VerifyState,
)

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
Handler = Callable[[Request, dict[str, str]], Awaitable[tuple[int, dict[str, Any]]]]


@dataclass
class Stats:
    requests_total: int = 0
    requests_by_endpoint: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    responses_by_status: Counter[str] = field(default_factory=Counter)
    sends_by_to: Counter[str] = field(default_factory=Counter)
    rate: RateWindow = field(default_factory=RateWindow)
    in_flight: int = 0
    peak_in_flight: int = 0
    started_at: float = field(default_factory=time.monotonic)

    def to_json(self) -> dict[str, Any]:
        duplicates = {to: n for to, n in self.sends_by_to.items() if n > 1}
        return {
            "requests_total": self.requests_total,
            "requests_by_endpoint": dict(self.requests_by_endpoint),
            "outcomes": dict(self.outcomes),
            "responses_by_status": dict(self.responses_by_status),
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "sends_total": sum(self.sends_by_to.values()),
            "sends_by_to": dict(self.sends_by_to),
            "destinations_sent_more_than_once": len(duplicates),
            "max_sends_to_one_destination": max(self.sends_by_to.values(), default=0),
            "peak_requests_per_second": self.rate.peak,
            "uptime_seconds": round(time.monotonic() - self.started_at, 3),
        }


class Sandbox:
    def __init__(
        self,
        *,
        state: VerifyState | None = None,
        faults: Faults | None = None,
        account_sid: str | None = None,
        auth_token: str | None = None,
        allow_remote: bool = False,
    ) -> None:
        self.state = state or VerifyState()
        self.faults = faults or Faults()
        self.stats = Stats()
        self.account_sid = account_sid
        self.auth_token = auth_token
        # /sandbox/* shows the codes it "sent": only to this machine, unless told otherwise.
        self.allow_remote = allow_remote

    # --- the Twilio side

    def _authenticate(self, request: Request) -> str:
        """With credentials configured, exactly those; without, any well-formed account SID
        and any token — but some, as Twilio answers 401 / 20003 to a request without any."""
        header = request.headers.get("authorization", "")
        username = password = None
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:], validate=True).decode()
                username, _, password = decoded.partition(":")
            except (binascii.Error, UnicodeDecodeError):
                pass
        if self.account_sid is not None:
            if not (
                username is not None
                and password is not None
                and secrets.compare_digest(username, self.account_sid)
                and secrets.compare_digest(password, self.auth_token or "")
            ):
                raise _AuthenticationFailed
            return self.account_sid
        if username and username.startswith("AC") and len(username) == 34:
            return username
        if username:
            return DEFAULT_ACCOUNT_SID
        raise _AuthenticationFailed

    def twilio(self, operation: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            stats = self.stats
            stats.requests_total += 1
            stats.requests_by_endpoint[operation] += 1
            stats.rate.hit()
            stats.in_flight += 1
            stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
            try:
                return await self._answer(request, handler)
            finally:
                stats.in_flight -= 1

        return endpoint

    async def _answer(self, request: Request, handler: Handler) -> Response:
        delay = self.faults.latency_seconds()
        if delay:
            await asyncio.sleep(delay)
        try:
            account_sid = self._authenticate(request)
        except _AuthenticationFailed:
            return self._error(TwilioError(401, 20003, "Authenticate"), "unauthorized", auth=True)
        fate = self.faults.draw()
        if fate in ("error", "throttle"):
            return self._error(self.faults.injected_error(fate), fate)
        form = await _form(request)
        params = {**form, **request.path_params, "_account_sid": account_sid}
        try:
            status, body = await handler(request, params)
        except TwilioError as error:
            response = self._error(error, "twilio_error")
        else:
            response = JSONResponse(body, status_code=status)
            self.stats.outcomes["ok"] += 1
            self.stats.responses_by_status[str(status)] += 1
        if fate == "timeout":
            # The request was processed; its answer never arrives. The nastiest case for a
            # client: it cannot tell whether a code went out.
            self.stats.outcomes["timeout"] += 1
            await asyncio.sleep(self.faults.hang_seconds)
        return response

    def _error(self, error: TwilioError, outcome: str, *, auth: bool = False) -> JSONResponse:
        self.stats.outcomes[outcome] += 1
        self.stats.responses_by_status[str(error.status)] += 1
        body: dict[str, Any] = {
            "code": error.code,
            "message": error.message,
            "more_info": f"https://www.twilio.com/docs/errors/{error.code}",
            "status": error.status,
        }
        headers = {}
        if auth:
            body["detail"] = "Your AccountSid or AuthToken was incorrect."
            headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
        if error.status == 429 and error.code == 20429:
            headers["Retry-After"] = "1"
        return JSONResponse(body, status_code=error.status, headers=headers)

    def _service(self, params: dict[str, str]) -> Service:
        return self.state.service(params["service_sid"], params["_account_sid"])

    async def create_service(
        self, request: Request, params: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        service = self.state.create_service(
            params["_account_sid"], params.get("FriendlyName"), params.get("CodeLength")
        )
        return 201, _service_json(service, str(request.base_url))

    async def fetch_service(
        self, request: Request, params: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        return 200, _service_json(self._service(params), str(request.base_url))

    async def create_verification(
        self, request: Request, params: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        service = self._service(params)
        to = params.get("To")
        refusal = self.faults.number_refusal(to)
        if refusal is not None:
            raise refusal
        verification = self.state.create_verification(service, to, params.get("Channel"))
        self.stats.sends_by_to[verification.to] += 1
        return 201, _verification_json(verification, str(request.base_url))

    async def fetch_verification(
        self, request: Request, params: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        verification = self.state.fetch_verification(self._service(params), params["sid"])
        return 200, _verification_json(verification, str(request.base_url))

    async def update_verification(
        self, request: Request, params: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        verification = self.state.update_verification(
            self._service(params), params["sid"], params.get("Status")
        )
        return 200, _verification_json(verification, str(request.base_url))

    async def create_check(
        self, _request: Request, params: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        verification = self.state.check(
            self._service(params),
            params.get("To"),
            params.get("VerificationSid"),
            params.get("Code"),
        )
        return 200, _check_json(verification)

    # --- the sandbox's own routes

    async def list_messages(self, request: Request) -> Response:
        to = request.query_params.get("to")
        try:
            limit = min(max(int(request.query_params.get("limit", "100")), 1), 10_000)
        except ValueError:
            return _problem(400, "limit must be an integer")
        return JSONResponse([_message_json(m) for m in self.state.messages_to(to, limit)])

    async def read_stats(self, _request: Request) -> Response:
        return JSONResponse(self.stats.to_json())

    async def read_faults(self, _request: Request) -> Response:
        return JSONResponse(self.faults.to_json())

    async def write_faults(self, request: Request) -> Response:
        try:
            data = json.loads(await request.body() or b"{}")
            if not isinstance(data, dict):
                raise ValueError("a JSON object is expected")
            self.faults = Faults.from_json(data)
        except (ValueError, TypeError) as exc:
            return _problem(400, str(exc))
        return JSONResponse(self.faults.to_json())

    async def reset(self, _request: Request) -> Response:
        self.state.reset()
        self.faults = Faults()
        self.stats = Stats()
        return JSONResponse({"status": "reset"})

    async def read_clock(self, _request: Request) -> Response:
        return JSONResponse(_clock_json(self.state))

    async def advance_clock(self, request: Request) -> Response:
        try:
            data = json.loads(await request.body() or b"{}")
            seconds = float(data["advance_seconds"])
            if not 0 <= seconds <= 86_400 * 7:
                raise ValueError
        except (ValueError, TypeError, KeyError):
            return _problem(400, 'send {"advance_seconds": N} with 0 <= N <= 604800')
        self.state.clock.advance(seconds)
        return JSONResponse(_clock_json(self.state))

    async def healthz(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def _local(
        self, endpoint: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def only_from_here(request: Request) -> Response:
            host = request.client.host if request.client else ""
            if not self.allow_remote and not _is_loopback(host):
                return _problem(
                    403,
                    "the sandbox's own routes answer only on loopback "
                    "(start it with --allow-remote to change that)",
                )
            return await endpoint(request)

        return only_from_here

    def routes(self) -> list[Route]:
        services = "/v2/Services/{service_sid}"
        return [
            Route(
                "/v2/Services", self.twilio("CreateService", self.create_service), methods=["POST"]
            ),
            Route(services, self.twilio("FetchService", self.fetch_service), methods=["GET"]),
            Route(
                services + "/Verifications",
                self.twilio("CreateVerification", self.create_verification),
                methods=["POST"],
            ),
            Route(
                services + "/Verifications/{sid}",
                self.twilio("FetchVerification", self.fetch_verification),
                methods=["GET"],
            ),
            Route(
                services + "/Verifications/{sid}",
                self.twilio("UpdateVerification", self.update_verification),
                methods=["POST"],
            ),
            Route(
                services + "/VerificationCheck",
                self.twilio("CreateVerificationCheck", self.create_check),
                methods=["POST"],
            ),
            Route("/sandbox/messages", self._local(self.list_messages), methods=["GET"]),
            Route("/sandbox/stats", self._local(self.read_stats), methods=["GET"]),
            Route("/sandbox/faults", self._local(self.read_faults), methods=["GET"]),
            Route("/sandbox/faults", self._local(self.write_faults), methods=["PUT"]),
            Route("/sandbox/reset", self._local(self.reset), methods=["POST"]),
            Route("/sandbox/clock", self._local(self.read_clock), methods=["GET"]),
            Route("/sandbox/clock", self._local(self.advance_clock), methods=["POST"]),
            Route("/healthz", self.healthz, methods=["GET"]),
        ]


class _AuthenticationFailed(Exception):
    pass


def create_sandbox_app(sandbox: Sandbox | None = None) -> Starlette:
    sandbox = sandbox or Sandbox()

    async def not_found(request: Request, _exc: Exception) -> Response:
        sandbox.stats.requests_total += 1
        sandbox.stats.requests_by_endpoint["unknown"] += 1
        error = TwilioError(404, 20404, f"The requested resource {request.url.path} was not found")
        return sandbox._error(error, "not_found")

    app = Starlette(routes=sandbox.routes(), exception_handlers={404: not_found, 405: not_found})
    app.state.sandbox = sandbox
    return app


async def _form(request: Request) -> dict[str, str]:
    if request.method != "POST":
        return {}
    body = await request.body()
    if not body:
        return {}
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


def _time(value: Any) -> str:
    return str(value.strftime(TIME_FORMAT))


def _base(base_url: str) -> str:
    return base_url.rstrip("/")


def _service_json(service: Service, base_url: str) -> dict[str, Any]:
    url = f"{_base(base_url)}/v2/Services/{service.sid}"
    return {
        "sid": service.sid,
        "account_sid": service.account_sid,
        "friendly_name": service.friendly_name,
        "code_length": service.code_length,
        "lookup_enabled": False,
        "psd2_enabled": False,
        "skip_sms_to_landlines": False,
        "dtmf_input_required": False,
        "tts_name": None,
        "do_not_share_warning_enabled": False,
        "custom_code_enabled": False,
        "push": {"include_date": False, "apn_credential_sid": None, "fcm_credential_sid": None},
        "totp": {"issuer": None, "time_step": None, "code_length": None, "skew": None},
        "whatsapp": {"msg_service_sid": None, "from": None},
        "passkeys": {
            "relying_party": {"id": None, "name": None, "origins": None},
            "authenticator_attachment": None,
            "discoverable_credentials": None,
            "user_verification": None,
        },
        "default_template_sid": None,
        "verify_event_subscription_enabled": False,
        "date_created": _time(service.created_at),
        "date_updated": _time(service.updated_at),
        "url": url,
        "links": {
            "verification_checks": f"{url}/VerificationCheck",
            "verifications": f"{url}/Verifications",
            "rate_limits": f"{url}/RateLimits",
            "messaging_configurations": f"{url}/MessagingConfigurations",
            "entities": f"{url}/Entities",
            "webhooks": f"{url}/Webhooks",
            "access_tokens": f"{url}/AccessTokens",
        },
    }


def _verification_json(verification: Verification, base_url: str) -> dict[str, Any]:
    return {
        "sid": verification.sid,
        "service_sid": verification.service_sid,
        "account_sid": verification.account_sid,
        "to": verification.to,
        "channel": verification.channel,
        "status": verification.status,
        "valid": verification.valid,
        "date_created": _time(verification.created_at),
        "date_updated": _time(verification.updated_at),
        "lookup": {},
        "amount": None,
        "payee": None,
        "send_code_attempts": [
            {
                "time": _time(attempt.time),
                "channel": attempt.channel.upper()
                if attempt.channel in ("sms", "call")
                else attempt.channel,
                "attempt_sid": attempt.attempt_sid,
            }
            for attempt in verification.send_attempts
        ],
        "sna": None,
        "url": (
            f"{_base(base_url)}/v2/Services/{verification.service_sid}"
            f"/Verifications/{verification.sid}"
        ),
    }


def _check_json(verification: Verification) -> dict[str, Any]:
    return {
        "sid": verification.sid,
        "service_sid": verification.service_sid,
        "account_sid": verification.account_sid,
        "to": verification.to,
        "channel": verification.channel,
        "status": verification.status,
        "valid": verification.valid,
        "amount": None,
        "payee": None,
        "sna_attempts_error_codes": [],
        "date_created": _time(verification.created_at),
        "date_updated": _time(verification.updated_at),
    }


def _message_json(message: Message) -> dict[str, Any]:
    return {
        "to": message.to,
        "channel": message.channel,
        "code": message.code,
        "verification_sid": message.verification_sid,
        "created_at": _time(message.created_at),
    }


def _clock_json(state: VerifyState) -> dict[str, Any]:
    return {"now": _time(state.clock.now()), "offset_seconds": state.clock.offset.total_seconds()}


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"status": status, "detail": detail}, status_code=status)
