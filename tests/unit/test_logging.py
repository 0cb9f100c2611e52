from __future__ import annotations

import logging

import pytest
import structlog

from shared.kit.logging import configure_logging, mask_destinations


def test_numbers_in_free_text_are_masked() -> None:
    text = "sent to +14155550123 and +442079460958, id 1234567890123, ts 2026-11-29"
    masked = mask_destinations(text)
    assert "+14155550123" not in masked and "+442079460958" not in masked
    assert "+1415•••••23" in masked
    assert "1234567890123" in masked and "2026-11-29" in masked


def test_email_addresses_in_free_text_are_masked() -> None:
    masked = mask_destinations("sent to Ada.Lovelace@example.com (ada@example.org) at 10:00")
    assert "Lovelace" not in masked and "ada@" not in masked
    assert "A•••@example.com" in masked and "a•••@example.org" in masked


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_every_line_is_scrubbed_whoever_logs_it(
    fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO", fmt, process="test")
    try:
        structlog.get_logger("twostep.test").info(
            "sending", to="+14155550123", code="493817", extra="x"
        )
        logging.getLogger("some.library").warning("calling +14155550199 now")
        try:
            raise ValueError("bad number +14155550188")
        except ValueError:
            logging.getLogger("some.library").exception("failed")
    finally:
        logging.getLogger().handlers.clear()
        structlog.reset_defaults()
    err = capsys.readouterr().err
    for secret in ("+14155550123", "493817", "+14155550199", "+14155550188"):
        assert secret not in err
    assert "+1415•••••23" in err and "[redacted]" in err and "+1415•••••99" in err
    assert "ValueError" in err
