"""What each process refuses to start with (shared/kit/startup.py)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.kit.crypto import (
    DEVELOPMENT_DATA_KEY,
    DEVELOPMENT_LOOKUP_KEY,
    generate_data_key,
    keyring_of,
)
from shared.kit.settings import InvalidSettings, MissingSecrets, Settings, read_settings
from shared.kit.startup import flower_auth_problems, startup_problems

SECRETS = {"data_keys": generate_data_key(), "lookup_key": "k" * 40}
TWILIO = {
    "twilio_account_sid": "AC" + "1" * 32,
    "twilio_auth_token": "a-real-token-from-the-console",
    "twilio_verify_service_sid": "VA" + "1" * 32,
}


STORES = {"database_url": "sqlite:///twostep.db", "redis_url": "redis://127.0.0.1:6379/0"}


def settings(**values: Any) -> Settings:
    return Settings(**{"allowed_countries": "US", **SECRETS, **STORES, **values})


def test_a_complete_production_configuration_starts() -> None:
    ready = settings(
        database_url="postgresql://twostep:s3cret-and-long@db.internal/twostep",
        redis_url="redis://:an-actual-password@redis.internal:6379/0",
        **TWILIO,
    )
    for process in ("api", "worker", "beat", "migrate", "keys"):
        assert startup_problems(ready, process) == [], process
    sentinels = "sentinel://:an-actual-password@s1.internal:26379;sentinel://s2.internal:26379/0"
    assert startup_problems(ready.model_copy(update={"redis_url": sentinels}), "worker") == []


def test_the_worker_never_sends_real_credentials_to_a_base_url_in_any_environment() -> None:
    for environment in ("production", "development"):
        both = settings(environment=environment, twilio_base_url="http://127.0.0.1:8765", **TWILIO)
        assert any("both set" in p for p in startup_problems(both, "worker")), environment


def test_a_base_url_off_loopback_is_for_development_only() -> None:
    remote = {"twilio_base_url": "http://sandbox:8765"}
    assert any("off this machine" in p for p in startup_problems(settings(**remote), "worker"))
    assert startup_problems(settings(environment="development", **remote), "worker") == []
    assert startup_problems(settings(twilio_base_url="http://127.0.0.1:8765"), "worker") == []


@pytest.mark.parametrize(
    ("values", "process", "expected"),
    [
        ({"data_keys": ""}, "api", "TWOSTEP_DATA_KEYS is not set"),
        ({"data_keys": DEVELOPMENT_DATA_KEY}, "worker", "public development key"),
        ({"lookup_key": DEVELOPMENT_LOOKUP_KEY}, "beat", "placeholder"),
        ({"lookup_key": "change-me"}, "api", "placeholder"),
        ({"lookup_key": "too-short"}, "migrate", "shorter than 32"),
        ({"allowed_countries": ""}, "api", "TWOSTEP_ALLOWED_COUNTRIES"),
        ({"database_url": "postgresql://twostep:twostep@db/twostep"}, "api", "database"),
        ({"database_url": "postgresql://twostep@db.internal/twostep"}, "api", "database"),
        ({"redis_url": "redis://redis.internal:6379/0"}, "worker", "Redis"),
        ({"redis_url": "redis://:redis@redis.internal:6379/0"}, "api", "Redis"),
        (
            {"redis_url": "sentinel://s1.internal:26379;sentinel://s2.internal:26379"},
            "api",
            "Redis",
        ),
        ({"twilio_auth_token": "changeme"}, "worker", "placeholder"),
        ({"twilio_account_sid": None, "twilio_auth_token": None}, "worker", "no Twilio"),
    ],
)
def test_production_refuses_what_only_fits_a_laptop(
    values: dict[str, Any], process: str, expected: str
) -> None:
    problems = startup_problems(settings(**{**TWILIO, **values}), process)  # type: ignore[arg-type]
    assert any(expected in problem for problem in problems), problems


def test_local_storage_without_passwords_is_fine() -> None:
    local = settings(
        database_url="postgresql://postgres@127.0.0.1:5432/twostep",
        redis_url="redis://127.0.0.1:6379/0",
        **TWILIO,
    )
    assert startup_problems(local, "api") == []


def test_development_needs_no_secrets_and_production_gets_none() -> None:
    none: dict[str, Any] = {"data_keys": "", "lookup_key": None}  # the suite sets some in its env
    assert keyring_of(Settings(environment="development", **none)).blind_index("x", "y")
    with pytest.raises(MissingSecrets):
        keyring_of(Settings(**none))


def test_flower_needs_a_real_password_in_production() -> None:
    assert flower_auth_problems(settings(), "ops:admin")
    assert flower_auth_problems(settings(), "ops:short")
    assert flower_auth_problems(settings(), "ops:a-long-and-real-password") == []
    assert flower_auth_problems(settings(environment="development"), "ops:admin") == []


def test_production_names_its_database_and_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unset, the defaults are a laptop's (./twostep.db, Redis db 0 on localhost): the process
    would start, say it is ready and fail every request. Production refuses to start instead."""
    monkeypatch.delenv("TWOSTEP_DATABASE_URL", raising=False)
    monkeypatch.delenv("TWOSTEP_REDIS_URL", raising=False)
    bare: dict[str, Any] = {"allowed_countries": "US", **SECRETS}
    assert startup_problems(Settings(**bare), "api") == [
        "TWOSTEP_DATABASE_URL is not set: production names its database explicitly",
        "TWOSTEP_REDIS_URL is not set: production names its Redis explicitly",
    ]
    assert startup_problems(Settings(environment="development"), "api") == []


def test_settings_that_cannot_be_read_name_the_variable_and_echo_no_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old, new = generate_data_key(), generate_data_key()
    monkeypatch.setenv("TWOSTEP_DATA_KEYS", f"{old};{new}")  # the wrong separator: no key
    monkeypatch.setenv("TWOSTEP_MAX_BODY_BYTES", "lots")
    with pytest.raises(InvalidSettings) as refused:
        read_settings()
    assert sorted(refused.value.problems) == [
        "TWOSTEP_DATA_KEYS: key 1 is not a data key: 44 characters of URL-safe base64, as "
        "twostep keys generate-data-key prints them; separate keys with commas",
        "TWOSTEP_MAX_BODY_BYTES: Input should be a valid integer, unable to parse string as an "
        "integer",
    ]
    assert old not in str(refused.value) and new not in str(refused.value)
    monkeypatch.setenv("TWOSTEP_DATA_KEYS", f"{new},{old}")
    monkeypatch.delenv("TWOSTEP_MAX_BODY_BYTES")
    assert len(read_settings().data_keys) == 2
