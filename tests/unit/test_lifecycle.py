"""The verification lifecycle is a table (``shared.verifications.domain``); the repository's
compare-and-set statements are built from it. Both read here without a database."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

import pytest
from sqlalchemy import ColumnElement, create_mock_engine, update
from sqlalchemy.engine import Dialect

from shared.kit.db.transitions import completed_at_after, may_make, status_after
from shared.kit.lifecycle import JobMove, Lifecycle
from shared.verifications.domain import (
    CHECK_LIFECYCLE,
    FINAL_VERIFICATION_STATUSES,
    OPEN_VERIFICATION_STATUSES,
    VERIFICATION_LIFECYCLE,
    CheckStatus,
    VerificationMove,
    VerificationStatus,
)
from shared.verifications.models import Verification
from shared.webhooks.domain import DELIVERY_LIFECYCLE

V = VerificationStatus
LIFE = VERIFICATION_LIFECYCLE


def walk(*moves: StrEnum, start: VerificationStatus = V.QUEUED) -> VerificationStatus | None:
    """The status after ``moves`` in order; None as soon as one is not allowed."""
    status: VerificationStatus | None = start
    for move in moves:
        assert status is not None
        status = LIFE.after(move, status)
        if status is None:
            return None
    return status


def test_a_code_sent_and_approved() -> None:
    assert walk(JobMove.CLAIM, VerificationMove.SENT, VerificationMove.APPROVE) == V.APPROVED


def test_a_send_retried_then_made() -> None:
    moves = (JobMove.CLAIM, JobMove.RELEASE, JobMove.CLAIM, VerificationMove.SENT)
    assert walk(*moves) == V.PENDING
    assert walk(JobMove.CLAIM, JobMove.RELEASE) == V.QUEUED


def test_a_resend_keeps_the_verification_pending_and_checkable_throughout() -> None:
    resend = (VerificationMove.ASK_RESEND, JobMove.CLAIM, JobMove.RELEASE, JobMove.CLAIM)
    assert walk(*resend, start=V.PENDING) == V.PENDING
    assert walk(*resend, VerificationMove.COUNT_CHECK, start=V.PENDING) == V.PENDING
    # A re-send that cannot be made is dropped: the code sent first still works.
    assert walk(*resend, VerificationMove.GIVE_UP_SEND, start=V.PENDING) == V.PENDING
    assert walk(VerificationMove.ASK_RESEND, VerificationMove.DROP_RESEND, start=V.PENDING) == (
        V.PENDING
    )


def test_a_first_send_given_up_or_timed_out_fails_the_verification() -> None:
    assert walk(JobMove.CLAIM, VerificationMove.GIVE_UP_SEND) == V.FAILED
    assert walk(JobMove.TIME_OUT) == V.FAILED
    assert walk(JobMove.CLAIM, JobMove.TIME_OUT) == V.FAILED
    # A pending verification's deadline is its code's expiry, not a job's time-out.
    assert walk(JobMove.TIME_OUT, start=V.PENDING) is None


def test_only_a_pending_verification_is_checked_approved_used_up_or_expired() -> None:
    for move in (
        VerificationMove.COUNT_CHECK,
        VerificationMove.APPROVE,
        VerificationMove.USE_UP,
        VerificationMove.EXPIRE,
    ):
        assert LIFE.starts(move) == {V.PENDING}, move


@pytest.mark.parametrize("move", [VerificationMove.CANCEL, VerificationMove.SUPERSEDE])
def test_anything_not_over_can_be_canceled_or_superseded(move: VerificationMove) -> None:
    assert LIFE.starts(move) == OPEN_VERIFICATION_STATUSES
    assert LIFE.target(move) is V.CANCELED


@pytest.mark.parametrize("final", sorted(FINAL_VERIFICATION_STATUSES))
def test_nothing_moves_a_final_verification(final: VerificationStatus) -> None:
    assert all(LIFE.after(move, final) is None for move in LIFE.moves)


def test_every_status_is_reached_from_queued() -> None:
    reached, frontier = {V.QUEUED}, [V.QUEUED]
    while frontier:
        status = frontier.pop()
        for changes in LIFE.moves.values():
            following = changes.get(status)
            if following is not None and following not in reached:
                reached.add(following)
                frontier.append(following)
    assert reached == set(VerificationStatus)


def test_a_lifecycle_refuses_a_move_out_of_a_final_status_or_without_the_job_moves() -> None:
    job_moves: dict[StrEnum, dict[CheckStatus, CheckStatus]] = {
        move: {CheckStatus.QUEUED: CheckStatus.QUEUED} for move in JobMove
    }
    with pytest.raises(ValueError, match="final"):
        Lifecycle[CheckStatus](
            moves={**job_moves, JobMove.RELEASE: {CheckStatus.FAILED: CheckStatus.QUEUED}},
            final=frozenset({CheckStatus.FAILED}),
        )
    with pytest.raises(ValueError, match="needs the move 'release'"):
        Lifecycle[CheckStatus](
            moves={JobMove.CLAIM: {CheckStatus.QUEUED: CheckStatus.QUEUED}}, final=frozenset()
        )


def test_checks_and_deliveries_wait_in_queued_until_their_outcome() -> None:
    for lifecycle in (CHECK_LIFECYCLE, DELIVERY_LIFECYCLE):
        for move in (JobMove.CLAIM, JobMove.RELEASE):
            assert {start.value for start in lifecycle.starts(move)} == {"queued"}
            assert lifecycle.target(move).value == "queued"
        assert lifecycle.target(JobMove.TIME_OUT).value == "failed"


def compiled(move: StrEnum, dialect: Dialect) -> str:
    status = Verification.__table__.c.status
    statement = (
        update(Verification)
        .where(may_make(status, LIFE, move))
        .values(status=status_after(status, LIFE, move))
    )
    return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def dialect_of(url: str) -> Dialect:
    return create_mock_engine(url, executor=print).dialect


@pytest.mark.parametrize("dialect", [dialect_of("sqlite://"), dialect_of("postgresql://")])
def test_the_sql_of_a_move_is_built_from_the_table(dialect: Dialect) -> None:
    # One target: a plain value, only from where the move may start.
    approve = compiled(VerificationMove.APPROVE, dialect)
    assert "status IN ('pending')" in approve and "SET status='approved'" in approve
    # Targets that depend on where it starts: a CASE with one branch per starting status.
    claim = compiled(JobMove.CLAIM, dialect)
    assert "status IN ('pending', 'queued', 'sending')" in claim
    for start, end in (("queued", "sending"), ("sending", "sending"), ("pending", "pending")):
        assert f"WHEN (verifications.status = '{start}') THEN '{end}'" in claim


def test_completed_at_is_set_only_where_the_move_ends_the_verification() -> None:
    status = Verification.__table__.c.status
    now = datetime(2026, 1, 1, tzinfo=UTC)
    # A first send given up ends the verification; a re-send given up leaves it pending.
    partly = completed_at_after(status, LIFE, VerificationMove.GIVE_UP_SEND, now)
    assert isinstance(partly, ColumnElement)
    compiled = partly.compile(dialect=dialect_of("sqlite://"))
    # One parameter per status, not a list expanded at each execution of a prepared statement.
    assert "WHEN (verifications.status IN (?)) THEN" in str(compiled)
    assert list(compiled.params.values()) == ["sending", now]
    assert completed_at_after(status, LIFE, VerificationMove.CANCEL, now) == now
    assert completed_at_after(status, LIFE, VerificationMove.SENT, now) is None
