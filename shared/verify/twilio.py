"""The Verify port on the real ``twilio`` SDK. The only module that imports ``twilio``.

The SDK builds Twilio's requests and reads its answers; the HTTP underneath is ours: one aiohttp
session per process with explicit connect and read timeouts and kept-alive connections, so a
worker holds hundreds of calls in flight on one event loop without a thread each. (aiohttp, not
httpx: httpx's pool looks at every open connection for every request, and with hundreds open
that cost more CPU than the calls themselves.) Twilio's answers become the project's errors
here, by Twilio *error code* rather than HTTP status: a 429 may mean "slow down" (20429) or
"this verification is done" (60202, 60203).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, TypedDict, Unpack
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import structlog
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from shared.errors import (
    ErrorCode,
    ProviderError,
    ProviderFinalError,
    ProviderPermanentError,
    ProviderTransientError,
)
from shared.kit import metrics
from shared.kit.settings import (
    SANDBOX_ACCOUNT_SID,
    SANDBOX_AUTH_TOKEN,
    SANDBOX_SERVICE_SID,
    Settings,
)
from shared.kit.startup import Misconfigured, has_real_twilio_credentials
from shared.verify.port import LineFacts, ProviderCheck, ProviderService, ProviderVerification
from shared.verify.twilio_passkeys import TwilioPasskeyFactors
from shared.verify.twilio_totp import TwilioTotpFactors

log = structlog.get_logger(__name__)

# The SDK logs every request URL at INFO, and a fetch by To puts the phone number in the URL.
_sdk_logger = logging.getLogger("twostep.twilio_sdk")
_sdk_logger.setLevel(logging.WARNING)

# Twilio error codes and what they mean for us (https://www.twilio.com/docs/verify/api/error-codes).
_TRANSIENT_CODES = frozenset({20429, 20500, 20503})
_FINAL_FOR_VERIFICATION: dict[int, ErrorCode] = {
    60202: ErrorCode.MAX_CHECK_ATTEMPTS_REACHED,
    # TOTP: five wrong codes on a challenge (60308) or on a factor being verified (60310).
    60308: ErrorCode.MAX_CHECK_ATTEMPTS_REACHED,
    60310: ErrorCode.MAX_CHECK_ATTEMPTS_REACHED,
    60203: ErrorCode.MAX_SEND_ATTEMPTS_REACHED,
    60212: ErrorCode.PROVIDER_REJECTED,
    20404: ErrorCode.VERIFICATION_EXPIRED,
}
_PERMANENT_FOR_NUMBER: dict[int, ErrorCode] = {
    60200: ErrorCode.INVALID_PHONE_NUMBER,
    60205: ErrorCode.LANDLINE_NOT_SUPPORTED,
    60410: ErrorCode.FRAUD_BLOCKED,
    60605: ErrorCode.COUNTRY_BLOCKED,
    60217: ErrorCode.CHANNEL_NOT_CONFIGURED,
    60223: ErrorCode.CHANNEL_NOT_CONFIGURED,
    68008: ErrorCode.CHANNEL_NOT_CONFIGURED,
}
# Failures that happen before a request leaves this process: the provider never saw it.
_NEVER_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)


class _SdkRequest(TypedDict, total=False):
    """What the SDK passes its HTTP client's ``request`` besides the method and URL."""

    params: dict[str, object] | None
    data: dict[str, object] | None
    headers: dict[str, str] | None
    auth: tuple[str, str] | None
    timeout: float | None
    allow_redirects: bool


