"""The HTTP edge with fakes behind it: status codes, problem+json, auth, and no 500s."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import quote

import fakeredis
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from api.app import create_app
from api.deps import ApiContext
from shared.kit.db.session import AfterCommit, Database
from shared.kit.jobs import SEND_CODE
from shared.kit.redis_client import make_redis
from shared.kit.settings import Settings
from shared.limits.ports import Guards
from shared.operations.status import Fleet
from shared.tenants.keys import ApiKeyCache, create_api_key, revoke_api_key
from shared.two_step.service import USER_ID_PATTERN, TwoStep
from shared.unit_of_work import UnitOfWorkFactory
from shared.verifications.domain import VerificationStatus
from shared.verifications.models import Verification
from shared.verifications.service import Verifications
from shared.verifications.waiting import Waiting
from shared.webhooks.service import Webhooks
from tests.fakes import (
    FakeChangeFeed,
    FakeClock,
    FakeCodeStash,
    FakeJobQueue,
    FakeKeyLocks,
    FakeLockout,
    FakeSendLimits,
)
from tests.support import free_port

T = TypeVar("T")


class FakeTimer:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def timer() -> FakeTimer:
    return FakeTimer()


@pytest.fixture
def client(
    unit_settings: Settings, job_queue: FakeJobQueue, guards: Guards, timer: FakeTimer
) -> Iterator[TestClient]:
    def build(settings: Settings) -> ApiContext:
        database = Database.connect(settings.database_url, pool_size=2)
        uow_factory = UnitOfWorkFactory(database, AfterCommit(job_queue, FakeChangeFeed()))
        verifications = Verifications(
            settings=settings,
            guards=guards,
            stash=FakeCodeStash(),
            clock=FakeClock(),
            keyring=settings.keyring(),
        )
        fake_redis = fakeredis.FakeAsyncRedis()
        return ApiContext(
            settings=settings,
            database=database,
            uow_factory=uow_factory,
            redis=fake_redis,
            fleet=Fleet(settings, fake_redis),
            webhooks=Webhooks(settings, FakeClock()),
            keys=ApiKeyCache(uow_factory.reading, settings.api_key_cache_seconds, timer),
            verifications=verifications,
            two_step=TwoStep(verifications, settings.keyring()),
            waiting=Waiting(uow_factory.reading, verifications, None),
            idempotency_locks=FakeKeyLocks(),
        )

    with TestClient(create_app(unit_settings, build), raise_server_exceptions=False) as test_client:

        async def make_key(context: ApiContext) -> str:
            async with context.uow_factory() as uow:
                _key, plaintext = await create_api_key(uow, "api-unit")
            return plaintext

        test_client.headers["Authorization"] = f"Bearer {in_app(test_client, make_key)}"
        yield test_client


def in_app(client: TestClient, work: Callable[[ApiContext], Awaitable[T]]) -> T:
    """Run ``work`` on the app's own event loop, where its connections live."""
    context: ApiContext = client.app.state.context  # type: ignore[attr-defined]
    assert client.portal is not None
    return client.portal.call(work, context)


def make_pending(
    client: TestClient,
    verification_id: str,
    status: VerificationStatus = VerificationStatus.PENDING,
) -> None:
    """As if a worker had sent the code (or, with ``status``, got that far)."""

    async def sent(context: ApiContext) -> None:
        async with context.uow_factory() as uow:
            await uow.session.execute(
                update(Verification)
                .where(Verification.id == uuid.UUID(verification_id))
                .values(status=status, provider_sid="VE" + "0" * 32)
            )

    in_app(client, sent)


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["code"] == code
    assert body["title"] and body["detail"] and body["type"].startswith("https://")
    return body


