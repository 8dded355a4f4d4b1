"""Shared fixtures: a real PostgreSQL for the tests that need one.

The DSN comes from ``EVENTVAULT_TEST_POSTGRES_DSN`` (default: the local server at
127.0.0.1:5432). If nothing answers there, the session starts a throwaway cluster
from the installed PostgreSQL binaries; if that is impossible the tests that need
PostgreSQL *fail* with the reason — they are never skipped silently.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _answers(dsn: str) -> str | None:
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("select 1")
        return None
    except psycopg.Error as exc:
        return str(exc)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for base in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (base / name).exists():
            return str(base / name)
    return None


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[str]:
    """Start a temporary PostgreSQL cluster; yield its DSN; stop and remove it."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError("no PostgreSQL server answers and initdb/pg_ctl are not installed")
    root = Path(tempfile.mkdtemp(prefix="eventvault-pg-"))
    data, port = root / "data", _free_port()
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(root, "postgres")
    subprocess.run(
        [*prefix, initdb, "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *prefix,
            pg_ctl,
            "-D",
            str(data),
            "-l",
            str(root / "log"),
            "-w",
            "-o",
            f"-p {port} -k {root} -c listen_addresses=127.0.0.1",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "fast", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    dsn = os.environ.get("EVENTVAULT_TEST_POSTGRES_DSN") or DEFAULT_DSN
    problem = _answers(dsn)
    if problem is None:
        os.environ["EVENTVAULT_TEST_POSTGRES_DSN"] = dsn  # for code outside fixtures
        yield dsn
        return
    if os.environ.get("EVENTVAULT_TEST_POSTGRES_DSN"):
        pytest.fail(f"EVENTVAULT_TEST_POSTGRES_DSN={dsn} does not answer: {problem}")
    try:
        cluster = throwaway_cluster()
        started = cluster.__enter__()
    except Exception as exc:
        pytest.fail(f"no PostgreSQL at {dsn} ({problem}) and no throwaway cluster: {exc}")
    try:
        for _ in range(50):
            if _answers(started) is None:
                break
            time.sleep(0.1)
        os.environ["EVENTVAULT_TEST_POSTGRES_DSN"] = started
        yield started
    finally:
        cluster.__exit__(None, None, None)