class _AiohttpTwilioClient(AsyncHttpClient):  # type: ignore[misc]  # twilio ships no types
    """The SDK's asynchronous HTTP client: pooled connections, connect and read timeouts, and
    optionally every ``*.twilio.com`` URL sent to another base URL (the sandbox)."""

    def __init__(
        self,
        *,
        base_url: str | None,
        connect_timeout: float,
        read_timeout: float,
        max_connections: int,
    ) -> None:
        super().__init__(_sdk_logger, True, read_timeout)
        self._base_url = base_url
        # No overall limit: a call may wait for a free connection (bounded by the gate and the
        # pool's size), then has connect_timeout to connect and read_timeout between reads.
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=read_timeout
        )
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        # Made on first use: an aiohttp session belongs to the event loop it was made on.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=self._timeout,
                auto_decompress=True,
            )
        return self._session

    async def request(self, method: str, uri: str, **options: Unpack[_SdkRequest]) -> Response:
        # The SDK's timeout and redirect options are ignored: ours are set above, and Twilio's
        # API does not redirect.
        if self._base_url is not None:
            parts = urlsplit(uri)
            if parts.hostname and parts.hostname.endswith("twilio.com"):
                uri = self._base_url + urlunsplit(("", "", parts.path, parts.query, ""))
        headers = dict(options.get("headers") or {})
        auth = options.get("auth")
        if auth is not None:
            headers["Authorization"] = aiohttp.encode_basic_auth(*auth)
        # Verify Passkeys takes JSON bodies; the rest of Twilio's API, forms.
        body = options.get("data")
        as_json = headers.get("Content-Type") == "application/json"
        async with self._open().request(
            method,
            uri,
            params=options.get("params"),  # type: ignore[arg-type]
            data=None if as_json else body,
            json=body if as_json else None,
            headers=headers,
            allow_redirects=False,
        ) as answer:
            return Response(answer.status, await answer.text(), answer.headers)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class TwilioVerifyClient(TwilioTotpFactors, TwilioPasskeyFactors):
    """Every port of ``shared.verify.port``, on one SDK client and one pool of connections."""

    def __init__(self, settings: Settings, *, max_connections: int | None = None) -> None:
        self._observed = _observed
        account_sid, auth_token, self.default_service = _credentials(settings)
        self._http = _AiohttpTwilioClient(
            base_url=settings.twilio_base_url,
            connect_timeout=settings.twilio_connect_timeout_seconds,
            read_timeout=settings.twilio_read_timeout_seconds,
            max_connections=max_connections or settings.worker_concurrency,
        )
        # An explicit empty environment keeps TWILIO_EDGE/TWILIO_REGION from rewriting our URLs.
        self._client = Client(
            account_sid, auth_token, http_client=self._http, environment={"_": ""}
        )
        self._services: dict[str, Any] = {}

    def _service(self, sid: str) -> Any:
        context = self._services.get(sid)
        if context is None:
            context = self._services[sid] = self._client.verify.v2.services(sid)
        return context

    async def start_verification(
        self, service: str, to: str, channel: str, locale: str | None
    ) -> ProviderVerification:
        kwargs: dict[str, Any] = {"to": to, "channel": str(channel)}
        if locale:
            kwargs["locale"] = locale
        with _observed("create", "start verification"):
            instance = await self._service(service).verifications.create_async(**kwargs)
        return _to_provider_verification(instance)

    async def find_pending_verification(self, service: str, to: str) -> ProviderVerification | None:
        try:
            with _observed("fetch", "fetch verification"):
                instance = await self._service(service).verifications(to).fetch_async()
        except ProviderFinalError as exc:
            if exc.provider_code == 20404:
                return None
            raise
        verification = _to_provider_verification(instance)
        return verification if verification.status == "pending" else None

    async def check_code(self, service: str, verification_sid: str, code: str) -> ProviderCheck:
        with _observed("check", "check code"):
            instance = await self._service(service).verification_checks.create_async(
                verification_sid=verification_sid, code=code
            )
        return ProviderCheck(approved=instance.status == "approved")

    async def cancel_verification(self, service: str, verification_sid: str) -> None:
        try:
            with _observed("cancel", "cancel verification"):
                await (
                    self._service(service)
                    .verifications(verification_sid)
                    .update_async(status="canceled")
                )
        except ProviderFinalError as exc:
            if exc.provider_code != 20404:  # gone already: approved, expired or canceled
                raise

    async def was_approved(self, service: str, verification_sid: str) -> bool:
        with _observed("attempts", "list verification attempts"):
            attempts = await self._client.verify.v2.verification_attempts.list_async(
                verification_sid=verification_sid, verify_service_sid=service, limit=20
            )
        return any(str(attempt.conversion_status) == "converted" for attempt in attempts)

    async def create_service(self, friendly_name: str, code_length: int) -> ProviderService:
        with _observed("create_service", "create service"):
            instance = await self._client.verify.v2.services.create_async(
                friendly_name=friendly_name, code_length=code_length
            )
        return _to_provider_service(instance)

    async def fetch_service(self, service: str) -> ProviderService:
        with _observed("fetch_service", "fetch service"):
            instance = await self._service(service).fetch_async()
        return _to_provider_service(instance)

    async def look_up(self, e164: str, *, line_type: bool, sim_swap: bool) -> LineFacts:
        asked = (("line_type_intelligence", line_type), ("sim_swap", sim_swap))
        fields = [name for name, wanted in asked if wanted]
        with _observed("lookup", "look up number"):
            instance = await self._client.lookups.v2.phone_numbers(e164).fetch_async(
                fields=",".join(fields)
            )
        return _to_line_facts(instance)

    async def close(self) -> None:
        await self._http.close()


def _to_provider_service(instance: Any) -> ProviderService:
    return ProviderService(
        sid=str(instance.sid),
        friendly_name=str(instance.friendly_name),
        code_length=int(instance.code_length or 0),
    )


def _to_line_facts(instance: Any) -> LineFacts:
    line = instance.line_type_intelligence or {}
    swap = (instance.sim_swap or {}).get("last_sim_swap") or {}
    in_period = swap.get("swapped_in_period")
    return LineFacts(
        line_type=line.get("type"),
        last_sim_swap_at=_parse_twilio_time(swap.get("last_sim_swap_date")),
        swapped_in_period=in_period if isinstance(in_period, bool) else None,
    )


