"""Verify Services: created, fetched, listed, updated and deleted as Twilio's v2 API describes.

Every setting a create or update carries is checked against Twilio's documented range, stored
and echoed back; a bad one is refused before anything changes. A service belongs to the account
that created it: to any other it does not exist.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sandbox.common import (
    Clock,
    TwilioError,
    format_time,
    invalid,
    is_sid,
    new_sid,
    not_found,
    parse_time,
)

# The service twostep's development setup sends through (shared/kit/settings.py's
# SANDBOX_SERVICE_SID): it exists from the start and after every reset.
DEFAULT_SERVICE_SID = "VA" + "0" * 32
DEFAULT_SERVICE_NAME = "twostep sandbox"
DEFAULT_CODE_LENGTH = 6
FRIENDLY_NAME_MAX = 30
FRIENDLY_NAME_MAX_DIGITS = 4

Parser = Callable[[str, str], Any]


def _boolean(name: str, raw: str) -> bool:
    # The SDK sends booleans as "true"/"false".
    lowered = raw.lower()
    if lowered not in ("true", "false"):
        raise invalid(name)
    return lowered == "true"


def _integer(low: int, high: int) -> Parser:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise invalid(name) from None
        if not low <= value <= high:
            raise invalid(f"{name} must be between {low} and {high}")
        return value

    return parse


def _sid(prefix: str) -> Parser:
    def parse(name: str, raw: str) -> str:
        if not is_sid(raw, prefix):
            raise invalid(name)
        return raw

    return parse


def _one_of(*allowed: str) -> Parser:
    def parse(name: str, raw: str) -> str:
        if raw not in allowed:
            raise invalid(name)
        return raw

    return parse


def _text(_name: str, raw: str) -> str:
    return raw


def _origins(_name: str, raw: str) -> list[str]:
    # Sent comma-separated, answered as a list (the spec's example).
    return [origin.strip() for origin in raw.split(",") if origin.strip()]


_PASSKEY_PREFERENCE = _one_of("", "required", "preferred", "discouraged")

# Form field -> where it lives in the answer, and its documented range (CreateServiceRequest).
SETTINGS: tuple[tuple[str, tuple[str, ...], Parser], ...] = (
    ("CodeLength", ("code_length",), _integer(4, 10)),
    ("LookupEnabled", ("lookup_enabled",), _boolean),
    ("SkipSmsToLandlines", ("skip_sms_to_landlines",), _boolean),
    ("DtmfInputRequired", ("dtmf_input_required",), _boolean),
    ("TtsName", ("tts_name",), _text),
    ("Psd2Enabled", ("psd2_enabled",), _boolean),
    ("DoNotShareWarningEnabled", ("do_not_share_warning_enabled",), _boolean),
    ("CustomCodeEnabled", ("custom_code_enabled",), _boolean),
    ("DefaultTemplateSid", ("default_template_sid",), _sid("HJ")),
    ("VerifyEventSubscriptionEnabled", ("verify_event_subscription_enabled",), _boolean),
    ("Push.IncludeDate", ("push", "include_date"), _boolean),
    ("Push.ApnCredentialSid", ("push", "apn_credential_sid"), _sid("CR")),
    ("Push.FcmCredentialSid", ("push", "fcm_credential_sid"), _sid("CR")),
    ("Totp.Issuer", ("totp", "issuer"), _text),
    ("Totp.TimeStep", ("totp", "time_step"), _integer(20, 60)),
    ("Totp.CodeLength", ("totp", "code_length"), _integer(3, 8)),
    ("Totp.Skew", ("totp", "skew"), _integer(0, 2)),
    ("Whatsapp.MsgServiceSid", ("whatsapp", "msg_service_sid"), _sid("MG")),
    ("Whatsapp.From", ("whatsapp", "from"), _text),
    ("Passkeys.RelyingParty.Id", ("passkeys", "relying_party", "id"), _text),
    ("Passkeys.RelyingParty.Name", ("passkeys", "relying_party", "name"), _text),
    ("Passkeys.RelyingParty.Origins", ("passkeys", "relying_party", "origins"), _origins),
    (
        "Passkeys.AuthenticatorAttachment",
        ("passkeys", "authenticator_attachment"),
        _one_of("", "platform", "cross-platform", "any"),
    ),
    (
        "Passkeys.DiscoverableCredentials",
        ("passkeys", "discoverable_credentials"),
        _PASSKEY_PREFERENCE,
    ),
    ("Passkeys.UserVerification", ("passkeys", "user_verification"), _PASSKEY_PREFERENCE),
)

DEFAULT_SETTINGS: dict[str, Any] = {
    "code_length": DEFAULT_CODE_LENGTH,
    "lookup_enabled": False,
    "psd2_enabled": False,
    "skip_sms_to_landlines": False,
    "dtmf_input_required": False,
    "tts_name": None,
    "do_not_share_warning_enabled": False,
    "custom_code_enabled": False,
    "push": {"include_date": False, "apn_credential_sid": None, "fcm_credential_sid": None},
    "totp": {"issuer": None, "time_step": None, "code_length": None, "skew": None},
    "whatsapp": {"msg_service_sid": None, "from": None},
    "passkeys": {
        "relying_party": {"id": None, "name": None, "origins": None},
        "authenticator_attachment": None,
        "discoverable_credentials": None,
        "user_verification": None,
    },
    "default_template_sid": None,
    "verify_event_subscription_enabled": False,
}


@dataclass
class Service:
    sid: str
    account_sid: str
    friendly_name: str
    created_at: datetime
    updated_at: datetime
    # Shaped as Twilio answers them: snake_case, grouped settings nested.
    settings: dict[str, Any] = field(default_factory=lambda: copy.deepcopy(DEFAULT_SETTINGS))
    # An email integration (a SendGrid mailer) added to it, as in Twilio's Console; not part of
    # the Service resource. Without one, a create on channel email is 400 / 60217.
    email_integration: bool = False
    # Its place in listing order, for page tokens; not persisted (tokens do not outlive us).
    seq: int = field(default=0, compare=False)

    @property
    def code_length(self) -> int:
        return int(self.settings["code_length"])

    @property
    def custom_code_enabled(self) -> bool:
        return bool(self.settings["custom_code_enabled"])

    @property
    def lookup_enabled(self) -> bool:
        return bool(self.settings["lookup_enabled"])

    @property
    def do_not_share_warning_enabled(self) -> bool:
        return bool(self.settings["do_not_share_warning_enabled"])

    def to_record(self) -> dict[str, Any]:
        return {
            "sid": self.sid,
            "account_sid": self.account_sid,
            "friendly_name": self.friendly_name,
            "date_created": format_time(self.created_at),
            "date_updated": format_time(self.updated_at),
            "settings": self.settings,
            "email_integration": self.email_integration,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Service:
        settings = copy.deepcopy(DEFAULT_SETTINGS)
        _merge(settings, record.get("settings") or {})
        return cls(
            sid=str(record["sid"]),
            account_sid=str(record["account_sid"]),
            friendly_name=str(record["friendly_name"]),
            created_at=parse_time(record["date_created"]),
            updated_at=parse_time(record["date_updated"]),
            settings=settings,
            email_integration=bool(record.get("email_integration", False)),
        )


def check_friendly_name(name: str) -> str:
    """Twilio's description of ``friendly_name``: up to 30 characters of letters, digits,
    spaces, dashes and underscores, and no more than 4 digits (it goes into the message)."""
    if len(name) > FRIENDLY_NAME_MAX:
        raise invalid("FriendlyName is too long (max 30 characters)")
    if sum(c.isdigit() for c in name) > FRIENDLY_NAME_MAX_DIGITS:
        raise invalid("FriendlyName cannot contain more than 4 digits")
    if not name.strip() or not all(c.isalnum() or c in " -_" for c in name):
        raise invalid("FriendlyName may contain only letters, digits, spaces, '-' and '_'")
    return name


def parse_settings(form: Mapping[str, str]) -> list[tuple[tuple[str, ...], Any]]:
    """Every setting ``form`` carries, checked; nothing is applied until all of them pass."""
    return [(path, parse(name, form[name])) for name, path, parse in SETTINGS if name in form]


def _apply(settings: dict[str, Any], changes: Iterable[tuple[tuple[str, ...], Any]]) -> None:
    for path, value in changes:
        node = settings
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value


def _merge(into: dict[str, Any], update: Mapping[str, Any]) -> None:
    for key, value in update.items():
        if key not in into:
            continue  # a setting this version does not know: ignored, not fatal
        if isinstance(into[key], dict) and isinstance(value, Mapping):
            _merge(into[key], value)
        else:
            into[key] = value


class ServiceStore:
    """The services in a JSON file: read at start, rewritten whole on every change.

    Written to a temporary file beside it, then renamed over it, so a crash leaves the old
    file or the new one, never half of one. Services change rarely, so writing synchronously
    (on the event loop) costs nothing that matters and keeps every change between two awaits.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[Service]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read the sandbox's state file {self.path}: {exc}") from exc
        try:
            return [Service.from_record(record) for record in data["services"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"the sandbox's state file {self.path} is malformed: {exc}") from exc

    def save(self, services: Iterable[Service]) -> None:
        text = json.dumps({"services": [s.to_record() for s in services]}, indent=1) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


class ServiceRegistry:
    def __init__(self, clock: Clock, store: ServiceStore | None = None) -> None:
        self.clock = clock
        self.store = store
        self.default_account: str | None = None
        self._services: dict[str, Service] = {}
        self._seq = 0
        for service in store.load() if store else []:
            self._add(service)

    def ensure_default(self, account_sid: str) -> None:
        """The default service, for ``account_sid``; one loaded from the state file is kept."""
        self.default_account = account_sid
        existing = self._services.get(DEFAULT_SERVICE_SID)
        if existing is not None:
            # Ready for email whatever an older state file says (it predates the setting).
            existing.email_integration = True
        if existing is None or existing.account_sid != account_sid:
            now = self.clock.now()
            self._services.pop(DEFAULT_SERVICE_SID, None)
            # Ready for every channel, as a service set up for development would be.
            default = Service(DEFAULT_SERVICE_SID, account_sid, DEFAULT_SERVICE_NAME, now, now)
            default.email_integration = True
            self._add(default)
            self._save()

    def create(self, account_sid: str, form: Mapping[str, str]) -> Service:
        name = form.get("FriendlyName")
        if not name:
            raise TwilioError(
                400, 20001, "Missing required parameter FriendlyName in the post body"
            )
        check_friendly_name(name)
        changes = parse_settings(form)
        now = self.clock.now()
        service = Service(new_sid("VA"), account_sid, name, now, now)
        _apply(service.settings, changes)
        self._add(service)
        self._save()
        return service

    def get(self, sid: str, account_sid: str, resource: str) -> Service:
        """``resource`` is the path asked for, which Twilio's 404 names."""
        service = self._services.get(sid)
        if service is None or service.account_sid != account_sid:
            raise not_found(resource)
        return service

    def update(self, service: Service, form: Mapping[str, str]) -> Service:
        name = form.get("FriendlyName")
        if name is not None:
            check_friendly_name(name)
        changes = parse_settings(form)
        if name is not None:
            service.friendly_name = name
        _apply(service.settings, changes)
        service.updated_at = self.clock.now()
        self._save()
        return service

    def set_email_integration(self, sid: str, enabled: bool) -> Service:
        service = self._services.get(sid)
        if service is None:
            raise KeyError(f"no service {sid}")
        service.email_integration = enabled
        self._save()
        return service

    def delete(self, service: Service) -> None:
        del self._services[service.sid]
        self._save()

    def of_account(self, account_sid: str) -> list[Service]:
        """In the order they were created (the order of ``seq``)."""
        return [s for s in self._services.values() if s.account_sid == account_sid]

    def reset(self) -> None:
        self._services.clear()
        if self.default_account is not None:
            self.ensure_default(self.default_account)
        else:
            self._save()

    def _add(self, service: Service) -> None:
        self._seq += 1
        service.seq = self._seq
        self._services[service.sid] = service

    def _save(self) -> None:
        if self.store is not None:
            self.store.save(self._services.values())
