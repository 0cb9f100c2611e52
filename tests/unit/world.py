"""A whole twostep core (``shared.bootstrap``) over fakes: what the ``world`` fixture of
``conftest.py`` gives a unit test. Its services are the core's, built as every process builds
them; its fakes are the ones behind the core's ports, for scripting them
(``world.verify.fail_next``) and asserting on them (``world.jobs.published``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shared.bootstrap import Core
from shared.kit.settings import Settings
from shared.limits.ports import Guards
from shared.operations.sweeper import Sweeper
from shared.tenants.models import ApiKey
from shared.two_step.recovery import RecoveryCodes
from shared.two_step.service import TwoStep
from shared.unit_of_work import UnitOfWorkFactory
from shared.verifications.code_jobs import CodeJobs
from shared.verifications.service import Verifications
from shared.webhooks.sender import WebhookSender
from shared.webhooks.service import Webhooks
from tests.fakes import (
    FakeActionLimit,
    FakeChangeFeed,
    FakeClock,
    FakeCodeStash,
    FakeGate,
    FakeJobQueue,
    FakeLineTypes,
    FakeLockout,
    FakePoster,
    FakeSendLimits,
    FakeVerifyClient,
)


@dataclass
class World:
    """One wired twostep over fakes: the core's services, and the fakes that stand behind its
    ports. ``key`` is an API key of the default tenant, made in this world's database."""

    core: Core
    clock: FakeClock
    verify: FakeVerifyClient
    jobs: FakeJobQueue
    changes: FakeChangeFeed
    stash: FakeCodeStash
    gate: FakeGate
    guards: Guards
    line_types: FakeLineTypes
    poster: FakePoster
    key: ApiKey

    @property
    def settings(self) -> Settings:
        return self.core.settings

    @property
    def uow_factory(self) -> UnitOfWorkFactory:
        return self.core.uow_factory

    @property
    def verifications(self) -> Verifications:
        return self.core.verifications

    @property
    def two_step(self) -> TwoStep:
        return self.core.two_step

    @property
    def recovery_codes(self) -> RecoveryCodes:
        return self.core.recovery_codes

    @property
    def code_jobs(self) -> CodeJobs:
        return self.core.code_jobs

    @property
    def webhooks(self) -> Webhooks:
        return self.core.webhooks

    @property
    def webhook_sender(self) -> WebhookSender:
        return self.core.webhook_sender

    @property
    def sweeper(self) -> Sweeper:
        return self.core.sweeper

    @property
    def lockout(self) -> FakeLockout:
        lockout = self.guards.lockout
        assert isinstance(lockout, FakeLockout)
        return lockout

    @property
    def sends(self) -> FakeSendLimits:
        sends = self.guards.sends
        assert isinstance(sends, FakeSendLimits)
        return sends

    @property
    def recovery_code_sets(self) -> FakeActionLimit:
        sets = self.guards.recovery_code_sets
        assert isinstance(sets, FakeActionLimit)
        return sets


# ``await make_world(line_type_check=True)``: a world whose settings differ by those values.
MakeWorld = Callable[..., Awaitable[World]]
