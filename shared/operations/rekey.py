"""``twostep rekey``: re-encrypt every encrypted value under the first data key, and recompute
the keyed hashes under the current look-up key.

Run it after putting a new key first in ``TWOSTEP_DATA_KEYS``; once it is done, the old keys
can be dropped. Rows are rewritten a batch per transaction, so the live system keeps running:
a row written meanwhile is already under the new key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from sqlalchemy import Column, String, Table, select, type_coerce, update

from shared.kit.crypto import EncryptedString, Keyring
from shared.kit.db.base import Base
from shared.kit.lookups import destination_lookup
from shared.two_step.models import Factor
from shared.unit_of_work import UnitOfWork

_BATCH = 500

Progress = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class EncryptedColumn:
    table: Table
    column: Column[str]

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column.name}"


def encrypted_columns() -> Iterator[EncryptedColumn]:
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, EncryptedString):
                yield EncryptedColumn(table, column)


async def rekey(
    uow_factory: Callable[[], UnitOfWork], keyring: Keyring, progress: Progress
) -> dict[str, int]:
    """Returns how many values were rewritten per column (and ``factors.destination_lookup``)."""
    rewritten = {}
    for encrypted in encrypted_columns():
        rewritten[encrypted.name] = await _rotate_column(uow_factory, keyring, encrypted, progress)
    rewritten["factors.destination_lookup"] = await _rehash_destinations(
        uow_factory, keyring, progress
    )
    return rewritten


async def _rotate_column(
    uow_factory: Callable[[], UnitOfWork],
    keyring: Keyring,
    encrypted: EncryptedColumn,
    progress: Progress,
) -> int:
    table, column = encrypted.table, encrypted.column
    key = table.primary_key.columns[next(iter(table.primary_key.columns.keys()))]
    raw = type_coerce(column, String())  # the ciphertext itself, not decrypted
    done, last = 0, None
    while True:
        async with uow_factory() as uow:
            query = select(key, raw).where(column.is_not(None)).order_by(key).limit(_BATCH)
            if last is not None:
                query = query.where(key > last)
            rows = (await uow.session.execute(query)).all()
            for row_id, token in rows:
                await uow.session.execute(
                    update(table)
                    .where(key == row_id)
                    .values({column.name: type_coerce(keyring.rotate(token), String())})
                )
        done += len(rows)
        progress(encrypted.name, done)
        if len(rows) < _BATCH:
            return done
        last = rows[-1][0]


async def _rehash_destinations(
    uow_factory: Callable[[], UnitOfWork], keyring: Keyring, progress: Progress
) -> int:
    done, last = 0, None
    while True:
        async with uow_factory() as uow:
            query = (
                select(Factor.id, Factor.tenant_id, Factor.destination)
                .order_by(Factor.id)
                .limit(_BATCH)
            )
            if last is not None:
                query = query.where(Factor.id > last)
            rows = (await uow.session.execute(query)).all()
            for factor_id, tenant_id, destination in rows:
                await uow.session.execute(
                    update(Factor)
                    .where(Factor.id == factor_id)
                    .values(destination_lookup=destination_lookup(keyring, tenant_id, destination))
                )
        done += len(rows)
        progress("factors.destination_lookup", done)
        if len(rows) < _BATCH:
            return done
        last = rows[-1][0]
