"""Which factor a login challenge goes to, what the login page may offer instead, and when
disabling a factor is a downgrade to ask for explicitly."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from shared.errors import ChannelMismatch, FactorNotVerified, LastStrongFactor
from shared.two_step.choice import choose, refuse_losing_the_last_strong
from shared.two_step.domain import FactorStatus
from shared.two_step.models import Factor
from shared.verifications.domain import Channel

T0 = datetime(2026, 12, 7, tzinfo=UTC)


def factor(channel: Channel, minutes: int, status: FactorStatus = FactorStatus.VERIFIED) -> Factor:
    verified = T0 + timedelta(minutes=minutes)
    return Factor(
        id=uuid.uuid4(),
        user_id="ada",
        destination="ada@example.com" if channel is Channel.EMAIL else "+14155550123",
        channel=channel,
        status=status,
        created_at=verified,
        verified_at=verified if status is FactorStatus.VERIFIED else None,
    )


def test_an_app_is_preferred_to_a_newer_phone_and_the_rest_is_offered_preferred_first() -> None:
    app, phone, email = factor(Channel.TOTP, 1), factor(Channel.SMS, 3), factor(Channel.EMAIL, 2)
    choice = choose([phone, email, app], None)
    assert choice is not None
    assert choice.factor is app and list(choice.alternatives) == [phone, email]


def test_a_passkey_is_preferred_to_a_newer_app_and_a_passkey_or_an_app_is_strong() -> None:
    passkey, app, phone = (
        factor(Channel.PASSKEY, 1),
        factor(Channel.TOTP, 4),
        factor(Channel.SMS, 5),
    )
    choice = choose([phone, app, passkey], None)
    assert choice is not None
    assert choice.factor is passkey and list(choice.alternatives) == [app, phone]
    # With an app left, the passkey is not the last strong factor; the app, then, is.
    refuse_losing_the_last_strong(passkey, [passkey, app, phone])
    with pytest.raises(LastStrongFactor, match="last totp factor"):
        refuse_losing_the_last_strong(app, [app, phone])


def test_a_channel_picks_the_preferred_factor_it_reaches() -> None:
    app, old, new = factor(Channel.TOTP, 5), factor(Channel.SMS, 1), factor(Channel.WHATSAPP, 2)
    choice = choose([old, app, new], Channel.CALL)
    assert choice is not None and choice.factor is new
    assert list(choice.alternatives) == [app, old]
    # Two-step is on: a channel none of the factors takes is its own refusal, never "off".
    with pytest.raises(ChannelMismatch, match="phone"):
        choose([old, new], Channel.EMAIL)


def test_a_named_factor_is_taken_as_it_is_and_must_be_verified() -> None:
    app, phone = factor(Channel.TOTP, 1), factor(Channel.SMS, 2)
    choice = choose([app, phone], None, named=phone)
    assert choice is not None and choice.factor is phone and list(choice.alternatives) == [app]
    with pytest.raises(FactorNotVerified):
        choose([app], None, named=factor(Channel.SMS, 3, FactorStatus.UNVERIFIED))


def test_no_verified_factor_is_no_choice() -> None:
    assert choose([], None) is None
    assert choose([], Channel.EMAIL) is None


def test_the_last_app_goes_only_when_asked_explicitly() -> None:
    app, phone = factor(Channel.TOTP, 1), factor(Channel.SMS, 2)
    with pytest.raises(LastStrongFactor, match="allow_downgrade"):
        refuse_losing_the_last_strong(app, [app, phone])
    with pytest.raises(LastStrongFactor):
        refuse_losing_the_last_strong(app, [app])  # two-step off altogether: a downgrade too
    second_app = factor(Channel.TOTP, 3)
    refuse_losing_the_last_strong(app, [app, second_app, phone])
    refuse_losing_the_last_strong(phone, [app, phone])  # a weaker factor goes freely
    unverified_app = factor(Channel.TOTP, 4, FactorStatus.UNVERIFIED)
    refuse_losing_the_last_strong(unverified_app, [phone])
