"""The ``postgres`` backend (``pip install 'eventvault[postgres]'``; see :mod:`.store`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...config import Config
from ...timeutil import parse_duration

if TYPE_CHECKING:
    from .store import PostgresEventStore

__all__ = ["from_config"]


def from_config(config: Config) -> PostgresEventStore:
    from .store import PostgresEventStore

    pg = config.store.postgres
    return PostgresEventStore(
        pg.dsn,
        schema=pg.schema,
        pool_min=pg.pool_min,
        pool_max=pg.pool_max,
        connect_timeout=parse_duration(pg.connect_timeout).total_seconds(),
        statement_timeout=parse_duration(pg.statement_timeout).total_seconds(),
        create_schema=pg.create_schema,
        max_event_bytes=config.store.max_event_bytes,
    )
