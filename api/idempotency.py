"""Answer a POST once per ``Idempotency-Key``; the route says what doing it once means.

This is the boundary of those routes: it opens their unit of work, which commits when ``do``
and the remembering of its answer both succeed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError

from shared.bootstrap import Core
from shared.tenants import idempotency
from shared.tenants.idempotency import KeyedRequest, KeyLocks, StoredAnswer
from shared.tenants.models import ApiKey
from shared.unit_of_work import UnitOfWork, UnitOfWorkFactory

RequestShape = tuple[str, str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Answered:
    answer: StoredAnswer
    replayed: bool

    def response(self, location: Callable[[dict[str, Any]], str]) -> JSONResponse:
        headers = {"Location": location(self.answer.body)}
        if self.replayed:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(self.answer.body, status_code=self.answer.status, headers=headers)


@dataclass(frozen=True)
class AnswerOnce:
    """Built once per API process, from its core."""

    uow_factory: UnitOfWorkFactory
    locks: KeyLocks
    ttl: timedelta

    @classmethod
    def of(cls, core: Core) -> AnswerOnce:
        return cls(core.uow_factory, core.idempotency_locks, core.settings.idempotency_ttl)

    async def __call__(
        self,
        api_key: ApiKey,
        key: str | None,
        request: RequestShape,
        do: Callable[[UnitOfWork], Awaitable[StoredAnswer]],
        *,
        one_statement: bool = False,
    ) -> Answered:
        """Run ``do`` in a unit of work, unless this key already has an answer: then replay it.
        ``one_statement``: ``do`` writes in one statement at most, so without a key to remember
        its answer with it may need no transaction around it (``for_one_statement``).

        Requests with one key take turns, so a repeat racing the first one replays its answer.
        If the turn-taking fails anyway (a lock that outlived its lease), the unique (API key,
        key) constraint lets one commit and the other replays.
        """
        if key is None:
            factory = self.uow_factory
            unit = (
                await factory.for_one_statement(api_key.tenant_id) if one_statement else factory()
            )
            async with unit as uow:
                return Answered(await do(uow), replayed=False)
        idempotency.validate_key(key)
        async with self.locks.hold(api_key.id, key):
            return await self._holding_the_key(api_key, key, request, do)

    def for_key(self, key: str | None) -> KeyedAnswerOnce:
        return KeyedAnswerOnce(self, key)

    async def _holding_the_key(
        self,
        api_key: ApiKey,
        key: str,
        request: RequestShape,
        do: Callable[[UnitOfWork], Awaitable[StoredAnswer]],
    ) -> Answered:
        keyed = KeyedRequest(api_key.tenant_id, api_key.id, key, idempotency.fingerprint(*request))
        clock = self.uow_factory.clock
        async with self.uow_factory() as uow:
            async with uow.reads() as read:
                stored = await idempotency.find_answer(read, keyed, clock.now())
            if stored is not None:
                return Answered(stored, replayed=True)
            answer = await do(uow)
            await idempotency.remember_answer(uow, keyed, answer, clock.now(), self.ttl)
            try:
                await uow.flush()
            except IntegrityError:
                await uow.rollback()
            else:
                return Answered(answer, replayed=False)
        async with self.uow_factory.reading() as uow:
            stored = await idempotency.find_answer(uow, keyed, clock.now())
        if stored is None:
            raise RuntimeError("an Idempotency-Key collided but its first answer is gone")
        return Answered(stored, replayed=True)


@dataclass(frozen=True)
class KeyedAnswerOnce:
    """``AnswerOnce`` for one request, with the ``Idempotency-Key`` it came with (if any)."""

    once: AnswerOnce
    key: str | None

    async def __call__(
        self,
        api_key: ApiKey,
        request: RequestShape,
        do: Callable[[UnitOfWork], Awaitable[StoredAnswer]],
        *,
        one_statement: bool = False,
    ) -> Answered:
        return await self.once(api_key, self.key, request, do, one_statement=one_statement)
