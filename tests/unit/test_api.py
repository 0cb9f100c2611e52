"""The HTTP edge with fakes behind it: status codes, problem+json, auth, and no 500s."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import fakeredis
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from api.app import create_app
from api.errors import problem_codes
from api.schemas import CODE_PATTERN
from shared.bootstrap import Adapters, Core
from shared.kit.jobs import SEND_CODE
from shared.kit.redis_client import make_redis
from shared.kit.settings import Settings
from shared.limits.ports import Guards
from shared.tenants.keys import create_api_key, revoke_api_key
from shared.two_step.users import USER_ID_PATTERN
from shared.verifications.domain import VerificationStatus
from shared.verifications.models import Verification
from tests.fakes import (
    FakeChangeFeed,
    FakeClock,
    FakeCodeStash,
    FakeJobQueue,
    FakeKeyLocks,
    FakeLockout,
    FakeSendLimits,
    FakeTimer,
    fake_guards,
)
from tests.support import free_port

T = TypeVar("T")


@dataclass
class ApiFakes:
    """The fakes behind the app's core that tests script or look at."""

    jobs: FakeJobQueue = field(default_factory=FakeJobQueue)
    guards: Guards = field(default_factory=fake_guards)
    # The API key cache's clock (monotonic seconds).
    timer: FakeTimer = field(default_factory=FakeTimer)

    @property
    def sends(self) -> FakeSendLimits:
        sends = self.guards.sends
        assert isinstance(sends, FakeSendLimits)
        return sends

    @property
    def lockout(self) -> FakeLockout:
        lockout = self.guards.lockout
        assert isinstance(lockout, FakeLockout)
        return lockout


@pytest.fixture
def fakes() -> ApiFakes:
    return ApiFakes()


@pytest.fixture
def api(unit_settings: Settings, fakes: ApiFakes) -> Iterator[TestClient]:
    """The app over a core of its own (``shared.bootstrap``), with fakes behind its ports, and
    an API key of every scope in its Authorization header."""
    adapters = Adapters(
        clock=FakeClock(),
        redis=fakeredis.FakeAsyncRedis(),
        jobs=fakes.jobs,
        changes=FakeChangeFeed(),
        guards=fakes.guards,
        stash=FakeCodeStash(),
        key_locks=FakeKeyLocks(),
        key_timer=fakes.timer,
        listen=False,
    )
    with TestClient(create_app(unit_settings, adapters), raise_server_exceptions=False) as http:

        async def make_key(core: Core) -> str:
            async with core.uow_factory() as uow:
                _key, plaintext = await create_api_key(uow, "api-unit")
            return plaintext

        http.headers["Authorization"] = f"Bearer {in_app(http, make_key)}"
        yield http


def in_app(api: TestClient, work: Callable[[Core], Awaitable[T]]) -> T:
    """Run ``work`` on the app's own event loop, where its connections live."""
    core: Core = api.app.state.core  # type: ignore[attr-defined]
    assert isinstance(core, Core)
    assert api.portal is not None
    return api.portal.call(work, core)


def make_pending(
    api: TestClient,
    verification_id: str,
    status: VerificationStatus = VerificationStatus.PENDING,
) -> None:
    """As if a worker had sent the code (or, with ``status``, got that far)."""

    async def sent(core: Core) -> None:
        async with core.uow_factory() as uow:
            await uow.session.execute(
                update(Verification)
                .where(Verification.id == uuid.UUID(verification_id))
                .values(status=status, provider_sid="VE" + "0" * 32)
            )

    in_app(api, sent)


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] == code
    assert body["title"] and body["detail"] and body["type"].startswith("https://")
    return body


