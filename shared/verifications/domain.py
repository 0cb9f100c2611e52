"""A verification's and a check's states, words and lifecycles (docs/architecture.md, "States").
Pure: no I/O."""

from __future__ import annotations

from enum import StrEnum

from shared.kit.lifecycle import JobMove, Lifecycle


class FactorKind(StrEnum):
    """What a channel reaches: a phone number, an email address, an authenticator app, or a
    passkey (WebAuthn)."""

    PHONE = "phone"
    EMAIL = "email"
    TOTP = "totp"
    PASSKEY = "passkey"

    @property
    def is_strong(self) -> bool:
        """Nothing it answers with travels through a network others can read or divert: NIST
        SP 800-63B restricts codes to a phone (5.1.3.3) and rules out email for them (5.1.3.1);
        a passkey's signature is bound to the site's origin besides."""
        return self in (FactorKind.TOTP, FactorKind.PASSKEY)

    @property
    def strength(self) -> int:
        """How the kinds rank for a login: a passkey first (it cannot be phished: its signature
        names the site's origin, where an app's code can be relayed by a look-alike page), then
        an app, then codes sent."""
        return {FactorKind.PASSKEY: 2, FactorKind.TOTP: 1}.get(self, 0)


class Channel(StrEnum):
    SMS = "sms"
    CALL = "call"
    WHATSAPP = "whatsapp"
    EMAIL = "email"
    # An authenticator app's code (Twilio Verify's TOTP factors): nothing is sent.
    TOTP = "totp"
    # A passkey's signature (Twilio Verify Passkeys): the browser signs WebAuthn options.
    PASSKEY = "passkey"

    @property
    def kind(self) -> FactorKind:
        return _KINDS.get(self, FactorKind.PHONE)

    @property
    def reaches_email(self) -> bool:
        return self is Channel.EMAIL

    def of_kind(self) -> frozenset[Channel]:
        """Every channel that reaches what this one reaches."""
        return frozenset(channel for channel in Channel if channel.kind is self.kind)

    @property
    def sends_code(self) -> bool:
        """A code goes out to a destination; an authenticator app makes its own, and a passkey
        answers with a signature instead."""
        return self not in (Channel.TOTP, Channel.PASSKEY)

    @property
    def takes_credential(self) -> bool:
        """Checked with the browser's ``PublicKeyCredential``, not a code."""
        return self is Channel.PASSKEY

    @property
    def starts_at_provider(self) -> bool:
        """A worker starts it at the provider before it can be checked (a code sent, a
        passkey's options made); an authenticator app's is checkable at once."""
        return self is not Channel.TOTP

    @property
    def is_restricted(self) -> bool:
        """A code by text or voice call (NIST SP 800-63B 5.1.3.3): the number's line type and
        SIM swaps are worth checking before it goes out."""
        return self in (Channel.SMS, Channel.CALL)


_KINDS = {
    Channel.EMAIL: FactorKind.EMAIL,
    Channel.TOTP: FactorKind.TOTP,
    Channel.PASSKEY: FactorKind.PASSKEY,
}


class Purpose(StrEnum):
    STANDALONE = "standalone"
    ENROLLMENT = "enrollment"
    LOGIN = "login"


class VerificationStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    PENDING = "pending"
    APPROVED = "approved"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELED = "canceled"
    MAX_ATTEMPTS_REACHED = "max_attempts_reached"

    @property
    def is_final(self) -> bool:
        return self in FINAL_VERIFICATION_STATUSES


FINAL_VERIFICATION_STATUSES = frozenset(
    {
        VerificationStatus.APPROVED,
        VerificationStatus.FAILED,
        VerificationStatus.EXPIRED,
        VerificationStatus.CANCELED,
        VerificationStatus.MAX_ATTEMPTS_REACHED,
    }
)


# Not over in twostep: a send may still be made, or a check accepted.
OPEN_VERIFICATION_STATUSES = frozenset(
    {VerificationStatus.QUEUED, VerificationStatus.SENDING, VerificationStatus.PENDING}
)


class VerificationMove(StrEnum):
    """What changes a verification's status, besides a job row's claim, release and time-out."""

    # The provider took a send: the code is out (again) and checkable.
    SENT = "sent"
    # A send that cannot be made: a first one fails the verification, a re-send is dropped.
    GIVE_UP_SEND = "give_up_send"
    # A newer verification to the same number takes its place (before or while it is sent).
    SUPERSEDE = "supersede"
    # Another pending verification was answered with this one's provider SID and takes it over.
    TAKE_OVER = "take_over"
    # The tenant ends it.
    CANCEL = "cancel"
    # Another code is asked for, by the same or another channel; the first one stays valid.
    ASK_RESEND = "ask_resend"
    # A re-send nobody managed before its deadline: the first code still works.
    DROP_RESEND = "drop_resend"
    # One more check is counted against it (or given back: the provider never saw it).
    COUNT_CHECK = "count_check"
    APPROVE = "approve"
    # Every allowed check was a wrong code.
    USE_UP = "use_up"
    EXPIRE = "expire"


_Q, _S, _P = VerificationStatus.QUEUED, VerificationStatus.SENDING, VerificationStatus.PENDING
_CANCELED = VerificationStatus.CANCELED

# docs/architecture.md's states, as the one table the repositories' compare-and-set statements
# are built from.
VERIFICATION_LIFECYCLE = Lifecycle[VerificationStatus](
    moves={
        # A re-send is claimed, released and sent while the verification stays pending.
        JobMove.CLAIM: {_Q: _S, _S: _S, _P: _P},
        JobMove.RELEASE: {_S: _Q, _P: _P},
        JobMove.TIME_OUT: {_Q: VerificationStatus.FAILED, _S: VerificationStatus.FAILED},
        VerificationMove.SENT: {_S: _P, _P: _P},
        VerificationMove.GIVE_UP_SEND: {_S: VerificationStatus.FAILED, _P: _P},
        VerificationMove.SUPERSEDE: {_Q: _CANCELED, _S: _CANCELED, _P: _CANCELED},
        VerificationMove.TAKE_OVER: {_P: _CANCELED},
        VerificationMove.CANCEL: {_Q: _CANCELED, _S: _CANCELED, _P: _CANCELED},
        VerificationMove.ASK_RESEND: {_P: _P},
        VerificationMove.DROP_RESEND: {_P: _P},
        VerificationMove.COUNT_CHECK: {_P: _P},
        VerificationMove.APPROVE: {_P: VerificationStatus.APPROVED},
        VerificationMove.USE_UP: {_P: VerificationStatus.MAX_ATTEMPTS_REACHED},
        VerificationMove.EXPIRE: {_P: VerificationStatus.EXPIRED},
    },
    final=FINAL_VERIFICATION_STATUSES,
)


class CheckStatus(StrEnum):
    QUEUED = "queued"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    MAX_ATTEMPTS_REACHED = "max_attempts_reached"
    FAILED = "failed"

    @property
    def is_final(self) -> bool:
        return self is not CheckStatus.QUEUED


# A check is claimed and released without leaving "queued"; its outcome (``CheckStatus``) is
# the provider's answer, set when it is finished.
CHECK_LIFECYCLE = Lifecycle[CheckStatus](
    moves={
        JobMove.CLAIM: {CheckStatus.QUEUED: CheckStatus.QUEUED},
        JobMove.RELEASE: {CheckStatus.QUEUED: CheckStatus.QUEUED},
        JobMove.TIME_OUT: {CheckStatus.QUEUED: CheckStatus.FAILED},
    },
    final=frozenset(status for status in CheckStatus if status is not CheckStatus.QUEUED),
)