def _credentials(settings: Settings) -> tuple[str, str, str]:
    """Real credentials go to Twilio only; anything at another base URL gets placeholders.
    (The worker refuses to start with both; this holds even if something builds a client
    without that check.)"""
    if settings.uses_sandbox:
        if has_real_twilio_credentials(settings):
            raise Misconfigured(
                ["real Twilio credentials must never go to TWOSTEP_TWILIO_BASE_URL"]
            )
        return (
            SANDBOX_ACCOUNT_SID,
            SANDBOX_AUTH_TOKEN,
            settings.twilio_verify_service_sid or SANDBOX_SERVICE_SID,
        )
    sid, token = settings.twilio_account_sid, settings.twilio_auth_token
    if sid is None or token is None or settings.twilio_verify_service_sid is None:
        raise Misconfigured(
            [
                "no Twilio credentials: set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and "
                "TWILIO_VERIFY_SERVICE_SID, or TWOSTEP_TWILIO_BASE_URL to use the sandbox"
            ]
        )
    return sid, token.get_secret_value(), settings.twilio_verify_service_sid


_OUTCOMES: tuple[tuple[type[ProviderError], str], ...] = (
    (ProviderTransientError, "transient"),
    (ProviderFinalError, "final"),
    (ProviderPermanentError, "permanent"),
)


@contextlib.contextmanager
def _observed(operation: str, described: str) -> Iterator[None]:
    """One provider call: its errors translated, its time and outcome counted and logged (a line
    with the operation, outcome and Twilio's code, never the request: it names the number)."""
    started = time.perf_counter()
    outcome, code = "ok", None
    try:
        with _translated_errors(described):
            yield
    except ProviderError as exc:
        outcome = next((name for kind, name in _OUTCOMES if isinstance(exc, kind)), "error")
        code = exc.provider_code
        raise
    finally:
        seconds = time.perf_counter() - started
        metrics.PROVIDER_CALL_SECONDS.labels(operation=operation).observe(seconds)
        metrics.PROVIDER_OUTCOMES.labels(
            operation=operation, outcome=outcome, code=str(code or "none")
        ).inc()
        log.info(
            "provider.call",
            operation=operation,
            outcome=outcome,
            provider_code=code,
            ms=round(seconds * 1000, 1),
        )


class _translated_errors:
    """Turn whatever the SDK or the HTTP stack raises into a ProviderError.

    Messages carry the operation, the HTTP status and Twilio's code, never the request: the SDK's
    exception text can contain the number (a fetch by To puts it in the URL).
    """

    def __init__(self, operation: str) -> None:
        self._operation = operation

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None or isinstance(exc, ProviderError):
            return
        if isinstance(exc, TwilioRestException):
            raise classify_twilio_error(self._operation, exc.status, exc.code) from None
        if isinstance(exc, _NEVER_SENT):
            raise ProviderTransientError(
                f"{self._operation}: could not reach the provider ({type(exc).__name__})",
                ambiguous=False,
            ) from None
        if isinstance(exc, aiohttp.ServerTimeoutError | TimeoutError):
            raise ProviderTransientError(
                f"{self._operation}: the provider did not answer in time", ambiguous=True
            ) from None
        if isinstance(exc, aiohttp.ClientError | TwilioException | ValueError):
            # Sent, at least in part, with no usable answer: the provider may have acted on it.
            raise ProviderTransientError(
                f"{self._operation}: unusable answer from the provider ({type(exc).__name__})",
                ambiguous=True,
            ) from None


def classify_twilio_error(operation: str, status: int, code: int | None) -> ProviderError:
    message = f"{operation}: provider answered HTTP {status}" + (f", error {code}" if code else "")
    if code in _TRANSIENT_CODES or status >= 500 or (status == 429 and code in (None, 429)):
        return ProviderTransientError(
            message,
            provider_code=code,
            status=status,
            # 503 and 20429 are refusals; other 5xx may have been processed before failing.
            ambiguous=status >= 500 and status != 503,
        )
    if code is not None and code in _FINAL_FOR_VERIFICATION:
        return ProviderFinalError(
            message, reason=_FINAL_FOR_VERIFICATION[code], provider_code=code, status=status
        )
    if code is not None and code in _PERMANENT_FOR_NUMBER:
        return ProviderPermanentError(
            message, reason=_PERMANENT_FOR_NUMBER[code], provider_code=code, status=status
        )
    return ProviderPermanentError(
        message, reason=ErrorCode.PROVIDER_REJECTED, provider_code=code, status=status
    )


def _to_provider_verification(instance: Any) -> ProviderVerification:
    attempts = instance.send_code_attempts or []
    last_sent_at = _parse_twilio_time(attempts[-1].get("time")) if attempts else None
    created_at = instance.date_created
    if not isinstance(created_at, datetime):
        created_at = _parse_twilio_time(created_at) or datetime.now(UTC)
    return ProviderVerification(
        sid=str(instance.sid),
        status=str(instance.status),
        channel=str(instance.channel),
        created_at=created_at,
        send_attempts=len(attempts),
        last_sent_at=last_sent_at,
    )


def _parse_twilio_time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None
