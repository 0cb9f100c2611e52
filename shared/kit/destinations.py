"""Where a code goes: a phone number (SMS, voice call, WhatsApp) or an email address, parsed
from what a user typed and masked wherever it is shown."""

from __future__ import annotations

from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from shared.errors import InvalidEmailAddress
from shared.kit.phone import MASK, mask_e164, parse_phone

# RFC 5321's limit on a forward path; what Twilio's email channel takes is no longer.
_EMAIL_MAX_LENGTH = 254
# Its column, encrypted (a Fernet token of 254 bytes is 420 characters).
DESTINATION_SEALED_LENGTH = 512


@dataclass(frozen=True, slots=True)
class Destination:
    """A phone number in E.164 or a normalised email address."""

    address: str
    # A phone's country (ISO 3166-1 alpha-2); None for an email address, which has none.
    region: str | None

    @property
    def is_email(self) -> bool:
        return self.region is None

    @property
    def email_domain(self) -> str | None:
        return self.address.rpartition("@")[2] if self.is_email else None

    @property
    def masked(self) -> str:
        return mask_destination(self.address)


def parse_destination(raw: str, *, email: bool) -> Destination:
    """A phone number (``email=False``) or an email address, refusing what is neither."""
    if email:
        return Destination(parse_email(raw), None)
    phone = parse_phone(raw)
    return Destination(phone.e164, phone.region)


def parse_email(raw: str) -> str:
    """An email address normalised (Unicode NFC, the domain's IDNA rules) and lower-cased
    whole. RFC 5321 lets a local part be case-sensitive, but no mailbox provider in use makes
    it so, and an address that changed case must count against the same limits and lockout.
    No DNS look-up: whether the domain takes mail is the provider's to find out, and a login
    must not wait on it."""
    text = raw.strip()
    if not text or len(text) > _EMAIL_MAX_LENGTH:
        raise InvalidEmailAddress("an email address is required, e.g. ada@example.com")
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidEmailAddress(f"not an email address ({exc}); e.g. ada@example.com") from exc
    return checked.normalized.lower()


# Mailbox providers that ignore dots in a local part (a.da@ and ada@ are one inbox).
_DOTLESS_DOMAINS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


def mailbox_of(address: str) -> str:
    """The inbox an address reaches, for counting and looking up (never for sending): a
    ``+tag`` dropped, and a Gmail address's dots. ``ada+1@`` and ``ada+2@`` are one inbox, so
    one per-address limit, one lockout, one owner. A phone number is itself."""
    if "@" not in address:
        return address
    local, _, domain = address.rpartition("@")
    local = local.split("+", 1)[0] or local
    if domain in _DOTLESS_DOMAINS:
        local, domain = local.replace(".", "") or local, _DOTLESS_DOMAINS[domain]
    return f"{local}@{domain}"


def mask_destination(address: str) -> str:
    """``ada.lovelace@example.com`` → ``a•••@example.com``; a phone number as ``mask_e164``.

    The domain stays readable (which mailbox provider, as a phone's country does), the local
    part does not."""
    if "@" not in address:
        return mask_e164(address)
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}{MASK * 3}@{domain}" if local and domain else MASK * 4
