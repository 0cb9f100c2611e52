"""The dependencies routes declare: the services of the process's core (``shared.bootstrap``),
a unit of work per request, and the API key with its scopes. Each is ``async def``: none does
I/O that would block the event loop, and none is worth a hop to FastAPI's thread pool."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.idempotency import AnswerOnce, KeyedAnswerOnce
from shared.bootstrap import Core
from shared.errors import NotFound
from shared.kit.changes import Mark
from shared.kit.settings import Settings
from shared.tenants.domain import Scope
from shared.tenants.idempotency import KEY_PATTERN
from shared.tenants.keys import require_scope
from shared.tenants.models import ApiKey
from shared.two_step.recovery import RecoveryCodes
from shared.two_step.service import TwoStep
from shared.unit_of_work import UnitOfWork
from shared.verifications.service import Verifications
from shared.verifications.views import View
from shared.verifications.waiting import MAX_WAIT_SECONDS, Waiting, Written
from shared.webhooks.service import Webhooks


def core_of(request: Request) -> Core:
    core: Core = request.app.state.core
    return core


async def _core(request: Request) -> Core:
    return core_of(request)


CoreDep = Annotated[Core, Depends(_core)]


async def _settings(core: CoreDep) -> Settings:
    return core.settings


async def _verifications(core: CoreDep) -> Verifications:
    return core.verifications


async def _two_step(core: CoreDep) -> TwoStep:
    return core.two_step


async def _recovery_codes(core: CoreDep) -> RecoveryCodes:
    return core.recovery_codes


async def _webhooks(core: CoreDep) -> Webhooks:
    return core.webhooks


WaitSeconds = Annotated[
    float,
    Query(
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="Hold the answer up to this many seconds until the result is decided "
        "(a verification sent or over, a check answered); then answer with what there is.",
    ),
]


@dataclass(frozen=True)
class WaitUpTo:
    """A request's ``?wait=S``: its reads answer once the result is decided, at most S s."""

    waiting: Waiting
    seconds: float

    async def verification(
        self, tenant_id: uuid.UUID, verification_id: uuid.UUID, written: Written | None = None
    ) -> View:
        return await self.waiting.verification(tenant_id, verification_id, self.seconds, written)

    async def check(
        self,
        tenant_id: uuid.UUID,
        verification_id: uuid.UUID,
        check_id: uuid.UUID,
        written: Written | None = None,
    ) -> View:
        return await self.waiting.check(tenant_id, verification_id, check_id, self.seconds, written)

    def mark(self) -> Mark | None:
        return self.waiting.mark()


async def _wait(core: CoreDep, wait: WaitSeconds = 0) -> WaitUpTo:
    return WaitUpTo(core.waiting, wait)


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Repeat a request with the same key (for 24 h) to get the first answer again, "
        "with no second effect. 1 to 255 printable ASCII characters, no spaces.",
        # Checked where the key is used (shared.tenants.idempotency), by this very pattern.
        json_schema_extra={"pattern": KEY_PATTERN},
    ),
]


async def _answer_once(request: Request, idempotency_key: IdempotencyKey = None) -> KeyedAnswerOnce:
    once: AnswerOnce = request.app.state.answer_once
    return once.for_key(idempotency_key)


SettingsDep = Annotated[Settings, Depends(_settings)]
VerificationsDep = Annotated[Verifications, Depends(_verifications)]
TwoStepDep = Annotated[TwoStep, Depends(_two_step)]
RecoveryCodesDep = Annotated[RecoveryCodes, Depends(_recovery_codes)]
WebhooksDep = Annotated[Webhooks, Depends(_webhooks)]
WaitDep = Annotated[WaitUpTo, Depends(_wait)]
AnswerOnceDep = Annotated[KeyedAnswerOnce, Depends(_answer_once)]


async def get_uow(core: CoreDep) -> AsyncIterator[UnitOfWork]:
    """The route's unit of work: committed when the route returns, before the answer is sent."""
    async with core.uow_factory() as uow:
        yield uow


async def get_reading_uow(core: CoreDep) -> AsyncIterator[UnitOfWork]:
    async with core.uow_factory.reading() as uow:
        yield uow


UowDep = Annotated[UnitOfWork, Depends(get_uow, scope="function")]
ReadingUowDep = Annotated[UnitOfWork, Depends(get_reading_uow, scope="function")]

_bearer = HTTPBearer(auto_error=False, description="An API key from `twostep keys create NAME`")


async def require_api_key(
    core: CoreDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> ApiKey:
    header = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    return await core.keys.authenticate(header)


ApiKeyDep = Annotated[ApiKey, Depends(require_api_key)]


def _scoped(scope: Scope) -> object:
    async def require(api_key: ApiKeyDep) -> ApiKey:
        return require_scope(api_key, scope)

    return Depends(require)


# A route takes the key it needs: a key without that scope is answered 403 insufficient_scope.
VerifyKey = Annotated[ApiKey, _scoped(Scope.VERIFY)]
UsersKey = Annotated[ApiKey, _scoped(Scope.USERS)]
UsersManageKey = Annotated[ApiKey, _scoped(Scope.USERS_MANAGE)]
AdminKey = Annotated[ApiKey, _scoped(Scope.ADMIN)]


# Ids are UUIDs, and the document says so; the route still takes any string, so that a malformed
# id is what it is to a caller, an id that does not exist (404), never a validation error.
ResourceId = Annotated[
    str,
    Path(
        description="A UUID, as the API gave it; any other string is not found (404)",
        json_schema_extra={"format": "uuid"},
    ),
]


def parse_id(raw: str, what: str) -> uuid.UUID:
    """Ids are UUIDs; anything else is simply an id that does not exist."""
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise NotFound(f"no {what} {raw[:64]!r}") from None
