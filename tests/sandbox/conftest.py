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
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from sandbox.app import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, Sandbox, create_sandbox_app
from sandbox.state import VerifyState
from tests.support import REPO, ThreadedServer

DATA = REPO / "tests" / "data"
SCHEMAS = json.loads((DATA / "twilio_verify_v2_schemas.json").read_text())
LOOKUP_SCHEMAS = json.loads((DATA / "twilio_lookups_v2_schemas.json").read_text())
_DOCUMENTS = {"spec": SCHEMAS, "lookups": LOOKUP_SCHEMAS}
_REGISTRY = Registry().with_resources(
    (name, Resource.from_contents(document, default_specification=DRAFT4))
    for name, document in _DOCUMENTS.items()
)
# Every schema name is in exactly one of the two documents.
_DOCUMENT_OF = {
    schema: name
    for name, document in _DOCUMENTS.items()
    for schema in document["components"]["schemas"]
}
# The shared sandbox (tests/conftest.py) accepts only its default pair, as twostep's adapter
# sends it; the second sandbox below is started with another pair.
ACCOUNT_SID = DEFAULT_ACCOUNT_SID
AUTH_TOKEN = DEFAULT_AUTH_TOKEN
OTHER_ACCOUNT_SID = "AC" + "5" * 32
OTHER_AUTH_TOKEN = "sandbox-test-token"
TWILIO_HOSTS = ("verify.twilio.com", "lookups.twilio.com")


def twilio_error(call: Any) -> TwilioRestException:
    """The Twilio error ``call`` raises through the SDK."""
    with pytest.raises(TwilioRestException) as raised:
        call()
    return raised.value


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = _DOCUMENTS[_DOCUMENT_OF[name]]["components"]["schemas"][name]
    return schema


def schema_errors(schema: str, body: Any) -> list[str]:
    validator = OAS30Validator(
        {"$ref": f"{_DOCUMENT_OF[schema]}#/components/schemas/{schema}"},
        registry=_REGISTRY,
        format_checker=OAS30Validator.FORMAT_CHECKER,
    )
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)
    ]


def schema_properties(schema: str) -> set[str]:
    return set(_schema(schema)["properties"])


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
        if parts.hostname in TWILIO_HOSTS:
            url = self.base_url + urlunsplit(("", "", parts.path, parts.query, ""))
        else:
            # Only the sandbox's own page URLs (meta.next_page_url), followed as given.
            assert url.startswith(self.base_url + "/v2/"), url
        response = super().request(method, url, *args, **kwargs)
        body = json.loads(response.text) if response.text else None
        self.exchanges.append(Exchange(method, parts.path, response.status_code, body))
        return response


_PASSKEY_ANSWERS = {
    "Factors": "passkeys.CreateNewFactorPasskey",
    "VerifyFactor": "passkeys.UpdatePasskeysFactor",
    "Challenges": "passkeys.CreateChallengePasskeys",
    "ApproveChallenge": "passkeys.UpdateChallengePasskeys",
}


def schema_for(exchange: Exchange) -> str | None:
    """The schema of an answer; None for DELETE's empty 204."""
    path = exchange.path
    if exchange.status >= 400:
        return "twilio.error"
    if exchange.method == "DELETE":
        return None
    if path.startswith("/v2/PhoneNumbers/"):
        return "LookupResponse"
    if path == "/v2/Attempts":
        return "ListVerificationAttemptResponse"
    if path.startswith("/v2/Attempts/"):
        return "verify.v2.verification_attempt"
    if path == "/v2/Services" and exchange.method == "GET":
        return "ListServiceResponse"
    if "/Passkeys/" in path:
        return _PASSKEY_ANSWERS[path.rsplit("/", 1)[1]]
    if "/Entities/" in path:
        if "/Challenges" in path:
            return "verify.v2.service.entity.challenge"
        if path.endswith("/Factors"):
            return "verify.v2.service.entity.new_factor"
        return "verify.v2.service.entity.factor"
    if path.endswith("/VerificationCheck"):
        return "verify.v2.service.verification_check"
    if "/Verifications" in path:
        return "verify.v2.service.verification"
    return "verify.v2.service"


def assert_twilio_shaped(exchange: Exchange) -> None:
    """The answer validates against Twilio's schema and has exactly its fields, no more."""
    schema = schema_for(exchange)
    where = f"{exchange.method} {exchange.path} → {exchange.status}"
    if schema is None:
        assert (exchange.status, exchange.body) == (204, None), where
        return
    errors = schema_errors(schema, exchange.body)
    assert errors == [], f"{where}: {errors}"
    body = exchange.body
    if schema == "twilio.error":
        assert set(body) - {"detail"} == {"code", "message", "more_info", "status"}
        assert body["status"] == exchange.status
        assert body["more_info"] == f"https://www.twilio.com/docs/errors/{body['code']}"
        return
    assert set(body) == schema_properties(schema), where
    if schema.startswith("List"):
        item = _schema(schema)["properties"][body["meta"]["key"]]["items"]["$ref"]
        item_schema = item.rsplit("/", 1)[1]
        assert all(
            set(record) == schema_properties(item_schema) for record in body[body["meta"]["key"]]
        )
        assert set(body["meta"]) == set(_schema(schema)["properties"]["meta"]["properties"])


@pytest.fixture(scope="session")
def auth_sandbox_server() -> Iterator[ThreadedServer]:
    """A second sandbox, started with other credentials: it accepts exactly those."""
    server = ThreadedServer(
        create_sandbox_app(
            Sandbox(
                state=VerifyState(lifetime=timedelta(minutes=2)),
                account_sid=OTHER_ACCOUNT_SID,
                auth_token=OTHER_AUTH_TOKEN,
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
        assert_twilio_shaped(exchange)
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
    """A sandbox of this test's own, for tests that move its clock or count its requests."""
    server = ThreadedServer(create_sandbox_app(Sandbox())).start()
    yield server
    server.stop()


def sdk_client(base_url: str, account_sid: str = ACCOUNT_SID, token: str = AUTH_TOKEN) -> Client:
    return Client(
        account_sid, token, http_client=RecordingHttpClient(base_url), environment={"_": ""}
    )


def checked(client: Client) -> None:
    """Validate every answer ``client`` (made by ``sdk_client``) received, then close it."""
    recorder: RecordingHttpClient = client.http_client
    for exchange in recorder.exchanges:
        assert_twilio_shaped(exchange)
    recorder.session.close()
