"""Twilio Verify v2 and Lookup v2 on the wire, served from memory, for the real ``twilio`` SDK.

Form-encoded PascalCase in, snake_case JSON out, Twilio's error bodies and timestamp format.
Twilio's hosts (verify.twilio.com, lookups.twilio.com) share one server: their paths do not
overlap. Beside them, ``/sandbox/*`` shows what was sent and sets failures. One process, one
event loop: every state change happens between two awaits, so concurrent requests are safe.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import ipaddress
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from sandbox.attempts import FILTERS, AttemptFilter
from sandbox.common import TwilioError
from sandbox.factor_routes import FactorRoutes
from sandbox.faults import Faults
from sandbox.lookup import lookup_json, parse_fields, verification_lookup
from sandbox.paging import PageRequest, envelope, select
from sandbox.passkey_routes import PasskeyRoutes
from sandbox.services import Service
from sandbox.state import VerifyState
from sandbox.stats import Stats
from sandbox.wire import check_json, clock_json, message_json, service_json, verification_json

# The one pair the sandbox accepts unless told another (TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN):
# what twostep's adapter sends in sandbox mode (shared/kit/settings.py's SANDBOX_ACCOUNT_SID and
# SANDBOX_AUTH_TOKEN). Public development values, not secrets.
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "sandbox"  # noqa: S105
Params = dict[str, str]
Answer = tuple[int, dict[str, Any] | None]
Handler = Callable[[Request, Params], Awaitable[Answer]]
Endpoint = Callable[[Request], Awaitable[Response]]


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
        if (account_sid is None) != (auth_token is None):
            raise ValueError("give the sandbox both an account SID and an auth token, or neither")
        self.state = state or VerifyState()
        self.faults = faults or Faults()
        self.stats = Stats()
        self._all_gathered = asyncio.Event()
        self.account_sid = account_sid or DEFAULT_ACCOUNT_SID
        self.auth_token = auth_token or DEFAULT_AUTH_TOKEN
        self.state.services.ensure_default(self.account_sid)
        # /sandbox/* shows the codes it "sent": only to this machine, unless told otherwise.
        self.allow_remote = allow_remote

    # --- the Twilio side

    def _authenticate(self, request: Request) -> str:
        """Exactly the one pair, as Twilio checks them: anything else is 401 / 20003."""
        header = request.headers.get("authorization", "")
        username = password = ""
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:], validate=True).decode()
                username, _, password = decoded.partition(":")
            except (binascii.Error, UnicodeDecodeError):
                pass
        # Both compared, always, in constant time: a wrong SID and a wrong token look alike.
        sid_ok = secrets.compare_digest(username.encode(), self.account_sid.encode())
        token_ok = secrets.compare_digest(password.encode(), self.auth_token.encode())
        if not (sid_ok and token_ok):
            raise _AuthenticationFailed
        return self.account_sid

    def twilio(self, operation: str, handler: Handler) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            stats = self.stats
            stats.requests_total += 1
            stats.requests_by_endpoint[operation] += 1
            stats.rate.hit()
            stats.in_flight += 1
            stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
            try:
                if operation == "CreateVerification":
                    await self._gathered()
                return await self._answer(request, handler)
            finally:
                stats.in_flight -= 1

        return endpoint

    async def _gathered(self) -> None:
        """With ``gather``, sends wait until that many requests are in flight together (at most
        ``hang_seconds``); from then on none waits."""
        wanted = self.faults.gather
        if not wanted or self._all_gathered.is_set():
            return
        if self.stats.in_flight >= wanted:
            self._all_gathered.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_gathered.wait(), self.faults.hang_seconds)

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
        params = {**(await _params(request)), **request.path_params, "_account_sid": account_sid}
        try:
            status, body = await handler(request, params)
        except TwilioError as error:
            response: Response = self._error(error, "twilio_error")
        else:
            # DELETE answers 204 with no body, as Twilio does.
            response = Response(status_code=status) if body is None else JSONResponse(body, status)
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

    def _service(self, request: Request, params: Params) -> Service:
        # Twilio's 404 names the path asked for, below the version: /Services/VA…/Verifications.
        resource = str(request.scope["path"]).removeprefix("/v2")
        return self.state.services.get(params["service_sid"], params["_account_sid"], resource)

    # --- Services

    async def create_service(self, request: Request, params: Params) -> Answer:
        service = self.state.services.create(params["_account_sid"], params)
        return 201, service_json(service, _base(request))

    async def list_services(self, request: Request, params: Params) -> Answer:
        page_request = PageRequest.parse(params)
        services = self.state.services.of_account(params["_account_sid"])
        page = select(services, lambda s: s.seq, page_request, descending=False)
        base = _base(request)
        records = [service_json(service, base) for service in page.items]
        return 200, envelope("services", records, page, page_request, f"{base}/v2/Services", {})

    async def fetch_service(self, request: Request, params: Params) -> Answer:
        return 200, service_json(self._service(request, params), _base(request))

    async def update_service(self, request: Request, params: Params) -> Answer:
        service = self.state.services.update(self._service(request, params), params)
        return 200, service_json(service, _base(request))

    async def delete_service(self, request: Request, params: Params) -> Answer:
        self.state.delete_service(self._service(request, params))
        return 204, None

    # --- Verifications

    async def create_verification(self, request: Request, params: Params) -> Answer:
        service = self._service(request, params)
        asked = self.state.send_request(
            service, params.get("To"), params.get("Channel"), params.get("CustomCode")
        )
        refusal = self.faults.number_refusal(asked.to, asked.channel)
        if refusal is not None:
            raise refusal
        verification = self.state.send(service, asked)
        if service.lookup_enabled and not verification.lookup:
            verification.lookup = verification_lookup(verification.to)
        self.stats.sends_by_to[verification.to] += 1
        return 201, verification_json(verification, _base(request))

    async def fetch_verification(self, request: Request, params: Params) -> Answer:
        service = self._service(request, params)
        verification = self.state.fetch_verification(service, params["sid"])
        return 200, verification_json(verification, _base(request))

    async def update_verification(self, request: Request, params: Params) -> Answer:
        service = self._service(request, params)
        verification = self.state.update_verification(service, params["sid"], params.get("Status"))
        return 200, verification_json(verification, _base(request))

    async def create_check(self, request: Request, params: Params) -> Answer:
        verification = self.state.check(
            self._service(request, params),
            params.get("To"),
            params.get("VerificationSid"),
            params.get("Code"),
        )
        return 200, check_json(verification)

    # --- Verification Attempts

    async def list_attempts(self, request: Request, params: Params) -> Answer:
        wanted = AttemptFilter.parse(params)
        page_request = PageRequest.parse(params)
        attempts = self.state.attempts.select(params["_account_sid"], wanted)
        page = select(attempts, lambda a: a.seq, page_request, descending=True)
        base = _base(request)
        filters = {name: params[name] for name in FILTERS if name in params}
        records = [attempt.to_json(base) for attempt in page.items]
        return 200, envelope(
            "attempts", records, page, page_request, f"{base}/v2/Attempts", filters
        )

    async def fetch_attempt(self, request: Request, params: Params) -> Answer:
        attempt = self.state.attempts.get(params["sid"], params["_account_sid"])
        return 200, attempt.to_json(_base(request))

    # --- Lookup v2

    async def fetch_phone_number(self, request: Request, params: Params) -> Answer:
        fields = parse_fields(params.get("Fields"))
        now = self.state.clock.now()
        return 200, lookup_json(
            params["phone_number"], fields, params.get("CountryCode"), now, _base(request)
        )

    # --- the sandbox's own routes

    async def list_messages(self, request: Request) -> Response:
        query = request.query_params
        try:
            limit = min(max(int(query.get("limit", "100")), 1), 10_000)
        except ValueError:
            return _problem(400, "limit must be an integer")
        messages = self.state.messages_to(query.get("to"), limit, query.get("service_sid"))
        return JSONResponse([message_json(m) for m in messages])

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
            self._all_gathered = asyncio.Event()
        except (ValueError, TypeError) as exc:
            return _problem(400, str(exc))
        return JSONResponse(self.faults.to_json())

    async def reset(self, _request: Request) -> Response:
        self.state.reset()
        self.faults = Faults()
        self.stats = Stats()
        self._all_gathered = asyncio.Event()
        return JSONResponse({"status": "reset"})

    async def set_email_integration(self, request: Request) -> Response:
        """What adding (or removing) an email integration in Twilio's Console does."""
        try:
            data = json.loads(await request.body() or b"{}")
            enabled = data["enabled"] if isinstance(data, dict) else None
            if not isinstance(enabled, bool):
                raise ValueError('{"enabled": true|false} is expected')
            service = self.state.services.set_email_integration(
                request.path_params["service_sid"], enabled
            )
        except (ValueError, KeyError) as exc:
            return _problem(400 if not isinstance(exc, KeyError) else 404, str(exc))
        return JSONResponse({"sid": service.sid, "email_integration": service.email_integration})

    async def read_clock(self, _request: Request) -> Response:
        return JSONResponse(clock_json(self.state))

    async def advance_clock(self, request: Request) -> Response:
        try:
            data = json.loads(await request.body() or b"{}")
            seconds = float(data["advance_seconds"])
            if not 0 <= seconds <= 86_400 * 7:
                raise ValueError
        except (ValueError, TypeError, KeyError):
            return _problem(400, 'send {"advance_seconds": N} with 0 <= N <= 604800')
        self.state.clock.advance(seconds)
        return JSONResponse(clock_json(self.state))

    async def healthz(self, _request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    def _local(self, endpoint: Endpoint) -> Endpoint:
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
        service = "/v2/Services/{service_sid}"
        verification = f"{service}/Verifications/{{sid}}"
        # The busiest first: Starlette tries routes in order.
        twilio: list[tuple[str, str, str, Handler]] = [
            (f"{service}/Verifications", "POST", "CreateVerification", self.create_verification),
            (f"{service}/VerificationCheck", "POST", "CreateVerificationCheck", self.create_check),
            (verification, "GET", "FetchVerification", self.fetch_verification),
            (verification, "POST", "UpdateVerification", self.update_verification),
            ("/v2/PhoneNumbers/{phone_number}", "GET", "FetchPhoneNumber", self.fetch_phone_number),
            ("/v2/Attempts", "GET", "ListVerificationAttempt", self.list_attempts),
            ("/v2/Attempts/{sid}", "GET", "FetchVerificationAttempt", self.fetch_attempt),
            ("/v2/Services", "POST", "CreateService", self.create_service),
            ("/v2/Services", "GET", "ListService", self.list_services),
            (service, "GET", "FetchService", self.fetch_service),
            (service, "POST", "UpdateService", self.update_service),
            (service, "DELETE", "DeleteService", self.delete_service),
            *FactorRoutes(self, self.state.factors).routes(),
            *PasskeyRoutes(self, self.state.passkeys).routes(),
        ]
        own: list[tuple[str, str, Endpoint]] = [
            ("/sandbox/messages", "GET", self.list_messages),
            ("/sandbox/stats", "GET", self.read_stats),
            ("/sandbox/faults", "GET", self.read_faults),
            ("/sandbox/faults", "PUT", self.write_faults),
            ("/sandbox/reset", "POST", self.reset),
            (
                "/sandbox/services/{service_sid}/email-integration",
                "PUT",
                self.set_email_integration,
            ),
            ("/sandbox/clock", "GET", self.read_clock),
            ("/sandbox/clock", "POST", self.advance_clock),
        ]
        return [
            *(
                Route(path, self.twilio(operation, handler), methods=[method])
                for path, method, operation, handler in twilio
            ),
            *(
                Route(path, self._local(endpoint), methods=[method])
                for path, method, endpoint in own
            ),
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


async def _params(request: Request) -> Params:
    """A GET's query, or a POST's form (Twilio reads parameters from the body on POST)."""
    if request.method == "GET":
        return dict(request.query_params)
    if request.method != "POST":
        return {}
    body = await request.body()
    if not body:
        return {}
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {key: values[0] for key, values in parsed.items()}


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _problem(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"status": status, "detail": detail}, status_code=status)
