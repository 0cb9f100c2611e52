"""Webhooks against fakes: which changes are events, the outbox's rows, one attempt's outcomes,
signatures (the webhooks guide's verifier included)."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from shared.errors import InvalidInput, NotFound
from shared.kit.changes import Change
from shared.kit.jobs import DELIVER_WEBHOOK
from shared.webhooks.domain import DeliveryStatus, WebhookEvent
from shared.webhooks.http import AiohttpPoster
from shared.webhooks.models import WebhookDelivery
from shared.webhooks.outbox import event_of
from shared.webhooks.sender import body_of
from shared.webhooks.signatures import SIGNATURE_HEADER, sign, verify_twostep_signature
from tests.support import REPO, free_port
from tests.unit.world import MakeWorld, World


def change(tenant: uuid.UUID, kind: str, status: str) -> Change:
    view = {"id": str(uuid.uuid4()), "status": status, "to": "+1415•••••23"}
    return Change(uuid.uuid4(), view, kind, tenant)


def test_which_changes_are_events() -> None:
    tenant = uuid.uuid4()
    assert event_of(change(tenant, "verification", "pending")) is WebhookEvent.VERIFICATION_PENDING
    assert event_of(change(tenant, "verification", "max_attempts_reached")) is (
        WebhookEvent.VERIFICATION_MAX_ATTEMPTS
    )
    assert event_of(change(tenant, "check", "rejected")) is WebhookEvent.CHECK_REJECTED
    for kind, status in (("verification", "queued"), ("verification", "sending"),
                         ("check", "approved"), ("check", "queued")):  # fmt: skip
        assert event_of(change(tenant, kind, status)) is None
    assert event_of(Change(uuid.uuid4())) is None


async def test_a_change_commits_with_one_delivery_per_interested_endpoint(world: World) -> None:
    webhooks, key = world.webhooks, world.key
    async with world.uow_factory() as uow:
        every = await webhooks.create(uow, key, "https://example.com/all", None)
        only = await webhooks.create(
            uow, key, "https://example.com/approved", [WebhookEvent.VERIFICATION_APPROVED]
        )
    approved = change(key.tenant_id, "verification", "approved")
    async with world.uow_factory() as uow:
        uow.notify_after_commit(approved, change(key.tenant_id, "verification", "pending"))
        uow.notify_after_commit(change(uuid.uuid4(), "verification", "approved"))  # not ours
    async with world.uow_factory() as uow:
        rows = await uow.webhook_deliveries.page(
            key.tenant_id, endpoint_id=None, status=None, limit=50
        )
    by_endpoint = {(row.endpoint_id, row.event_type) for row in rows}
    assert by_endpoint == {
        (every.id, WebhookEvent.VERIFICATION_APPROVED),
        (every.id, WebhookEvent.VERIFICATION_PENDING),
        (only.id, WebhookEvent.VERIFICATION_APPROVED),
    }
    sample = next(row for row in rows if row.endpoint_id == only.id)
    assert sample.payload["type"] == "verification.approved"
    assert sample.payload["data"] == approved.view and sample.payload["id"] == str(sample.event_id)
    assert sample.deadline_at - sample.created_at == timedelta(days=1)
    assert sorted(str(j.entity_id) for j in world.jobs.published if j.name == DELIVER_WEBHOOK) == (
        sorted(str(row.id) for row in rows)
    )


async def test_production_wants_https_to_a_public_address(
    world: World, make_world: MakeWorld
) -> None:
    opened = await make_world(webhook_private_networks=True)
    webhooks, key = world.webhooks, world.key
    refused = (
        "http://example.com/hook",
        "ftp://example.com/",
        "https://",
        "https://10.0.0.5/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "http://127.0.0.1:9000/hook",
    )
    async with world.uow_factory() as uow:
        for url in refused:
            with pytest.raises(InvalidInput):
                await webhooks.create(uow, key, url, None)
        await webhooks.create(uow, key, "https://203.0.114.10/hook", None)
        await opened.webhooks.create(uow, key, "http://127.0.0.1:9000/hook", None)


@pytest.mark.parametrize(
    "url", ["http://localhost:9/h", "http://127.0.0.1:9/h", "http://[::1]:9/h", "http://10.9.8.7/h"]
)
async def test_a_delivery_never_connects_to_a_private_address(url: str) -> None:
    poster = AiohttpPoster(2, public_only=True)
    try:
        with pytest.raises(OSError, match="address not allowed"):
            await poster.post(url, b"{}", {})
    finally:
        await poster.close()


async def test_with_private_networks_allowed_a_delivery_tries_them() -> None:
    poster = AiohttpPoster(2, public_only=False)
    try:
        with pytest.raises(OSError, match="ClientConnectorError"):
            await poster.post(f"http://127.0.0.1:{free_port()}/h", b"{}", {})
    finally:
        await poster.close()


async def _one_delivery(world: World) -> tuple[Any, uuid.UUID]:
    key = world.key
    async with world.uow_factory() as uow:
        endpoint = await world.webhooks.create(uow, key, "https://example.com/h", None)
    async with world.uow_factory() as uow:
        uow.notify_after_commit(change(key.tenant_id, "check", "rejected"))
    async with world.uow_factory() as uow:
        (row,) = await uow.webhook_deliveries.page(
            key.tenant_id, endpoint_id=endpoint.id, status=None, limit=5
        )
    return endpoint, row.id


async def test_a_receiver_down_then_up_gets_it_once_signed(world: World) -> None:
    clock, poster = world.clock, world.poster
    endpoint, delivery_id = await _one_delivery(world)
    poster.script.extend([503, ConnectionRefusedError(), 200])
    sender = replace(world.webhook_sender, jitter=lambda _low, _high: 0.0)
    waits = []
    row: WebhookDelivery | None = None
    for _ in range(3):
        await sender.attempt(delivery_id)
        async with world.uow_factory() as uow:
            row = await uow.webhook_deliveries.get(delivery_id)
        assert row is not None
        waits.append((row.next_attempt_at - clock.now()).total_seconds())
        clock.advance(waits[-1] if row.status is DeliveryStatus.QUEUED else 0)
    assert row is not None
    assert row.status is DeliveryStatus.DELIVERED and row.provider_error_code == 200
    base = world.settings.webhook_retry_base_seconds
    assert waits[:2] == [base / 2, base], "backoff doubles (here without its jitter)"
    await sender.attempt(delivery_id)  # a duplicate job: nothing to claim
    assert len(poster.posts) == 3
    for _url, body, headers in poster.posts:
        assert verify_twostep_signature(endpoint.secret, headers[SIGNATURE_HEADER], body)
        assert not verify_twostep_signature(endpoint.secret, headers[SIGNATURE_HEADER], body + b" ")
        assert body == body_of(row.payload)


async def test_past_its_deadline_a_delivery_fails(world: World) -> None:
    clock, poster, sender = world.clock, world.poster, world.webhook_sender
    _endpoint, delivery_id = await _one_delivery(world)
    poster.script.append(500)
    clock.advance(world.settings.webhook_deadline_seconds - 1)
    await sender.attempt(delivery_id)  # answered 500 with a second left: retried at the deadline
    clock.advance(2)
    await sender.attempt(delivery_id)
    async with world.uow_factory() as uow:
        row = await uow.webhook_deliveries.get(delivery_id)
    assert row is not None and row.status is DeliveryStatus.FAILED and len(poster.posts) == 1


async def test_a_rotation_signs_with_both_secrets_for_a_while_and_redelivery_resends(
    world: World,
) -> None:
    clock, key, webhooks = world.clock, world.key, world.webhooks
    endpoint, delivery_id = await _one_delivery(world)
    old_secret = endpoint.secret
    async with world.uow_factory() as uow:
        rotated = await webhooks.rotate(uow, key, endpoint.id)
    assert rotated.secret != old_secret
    poster, sender = world.poster, world.webhook_sender
    await sender.attempt(delivery_id)
    _url, body, headers = poster.posts[-1]
    assert verify_twostep_signature(old_secret, headers[SIGNATURE_HEADER], body)
    assert verify_twostep_signature(rotated.secret, headers[SIGNATURE_HEADER], body)
    clock.advance(world.settings.webhook_rotation_overlap_seconds + 1)
    async with world.uow_factory() as uow:
        await webhooks.redeliver(uow, key, delivery_id)
    await sender.attempt(delivery_id)
    _url, body, headers = poster.posts[-1]
    a_day_later = 2 * 86_400  # the fake clock moved a day: only the MACs are compared here
    assert not verify_twostep_signature(old_secret, headers[SIGNATURE_HEADER], body, a_day_later)
    assert verify_twostep_signature(rotated.secret, headers[SIGNATURE_HEADER], body, a_day_later)
    async with world.uow_factory() as uow:
        with pytest.raises(NotFound):
            await webhooks.redeliver(uow, key, uuid.uuid4())


def test_the_guides_verifier_is_the_one_tested_here() -> None:
    guide = (REPO / "docs" / "webhooks.md").read_text()
    block = re.search(r"```python\n(import hashlib.*?)```", guide, re.S)
    assert block is not None, "the webhooks guide shows no signature verifier"
    namespace: dict[str, Any] = {}
    exec(block.group(1), namespace)  # noqa: S102 - the guide's own example
    verify = namespace["verify_twostep_signature"]
    body, secret = b'{"id":"e1"}', "whsec_x"
    fresh = sign([secret], body)
    old = sign([secret], body, timestamp=int(re.findall(r"t=(\d+)", fresh)[0]) - 301)
    assert verify(secret, fresh, body) and not verify(secret, fresh, body + b"!")
    assert not verify(secret, old, body), "a replay older than 5 minutes passed"
    assert not verify("whsec_other", fresh, body)
