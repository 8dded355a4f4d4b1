"""The README's PostgreSQL roles: an application role with exactly its GRANTs, and
(for retention) a role that is a member of the schema owner's role."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import psycopg
from psycopg import sql

from eventvault.backends.postgres.store import PostgresEventStore

README_GRANTS = (
    "GRANT USAGE ON SCHEMA {s} TO {r}",
    "GRANT SELECT, INSERT ON {s}.events TO {r}",
    "GRANT SELECT, UPDATE ON {s}.head TO {r}",
    "GRANT SELECT ON {s}.schema_version TO {r}",
    "GRANT SELECT ON {s}.stream_tails TO {r}",
    "GRANT SELECT ON {s}.runs TO {r}",
    "GRANT SELECT, INSERT ON {s}.tree TO {r}",
    "GRANT SELECT, INSERT ON {s}.checkpoints TO {r}",
)
#: What the README granted before issue 16 (EXECUTE alone); still not enough to
#: remove anything a genuine receipt did not announce.
OLD_RETENTION_GRANT = "GRANT EXECUTE ON FUNCTION {s}.retention_delete TO {r}"
#: Retention is the schema owner's: the README's retention role is a member of it.
RETENTION_GRANT = "GRANT {o} TO {r}"


@contextlib.contextmanager
def app_role(
    dsn: str, schema: str, *, retention: bool, extra: tuple[str, ...] = ()
) -> Iterator[str]:
    """Migrate ``schema`` as the owner, then yield the DSN of a fresh role holding the
    README's grants (and membership in the owner's role if ``retention``), plus any
    ``extra`` grants; the role is dropped afterwards."""
    role = f"app_{uuid.uuid4().hex[:8]}"
    PostgresEventStore(dsn, schema=schema).close()  # the owner migrates
    grants = README_GRANTS + ((RETENTION_GRANT,) if retention else ()) + extra
    with psycopg.connect(dsn, autocommit=True) as conn:
        owner = conn.execute("SELECT current_user").fetchone()
        assert owner is not None
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        for grant in grants:
            conn.execute(
                sql.SQL(grant).format(
                    s=sql.Identifier(schema), r=sql.Identifier(role), o=sql.Identifier(owner[0])
                )
            )
    try:
        yield psycopg.conninfo.make_conninfo(dsn, user=role)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