class TestCreate:
    def test_answers_202_queued_and_publishes_after_commit(
        self, api: TestClient, fakes: ApiFakes
    ) -> None:
        response = api.post("/v1/verifications", json={"to": "+14155550123", "user_id": "u-1"})
        assert response.status_code == 202
        body = response.json()
        assert (
            body["status"] == "queued"
            and body["channel"] == "sms"
            and body["purpose"] == "standalone"
        )
        assert body["to"] == "+1415•••••23"
        assert body["error"] is None and body["send_attempts"] == 0
        assert response.headers["location"] == f"/v1/verifications/{body['id']}"
        assert [(j.name, str(j.entity_id)) for j in fakes.jobs.published] == [
            (SEND_CODE, body["id"])
        ]
        assert api.get(f"/v1/verifications/{body['id']}").json()["status"] == "queued"

    @pytest.mark.parametrize(
        "to",
        [
            "12",
            "",
            "+1",
            "not a number",
            "+99912345678",
            # E.164 exactly, as the document's pattern says: no spaces, punctuation or prefix.
            "+1 415 555 0123",
            "+1 (415) 555-0123",
            "0014155550123",
            "+14155550123\n",
            "+\u0661\u0664\u0661\u0665\u0665\u0665\u0665\u0660\u0661\u0662\u0663",
        ],
    )
    def test_an_unusable_number_is_invalid_phone_number(
        self, api: TestClient, fakes: ApiFakes, to: str
    ) -> None:
        assert_problem(api.post("/v1/verifications", json={"to": to}), 422, "invalid_phone_number")
        assert fakes.jobs.published == []

    @pytest.mark.parametrize(
        ("path", "body", "code"),
        [
            ("/v1/verifications", {"to": "a" * 250 + "@b.co", "channel": "email"}, "email"),
            ("/v1/users/u-1/factors", {"email": "a" * 300}, "email"),
            ("/v1/users/u-1/factors", {"email": "ada@example.com", "phone": "+14155550123"}, None),
            ("/v1/users/u-1/factors", {"email": "ada@example.com", "channel": "sms"}, None),
        ],
    )
    def test_a_bad_address_is_invalid_email_address_and_a_bad_shape_invalid_request(
        self, api: TestClient, path: str, body: dict[str, Any], code: str | None
    ) -> None:
        expected = "invalid_email_address" if code else "invalid_request"
        problem = assert_problem(api.post(path, json=body), 422, expected)
        assert "<Channel." not in problem["detail"]

    def test_a_number_of_the_wrong_type_is_invalid_phone_number(self, api: TestClient) -> None:
        assert_problem(api.post("/v1/verifications", json={"to": 12}), 422, "invalid_phone_number")

    @pytest.mark.parametrize(
        ("path", "body"),
        [
            ("/v1/users/u-1/factors", {"phone": "+1 415 555 0123"}),
            ("/v1/users/u-1/factors", {"phone": "+10"}),
            ("/v1/lockouts/release", {"phone": "+1-415-555-0123"}),
        ],
    )
    def test_every_phone_field_is_e164_or_invalid_phone_number(
        self, api: TestClient, path: str, body: dict[str, Any]
    ) -> None:
        assert_problem(api.post(path, json=body), 422, "invalid_phone_number")

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"to": "+14155550123", "channel": "pigeon"},
            {"to": "+14155550123", "chanel": "sms"},
            {"to": "+14155550123", "client_ip": "999.1.1.1"},
            [1, 2],
        ],
    )
    def test_other_bad_bodies_are_invalid_request(self, api: TestClient, body: object) -> None:
        problem = assert_problem(api.post("/v1/verifications", json=body), 422, "invalid_request")
        assert problem["errors"]

    def test_a_body_that_is_not_json_gets_415(self, api: TestClient) -> None:
        response = api.post(
            "/v1/verifications",
            content=b"to=%2B14155550123",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert_problem(response, 415, "unsupported_media_type")

    @pytest.mark.parametrize("body", [b"{", b"\xff", b"\x14\xc3", b'{"to": "\xe9"}', b"{}}"])
    def test_a_body_that_cannot_be_read_as_json_is_invalid_request(
        self, api: TestClient, body: bytes
    ) -> None:
        # Found by schemathesis: a body that is not UTF-8 was a 400 the schema did not list.
        # Not UTF-8 or not JSON, it is one answer, to the letter.
        response = api.post(
            "/v1/verifications", content=body, headers={"Content-Type": "application/json"}
        )
        assert assert_problem(response, 422, "invalid_request") == {
            "type": "https://twostep.dev/problems/invalid-request",
            "title": "Unprocessable Entity",
            "status": 422,
            "detail": "the body is not valid JSON (UTF-8)",
            "code": "invalid_request",
            "errors": [
                {
                    "field": "",
                    "message": "the body is not valid JSON (UTF-8)",
                    "type": "json_invalid",
                }
            ],
        }


class TestAuth:
    @pytest.mark.parametrize(
        "header",
        [
            None,
            "Bearer tsk_wrong",
            "Basic dXNlcjpwYXNz",
            "Bearer",
            "tsk_no_scheme",
            "Bearer " + "x" * 500,
        ],
    )
    def test_every_v1_route_needs_a_valid_key(self, api: TestClient, header: str | None) -> None:
        headers = {"Authorization": header} if header else {}
        api.headers.pop("Authorization")
        routes = [
            ("POST", "/v1/verifications", {"to": "+14155550123"}),
            ("GET", "/v1/verifications/00000000-0000-4000-8000-000000000000", None),
            (
                "POST",
                "/v1/verifications/00000000-0000-4000-8000-000000000000/checks",
                {"code": "123456"},
            ),
            ("GET", "/v1/verifications/00000000-0000-4000-8000-000000000000/checks/x", None),
        ]
        for method, path, body in routes:
            response = api.request(method, path, json=body, headers=headers)
            assert_problem(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer"

    def test_a_revoked_key_stops_working_once_the_cache_forgets_it(
        self, api: TestClient, fakes: ApiFakes, unit_settings: Settings
    ) -> None:
        path = "/v1/verifications/00000000-0000-4000-8000-000000000000"
        assert_problem(api.get(path), 404, "not_found")

        async def revoke(core: Core) -> None:
            async with core.uow_factory() as uow:
                await revoke_api_key(uow, "api-unit")

        in_app(api, revoke)
        fakes.timer.now += unit_settings.api_key_cache_seconds / 2
        assert_problem(api.get(path), 404, "not_found")  # remembered for a few seconds
        fakes.timer.now += unit_settings.api_key_cache_seconds
        assert_problem(api.get(path), 401, "unauthorized")

    def test_the_openapi_document_declares_bearer_auth(self, api: TestClient) -> None:
        spec = api.get("/openapi.json").json()
        assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"

    def test_in_production_the_schema_is_for_key_holders_and_there_is_no_docs_page(
        self, api: TestClient
    ) -> None:
        assert api.get("/openapi.json").status_code == 200
        assert_problem(api.get("/openapi.json", headers={"Authorization": ""}), 401, "unauthorized")
        assert api.get("/docs").status_code == 404
        assert_problem(api.get("/metrics", headers={"Authorization": ""}), 401, "unauthorized")
        assert api.get("/metrics").status_code == 200  # the fixture's key has every scope


class TestRead:
    @pytest.mark.parametrize(
        "path",
        [
            "/v1/verifications/00000000-0000-4000-8000-000000000000",
            "/v1/verifications/not-a-uuid",
            "/v1/verifications/00000000-0000-4000-8000-000000000000/checks/00000000-0000-4000-8000-000000000001",
            "/v1/nothing-here",
        ],
    )
    def test_unknown_ids_are_404(self, api: TestClient, path: str) -> None:
        assert_problem(api.get(path), 404, "not_found")

    def test_a_check_on_a_queued_verification_is_409(self, api: TestClient) -> None:
        created = api.post("/v1/verifications", json={"to": "+14155550123"}).json()
        response = api.post(f"/v1/verifications/{created['id']}/checks", json={"code": "123456"})
        detail = assert_problem(response, 409, "verification_not_pending")["detail"]
        # What to do: wait for the send, in one request.
        assert f"wait until it is (GET /v1/verifications/{created['id']}?wait=30)" in detail

    @pytest.mark.parametrize("typed", ["4155550123", "+1 415 555 0123", "(415) 555-0123"])
    def test_a_phone_not_in_e164_is_answered_with_what_is(
        self, api: TestClient, typed: str
    ) -> None:
        sent = assert_problem(
            api.post("/v1/verifications", json={"to": typed}), 422, "invalid_phone_number"
        )
        assert sent["detail"].startswith("to: a phone number in E.164 (a + and up to 15 digits")
        enrolled = api.post("/v1/users/ada/factors", json={"phone": typed})
        assert assert_problem(enrolled, 422, "invalid_phone_number")["detail"] == (
            "phone: not a phone number in E.164: a +, the country code and the number, no "
            "spaces or punctuation (e.g. +14155550123)"
        )

    def test_a_code_of_the_wrong_shape_is_answered_with_the_shape(self, api: TestClient) -> None:
        created = api.post("/v1/verifications", json={"to": "+14155550123"}).json()
        path = f"/v1/verifications/{created['id']}/checks"
        for typed in ("12", "123_456", "123  456", "12345678901"):
            detail = assert_problem(api.post(path, json={"code": typed}), 422, "invalid_request")
            assert (
                detail["detail"] == "code: a code is 4 to 10 letters or digits (a space or a "
                "dash between them is fine)"
            ), typed
        # A space or a dash between, as users type codes, is the code: refused here only as
        # not sent yet.
        for typed in ("123 456", "123-456"):
            assert_problem(api.post(path, json={"code": typed}), 409, "verification_not_pending")

    def test_wrong_method_is_405(self, api: TestClient) -> None:
        assert_problem(api.delete("/v1/verifications"), 405, "method_not_allowed")


def test_health_and_readiness(api: TestClient) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = {"status": "ready", "workers": 0, "last_heartbeat_seconds": None}
    assert api.get("/readyz").json() == ready
    no_worker = api.get("/readyz", params={"require_worker": "true"})
    assert "no worker heartbeat" in assert_problem(no_worker, 503, "service_unavailable")["detail"]

    async def a_worker_beats(core: Core) -> None:
        beating = asyncio.create_task(core.fleet.heartbeat_forever("worker-1@test"))
        await asyncio.sleep(0.05)
        beating.cancel()

    in_app(api, a_worker_beats)
    answer = api.get("/readyz", params={"require_worker": "true"}).json()
    assert answer["workers"] == 1 and 0 <= answer["last_heartbeat_seconds"] < 5


def test_readiness_fails_while_the_schema_is_behind_the_code(
    api: TestClient, tmp_path: Path
) -> None:
    """An unmigrated database answers SELECT 1: only its schema says requests would fail."""
    behind = f"sqlite:///{tmp_path / 'never-migrated.db'}"

    async def read_an_unmigrated_schema(core: Core) -> None:
        core.settings = core.settings.model_copy(update={"database_url": behind})

    in_app(api, read_an_unmigrated_schema)
    response = api.get("/readyz")
    detail = assert_problem(response, 503, "service_unavailable")["detail"]
    assert "schema is behind this code: run twostep migrate" in detail


def test_readiness_fails_when_redis_is_gone(api: TestClient) -> None:
    async def point_at_nothing(core: Core) -> None:
        core.redis = make_redis(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens

    in_app(api, point_at_nothing)
    response = api.get("/readyz")
    assert_problem(response, 503, "service_unavailable")
    assert "redis" in response.json()["detail"] and response.headers["retry-after"]


class TestIdempotency:
    def test_a_repeat_gets_the_first_answer_and_no_second_job(
        self, api: TestClient, fakes: ApiFakes
    ) -> None:
        headers = {"Idempotency-Key": "order-42"}
        first = api.post("/v1/verifications", json={"to": "+14155550123"}, headers=headers)
        again = api.post("/v1/verifications", json={"to": "+14155550123"}, headers=headers)
        assert first.status_code == again.status_code == 202
        assert again.json() == first.json()
        assert (
            again.headers["idempotent-replayed"] == "true"
            and "idempotent-replayed" not in first.headers
        )
        assert again.headers["location"] == first.headers["location"]
        assert len(fakes.jobs.published) == 1

    def test_the_same_key_for_another_request_is_refused(self, api: TestClient) -> None:
        headers = {"Idempotency-Key": "order-43"}
        api.post("/v1/verifications", json={"to": "+14155550123"}, headers=headers)
        other = api.post("/v1/verifications", json={"to": "+14155550124"}, headers=headers)
        assert_problem(other, 422, "idempotency_key_reused")

    def test_keys_belong_to_one_api_key(self, api: TestClient, fakes: ApiFakes) -> None:
        async def make_key(core: Core) -> str:
            async with core.uow_factory() as uow:
                _key, plaintext = await create_api_key(uow, "api-unit-other")
            return plaintext

        other_key = in_app(api, make_key)
        body = {"to": "+14155550123"}
        mine = api.post("/v1/verifications", json=body, headers={"Idempotency-Key": "k"})
        theirs = api.post(
            "/v1/verifications",
            json=body,
            headers={"Idempotency-Key": "k", "Authorization": f"Bearer {other_key}"},
        )
        assert mine.json()["id"] != theirs.json()["id"]
        assert len(fakes.jobs.published) == 2

    @pytest.mark.parametrize("key", ["", "has space", "x" * 256])
    def test_malformed_keys_are_refused(self, api: TestClient, key: str) -> None:
        response = api.post(
            "/v1/verifications", json={"to": "+14155550123"}, headers={"Idempotency-Key": key}
        )
        assert_problem(response, 422, "invalid_request")

    def test_a_failed_request_is_not_remembered(self, api: TestClient) -> None:
        headers = {"Idempotency-Key": "order-44"}
        assert api.post("/v1/verifications", json={"to": "12"}, headers=headers).status_code == 422
        assert api.post("/v1/verifications", json={"to": "12"}, headers=headers).status_code == 422

    def test_checks_replay_without_the_code_being_compared(self, api: TestClient) -> None:
        created = api.post("/v1/verifications", json={"to": "+14155550123"}).json()
        make_pending(api, created["id"])
        path = f"/v1/verifications/{created['id']}/checks"
        headers = {"Idempotency-Key": "check-1"}
        first = api.post(path, json={"code": "123456"}, headers=headers)
        again = api.post(path, json={"code": "654321"}, headers=headers)
        assert first.status_code == 202 and again.json() == first.json()
        assert api.get(f"/v1/verifications/{created['id']}").json()["check_attempts"] == 1

        async def stored_answer(core: Core) -> str:
            async with core.uow_factory() as uow:
                key = await uow.api_keys.get_by_name("api-unit")
                assert key is not None
                stored = await uow.idempotency.get(key.id, "check-1")
                assert stored is not None
                return str(stored.response_body) + stored.request_fingerprint

        assert "123456" not in in_app(api, stored_answer)
        other = api.post("/v1/verifications", json={"to": "+14155550125"}).json()
        elsewhere = api.post(
            f"/v1/verifications/{other['id']}/checks", json={"code": "123456"}, headers=headers
        )
        assert_problem(elsewhere, 422, "idempotency_key_reused")


class TestLimits:
    def test_a_refused_send_is_429_with_the_limit_and_writes_nothing(
        self, api: TestClient, fakes: ApiFakes
    ) -> None:
        fakes.sends.per_destination = 1  # (a FakeSendLimits, or it fails here)
        assert api.post("/v1/verifications", json={"to": "+14155550123"}).status_code == 202
        refused = api.post("/v1/verifications", json={"to": "+14155550123"})
        body = assert_problem(refused, 429, "rate_limited")
        assert body["limit"] == "per_destination" and int(refused.headers["retry-after"]) > 0
        assert len(fakes.jobs.published) == 1

    def test_a_locked_user_gets_429_user_locked(self, api: TestClient, fakes: ApiFakes) -> None:
        created = api.post(
            "/v1/verifications", json={"to": "+14155550123", "user_id": "u-9"}
        ).json()
        make_pending(api, created["id"])
        fakes.lockout.locked.add("u-9")  # (a FakeLockout, or it fails here)
        response = api.post(f"/v1/verifications/{created['id']}/checks", json={"code": "123456"})
        assert assert_problem(response, 429, "user_locked")["limit"] == "user_lockout"
        assert response.headers["retry-after"] == "60"

    def test_the_limits_are_visible(self, api: TestClient) -> None:
        limits = api.get("/v1/limits").json()
        assert limits["send_limits"][0]["name"] == "per_destination"
        assert limits["checks_per_verification"] == 5
        assert limits["lockout"]["failures_per_step"] == 5
        assert api.get("/v1/limits", headers={"Authorization": ""}).status_code == 401


class TestResendAndCancel:
    def _pending(self, api: TestClient) -> str:
        created = api.post("/v1/verifications", json={"to": "+14155550123"}).json()
        make_pending(api, created["id"])
        return str(created["id"])

    def test_resend_by_call(self, api: TestClient, fakes: ApiFakes) -> None:
        verification_id = self._pending(api)
        fakes.jobs.published.clear()
        response = api.post(f"/v1/verifications/{verification_id}/resend", json={"channel": "call"})
        assert response.status_code == 202 and response.json()["status"] == "pending"
        assert [str(job.entity_id) for job in fakes.jobs.published] == [verification_id]
        assert api.post(f"/v1/verifications/{verification_id}/resend").status_code == 202
        assert_problem(
            api.post(f"/v1/verifications/{verification_id}/resend", json={"channel": "fax"}),
            422,
            "invalid_request",
        )

    def test_a_resend_on_a_channel_that_cannot_reach_the_destination_is_a_conflict(
        self, api: TestClient, fakes: ApiFakes
    ) -> None:
        created = api.post(
            "/v1/verifications", json={"to": "ada@example.com", "channel": "email"}
        ).json()
        make_pending(api, created["id"])
        fakes.jobs.published.clear()
        response = api.post(f"/v1/verifications/{created['id']}/resend", json={"channel": "call"})
        assert_problem(response, 409, "channel_mismatch")
        assert "email" in response.json()["detail"] and not fakes.jobs.published

    def test_a_cancel_of_a_canceled_verification_answers_it_again(self, api: TestClient) -> None:
        verification_id = self._pending(api)
        first = api.post(f"/v1/verifications/{verification_id}/cancel")
        again = api.post(f"/v1/verifications/{verification_id}/cancel")
        assert first.status_code == again.status_code == 202 and again.json() == first.json()

    @pytest.mark.parametrize("status", [VerificationStatus.QUEUED, VerificationStatus.SENDING])
    def test_a_verification_not_sent_yet_can_be_canceled(
        self, api: TestClient, status: VerificationStatus
    ) -> None:
        created = api.post("/v1/verifications", json={"to": "+14155550123"}).json()
        make_pending(api, created["id"], status)
        canceled = api.post(f"/v1/verifications/{created['id']}/cancel")
        assert canceled.status_code == 202 and canceled.json()["status"] == "canceled"

    def test_a_cancel_of_a_decided_verification_is_409(self, api: TestClient) -> None:
        created = api.post("/v1/verifications", json={"to": "+14155550123"}).json()
        make_pending(api, created["id"], VerificationStatus.APPROVED)
        response = api.post(f"/v1/verifications/{created['id']}/cancel")
        assert_problem(response, 409, "verification_not_pending")

    def test_cancel_then_no_more_checks(self, api: TestClient) -> None:
        verification_id = self._pending(api)
        canceled = api.post(f"/v1/verifications/{verification_id}/cancel")
        assert canceled.status_code == 202 and canceled.json()["status"] == "canceled"
        check = api.post(f"/v1/verifications/{verification_id}/checks", json={"code": "123456"})
        assert_problem(check, 409, "verification_not_pending")
        resend = api.post(f"/v1/verifications/{verification_id}/resend")
        assert_problem(resend, 409, "verification_not_pending")


def test_metrics_are_served_at_metrics(api: TestClient, fakes: ApiFakes) -> None:
    assert isinstance(fakes.guards.sends, FakeSendLimits)
    response = api.get("/metrics")
    assert response.status_code == 200 and "text/plain" in response.headers["content-type"]
    assert "# TYPE twostep_limit_refusals_total counter" in response.text


class TestTheDocumentsRules:
    """What the OpenAPI document says of an input is what the server does with it."""

    @pytest.mark.parametrize(
        "code", ["12", "123", "12345678901", " 123456", "12  34", "12_34", "-1234", "१२३४"]
    )
    def test_a_code_is_4_to_10_letters_or_digits(self, api: TestClient, code: str) -> None:
        created = api.post("/v1/verifications", json={"to": "+14155550123"}).json()
        make_pending(api, created["id"])
        response = api.post(f"/v1/verifications/{created['id']}/checks", json={"code": code})
        assert_problem(response, 422, "invalid_request")

    @pytest.mark.parametrize("code", ["1234", "ABCD12", "1234567890", "123 456", "123-456"])
    def test_letters_and_digits_are_checked(self, api: TestClient, code: str) -> None:
        created = api.post("/v1/verifications", json={"to": "+14155550123"}).json()
        make_pending(api, created["id"])
        response = api.post(f"/v1/verifications/{created['id']}/checks", json={"code": code})
        assert response.status_code == 202, response.text

    @pytest.mark.parametrize(
        "user_id", ["tab\t", "nbsp\xa0", "soft\xadhyphen", "\u202eevil", "zero\u200bwidth"]
    )
    def test_a_user_id_with_a_character_the_pattern_refuses_is_invalid_request(
        self, api: TestClient, user_id: str
    ) -> None:
        path = f"/v1/users/{quote(user_id)}/factors"
        assert_problem(api.get(path), 422, "invalid_request")
        body = {"to": "+14155550123", "user_id": user_id}
        assert_problem(api.post("/v1/verifications", json=body), 422, "invalid_request")

    @pytest.mark.parametrize("user_id", ["alice@example.com", "Jörg Müller", "42", "ユーザー😀"])
    def test_a_user_id_may_be_any_printable_text(self, api: TestClient, user_id: str) -> None:
        response = api.get(f"/v1/users/{quote(user_id)}/factors")
        assert response.status_code == 200 and response.json()["user_id"] == user_id

    @pytest.mark.parametrize("body", [{}, {"user_id": None}, {"user_id": None, "phone": None}])
    def test_a_lockout_release_names_someone(self, api: TestClient, body: dict[str, Any]) -> None:
        assert_problem(api.post("/v1/lockouts/release", json=body), 422, "invalid_request")

    @pytest.mark.parametrize(
        "url",
        [
            "https://[unclosed/",  # urlsplit raised: found by schemathesis as a 500
            "https://a\uff03b/",  # a host NFKC turns into "a#b": urlsplit raised, a 500
            "https://\u2100/",
            "ftp://example.com/",
            "http://example.com/",  # https only, outside development
        ],
    )
    def test_a_webhook_url_that_is_not_one_is_invalid_request(
        self, api: TestClient, url: str
    ) -> None:
        response = api.post("/v1/webhook-endpoints", json={"url": url})
        assert_problem(response, 422, "invalid_request")


class TestTheDocument:
    @pytest.fixture
    def document(self, api: TestClient) -> dict[str, Any]:
        spec: dict[str, Any] = api.get("/openapi.json").json()
        return spec

    def test_every_error_answer_is_a_problem_and_fastapis_422_is_gone(
        self, document: dict[str, Any]
    ) -> None:
        assert "HTTPValidationError" not in json.dumps(document)
        assert "ValidationError" not in document["components"]["schemas"]
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                for status, answer in operation["responses"].items():
                    if int(status) < 400:
                        continue
                    assert answer["content"] == {
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/Problem"}
                        }
                    }, (method, path, status)
                    retry_after = "Retry-After" in answer.get("headers", {})
                    assert retry_after == (status in ("429", "503")), (method, path, status)

    def test_every_answer_declares_its_headers_and_every_route_405_413_500(
        self, document: dict[str, Any]
    ) -> None:
        headers = document["components"]["headers"]
        assert headers["X-Request-Id"]["required"] and headers["Cache-Control"]["required"]
        assert not headers["Idempotent-Replayed"]["required"]
        for path, operations in document["paths"].items():
            for method, operation in operations.items():
                answers = operation["responses"]
                assert {"405", "413", "500"} <= set(answers), (method, path)
                for status, answer in answers.items():
                    said = set(answer.get("headers", {}))
                    assert "X-Request-Id" in said, (method, path, status)
                    assert ("Cache-Control" in said) == path.startswith("/v1/"), (path, status)
                    keyed = any(
                        p["name"] == "Idempotency-Key" for p in operation.get("parameters", [])
                    )
                    replayable = keyed and status.startswith("2")
                    assert ("Idempotent-Replayed" in said) == replayable, (method, path, status)

    def test_optional_means_optional_and_codes_are_an_enum(self, document: dict[str, Any]) -> None:
        schemas = document["components"]["schemas"]
        # A request may leave out what has a default: nothing says it is always there.
        for name in ("VerificationCreate", "PhoneFactorCreate", "ChallengeCreate"):
            fields = schemas[name]["properties"]
            assert not [field for field in fields.values() if "default" in field], name
        assert (
            'Default: `"sms"`'
            in schemas["VerificationCreate"]["properties"]["channel"]["description"]
        )
        problem = schemas["Problem"]
        assert problem["required"] == ["type", "title", "status", "detail", "code"]
        assert problem["properties"]["limit"] == {
            "type": "string",
            "title": "Limit",
            "description": "On 429 only: which limit refused",
        }
        assert schemas["ProblemCode"]["enum"] == problem_codes()
        assert {"no_verified_factor", "payload_too_large", "method_not_allowed"} <= set(
            problem_codes()
        )
        ready = document["paths"]["/readyz"]["get"]["responses"]["200"]["content"]
        assert ready["application/json"]["schema"] == {"$ref": "#/components/schemas/Ready"}

    def test_the_answers_carry_the_headers_the_document_declares(self, api: TestClient) -> None:
        created = api.post("/v1/verifications", json={"to": "+14155550123"})
        assert created.headers["cache-control"] == "no-store" and created.headers["x-request-id"]
        assert created.headers["location"] == f"/v1/verifications/{created.json()['id']}"
        too_large = api.request("GET", "/v1/limits", content=b"x" * 20_000)
        assert too_large.status_code == 413
        assert too_large.headers["cache-control"] == "no-store", "413s are no-store too"
        assert too_large.headers["x-request-id"]
        not_allowed = api.put("/v1/limits")
        assert not_allowed.status_code == 405 and not_allowed.headers["allow"] == "GET"

    def test_a_bugs_500_is_a_problem_with_the_request_id_and_no_store(
        self, api: TestClient
    ) -> None:
        async def broken() -> None:
            raise RuntimeError("a bug")

        api.app.add_api_route("/v1/broken", broken)  # type: ignore[attr-defined]
        # Starlette's outermost layer would answer a bare 500, without either header.
        answer = api.get("/v1/broken", headers={"X-Request-Id": "bug-report-1"})
        assert answer.status_code == 500 and answer.json()["code"] == "internal_error"
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.headers["x-request-id"] == "bug-report-1"
        assert answer.headers["cache-control"] == "no-store"

    def test_the_servers_rules_are_in_the_document(self, document: dict[str, Any]) -> None:
        schemas = document["components"]["schemas"]
        e164 = r"^\+[1-9][0-9]{1,14}$"
        # A phone in E.164 (sms, call, whatsapp) or an email address (email).
        to = schemas["VerificationCreate"]["properties"]["to"]
        assert {"type": "string", "pattern": e164} in to["anyOf"] and to["anyOf"][1][
            "format"
        ] == "email"
        assert schemas["PhoneFactorCreate"]["properties"]["phone"]["pattern"] == e164
        assert schemas["EmailFactorCreate"]["properties"]["email"]["format"] == "email"
        assert schemas["LockoutRelease"]["properties"]["phone"]["pattern"] == e164
        assert schemas["LockoutRelease"]["minProperties"] == 1
        assert schemas["CodeCheckCreate"]["properties"]["code"]["pattern"] == CODE_PATTERN
        url = schemas["WebhookEndpointCreate"]["properties"]["url"]["pattern"]
        assert url.startswith("^https://")  # production: https only
        parameters = [
            parameter
            for operations in document["paths"].values()
            for operation in operations.values()
            for parameter in operation.get("parameters", [])
        ]
        ids = [p for p in parameters if p["name"].endswith("_id") and p["name"] != "user_id"]
        assert ids and all(p["schema"]["format"] == "uuid" for p in ids)
        user_ids = [p["schema"] for p in parameters if p["name"] == "user_id"]
        assert user_ids and all(
            (s["minLength"], s["maxLength"], s["pattern"]) == (1, 128, USER_ID_PATTERN)
            for s in user_ids
        )

    def test_development_takes_http_webhooks_and_says_so(self, unit_settings: Settings) -> None:
        development = unit_settings.model_copy(update={"environment": "development"})
        document = create_app(development).openapi()
        url = document["components"]["schemas"]["WebhookEndpointCreate"]["properties"]["url"]
        assert url["pattern"].startswith("^https?://")
