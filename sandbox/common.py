"""What every part of the sandbox shares: Twilio's error shape, SIDs, timestamps, the clock."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime, timedelta

SID_PATTERN = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")
# Twilio's one timestamp format; the SDK parses exactly this and keeps anything else a string.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class TwilioError(Exception):
    """An error answer in Twilio's shape: HTTP status plus Twilio error code."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def not_found(resource: str) -> TwilioError:
    """Twilio's 404 names the resource by its path below the version (``/Services/VA…``)."""
    return TwilioError(404, 20404, f"The requested resource {resource} was not found")


def invalid(parameter: str) -> TwilioError:
    return TwilioError(400, 60200, f"Invalid parameter: {parameter}")


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def is_sid(value: str, prefix: str) -> bool:
    return value.startswith(prefix) and SID_PATTERN.match(value) is not None


def format_time(value: datetime) -> str:
    return value.strftime(TIME_FORMAT)


def parse_time(value: str) -> datetime:
    """Twilio's format only; raises ValueError for anything else."""
    return datetime.strptime(value, TIME_FORMAT).replace(tzinfo=UTC)


class Clock:
    """Wall-clock time that tests can move forward (``POST /sandbox/clock``)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC).replace(microsecond=0) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)
