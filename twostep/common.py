"""What every command of ``twostep`` shares: its settings, checked, and a unit of work."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from shared.bootstrap import Core, bootstrap
from shared.errors import TwostepError
from shared.kit import crypto
from shared.kit.crypto import keyring_of
from shared.kit.logging import configure_logging
from shared.kit.settings import MissingSecrets, Settings, get_settings
from shared.kit.startup import Misconfigured, Process, ensure_startable
from shared.unit_of_work import UnitOfWork

T = TypeVar("T")


def load_settings(process: str, *, checked: Process | None = None) -> Settings:
    """The settings, logging configured; with ``checked``, refused unless that process may start
    with them (shared/kit/startup.py)."""
    try:
        settings = get_settings()
        if checked is not None:
            ensure_startable(settings, checked)
    except (ValueError, Misconfigured) as exc:  # pydantic's ValidationError is a ValueError
        raise click.ClickException(f"invalid configuration:\n{exc}") from exc
    configure_logging(settings.log_level, settings.log_format, process=process)
    return settings


def with_keyring(settings: Settings) -> Settings:
    """For commands that read or write rows: their personal data is under these keys."""
    try:
        crypto.install(keyring_of(settings))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    return settings


def run_with_core(settings: Settings, work: Callable[[Core], Awaitable[T]]) -> T:
    """Run ``work`` on a core of this command's own (``shared.bootstrap``), closed after."""

    async def run() -> T:
        core = bootstrap(settings.model_copy(update={"database_pool_size": 1}), main="twostep.cli")
        try:
            return await work(core)
        finally:
            await core.close()

    try:
        return asyncio.run(run())
    except TwostepError as exc:
        raise click.ClickException(exc.detail) from exc
    except MissingSecrets as exc:
        raise click.ClickException(str(exc)) from exc


def run_in_unit_of_work(settings: Settings, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    """Run ``work`` in a unit of work of its own (committed if it succeeds)."""

    async def in_unit_of_work(core: Core) -> T:
        async with core.uow_factory() as uow:
            return await work(uow)

    return run_with_core(settings, in_unit_of_work)
