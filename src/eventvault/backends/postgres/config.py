"""``[store.postgres]``: the PostgreSQL backend's options (msgspec only: read whenever
any configuration loads, without psycopg)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import ClassVar

import msgspec

__all__ = ["PostgresConfig", "postgres_schema_problem"]


class PostgresConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    dsn: str | None = None  # required with backend = "postgres" (no silent default)
    schema: str = "eventvault"
    pool_min: int = 1
    pool_max: int = 10
    connect_timeout: str = "10s"
    statement_timeout: str = "30s"
    create_schema: bool = True

    INTEGERS: ClassVar[dict[str, tuple[int, int]]] = {
        "pool_min": (1, 10_000),
        "pool_max": (1, 10_000),
    }
    #: (statement_timeout is an int of milliseconds in PostgreSQL.)
    DURATIONS: ClassVar[dict[str, timedelta]] = {
        "connect_timeout": timedelta(days=1),
        "statement_timeout": timedelta(milliseconds=2**31 - 1),
    }

    def check(self) -> tuple[str, str] | None:
        """The first problem as (key, or "" for the table; reason), or None."""
        if not 1 <= self.pool_min <= self.pool_max:
            return "", "need 1 <= pool_min <= pool_max"
        problem = postgres_schema_problem(self.schema)
        return ("schema", problem) if problem else None


def postgres_schema_problem(name: str) -> str | None:
    """Why ``name`` cannot be a PostgreSQL schema of eventvault's, or None.

    Exactly the names that work everywhere the backend uses them: quoted (so the
    case is kept) in every statement, looked up as the same quoted name, and at most
    63 bytes — PostgreSQL silently truncates longer identifiers, so two configured
    names could meet in one schema. (The NOTIFY channel derived from the name is
    kept within 63 bytes by the backend itself.) ``pg_`` names are the system's.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return (
            f"{name!r} is not a plain name: use letters, digits and _ (ASCII), not "
            "starting with a digit, e.g. 'eventvault'"
        )
    if len(name) > 63:
        return f"{name!r} is {len(name)} characters; PostgreSQL names hold at most 63"
    if name.startswith("pg_"):
        return f"{name!r}: names starting with pg_ are reserved for PostgreSQL's own schemas"
    return None
