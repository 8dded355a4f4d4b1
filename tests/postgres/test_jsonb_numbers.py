"""Numbers JSONB gives back in another Python type (issue 15, item 7): ``1e23`` and
``1e308`` come back from PostgreSQL as integers. The chain covers the canonical
form, so retries and store comparisons compare that — not Python values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from eventvault import NewEvent, open_store
from eventvault.copy import compare_stores

from ..copy.test_copy_cli import file_config, pg_config

EV = [sys.executable, "-m", "eventvault.cli"]
NUMBERS = {"big": 1e23, "huge": 1e308, "tiny": 1.5e-7, "neg": -0.0, "one": 1.0, "n": [1e23, 2]}


def test_a_retry_of_an_event_with_such_numbers_is_idempotent(
    tmp_path: Path, postgres_dsn: str
) -> None:
    with open_store(pg_config(tmp_path, "pg", postgres_dsn)) as store:
        event = NewEvent(type="t", data=dict(NUMBERS), metadata={"m": 1e300})
        first = store.append(event).events[0]
        stored = store.get(event.id)
        assert stored is not None
        assert isinstance(stored.data["big"], int)  # what JSONB gives back
        # A retry of the very same event, and of an equal one built again (an HTTP
        # client re-sending its body): both are the stored event, not a conflict.
        assert store.append(event).events[0].position == first.position
        again = NewEvent(
            type="t",
            data=dict(NUMBERS),
            metadata={"m": 1e300},
            id=event.id,
            occurred_at=event.occurred_at,
        )
        assert store.append(again).events[0].position == first.position
        assert store.head() == 1
        assert store.verify().ok


def test_copy_file_to_postgres_with_such_numbers_says_identical(
    tmp_path: Path, postgres_dsn: str
) -> None:
    src, dst = file_config(tmp_path, "src"), pg_config(tmp_path, "dst", postgres_dsn)
    with open_store(src) as store:
        store.append([NewEvent(type="t", data={**NUMBERS, "i": i}) for i in range(20)])
    proc = subprocess.run(
        [*EV, "copy", "--from", str(src), "--to", str(dst)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(
        [*EV, "--config", str(src), "verify", "--against", str(dst)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open_store(src) as a, open_store(dst) as b:
        assert compare_stores(a, b).ok
        assert compare_stores(b, a).ok
    # Run again: the copy resumes (nothing to do) and still compares equal.
    proc = subprocess.run(
        [*EV, "copy", "--from", str(src), "--to", str(dst)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
