"""A row's lifecycle as data: the moves its status may make, each from the statuses it may
start at to the status it leaves. Pure: repositories build their compare-and-set statements
from it (``shared.kit.db.transitions``) and tests read it without a database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, TypeVar

Status = TypeVar("Status", bound=StrEnum)


class JobMove(StrEnum):
    """The moves every job row makes (a send, a check, a webhook delivery)."""

    # A worker takes the row for one attempt (or takes over a claim that went stale).
    CLAIM = "claim"
    # The attempt ends without an outcome: the row waits for its retry.
    RELEASE = "release"
    # Nobody managed the row before its deadline.
    TIME_OUT = "time_out"


@dataclass(frozen=True)
class Lifecycle(Generic[Status]):
    """``moves[move][status]`` is the status ``move`` leaves a row at ``status`` in; a move is
    allowed only from the statuses it names, and none starts from a final status."""

    moves: Mapping[StrEnum, Mapping[Status, Status]]
    final: frozenset[Status]

    def __post_init__(self) -> None:
        for job_move in JobMove:
            if job_move not in self.moves:
                raise ValueError(f"a job row's lifecycle needs the move {job_move.value!r}")
        for move, changes in self.moves.items():
            if not changes:
                raise ValueError(f"the move {move.value!r} starts nowhere")
            leaving_final = self.final.intersection(changes)
            if leaving_final:
                raise ValueError(f"the move {move.value!r} starts at final {leaving_final}")

    def after(self, move: StrEnum, status: Status) -> Status | None:
        """The status ``move`` leaves a row at ``status`` in; None if it may not make it."""
        return self.moves[move].get(status)

    def starts(self, move: StrEnum) -> frozenset[Status]:
        """The statuses ``move`` may start from."""
        return frozenset(self.moves[move])

    def ends(self, move: StrEnum, status: Status) -> bool:
        """Whether ``move`` from ``status`` ends the row (leaves it in a final status)."""
        return self.after(move, status) in self.final

    def target(self, move: StrEnum) -> Status:
        """The one status a move leaves every row it applies to in."""
        targets = set(self.moves[move].values())
        if len(targets) != 1:
            raise ValueError(f"the move {move.value!r} leaves rows in {targets}, not one status")
        return targets.pop()