class TestCreate:
    def test_answers_202_queued_and_publishes_after_commit(
        self, client: TestClient, job_queue: FakeJobQueue
    ) -> None:
        response = client.post("/v1/verifications", json={"to": "+14155550123", "user_id": "u-1"})
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
        assert [(j.name, str(j.entity_id)) for j in job_queue.published] == [
            (SEND_CODE, body["id"])
        ]
        assert client.get(f"/v1/verifications/{body['id']}").json()["status"] == "queued"

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
        self, client: TestClient, to: str, job_queue
    ) -> None:
        assert_problem(
            client.post("/v1/verifications", json={"to": to}), 422, "invalid_phone_number"
        )
        assert job_queue.published == []

    def test_a_number_of_the_wrong_type_is_invalid_phone_number(self, client: TestClient) -> None:
        assert_problem(
            client.post("/v1/verifications", json={"to": 12}), 422, "invalid_phone_number"
        )

    @pytest.mark.parametrize(
        ("path", "body"),
        [
            ("/v1/users/u-1/factors", {"phone": "+1 415 555 0123"}),
            ("/v1/users/u-1/factors", {"phone": "+10"}),
            ("/v1/lockouts/release", {"phone": "+1-415-555-0123"}),
        ],
    )
    def test_every_phone_field_is_e164_or_invalid_phone_number(
        self, client: TestClient, path: str, body: dict[str, Any]
    ) -> None:
        assert_problem(client.post(path, json=body), 422, "invalid_phone_number")

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
    def test_other_bad_bodies_are_invalid_request(self, client: TestClient, body: object) -> None:
        problem = assert_problem(
            client.post("/v1/verifications", json=body), 422, "invalid_request"
        )
        assert problem["errors"]

    def test_a_body_that_is_not_json_gets_415(self, client: TestClient) -> None:
        response = client.post(
            "/v1/verifications",
            content=b"to=%2B14155550123",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert_problem(response, 415, "unsupported_media_type")

    @pytest.mark.parametrize("body", [b"{", b"\xff", b"\x14\xc3", b'{"to": "\xe9"}', b"{}}"])
    def test_a_body_that_cannot_be_read_as_json_is_invalid_request(
        self, client: TestClient, body: bytes
    ) -> None:
        # Found by schemathesis: a body that is not UTF-8 was a 400 the schema did not list.
        # Not UTF-8 or not JSON, it is one answer, to the letter.
        response = client.post(
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
    def test_every_v1_route_needs_a_valid_key(self, client: TestClient, header: str | None) -> None:
        headers = {"Authorization": header} if header else {}
        client.headers.pop("Authorization")
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
            response = client.request(method, path, json=body, headers=headers)
            assert_problem(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer"

    def test_a_revoked_key_stops_working_once_the_cache_forgets_it(
        self, client: TestClient, timer: FakeTimer, unit_settings: Settings
    ) -> None:
        path = "/v1/verifications/00000000-0000-4000-8000-000000000000"
        assert_problem(client.get(path), 404, "not_found")

        async def revoke(context: ApiContext) -> None:
            async with context.uow_factory() as uow:
                await revoke_api_key(uow, "api-unit")

        in_app(client, revoke)
        timer.now += unit_settings.api_key_cache_seconds / 2
        assert_problem(client.get(path), 404, "not_found")  # remembered for a few seconds
        timer.now += unit_settings.api_key_cache_seconds
        assert_problem(client.get(path), 401, "unauthorized")

    def test_the_openapi_document_declares_bearer_auth(self, client: TestClient) -> None:
        spec = client.get("/openapi.json").json()
        assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"

    def test_in_production_the_schema_is_for_key_holders_and_there_is_no_docs_page(
        self, client: TestClient
    ) -> None:
        assert client.get("/openapi.json").status_code == 200
        assert_problem(
            client.get("/openapi.json", headers={"Authorization": ""}), 401, "unauthorized"
        )
        assert client.get("/docs").status_code == 404
        assert_problem(client.get("/metrics", headers={"Authorization": ""}), 401, "unauthorized")
        assert client.get("/metrics").status_code == 200  # the fixture's key has every scope


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
    def test_unknown_ids_are_404(self, client: TestClient, path: str) -> None:
        assert_problem(client.get(path), 404, "not_found")

    def test_a_check_on_a_queued_verification_is_409(self, client: TestClient) -> None:
        created = client.post("/v1/verifications", json={"to": "+14155550123"}).json()
        response = client.post(f"/v1/verifications/{created['id']}/checks", json={"code": "123456"})
        assert_problem(response, 409, "verification_not_pending")

    def test_wrong_method_is_405(self, client: TestClient) -> None:
        assert_problem(client.delete("/v1/verifications"), 405, "method_not_allowed")


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = {"status": "ready", "workers": 0, "last_heartbeat_seconds": None}
    assert client.get("/readyz").json() == ready
    no_worker = client.get("/readyz", params={"require_worker": "true"})
    assert "no worker heartbeat" in assert_problem(no_worker, 503, "service_unavailable")["detail"]

    async def a_worker_beats(context: ApiContext) -> None:
        beating = asyncio.create_task(context.fleet.heartbeat_forever("worker-1@test"))
        await asyncio.sleep(0.05)
        beating.cancel()

    in_app(client, a_worker_beats)
    answer = client.get("/readyz", params={"require_worker": "true"}).json()
    assert answer["workers"] == 1 and 0 <= answer["last_heartbeat_seconds"] < 5


def test_readiness_fails_when_redis_is_gone(client: TestClient) -> None:
    async def point_at_nothing(context: ApiContext) -> None:
        context.redis = make_redis(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens

    in_app(client, point_at_nothing)
    response = client.get("/readyz")
    assert_problem(response, 503, "service_unavailable")
    assert "redis" in response.json()["detail"] and response.headers["retry-after"]


class TestIdempotency:
    def test_a_repeat_gets_the_first_answer_and_no_second_job(
        self, client: TestClient, job_queue: FakeJobQueue
    ) -> None:
        headers = {"Idempotency-Key": "order-42"}
        first = client.post("/v1/verifications", json={"to": "+14155550123"}, headers=headers)
        again = client.post("/v1/verifications", json={"to": "+14155550123"}, headers=headers)
        assert first.status_code == again.status_code == 202
        assert again.json() == first.json()
        assert (
            again.headers["idempotent-replayed"] == "true"
            and "idempotent-replayed" not in first.headers
        )
        assert again.headers["location"] == first.headers["location"]
        assert len(job_queue.published) == 1

    def test_the_same_key_for_another_request_is_refused(self, client: TestClient) -> None:
        headers = {"Idempotency-Key": "order-43"}
        client.post("/v1/verifications", json={"to": "+14155550123"}, headers=headers)
        other = client.post("/v1/verifications", json={"to": "+14155550124"}, headers=headers)
        assert_problem(other, 422, "idempotency_key_reused")

    def test_keys_belong_to_one_api_key(self, client: TestClient, job_queue: FakeJobQueue) -> None:
        async def make_key(context: ApiContext) -> str:
            async with context.uow_factory() as uow:
                _key, plaintext = await create_api_key(uow, "api-unit-other")
            return plaintext

        other_key = in_app(client, make_key)
        body = {"to": "+14155550123"}
        mine = client.post("/v1/verifications", json=body, headers={"Idempotency-Key": "k"})
        theirs = client.post(
            "/v1/verifications",
            json=body,
            headers={"Idempotency-Key": "k", "Authorization": f"Bearer {other_key}"},
        )
        assert mine.json()["id"] != theirs.json()["id"]
        assert len(job_queue.published) == 2

    @pytest.mark.parametrize("key", ["", "has space", "x" * 256])
    def test_malformed_keys_are_refused(self, client: TestClient, key: str) -> None:
        response = client.post(
            "/v1/verifications", json={"to": "+14155550123"}, headers={"Idempotency-Key": key}
        )
        assert_problem(response, 422, "invalid_request")

    def test_a_failed_request_is_not_remembered(self, client: TestClient) -> None:
        headers = {"Idempotency-Key": "order-44"}
        assert (
            client.post("/v1/verifications", json={"to": "12"}, headers=headers).status_code == 422
        )
        assert (
            client.post("/v1/verifications", json={"to": "12"}, headers=headers).status_code == 422
        )

    def test_checks_replay_without_the_code_being_compared(self, client: TestClient) -> None:
        created = client.post("/v1/verifications", json={"to": "+14155550123"}).json()
        make_pending(client, created["id"])
        path = f"/v1/verifications/{created['id']}/checks"
        headers = {"Idempotency-Key": "check-1"}
        first = client.post(path, json={"code": "123456"}, headers=headers)
        again = client.post(path, json={"code": "654321"}, headers=headers)
        assert first.status_code == 202 and again.json() == first.json()
        assert client.get(f"/v1/verifications/{created['id']}").json()["check_attempts"] == 1

        async def stored_answer(context: ApiContext) -> str:
            async with context.uow_factory() as uow:
                key = await uow.api_keys.get_by_name("api-unit")
                assert key is not None
                stored = await uow.idempotency.get(key.id, "check-1")
                assert stored is not None
                return str(stored.response_body) + stored.request_fingerprint

        assert "123456" not in in_app(client, stored_answer)
        other = client.post("/v1/verifications", json={"to": "+14155550125"}).json()
        elsewhere = client.post(
            f"/v1/verifications/{other['id']}/checks", json={"code": "123456"}, headers=headers
        )
        assert_problem(elsewhere, 422, "idempotency_key_reused")


class TestLimits:
    def test_a_refused_send_is_429_with_the_limit_and_writes_nothing(
        self, client: TestClient, guards: Guards, job_queue: FakeJobQueue
    ) -> None:
        assert isinstance(guards.sends, FakeSendLimits)
        guards.sends.per_destination = 1
        assert client.post("/v1/verifications", json={"to": "+14155550123"}).status_code == 202
        refused = client.post("/v1/verifications", json={"to": "+14155550123"})
        body = assert_problem(refused, 429, "rate_limited")
        assert body["limit"] == "per_destination" and int(refused.headers["retry-after"]) > 0
        assert len(job_queue.published) == 1

    def test_a_locked_user_gets_429_user_locked(self, client: TestClient, guards: Guards) -> None:
        created = client.post(
            "/v1/verifications", json={"to": "+14155550123", "user_id": "u-9"}
        ).json()
        make_pending(client, created["id"])
        assert isinstance(guards.lockout, FakeLockout)
        guards.lockout.locked.add("u-9")
        response = client.post(f"/v1/verifications/{created['id']}/checks", json={"code": "123456"})
        assert assert_problem(response, 429, "user_locked")["limit"] == "user_lockout"
        assert response.headers["retry-after"] == "60"

    def test_the_limits_are_visible(self, client: TestClient) -> None:
        limits = client.get("/v1/limits").json()
        assert limits["send_limits"][0]["name"] == "per_destination"
        assert limits["checks_per_verification"] == 5
        assert limits["lockout"]["failures_per_step"] == 5
        assert client.get("/v1/limits", headers={"Authorization": ""}).status_code == 401


class TestResendAndCancel:
    def _pending(self, client: TestClient) -> str:
        created = client.post("/v1/verifications", json={"to": "+14155550123"}).json()
        make_pending(client, created["id"])
        return str(created["id"])

    def test_resend_by_call(self, client: TestClient, job_queue: FakeJobQueue) -> None:
        verification_id = self._pending(client)
        job_queue.published.clear()
        response = client.post(
            f"/v1/verifications/{verification_id}/resend", json={"channel": "call"}
        )
        assert response.status_code == 202 and response.json()["status"] == "pending"
        assert [str(job.entity_id) for job in job_queue.published] == [verification_id]
        assert client.post(f"/v1/verifications/{verification_id}/resend").status_code == 202
        assert_problem(
            client.post(f"/v1/verifications/{verification_id}/resend", json={"channel": "fax"}),
            422,
            "invalid_request",
        )

    def test_a_cancel_of_a_canceled_verification_answers_it_again(self, client: TestClient) -> None:
        verification_id = self._pending(client)
        first = client.post(f"/v1/verifications/{verification_id}/cancel")
        again = client.post(f"/v1/verifications/{verification_id}/cancel")
        assert first.status_code == again.status_code == 202 and again.json() == first.json()

    @pytest.mark.parametrize("status", [VerificationStatus.QUEUED, VerificationStatus.SENDING])
    def test_a_verification_not_sent_yet_can_be_canceled(
        self, client: TestClient, status: VerificationStatus
    ) -> None:
        created = client.post("/v1/verifications", json={"to": "+14155550123"}).json()
        make_pending(client, created["id"], status)
        canceled = client.post(f"/v1/verifications/{created['id']}/cancel")
        assert canceled.status_code == 202 and canceled.json()["status"] == "canceled"

    def test_a_cancel_of_a_decided_verification_is_409(self, client: TestClient) -> None:
        created = client.post("/v1/verifications", json={"to": "+14155550123"}).json()
        make_pending(client, created["id"], VerificationStatus.APPROVED)
        response = client.post(f"/v1/verifications/{created['id']}/cancel")
        assert_problem(response, 409, "verification_not_pending")

    def test_cancel_then_no_more_checks(self, client: TestClient) -> None:
        verification_id = self._pending(client)
        canceled = client.post(f"/v1/verifications/{verification_id}/cancel")
        assert canceled.status_code == 202 and canceled.json()["status"] == "canceled"
        check = client.post(f"/v1/verifications/{verification_id}/checks", json={"code": "123456"})
        assert_problem(check, 409, "verification_not_pending")
        resend = client.post(f"/v1/verifications/{verification_id}/resend")
        assert_problem(resend, 409, "verification_not_pending")


def test_metrics_are_served_at_metrics(client: TestClient, guards: Guards) -> None:
    assert isinstance(guards.sends, FakeSendLimits)
    response = client.get("/metrics")
    assert response.status_code == 200 and "text/plain" in response.headers["content-type"]
    assert "# TYPE twostep_limit_refusals_total counter" in response.text


class TestTheDocumentsRules:
    """What the OpenAPI document says of an input is what the server does with it."""

    @pytest.mark.parametrize("code", ["12", "123", "12345678901", " 123456", "12 34", "१२३४"])
    def test_a_code_is_4_to_10_letters_or_digits(self, client: TestClient, code: str) -> None:
        created = client.post("/v1/verifications", json={"to": "+14155550123"}).json()
        make_pending(client, created["id"])
        response = client.post(f"/v1/verifications/{created['id']}/checks", json={"code": code})
        assert_problem(response, 422, "invalid_request")

    @pytest.mark.parametrize("code", ["1234", "ABCD12", "1234567890"])
    def test_letters_and_digits_are_checked(self, client: TestClient, code: str) -> None:
        created = client.post("/v1/verifications", json={"to": "+14155550123"}).json()
        make_pending(client, created["id"])
        response = client.post(f"/v1/verifications/{created['id']}/checks", json={"code": code})
        assert response.status_code == 202, response.text

    @pytest.mark.parametrize(
        "user_id", ["tab\t", "nbsp\xa0", "soft\xadhyphen", "\u202eevil", "zero\u200bwidth"]
    )
    def test_a_user_id_with_a_character_the_pattern_refuses_is_invalid_request(
        self, client: TestClient, user_id: str
    ) -> None:
        path = f"/v1/users/{quote(user_id)}/factors"
        assert_problem(client.get(path), 422, "invalid_request")
        body = {"to": "+14155550123", "user_id": user_id}
        assert_problem(client.post("/v1/verifications", json=body), 422, "invalid_request")

    @pytest.mark.parametrize("user_id", ["alice@example.com", "Jörg Müller", "42", "ユーザー😀"])
    def test_a_user_id_may_be_any_printable_text(self, client: TestClient, user_id: str) -> None:
        response = client.get(f"/v1/users/{quote(user_id)}/factors")
        assert response.status_code == 200 and response.json()["user_id"] == user_id

    @pytest.mark.parametrize("body", [{}, {"user_id": None}, {"user_id": None, "phone": None}])
    def test_a_lockout_release_names_someone(
        self, client: TestClient, body: dict[str, Any]
    ) -> None:
        assert_problem(client.post("/v1/lockouts/release", json=body), 422, "invalid_request")

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
        self, client: TestClient, url: str
    ) -> None:
        response = client.post("/v1/webhook-endpoints", json={"url": url})
        assert_problem(response, 422, "invalid_request")


class TestTheDocument:
    @pytest.fixture
    def document(self, client: TestClient) -> dict[str, Any]:
        spec: dict[str, Any] = client.get("/openapi.json").json()
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

    def test_the_servers_rules_are_in_the_document(self, document: dict[str, Any]) -> None:
        schemas = document["components"]["schemas"]
        e164 = r"^\+[1-9][0-9]{1,14}$"
        assert schemas["VerificationCreate"]["properties"]["to"]["pattern"] == e164
        assert schemas["FactorCreate"]["properties"]["phone"]["pattern"] == e164
        assert schemas["LockoutRelease"]["properties"]["phone"]["pattern"] == e164
        assert schemas["LockoutRelease"]["minProperties"] == 1
        assert schemas["CheckCreate"]["properties"]["code"]["pattern"] == "^[0-9A-Za-z]{4,10}$"
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
