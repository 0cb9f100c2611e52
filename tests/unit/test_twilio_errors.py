import pytest

from shared.errors import (
    ErrorCode,
    ProviderFinalError,
    ProviderPermanentError,
    ProviderTransientError,
)
from shared.verify.twilio import classify_twilio_error


@pytest.mark.parametrize(
    ("status", "code", "kind", "reason", "ambiguous"),
    [
        (429, 20429, ProviderTransientError, ErrorCode.PROVIDER_UNAVAILABLE, False),
        (503, 20503, ProviderTransientError, ErrorCode.PROVIDER_UNAVAILABLE, False),
        (500, 20500, ProviderTransientError, ErrorCode.PROVIDER_UNAVAILABLE, True),
        (502, 502, ProviderTransientError, ErrorCode.PROVIDER_UNAVAILABLE, True),
        (429, 60202, ProviderFinalError, ErrorCode.MAX_CHECK_ATTEMPTS_REACHED, None),
        (429, 60203, ProviderFinalError, ErrorCode.MAX_SEND_ATTEMPTS_REACHED, None),
        (429, 60212, ProviderFinalError, ErrorCode.PROVIDER_REJECTED, None),
        (404, 20404, ProviderFinalError, ErrorCode.VERIFICATION_EXPIRED, None),
        (400, 60200, ProviderPermanentError, ErrorCode.INVALID_PHONE_NUMBER, None),
        (403, 60205, ProviderPermanentError, ErrorCode.LANDLINE_NOT_SUPPORTED, None),
        (403, 60410, ProviderPermanentError, ErrorCode.FRAUD_BLOCKED, None),
        (403, 60605, ProviderPermanentError, ErrorCode.COUNTRY_BLOCKED, None),
        (400, 60217, ProviderPermanentError, ErrorCode.CHANNEL_NOT_CONFIGURED, None),
        (400, 60223, ProviderPermanentError, ErrorCode.CHANNEL_NOT_CONFIGURED, None),
        (400, 68008, ProviderPermanentError, ErrorCode.CHANNEL_NOT_CONFIGURED, None),
        (401, 20003, ProviderPermanentError, ErrorCode.PROVIDER_REJECTED, None),
    ],
)
def test_twilio_codes_decide_the_class_not_the_http_status(
    status: int, code: int, kind: type, reason: ErrorCode, ambiguous: bool | None
) -> None:
    error = classify_twilio_error("start verification", status, code)
    assert type(error) is kind
    assert error.reason is reason
    assert error.provider_code == code
    if ambiguous is not None:
        assert isinstance(error, ProviderTransientError)
        assert error.ambiguous is ambiguous
    assert str(code) in error.message and "+" not in error.message
