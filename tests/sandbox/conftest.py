"""The sandbox's own suite: it is driven only through the real ``twilio`` SDK (plus the
``/sandbox`` routes), and every answer it gives is validated against Twilio's own schemas."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from openapi_schema_validator import OAS30Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from sandbox.app import Sandbox, create_sandbox_app
from sandbox.state import VerifyState
from tests.support import REPO, ThreadedServer

SCHEMAS = json.loads((REPO / "tests" / "data" / "twilio_verify_v2_schemas.json").read_text())
_REGISTRY = Registry().with_resource(
    "spec", Resource.from_contents(SCHEMAS, default_specification=DRAFT4)
)
ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "sandbox-test-token"


def schema_errors(schema: str, body: Any) -> list[str]:
    validator = OAS30Validator(
        {"$ref": f"spec#/components/schemas/{schema}"},
        registry=_REGISTRY,
        format_checker=OAS30Validator.FORMAT_CHECKER,
    )
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)
    ]


def schema_properties(schema: str) -> set[str]:
    return set(SCHEMAS["components"]["schemas"][schema]["properties"])


@dataclass
class Exchange:
    method: str
    path: str
    status: int
    body: Any


class RecordingHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """Twilio's own HTTP client, sent to the sandbox, keeping every answer for validation."""

    def __init__(self, base_url: str) -> None:
        super().__init__(timeout=5)
        self.base_url = base_url
        self.exchanges: list[Exchange] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        parts = urlsplit(url)
        assert parts.hostname == "verify.twilio.com", url
        local = self.base_url + urlunsplit(("", "", parts.path, parts.query, ""))
        response = super().request(method, local, *args, **kwargs)
        self.exchanges.append(
            Exchange(method, parts.path, response.status_code, json.loads(response.text))
        )
        return response


def schema_for(exchange: Exchange) -> str:
    if exchange.status >= 400:
        return "twilio.error"
    if exchange.path.endswith("/VerificationCheck"):
        return "verify.v2.service.verification_check"
    if "/Verifications" in exchange.path:
        return "verify.v2.service.verification"
    return "verify.v2.service"


@pytest.fixture(scope="session")
def auth_sandbox_server() -> Iterator[ThreadedServer]:
    """A second sandbox, started with credentials: it accepts exactly those."""
    server = ThreadedServer(
        create_sandbox_app(
            Sandbox(
                state=VerifyState(lifetime=timedelta(minutes=2)),
                account_sid=ACCOUNT_SID,
                auth_token=AUTH_TOKEN,
            )
        )
    ).start()
    yield server
    server.stop()


@pytest.fixture
def recorder(sandbox_server: ThreadedServer) -> Iterator[RecordingHttpClient]:
    recorder = RecordingHttpClient(sandbox_server.url)
    yield recorder
    assert recorder.exchanges, "the test made no SDK call"
    for exchange in recorder.exchanges:
        schema = schema_for(exchange)
        errors = schema_errors(schema, exchange.body)
        assert errors == [], f"{exchange.method} {exchange.path} → {exchange.status}: {errors}"
        if schema == "twilio.error":
            assert set(exchange.body) - {"detail"} == {"code", "message", "more_info", "status"}
            assert exchange.body["status"] == exchange.status
            assert (
                exchange.body["more_info"]
                == f"https://www.twilio.com/docs/errors/{exchange.body['code']}"
            )
        else:
            assert set(exchange.body) == schema_properties(schema), exchange.path
    recorder.session.close()


@pytest.fixture
def twilio(recorder: RecordingHttpClient) -> Client:
    return Client(ACCOUNT_SID, AUTH_TOKEN, http_client=recorder, environment={"_": ""})


@pytest.fixture
def service(twilio: Client) -> Any:
    """A fresh Verify service per test, created through the SDK."""
    created = twilio.verify.v2.services.create(friendly_name="twostep tests")
    return twilio.verify.v2.services(created.sid)


@pytest.fixture
def own_sandbox() -> Iterator[ThreadedServer]:
    """A sandbox of this test's own, for tests that move its clock or change its lifetime."""
    server = ThreadedServer(create_sandbox_app(Sandbox())).start()
    yield server
    server.stop()


def sdk_client(base_url: str, account_sid: str = ACCOUNT_SID, token: str = AUTH_TOKEN) -> Client:
    return Client(
        account_sid, token, http_client=RecordingHttpClient(base_url), environment={"_": ""}
    )
