"""What every command of ``twostep`` shares: its settings, checked, and a unit of work."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from shared.errors import TwostepError
from shared.kit import crypto
from shared.kit.db.session import Database
from shared.kit.logging import configure_logging
from shared.kit.settings import Settings, get_settings
from shared.kit.startup import Misconfigured, Process, ensure_startable
from shared.unit_of_work import UnitOfWork, UnitOfWorkFactory

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
        crypto.install(settings.keyring())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    return settings


def run_in_unit_of_work(settings: Settings, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    """Run ``work`` in a unit of work of its own (committed if it succeeds)."""

    async def run() -> T:
        database = Database.connect(settings.database_url, pool_size=1)
        try:
            async with UnitOfWorkFactory(database)() as uow:
                return await work(uow)
        finally:
            await database.dispose()

    try:
        return asyncio.run(run())
    except TwostepError as exc:
        raise click.ClickException(exc.detail) from exc
