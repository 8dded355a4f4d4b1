"""PostgreSQL specifics: the database enforces append-only, concurrency under load,
a server restart mid-load, least-privilege roles, schema management."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from eventvault import NewEvent, Query, StoreUnavailableError
from eventvault.backends.postgres.store import PostgresEventStore, drop_schema
from eventvault.config import RetentionConfig
from eventvault.errors import StoreNotFoundError
from eventvault.retention import resolve_policy
from tests.conftest import throwaway_cluster

from .roles import app_role


@pytest.fixture
def schema(postgres_dsn: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    drop_schema(postgres_dsn, name)


@pytest.fixture
def store(postgres_dsn: str, schema: str) -> Iterator[PostgresEventStore]:
    with PostgresEventStore(postgres_dsn, schema=schema, pool_max=12) as s:
        yield s


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {}.events SET type = 'forged'",
        "DELETE FROM {}.events",
        "TRUNCATE {}.events",
    ],
)
def test_database_refuses_to_change_events(
    store: PostgresEventStore, postgres_dsn: str, schema: str, statement: str
) -> None:
    store.append([NewEvent(type="t.x") for _ in range(3)])
    with (
        psycopg.connect(postgres_dsn, autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"),
    ):
        conn.execute(sql.SQL(statement).format(sql.Identifier(schema)))
    assert store.stats().events == 3
    assert store.verify().ok


def test_application_role_with_the_readme_grants(postgres_dsn: str, schema: str) -> None:
    """The GRANTs the README shows are enough to run, and stop UPDATE at privileges."""
    s = sql.Identifier(schema)
    with app_role(postgres_dsn, schema, retention=True) as app_dsn:
        with PostgresEventStore(app_dsn, schema=schema, create_schema=False) as app:
            app.append([NewEvent(type="t.x") for _ in range(5)])
            assert app.verify().ok
            policy = resolve_policy(RetentionConfig(max_count=2))
            report = app.apply_retention(policy=policy)
            assert report.removed == 3
            assert app.verify().ok
        with psycopg.connect(app_dsn, autocommit=True) as conn:
            conn.execute("SET eventvault.retention = 'on'")  # the trigger's switch is not enough
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL("DELETE FROM {}.events").format(s))
            conn.execute("RESET eventvault.retention")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL("UPDATE {}.events SET type = 'x'").format(s))
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL("DELETE FROM {}.events").format(s))


def test_migrations_are_idempotent_and_concurrent(postgres_dsn: str, schema: str) -> None:
    opened: list[PostgresEventStore] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            opened.append(PostgresEventStore(postgres_dsn, schema=schema))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len({s.store_id for s in opened}) == 1
    for s in opened:
        s.close()


def test_missing_schema_without_create_says_what_to_do(postgres_dsn: str, schema: str) -> None:
    with pytest.raises(StoreNotFoundError, match="eventvault init"):
        PostgresEventStore(postgres_dsn, schema=schema, create_schema=False)


def test_unreachable_server_is_store_unavailable() -> None:
    dsn = "postgresql://postgres:secret@127.0.0.1:1/postgres"
    with pytest.raises(StoreUnavailableError, match="connecting to PostgreSQL") as info:
        PostgresEventStore(dsn, schema="x", connect_timeout=1)
    assert "secret" not in str(info.value)


def test_missing_extra_names_the_pip_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from eventvault import open_store\n"
        "try:\n"
        "    open_store({'store': {'backend': 'postgres'}})\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "MissingExtraError" in out
    assert "pip install 'eventvault[postgres]'" in out


@pytest.mark.system
def test_writers_in_threads_and_a_process_with_a_follower(
    store: PostgresEventStore, postgres_dsn: str, schema: str
) -> None:
    """8 writer threads + a writer process append 100k events; a follower tailing by
    position sees every one exactly once, in order."""
    per_thread, per_process = 11_000, 12_000
    total = 8 * per_thread + per_process
    seen: list[int] = []
    stop = threading.Event()

    def follow() -> None:
        with PostgresEventStore(postgres_dsn, schema=schema) as reader:
            for ev in reader.subscribe(poll_interval=0.2, stop=stop):
                seen.append(ev.position)
                if len(seen) >= total:
                    stop.set()

    def write(n: int, seed: int) -> None:
        sizes = [1, 1, 1, 3, 10, 50]
        done, k = 0, seed
        while done < n:
            size = min(sizes[k % len(sizes)], n - done)
            store.append([NewEvent(type="load.x", stream=f"w{seed}") for _ in range(size)])
            done += size
            k += 1

    other = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys\nfrom eventvault import NewEvent\n"
                "from eventvault.backends.postgres.store import PostgresEventStore\n"
                f"s = PostgresEventStore({postgres_dsn!r}, schema={schema!r})\n"
                f"for i in range({per_process // 100}):\n"
                "    s.append([NewEvent(type='load.p', stream='proc') for _ in range(100)])\n"
                "s.close()\n"
            ),
        ]
    )
    follower = threading.Thread(target=follow)
    follower.start()
    writers = [threading.Thread(target=write, args=(per_thread, i)) for i in range(8)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    assert other.wait(timeout=300) == 0
    follower.join(timeout=120)
    stop.set()
    assert seen == list(range(1, total + 1))
    assert store.head() == total
    assert store.verify().ok


@pytest.mark.system
def test_server_restart_mid_load_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    """On a throwaway cluster: restart the server while 4 threads append; every append
    either commits or raises StoreUnavailableError; retries with the same ids are safe."""
    with throwaway_cluster() as dsn:
        store = PostgresEventStore(dsn, schema="restart", connect_timeout=5, pool_max=6)
        acked: list[str] = []
        failures = 0
        lock = threading.Lock()
        stop = threading.Event()

        def write(seed: int) -> None:
            nonlocal failures
            while not stop.is_set():
                batch = [NewEvent(type="r.x", stream=f"s{seed}") for _ in range(5)]
                for _attempt in range(60):
                    try:
                        store.append(batch)
                        with lock:
                            acked.extend(str(e.id) for e in batch)
                        break
                    except StoreUnavailableError:
                        with lock:
                            failures += 1
                        time.sleep(0.1)  # then retry the *same* events

        threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        _restart(dsn)
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert failures > 0, "the restart should have interrupted some appends"
        events = list(store.iter(Query(limit=5000)))
        ids = [str(e.id) for e in events]
        assert len(ids) == len(set(ids)), "duplicates after retries"
        assert not set(acked) - set(ids), "an acknowledged event was lost"
        assert [e.position for e in events] == list(range(1, len(events) + 1))
        assert store.verify().ok
        store.close()


def _restart(dsn: str) -> None:
    """Restart the throwaway cluster serving ``dsn`` (fast shutdown: kills sessions)."""
    import os

    from tests.conftest import _pg_bin

    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SHOW data_directory").fetchone()
        assert row is not None
        data = str(row[0])
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run(
        [
            *prefix,
            str(_pg_bin("pg_ctl")),
            "-D",
            data,
            "-m",
            "fast",
            "-w",
            "restart",
            "-l",
            str(Path(data).parent / "log"),
        ],
        check=True,
        capture_output=True,
    )
