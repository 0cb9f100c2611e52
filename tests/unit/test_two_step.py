"""Enrolment, login challenges, recovery codes and the audit trail, against fakes."""

from __future__ import annotations

import pytest

from shared.db.models import ApiKey
from shared.domain import CheckStatus, EventType, FactorStatus, Purpose, VerificationStatus
from shared.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    NoVerifiedFactor,
    PhoneInUse,
    UserLocked,
)
from shared.limits import Guards
from shared.services import delivery, two_step
from shared.services.delivery import DeliveryDeps
from shared.services.verifications import request_check
from tests.fakes import FakeLockout, FakeVerifyClient
from tests.unit.test_delivery import load, load_check

USER = "alice"
PHONE = "+14155550123"
OTHER_PHONE = "+14155550124"


def enroll(
    deps: DeliveryDeps, guards: Guards, key: ApiKey, phone: str = PHONE, user: str = USER, **kw
):
    with deps.uow_factory() as uow:
        factor, verification = two_step.enroll_factor(
            uow, deps.settings, guards, key, user, phone, **kw
        )
        uow.commit()
    return factor, verification


def approve(
    deps: DeliveryDeps,
    guards: Guards,
    verify: FakeVerifyClient,
    verification_id,
    phone: str = PHONE,
) -> None:
    assert delivery.send_code(deps, verification_id) is None
    with deps.uow_factory() as uow:
        check = request_check(
            uow, deps.settings, guards, deps.stash, verification_id, verify.sent_codes[phone]
        )
        uow.commit()
    assert delivery.check_code(deps, check.id) is None
    assert load_check(deps, check.id).status is CheckStatus.APPROVED


def factors(deps: DeliveryDeps, user: str = USER) -> two_step.FactorList:
    with deps.uow_factory() as uow:
        return two_step.list_factors(uow, user)


def event_types(deps: DeliveryDeps, user: str = USER) -> list[EventType]:
    with deps.uow_factory() as uow:
        return [
            event.type
            for event, _ in reversed(two_step.list_events(uow, user, before=None, limit=200))
        ]


class TestEnrolment:
    def test_only_an_approved_code_turns_two_step_on(
        self, deps: DeliveryDeps, guards: Guards, key: ApiKey, verify: FakeVerifyClient
    ) -> None:
        factor, verification = enroll(deps, guards, key)
        assert (
            factor.status is FactorStatus.UNVERIFIED and verification.purpose is Purpose.ENROLLMENT
        )
        assert not factors(deps).two_step_enabled
        approve(deps, guards, verify, verification.id)
        listed = factors(deps)
        assert listed.two_step_enabled and listed.factors[0].status is FactorStatus.VERIFIED
        assert listed.factors[0].verified_at is not None

    def test_a_failed_enrolment_leaves_two_step_as_it_was(
        self, deps: DeliveryDeps, guards: Guards, key: ApiKey, verify: FakeVerifyClient
    ) -> None:
        from shared.errors import ProviderPermanentError

        _factor, verification = enroll(deps, guards, key, "+14155550205")
        verify.fail_next(ProviderPermanentError("landline", provider_code=60205))
        delivery.send_code(deps, verification.id)
        assert load(deps, verification.id).status is VerificationStatus.FAILED
        assert not factors(deps).two_step_enabled
        with deps.uow_factory() as uow, pytest.raises(NoVerifiedFactor):
            two_step.start_challenge(uow, deps.settings, guards, key, USER)

    def test_a_new_phone_replaces_the_old_only_once_verified(
        self, deps: DeliveryDeps, guards: Guards, key: ApiKey, verify: FakeVerifyClient
    ) -> None:
        old, verification = enroll(deps, guards, key)
        approve(deps, guards, verify, verification.id)
        new, verification = enroll(deps, guards, key, OTHER_PHONE)
        statuses = {f.id: f.status for f in factors(deps).factors}
        assert statuses == {old.id: FactorStatus.VERIFIED, new.id: FactorStatus.UNVERIFIED}
        approve(deps, guards, verify, verification.id, OTHER_PHONE)
        statuses = {f.id: f.status for f in factors(deps).factors}
        assert statuses == {old.id: FactorStatus.DISABLED, new.id: FactorStatus.VERIFIED}
        assert EventType.FACTOR_REPLACED in event_types(deps)

    def test_one_phone_one_account(
        self, deps: DeliveryDeps, guards: Guards, key: ApiKey, verify: FakeVerifyClient
    ) -> None:
        _factor, verification = enroll(deps, guards, key)
        approve(deps, guards, verify, verification.id)
        with pytest.raises(PhoneInUse):
            enroll(deps, guards, key, user="mallory")
        with pytest.raises(Conflict):
            enroll(deps, guards, key)  # the same phone again for the same user

    def test_disabling_turns_it_off_and_cancels_a_pending_enrolment(
        self, deps: DeliveryDeps, guards: Guards, key: ApiKey
    ) -> None:
        factor, verification = enroll(deps, guards, key)
        with deps.uow_factory() as uow:
            two_step.disable_factor(uow, key, USER, factor.id)
            uow.commit()
        assert load(deps, verification.id).status is VerificationStatus.CANCELED
        assert factors(deps).factors[0].status is FactorStatus.DISABLED
        with deps.uow_factory() as uow, pytest.raises(NotFound):
            two_step.disable_factor(uow, key, "someone-else", factor.id)

    @pytest.mark.parametrize("user", ["", "x" * 129, "tab\there"])
    def test_user_ids_are_checked(
        self, deps: DeliveryDeps, guards: Guards, key: ApiKey, user: str
    ) -> None:
        with pytest.raises(InvalidInput):
            enroll(deps, guards, key, user=user)


