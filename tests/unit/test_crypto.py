"""Encryption at rest, keyed hashes, and client addresses as limits see them."""

from __future__ import annotations

import uuid

import pytest
from starlette.testclient import TestClient

from sandbox.app import Sandbox, create_sandbox_app
from shared.errors import InvalidInput
from shared.kit.crypto import Keyring, UnreadableData, generate_data_key
from shared.kit.lookups import destination_lookup, user_lookup
from shared.kit.network import counted_network, normalise_ip
from twostep.dev import masked_url


def test_values_are_encrypted_differently_each_time_and_read_back() -> None:
    keyring = Keyring([generate_data_key()], "lookup")
    first, second = keyring.encrypt("+14155550123"), keyring.encrypt("+14155550123")
    assert first != second and "4155550123" not in first
    assert keyring.decrypt(first) == keyring.decrypt(second) == "+14155550123"


def test_a_new_key_goes_first_old_values_still_read_and_rotate_to_it() -> None:
    old, new = generate_data_key(), generate_data_key()
    token = Keyring([old], "lookup").encrypt("203.0.113.9")
    both = Keyring([new, old], "lookup")
    assert both.decrypt(token) == "203.0.113.9"
    rotated = both.rotate(token)
    assert Keyring([new], "lookup").decrypt(rotated) == "203.0.113.9"
    with pytest.raises(UnreadableData):
        Keyring([new], "lookup").decrypt(token)


def test_keyed_hashes_depend_on_the_secret_the_tenant_and_the_kind() -> None:
    keyring, tenant = Keyring([generate_data_key()], "secret-one"), uuid.uuid4()
    same = destination_lookup(keyring, tenant, "+14155550123")
    assert same == destination_lookup(keyring, tenant, "+14155550123")
    assert same != destination_lookup(keyring, uuid.uuid4(), "+14155550123")
    assert same != user_lookup(keyring, tenant, "+14155550123")
    other_secret = Keyring([generate_data_key()], "secret-two")
    assert same != destination_lookup(other_secret, tenant, "+14155550123")


@pytest.mark.parametrize(
    ("written", "normal", "counted"),
    [
        ("203.0.113.9", "203.0.113.9", "203.0.113.9"),
        ("::ffff:203.0.113.9", "203.0.113.9", "203.0.113.9"),
        ("2001:DB8:0:0:1::5", "2001:db8::1:0:0:5", "2001:db8::/64"),
        ("2001:db8:0:0:ffff:ffff:ffff:ffff", "2001:db8::ffff:ffff:ffff:ffff", "2001:db8::/64"),
    ],
)
def test_one_client_is_one_client_however_its_address_is_written(
    written: str, normal: str, counted: str
) -> None:
    assert normalise_ip(written) == normal
    assert counted_network(written) == counted


def test_something_that_is_no_address_is_refused() -> None:
    with pytest.raises(InvalidInput):
        normalise_ip("localhost")


def test_printed_urls_hide_their_passwords() -> None:
    assert masked_url("postgresql://app:s3cret@db:5432/x") == "postgresql://app:***@db:5432/x"
    assert masked_url("redis://:s3cret@redis:6379/0") == "redis://:***@redis:6379/0"
    assert masked_url("sqlite:///x.db") == "sqlite:///x.db"


def test_the_sandbox_shows_its_codes_to_this_machine_only_unless_told() -> None:
    # Starlette's test client comes from "testclient", which is not a loopback address.
    with TestClient(create_sandbox_app(Sandbox())) as remote:
        answer = remote.get("/sandbox/messages")
        assert answer.status_code == 403 and "loopback" in answer.json()["detail"]
        assert remote.put("/sandbox/faults", json={"error_rate": 1}).status_code == 403
        assert remote.get("/healthz").status_code == 200
    with TestClient(create_sandbox_app(Sandbox(allow_remote=True))) as allowed:
        assert allowed.get("/sandbox/messages").json() == []
