"""The ``postgres`` backend (``pip install 'eventvault[postgres]'``; see :mod:`.store`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...config import Config
from ...timeutil import parse_duration
from .config import PostgresConfig

if TYPE_CHECKING:
    from .store import PostgresEventStore

__all__ = ["from_config"]


def from_config(config: Config, *, create: bool = True) -> PostgresEventStore:
    from ...errors import ConfigError
    from .store import PostgresEventStore

    pg = config.store.options(PostgresConfig)
    if pg.dsn is None:  # no silent default server: say where to connect
        raise ConfigError(
            f"{config.source}: store.postgres.dsn is not set: give it in the config file "
            "([store.postgres] dsn = ...) or as EVENTVAULT_POSTGRES_DSN"
        )
    return PostgresEventStore(
        pg.dsn,
        schema=pg.schema,
        pool_min=pg.pool_min,
        pool_max=pg.pool_max,
        connect_timeout=parse_duration(pg.connect_timeout).total_seconds(),
        statement_timeout=parse_duration(pg.statement_timeout).total_seconds(),
        create_schema=pg.create_schema and create,
        max_event_bytes=config.store.max_event_bytes,
    )
