"""Long-polling (``?wait=S``): answer as soon as a verification is sent (or over) or a check is
decided, or at the timeout with what the database says then.

A waiter registers with the process's one change subscription, reads the row, and sleeps on an
event until a notice for that row arrives; it holds no thread and no database connection while
it waits, only a small coroutine. A notice usually carries the row as the API shows it: the
waiter answers with it, or (a step that does not settle the wait, such as a claim) waits on
with it; only a notice without it makes the waiter read the database again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shared.kit.changes import ChangeListener, Mark, MaybeMissed, TooManyWaiters, Waiter
from shared.unit_of_work import UnitOfWork
from shared.verifications.domain import CheckStatus, VerificationStatus
from shared.verifications.service import Verifications
from shared.verifications.views import View, check_view, verification_view

MAX_WAIT_SECONDS = 30
_IN_FLIGHT = frozenset({VerificationStatus.QUEUED.value, VerificationStatus.SENDING.value})


def verification_settled(view: View) -> bool:
    """Sent (pending, checkable) or over: what a waiter on a verification waits for."""
    return view["status"] not in _IN_FLIGHT


def check_decided(view: View) -> bool:
    return bool(view["status"] != CheckStatus.QUEUED.value)


@dataclass(frozen=True)
class Written:
    """A row as the request that waits on it has just written it, and where the listener stood
    before the write: a waiter starts from it instead of reading the row back."""

    view: View
    mark: Mark | None


@dataclass(frozen=True)
class Waiting:
    reading: Callable[[], UnitOfWork]
    verifications: Verifications
    listener: ChangeListener | None

    async def verification(
        self,
        tenant_id: uuid.UUID,
        verification_id: uuid.UUID,
        seconds: float,
        written: Written | None = None,
    ) -> View:
        async def read(uow: UnitOfWork) -> View:
            verification = await self.verifications.get(uow, tenant_id, verification_id)
            return verification_view(verification)

        return await self._until(verification_id, read, verification_settled, seconds, written)

    async def check(
        self,
        tenant_id: uuid.UUID,
        verification_id: uuid.UUID,
        check_id: uuid.UUID,
        seconds: float,
        written: Written | None = None,
    ) -> View:
        async def read(uow: UnitOfWork) -> View:
            check = await self.verifications.get_check(uow, tenant_id, verification_id, check_id)
            return check_view(check)

        return await self._until(check_id, read, check_decided, seconds, written)

    def mark(self) -> Mark | None:
        """Taken before a write the request will wait on (see ``Written``)."""
        return self.listener.mark() if self.listener is not None else None

    def _known(self, row_id: uuid.UUID, written: Written | None) -> View | None:
        """The row without reading it: as its last notice since the write left it, or as
        written. None if a notice may have been missed meanwhile."""
        if written is None or self.listener is None:
            return None
        try:
            return self.listener.heard_since(written.mark, row_id) or written.view
        except MaybeMissed:
            return None

    async def _read(self, read: Callable[[UnitOfWork], Awaitable[View]]) -> View:
        async with self.reading() as uow:
            return await read(uow)

    async def _until(
        self,
        row_id: uuid.UUID,
        read: Callable[[UnitOfWork], Awaitable[View]],
        done: Callable[[View], bool],
        seconds: float,
        written: Written | None = None,
    ) -> View:
        if seconds <= 0 or self.listener is None or self.listener.draining:
            return await self._read(read)
        deadline = asyncio.get_running_loop().time() + min(seconds, MAX_WAIT_SECONDS)
        try:
            async with self.listener.watch(row_id) as waiter:
                # A notice during the read wakes the first wait.
                view = self._known(row_id, written) or await self._read(read)
                while not done(view) and await _woken(waiter, deadline, self.listener):
                    # A notice carries the row as it is now: no read. One without it (notices
                    # may have been lost) or the deadline: read the database.
                    noticed = waiter.view
                    waiter.rearm()  # before any read: a notice during it wakes the next wait
                    view = noticed if noticed is not None else await self._read(read)
                return view
        except TooManyWaiters:
            return await self._read(read)


async def _woken(waiter: Waiter, deadline: float, listener: ChangeListener) -> bool:
    """Wait for a notice until the deadline; False once the deadline has passed, or once the
    process is stopping (the last read answers)."""
    remaining = deadline - asyncio.get_running_loop().time()
    if remaining <= 0 or listener.draining:
        return False
    try:
        async with asyncio.timeout(remaining):
            await waiter.event.wait()
    except TimeoutError:
        waiter.wake(None)  # one last read at the deadline, then the loop ends on the next call
    return True