class TestChallenge:
    def test_a_login_code_goes_to_the_verified_phone_by_its_channel_or_by_call(
        self, deps: DeliveryDeps, guards: Guards, key: ApiKey, verify: FakeVerifyClient
    ) -> None:
        from shared.domain import Channel

        _factor, verification = enroll(deps, guards, key)
        approve(deps, guards, verify, verification.id)
        with deps.uow_factory() as uow:
            login = two_step.start_challenge(uow, deps.settings, guards, key, USER, Channel.CALL)
            uow.commit()
        assert (login.purpose, login.to_e164, login.channel, login.user_id) == (
            Purpose.LOGIN,
            PHONE,
            Channel.CALL,
            USER,
        )


class TestRecoveryCodes:
    def test_ten_codes_each_good_once(
        self, deps: DeliveryDeps, guards: Guards, key: ApiKey
    ) -> None:
        with deps.uow_factory() as uow:
            codes = two_step.generate_recovery_codes(uow, key, USER)
            uow.commit()
            stored = uow.recovery_codes.unused_for_user(USER)
        assert len(codes) == len(set(codes)) == 10
        assert all(code not in row.code_hash for code in codes for row in stored)
        assert all(row.code_hash.startswith("scrypt$") for row in stored)

        def redeem(code: str) -> bool:
            with deps.uow_factory() as uow:
                result = two_step.redeem_recovery_code(uow, guards.lockout, key, USER, code)
                uow.commit()
            return result

        assert redeem(codes[3].lower().replace("-", " ")) is True
        assert redeem(codes[3]) is False
        assert redeem("not-a-code") is False
        lockout = guards.lockout
        assert isinstance(lockout, FakeLockout) and lockout.failures == {USER: 2}
        with deps.uow_factory() as uow:
            fresh = two_step.generate_recovery_codes(uow, key, USER)
            uow.commit()
        assert redeem(codes[4]) is False, "regenerating must replace the old set"
        assert redeem(fresh[0]) is True

    def test_a_locked_user_cannot_redeem(
        self, deps: DeliveryDeps, guards: Guards, key: ApiKey
    ) -> None:
        with deps.uow_factory() as uow:
            codes = two_step.generate_recovery_codes(uow, key, USER)
            uow.commit()
        assert isinstance(guards.lockout, FakeLockout)
        guards.lockout.locked.add(USER)
        with deps.uow_factory() as uow, pytest.raises(UserLocked):
            two_step.redeem_recovery_code(uow, guards.lockout, key, USER, codes[0])


def test_the_trail_records_each_step_and_no_code(
    deps: DeliveryDeps, guards: Guards, key: ApiKey, verify: FakeVerifyClient
) -> None:
    _factor, verification = enroll(deps, guards, key)
    approve(deps, guards, verify, verification.id)
    assert event_types(deps) == [
        EventType.VERIFICATION_REQUESTED,
        EventType.FACTOR_ENROLLMENT_STARTED,
        EventType.VERIFICATION_SENT,
        EventType.VERIFICATION_APPROVED,
        EventType.FACTOR_VERIFIED,
    ]
    with deps.uow_factory() as uow:
        rows = two_step.list_events(uow, USER, before=None, limit=200)
    assert all(event.destination == "+1415•••••23" for event, _ in rows)
    assert all(name == "unit" for _, name in rows)
    assert verify.sent_codes[PHONE] not in str([(e.detail, e.destination) for e, _ in rows])
