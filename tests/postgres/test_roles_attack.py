"""Issue 16.2, replayed in plain SQL as the README's least-privilege role: the
database itself refuses receipt rows and deletions from the application role, so
it cannot remove events and leave a chain that bridges them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from eventvault import NewEvent, NotSupportedError
from eventvault.backends.postgres.store import PostgresEventStore, drop_schema
from eventvault.config import RetentionConfig
from eventvault.retention import RECEIPT_TYPE, resolve_policy

from .roles import OLD_RETENTION_GRANT, app_role


@pytest.fixture
def schema(postgres_dsn: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    drop_schema(postgres_dsn, name)


def forge_receipt(conn: psycopg.Connection[tuple[object, ...]], s: sql.Identifier) -> int:
    """What the attacker ran: a receipt for positions 5–12 after the head, head moved."""
    with conn.transaction():
        row = conn.execute(
            sql.SQL("SELECT position, hash FROM {}.head FOR UPDATE").format(s)
        ).fetchone()
        assert row is not None
        position = int(row[0]) + 1
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.events (position, id, stream, stream_revision, type, "
                "occurred_at, recorded_at, data, metadata, hash) VALUES "
                "(%s, %s, 'eventvault.retention', 0, %s, now(), now(), %s, '{{}}', %s)"
            ).format(s),
            (position, uuid.uuid4(), RECEIPT_TYPE, json.dumps({"runs": [[5, 12]]}), "f" * 64),
        )
        conn.execute(
            sql.SQL("UPDATE {}.head SET position = %s, hash = %s").format(s),
            (position, "f" * 64),
        )
    return position


def test_the_app_role_cannot_write_a_receipt_or_delete(postgres_dsn: str, schema: str) -> None:
    s = sql.Identifier(schema)
    with PostgresEventStore(postgres_dsn, schema=schema) as owner:
        owner.append([NewEvent(type="audit.step", data={"k": k}) for k in range(20)])
    # Even with the EXECUTE grant the README used to show.
    with (
        app_role(postgres_dsn, schema, retention=False, extra=(OLD_RETENTION_GRANT,)) as app,
        psycopg.connect(app, autocommit=True) as conn,
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="schema owner"):
            forge_receipt(conn, s)
        # Nor any other reserved type, by INSERT or COPY.
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege),
            conn.cursor().copy(
                sql.SQL(
                    "COPY {}.events (position, id, stream, stream_revision, type, occurred_at, "
                    "recorded_at, data, metadata, hash) FROM STDIN"
                ).format(s)
            ) as copy,
        ):
            copy.write_row(
                (
                    99,
                    uuid.uuid4(),
                    "x",
                    0,
                    "eventvault.anything",
                    "2026-01-01T00:00:00Z",
                    "2026-01-01T00:00:00Z",
                    "{}",
                    "{}",
                    "0" * 64,
                )
            )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql.SQL("SELECT {}.retention_delete(21, '{{5}}', '{{12}}', "
                                 "'{{5}}', '{{12}}')").format(s))  # fmt: skip
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql.SQL("DELETE FROM {}.events WHERE position BETWEEN 5 AND 12").format(s))
    with PostgresEventStore(postgres_dsn, schema=schema) as owner:
        assert owner.stats().events == 20
        assert owner.verify().ok


def test_the_app_role_is_told_retention_is_the_owners(postgres_dsn: str, schema: str) -> None:
    with (
        app_role(postgres_dsn, schema, retention=False, extra=(OLD_RETENTION_GRANT,)) as dsn,
        PostgresEventStore(dsn, schema=schema, create_schema=False) as app,
    ):
        app.append([NewEvent(type="t.x") for _ in range(5)])
        with pytest.raises(NotSupportedError, match="schema owner"):
            app.apply_retention(policy=resolve_policy(RetentionConfig(max_count=2)))
        assert app.stats().events == 5


def test_a_member_of_the_owner_role_applies_retention(postgres_dsn: str, schema: str) -> None:
    with (
        app_role(postgres_dsn, schema, retention=True) as dsn,
        PostgresEventStore(dsn, schema=schema, create_schema=False) as app,
    ):
        app.append([NewEvent(type="t.x") for _ in range(5)])
        report = app.apply_retention(policy=resolve_policy(RetentionConfig(max_count=2)))
        assert report.removed == 3
        assert app.verify().ok


def test_a_role_granted_delete_by_mistake_still_cannot_delete(
    postgres_dsn: str, schema: str
) -> None:
    """Retention's switch is the owner's: setting it by hand, with DELETE granted,
    removes nothing."""
    s = sql.Identifier(schema)
    with PostgresEventStore(postgres_dsn, schema=schema) as owner:
        owner.append([NewEvent(type="audit.step") for _ in range(5)])
    grant = "GRANT DELETE ON {s}.events TO {r}"
    with (
        app_role(postgres_dsn, schema, retention=False, extra=(grant,)) as app,
        psycopg.connect(app, autocommit=True) as conn,
    ):
        conn.execute("SET eventvault.retention = 'on'")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
            conn.execute(sql.SQL("DELETE FROM {}.events").format(s))
    with PostgresEventStore(postgres_dsn, schema=schema) as owner:
        assert owner.stats().events == 5


def test_retention_still_works_when_another_role_ran_the_upgrade(postgres_dsn: str) -> None:
    """The switch is tied to retention_delete's owner, not to whoever migrated last:
    a schema its own role created, brought to v3 again by the superuser."""
    role = f"own_{uuid.uuid4().hex[:8]}"
    schema = f"t_{uuid.uuid4().hex[:12]}"
    r = sql.Identifier(role)
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(r))
        conn.execute(sql.SQL("GRANT CREATE ON DATABASE postgres TO {}").format(r))
    own = psycopg.conninfo.make_conninfo(postgres_dsn, user=role, dbname="postgres")
    try:
        with PostgresEventStore(own, schema=schema) as store:
            store.append([NewEvent(type="t.x") for _ in range(5)])
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DELETE FROM {}.schema_version WHERE version = 3").format(
                    sql.Identifier(schema)
                )
            )
        PostgresEventStore(postgres_dsn, schema=schema).close()  # the superuser upgrades
        with PostgresEventStore(own, schema=schema) as store:
            report = store.apply_retention(policy=resolve_policy(RetentionConfig(max_count=2)))
            assert report.removed == 3
            assert store.verify().ok
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(r))
            conn.execute(sql.SQL("DROP ROLE {}").format(r))


#: What a careless GRANT could add on the tree's tables: the triggers still refuse.
TREE_GRANTS_BY_MISTAKE = (
    "GRANT UPDATE, DELETE, TRUNCATE ON {s}.tree TO {r}",
    "GRANT UPDATE, DELETE, TRUNCATE ON {s}.checkpoints TO {r}",
)


def _attack_the_tree(conn: psycopg.Connection[tuple[object, ...]], s: sql.Identifier) -> None:
    """Every way a role could unwrite the Merkle tree or a checkpoint: each refused."""
    conn.execute("SET eventvault.retention = 'on'")  # (retention's switch: no help)
    for statement in (
        "DELETE FROM {}.tree",
        "UPDATE {}.tree SET hashes = hashes || hashes",
        "TRUNCATE {}.tree",
        "DELETE FROM {}.checkpoints",
        "UPDATE {}.checkpoints SET note = 'forged'",
        "TRUNCATE {}.checkpoints",
        # The head row, which appends must update: its tree can only grow.
        "UPDATE {}.head SET tree_size = tree_size - 1",
        "UPDATE {}.head SET tree_size = NULL",
        "UPDATE {}.head SET tree_base = tree_base + 1",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"append-only|never"):
            conn.execute(sql.SQL(statement).format(s))


@pytest.mark.parametrize("retention", [False, True], ids=["app", "retention"])
def test_no_role_can_unwrite_the_tree(postgres_dsn: str, schema: str, retention: bool) -> None:
    """The application role (README grants: INSERT on tree and checkpoints, never
    UPDATE/DELETE) and the retention role (a member of the owner's), even with those
    grants given by mistake, cannot change or remove tree rows or checkpoints, nor
    shrink the tree in the head row; retention removes events and leaves every tree row."""
    from eventvault.tlog import NoteSigner

    s = sql.Identifier(schema)
    with PostgresEventStore(postgres_dsn, schema=schema) as owner:
        owner.append([NewEvent(type="audit.step", data={"k": k}) for k in range(6)])
        owner.log.checkpoint(NoteSigner.generate("eventvault.test/roles"), save=True)
    count = sql.SQL(
        "SELECT (SELECT count(*) FROM {s}.tree), (SELECT count(*) FROM {s}.checkpoints)"
    )
    # Without the mistaken grants: the privilege system refuses first.
    with (
        app_role(postgres_dsn, schema, retention=retention) as dsn,
        psycopg.connect(dsn, autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute(sql.SQL("DELETE FROM {}.tree").format(s))
    with (
        app_role(postgres_dsn, schema, retention=retention, extra=TREE_GRANTS_BY_MISTAKE) as dsn,
        psycopg.connect(dsn, autocommit=True) as conn,
    ):
        before = conn.execute(count.format(s=s)).fetchone()
        _attack_the_tree(conn, s)
        assert conn.execute(count.format(s=s)).fetchone() == before
        with PostgresEventStore(dsn, schema=schema, create_schema=False) as app:
            app.append([NewEvent(type="audit.step") for _ in range(3)])  # INSERT: allowed
            if retention:
                report = app.apply_retention(policy=resolve_policy(RetentionConfig(max_count=2)))
                assert report.removed > 0
            assert app.verify().ok
            assert app.log.state().size == app.head()
        after = conn.execute(count.format(s=s)).fetchone()
        assert after is not None
        assert before is not None
        assert after[0] > before[0]  # rows only ever added
        assert after[1] == before[1]
