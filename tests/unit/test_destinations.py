from __future__ import annotations

import pytest

from shared.errors import InvalidEmailAddress, InvalidPhoneNumber
from shared.kit.destinations import mailbox_of, mask_destination, parse_destination
from shared.verifications.domain import Channel


@pytest.mark.parametrize(
    ("typed", "kept"),
    [
        ("ada@example.com", "ada@example.com"),
        (" Ada.Lovelace@Example.COM ", "ada.lovelace@example.com"),
        ("grace+2fa@sub.example.org", "grace+2fa@sub.example.org"),
    ],
)
def test_an_address_is_kept_normalised_and_without_a_country(typed: str, kept: str) -> None:
    destination = parse_destination(typed, email=True)
    assert (destination.address, destination.region, destination.is_email) == (kept, None, True)
    assert destination.email_domain == kept.rpartition("@")[2]


@pytest.mark.parametrize(
    "typed", ["", "ada", "ada@", "@example.com", "ada@localhost", "ada@x.test", "a" * 250 + "@b.co"]
)
def test_what_no_mailbox_can_have_is_refused(typed: str) -> None:
    with pytest.raises(InvalidEmailAddress):
        parse_destination(typed, email=True)


def test_a_phone_channel_takes_a_number_and_an_address_is_not_one() -> None:
    phone = parse_destination("+14155550123", email=False)
    assert (phone.address, phone.region, phone.email_domain) == ("+14155550123", "US", None)
    with pytest.raises(InvalidPhoneNumber):
        parse_destination("ada@example.com", email=False)


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("ada.lovelace@example.com", "a•••@example.com"),
        ("+14155550123", "+1415•••••23"),
        ("@example.com", "••••"),
    ],
)
def test_masks_hide_the_mailbox_and_the_line(address: str, masked: str) -> None:
    assert mask_destination(address) == masked


def test_only_sms_and_call_are_restricted_and_only_email_reaches_an_address() -> None:
    assert {c for c in Channel if c.is_restricted} == {Channel.SMS, Channel.CALL}
    assert {c for c in Channel if c.reaches_email} == {Channel.EMAIL}


@pytest.mark.parametrize(
    ("address", "inbox"),
    [
        ("ada+2fa@example.org", "ada@example.org"),
        ("a.da+x@googlemail.com", "ada@gmail.com"),
        ("a.da@example.org", "a.da@example.org"),  # dots matter elsewhere
        ("+tag@example.org", "+tag@example.org"),  # nothing before the tag: kept as is
        ("+14155550123", "+14155550123"),
    ],
)
def test_aliases_of_one_inbox_are_one_destination(address: str, inbox: str) -> None:
    assert mailbox_of(address) == inbox
