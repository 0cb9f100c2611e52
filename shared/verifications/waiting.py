"""Long-polling (``?wait=S``): answer as soon as a verification is sent (or over) or a check is
decided, or at the timeout with what the database says then.

A waiter registers with the process's one change subscription, reads the row, and sleeps on an
event until a notice for that row arrives; it holds no thread and no database connection while
it waits, only a small coroutine. A notice usually carries the row as the API shows it, and the
waiter answers with it; a notice without it (or one that does not settle the wait) makes the
waiter read the database again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shared.kit.changes import ChangeListener, TooManyWaiters, Waiter
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
class Waiting:
    reading: Callable[[], UnitOfWork]
    verifications: Verifications
    listener: ChangeListener | None

    async def verification(
        self, tenant_id: uuid.UUID, verification_id: uuid.UUID, seconds: float
    ) -> View:
        async def read(uow: UnitOfWork) -> View:
            verification = await self.verifications.get(uow, tenant_id, verification_id)
            return verification_view(verification)

        return await self._until(verification_id, read, verification_settled, seconds)

    async def check(
        self,
        tenant_id: uuid.UUID,
        verification_id: uuid.UUID,
        check_id: uuid.UUID,
        seconds: float,
    ) -> View:
        async def read(uow: UnitOfWork) -> View:
            check = await self.verifications.get_check(uow, tenant_id, verification_id, check_id)
            return check_view(check)

        return await self._until(check_id, read, check_decided, seconds)

    async def _read(self, read: Callable[[UnitOfWork], Awaitable[View]]) -> View:
        async with self.reading() as uow:
            return await read(uow)

    async def _until(
        self,
        row_id: uuid.UUID,
        read: Callable[[UnitOfWork], Awaitable[View]],
        done: Callable[[View], bool],
        seconds: float,
    ) -> View:
        if seconds <= 0 or self.listener is None:
            return await self._read(read)
        deadline = asyncio.get_running_loop().time() + min(seconds, MAX_WAIT_SECONDS)
        try:
            async with self.listener.watch(row_id) as waiter:
                while True:
                    waiter.rearm()  # before the read: a notice during it wakes the next wait
                    view = await self._read(read)
                    if done(view) or not await _woken(waiter, deadline):
                        return view
                    if waiter.view is not None and done(waiter.view):
                        return waiter.view
        except TooManyWaiters:
            return await self._read(read)


async def _woken(waiter: Waiter, deadline: float) -> bool:
    """Wait for a notice until the deadline; False once the deadline has passed."""
    remaining = deadline - asyncio.get_running_loop().time()
    if remaining <= 0:
        return False
    try:
        async with asyncio.timeout(remaining):
            await waiter.event.wait()
    except TimeoutError:
        return True  # one last read at the deadline, then the loop ends on the next call
    return True
