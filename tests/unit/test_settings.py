import pytest
from pydantic import ValidationError

from shared.kit.settings import Settings


def test_postgres_urls_use_psycopg3() -> None:
    settings = Settings(database_url="postgresql://u@h/db")
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    assert Settings(database_url="postgres://u@h/db").database_url.startswith(
        "postgresql+psycopg://"
    )


def test_twilio_credentials_come_in_pairs() -> None:
    with pytest.raises(ValidationError, match="both TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"):
        Settings(twilio_account_sid="AC" + "1" * 32)


def test_reads_the_environment_names_of_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWOSTEP_DATABASE_URL", "sqlite:///x.db")
    monkeypatch.setenv("TWOSTEP_REDIS_URL", "redis://example:6380/2")
    monkeypatch.setenv("TWOSTEP_TWILIO_BASE_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC" + "a" * 32)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "secret")
    monkeypatch.setenv("TWILIO_VERIFY_SERVICE_SID", "VA" + "b" * 32)
    monkeypatch.setenv("TWOSTEP_SEND_DEADLINE_SECONDS", "90")
    settings = Settings()
    assert settings.database_url == "sqlite:///x.db"
    assert settings.redis_url == "redis://example:6380/2"
    assert settings.twilio_base_url == "http://127.0.0.1:9"
    assert settings.twilio_auth_token is not None
    assert settings.twilio_auth_token.get_secret_value() == "secret"
    assert "secret" not in repr(settings)
    assert settings.twilio_verify_service_sid == "VA" + "b" * 32
    assert settings.send_deadline_seconds == 90


@pytest.mark.parametrize(
    "name", ["send_deadline_seconds", "claim_lease_seconds", "code_lifetime_seconds"]
)
def test_durations_must_be_positive(name: str) -> None:
    with pytest.raises(ValidationError):
        Settings.model_validate({name: 0})
