"""Passkeys against fakes: a worker has the options made, the browser's credential waits in the
stash like a code and is checked like one, and what Twilio refuses is a wrong guess."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import update

from shared.errors import ChannelMismatch, PasskeysNotSetUp, ProviderTransientError
from shared.limits.ports import Outcome
from shared.tenants.models import Tenant
from shared.two_step.domain import FactorStatus
from shared.two_step.models import Factor
from shared.two_step.service import AppEnrollment
from shared.verifications.domain import CheckStatus, Purpose, VerificationStatus
from shared.verifications.models import Verification
from shared.verifications.views import VerificationOut
from tests.unit.test_code_jobs import load, load_check, submit
from tests.unit.world import World

USER = "ada"


async def with_relying_party(world: World) -> None:
    async with world.uow_factory() as uow:
        await uow.session.execute(
            update(Tenant)
            .where(Tenant.id == world.key.tenant_id)
            .values(passkey_rp_id="example.com", passkey_origins=["https://example.com"])
        )


async def enrolled(world: World, label: str | None = "Ada's phone") -> tuple[Factor, Verification]:
    await with_relying_party(world)
    async with world.uow_factory() as uow:
        return await world.two_step.enroll_passkey(
            uow, world.key, USER, AppEnrollment(label=label, replace_existing=False)
        )


async def started(world: World, verification_id: uuid.UUID) -> VerificationOut:
    """The worker's job: the verification pending, with the options for the browser."""
    assert await world.code_jobs.send_code(verification_id) is None
    view = VerificationOut.from_row(await load(world, verification_id))
    assert view.status is VerificationStatus.PENDING
    return view


async def answered(world: World, verification_id: uuid.UUID, options: dict[str, object]) -> str:
    credential = world.verify.sign(options)
    check_id = await submit_credential(world, verification_id, credential)
    assert await world.code_jobs.check_code(check_id) is None
    return (await load_check(world, check_id)).status.value


async def submit_credential(
    world: World, verification_id: uuid.UUID, credential: dict[str, object]
) -> uuid.UUID:
    async with world.uow_factory() as uow:
        check = await world.verifications.submit_check(uow, world.key, verification_id, credential)
    return check.id


async def test_without_a_relying_party_no_passkey_is_enrolled(world: World) -> None:
    async with world.uow_factory() as uow:
        with pytest.raises(PasskeysNotSetUp, match="twostep tenants passkeys"):
            await world.two_step.enroll_passkey(uow, world.key, USER, AppEnrollment())
    assert not world.jobs.published


async def test_the_options_come_from_a_worker_and_the_attestation_verifies_the_factor(
    world: World,
) -> None:
    factor, verification = await enrolled(world)
    assert verification.status is VerificationStatus.QUEUED
    assert VerificationOut.from_row(verification).creation_options is None
    assert world.verify.count("create_passkey") == 0  # never in the API's request
    view = await started(world, verification.id)
    assert view.creation_options is not None and view.request_options is None
    assert view.creation_options["user"] == {"name": "Ada's phone"}
    assert await answered(world, verification.id, view.creation_options) == "approved"
    async with world.uow_factory() as uow:
        made = await uow.factors.get(world.key.tenant_id, USER, factor.id)
    assert made is not None and made.status is FactorStatus.VERIFIED
    assert made.destination.startswith("YF") and made.label == "Ada's phone"
    # Over: the options are no longer shown.
    assert VerificationOut.from_row(await load(world, verification.id)).creation_options is None


async def test_a_login_signs_a_challenge_of_the_factor_and_a_wrong_signature_is_a_wrong_guess(
    world: World,
) -> None:
    factor, verification = await enrolled(world)
    options = (await started(world, verification.id)).creation_options
    assert options is not None and await answered(world, verification.id, options) == "approved"
    async with world.uow_factory() as uow:
        login = (await world.two_step.start_challenge(uow, world.key, USER)).verification
    assert (login.channel.value, login.purpose) == ("passkey", Purpose.LOGIN)
    request = (await started(world, login.id)).request_options
    assert request is not None
    forged = await submit_credential(world, login.id, world.verify.sign(request, tampered=True))
    assert await world.code_jobs.check_code(forged) is None
    assert (await load_check(world, forged)).status is CheckStatus.REJECTED
    assert (str(forged), Outcome.WRONG) in world.lockout.settled
    assert await answered(world, login.id, request) == "approved"
    assert (await load(world, login.id)).status is VerificationStatus.APPROVED
    async with world.uow_factory() as uow:
        made = await uow.factors.get(world.key.tenant_id, USER, factor.id)
    assert made is not None
    assert [sid for op, sid in world.verify.calls if op == "passkey_challenge"] == [
        made.destination
    ]


async def test_a_code_for_a_passkey_and_a_credential_for_a_code_are_refused(
    world: World,
) -> None:
    _factor, verification = await enrolled(world)
    options = (await started(world, verification.id)).creation_options
    assert options is not None
    with pytest.raises(ChannelMismatch, match="credential, not a code"):
        await submit(world, verification.id, "123456")
    assert not world.lockout.reserved and not world.stash.codes
    assert (await load(world, verification.id)).check_attempts == 0


async def test_a_lost_answer_makes_the_options_again_and_the_verification_pends_once(
    world: World,
) -> None:
    """A factor whose creation's answer was lost stays unverified at Twilio; the retry's is the
    one the browser gets."""
    _factor, verification = await enrolled(world)
    world.verify.lose_next_answer()
    retry = await world.code_jobs.send_code(verification.id)
    assert retry is not None
    assert (await load(world, verification.id)).status is not VerificationStatus.PENDING
    world.clock.advance(retry.countdown + 1)
    view = await started(world, verification.id)
    assert world.verify.count("create_passkey") == 2
    assert view.creation_options is not None
    assert await answered(world, verification.id, view.creation_options) == "approved"


async def test_twilio_down_retries_the_start(world: World) -> None:
    _factor, verification = await enrolled(world)
    world.verify.fail_next(ProviderTransientError("503", status=503))
    retry = await world.code_jobs.send_code(verification.id)
    assert retry is not None
    world.clock.advance(retry.countdown + 1)
    assert (await started(world, verification.id)).creation_options is not None


async def test_each_ceremony_is_admitted_by_the_send_limits_as_a_send_without_destination(
    world: World,
) -> None:
    """Making options is a call to Twilio: a flood of enrolments or challenges meets the limits
    per user, address and key, as codes do (no destination: nothing goes to one)."""
    _factor, verification = await enrolled(world)
    [admitted] = world.sends.admitted
    assert (admitted.verification_id, admitted.user_id, admitted.destination) == (
        verification.id,
        USER,
        None,
    )


async def test_webhooks_carry_neither_the_options_nor_the_label(world: World) -> None:
    """A delivery's payload waits in SQL in clear: what names the user's device stays out."""
    async with world.uow_factory() as uow:
        await world.webhooks.create(uow, world.key, "https://example.com/all", None)
    factor, verification = await enrolled(world)
    options = (await started(world, verification.id)).creation_options
    assert options is not None and await answered(world, verification.id, options) == "approved"
    async with world.uow_factory() as uow:
        rows = await uow.webhook_deliveries.page(
            world.key.tenant_id, endpoint_id=None, status=None, limit=50
        )
    kinds = {row.payload["type"] for row in rows}
    assert {"verification.pending", "factor.added"} <= kinds
    for row in rows:
        assert not {"creation_options", "request_options", "label"} & set(row.payload["data"])
        assert "Ada's phone" not in str(row.payload)
    assert factor.label == "Ada's phone"
