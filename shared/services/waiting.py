"""Long-polling (``?wait=S``): answer as soon as a verification is sent (or over) or a check is
decided, or at the timeout with what the database says then.

A waiter registers with the process's one change subscription, reads the row, and sleeps on an
event until a notice for that row arrives; it holds no thread and no database connection while
it waits, only a small coroutine. Notices are hints: every wake-up re-reads the row.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from shared.changes import ChangeListener, TooManyWaiters
from shared.db.models import Verification, VerificationCheck
from shared.db.session import UnitOfWork
from shared.domain import VerificationStatus
from shared.services.verifications import Verifications

T = TypeVar("T")

MAX_WAIT_SECONDS = 30
_IN_FLIGHT = frozenset({VerificationStatus.QUEUED, VerificationStatus.SENDING})


def verification_settled(verification: Verification) -> bool:
    """Sent (pending, checkable) or over: what a waiter on a verification waits for."""
    return verification.status not in _IN_FLIGHT


def check_decided(check: VerificationCheck) -> bool:
    return check.status.is_final


@dataclass(frozen=True)
class Waiting:
    reading: Callable[[], UnitOfWork]
    verifications: Verifications
    listener: ChangeListener | None

    async def verification(self, verification_id: uuid.UUID, seconds: float) -> Verification:
        def read(uow: UnitOfWork) -> Awaitable[Verification]:
            return self.verifications.get(uow, verification_id)

        return await self._until(verification_id, read, verification_settled, seconds)

    async def check(
        self, verification_id: uuid.UUID, check_id: uuid.UUID, seconds: float
    ) -> VerificationCheck:
        def read(uow: UnitOfWork) -> Awaitable[VerificationCheck]:
            return self.verifications.get_check(uow, verification_id, check_id)

        return await self._until(check_id, read, check_decided, seconds)

    async def _read(self, read: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        async with self.reading() as uow:
            return await read(uow)

    async def _until(
        self,
        row_id: uuid.UUID,
        read: Callable[[UnitOfWork], Awaitable[T]],
        done: Callable[[T], bool],
        seconds: float,
    ) -> T:
        if seconds <= 0 or self.listener is None:
            return await self._read(read)
        deadline = asyncio.get_running_loop().time() + min(seconds, MAX_WAIT_SECONDS)
        try:
            async with self.listener.watch(row_id) as changed:
                while True:
                    changed.clear()  # before the read: a notice during it wakes the next wait
                    row = await self._read(read)
                    if done(row) or not await _woken(changed, deadline):
                        return row
        except TooManyWaiters:
            return await self._read(read)


async def _woken(changed: asyncio.Event, deadline: float) -> bool:
    """Wait for a notice until the deadline; False once the deadline has passed."""
    remaining = deadline - asyncio.get_running_loop().time()
    if remaining <= 0:
        return False
    try:
        async with asyncio.timeout(remaining):
            await changed.wait()
    except TimeoutError:
        return True  # one last read at the deadline, then the loop ends on the next call
    return True
