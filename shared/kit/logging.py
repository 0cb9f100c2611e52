"""Structured logs for every process, with phone numbers masked on the way out.

Everything — our structlog events, uvicorn, Celery, libraries — goes through one formatter on the
root logger, so the masking below applies to every line. Codes are never passed to a logger in
the first place; a test greps the logs of a whole flow to hold us to that.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from shared.kit.destinations import mask_destination

_E164_IN_TEXT = re.compile(r"(?<![\w+])\+[1-9]\d{7,14}(?!\d)")
# Loose on purpose: what looks like an address is masked, whether or not it is a valid one.
_EMAIL_IN_TEXT = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_SECRET_KEYS = frozenset({"code", "codes", "password", "token", "auth_token", "authorization"})
_DESTINATION_KEYS = frozenset(
    {"to", "phone", "to_e164", "phone_number", "email", "destination", "address"}
)


def mask_destinations(text: str) -> str:
    """Every phone number and email address in ``text``, masked."""
    text = _E164_IN_TEXT.sub(lambda match: mask_destination(match.group(0)), text)
    if "@" not in text:
        return text
    return _EMAIL_IN_TEXT.sub(lambda match: mask_destination(match.group(0)), text)


def _redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event_dict.pop("color_message", None)  # uvicorn's duplicate of the message, with ANSI codes
    for key, value in list(event_dict.items()):
        if key in _SECRET_KEYS:
            event_dict[key] = "[redacted]"
        elif key in _DESTINATION_KEYS and isinstance(value, str):
            event_dict[key] = mask_destination(value)
        elif isinstance(value, str):
            event_dict[key] = mask_destinations(value)
    return event_dict


# Chatty at INFO (a line per task received, per task done, per beat tick; our own events say
# what happened), and the Twilio SDK puts numbers in its request lines.
_QUIETER = {
    "celery.app.trace": logging.WARNING,
    "celery.worker.strategy": logging.WARNING,
    "celery.beat": logging.WARNING,
    "twilio": logging.WARNING,
    "twostep.twilio_sdk": logging.WARNING,
    "httpx": logging.WARNING,
    "urllib3": logging.WARNING,
    "uvicorn.access": logging.WARNING,
    "alembic.runtime.migration": logging.WARNING,
    # At DEBUG the driver logs every statement with its parameters.
    "aiosqlite": logging.INFO,
}


def configure_logging(
    level: str = "INFO", fmt: str = "console", process: str | None = None
) -> None:
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]
    if process:
        shared_processors.append(_add_process(process))
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            *shared_processors,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _redact,
            _mask_rendered_event,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name, floor in _QUIETER.items():
        logging.getLogger(name).setLevel(max(floor, logging.getLevelName(level)))


def _add_process(process: str) -> Any:
    def add(
        _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event_dict.setdefault("process", process)
        return event_dict

    return add


def _mask_rendered_event(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    event = event_dict.get("event")
    if isinstance(event, str):
        event_dict["event"] = mask_destinations(event)
    exc = event_dict.get("exc_info")
    if exc and not isinstance(exc, str):
        event_dict["exception"] = mask_destinations(_format_exception(exc))
        del event_dict["exc_info"]
    return event_dict


def _format_exception(exc_info: Any) -> str:
    import traceback

    if exc_info is True:
        exc_info = sys.exc_info()
    if isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    return "".join(traceback.format_exception(*exc_info))
