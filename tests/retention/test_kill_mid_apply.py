"""SIGKILL a process in the middle of applying retention (file and PostgreSQL).

Afterwards the store opens, verifies, has lost nothing outside the plan, and a
second application finishes exactly what the plan said.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from eventvault import NewEvent, Query, open_store
from eventvault.retention import RECEIPT_TYPE

pytestmark = pytest.mark.system  # see README, "Tests"

ROOT = Path(__file__).resolve().parents[2]

RETENTION = """
[retention]
max_count = 150
[[retention.rules]]
types = ["audit.*"]
keep = "forever"
[[retention.rules]]
types = ["debug.*"]
max_age = "1h"
"""


def config_for(backend: str, tmp_path: Path, dsn: str) -> Path:
    if backend == "file":
        store = f'[store]\nbackend = "file"\n[store.file]\npath = "{tmp_path / "data"}"\n'
        store += "segment_max_bytes = 4096\n"
    else:
        schema = f"t_{uuid.uuid4().hex[:12]}"
        store = f'[store]\nbackend = "postgres"\n[store.postgres]\ndsn = "{dsn}"\n'
        store += f'schema = "{schema}"\n'
    path = tmp_path / "eventvault.toml"
    path.write_text(store + RETENTION)
    return path


@pytest.mark.parametrize("backend", ["file", "postgres"])
def test_sigkill_during_apply(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    dsn = str(request.getfixturevalue("postgres_dsn")) if backend == "postgres" else ""
    config = config_for(backend, tmp_path, dsn)
    types = ["debug.trace", "audit.login", "task.done", "debug.span", "task.started"]
    with open_store(config) as store:
        for i in range(0, 600, 10):
            store.append(
                [
                    NewEvent(type=types[(i + k) % 5], stream=f"s{(i + k) % 7}", data={"i": i + k})
                    for k in range(10)
                ]
            )
        before = list(store.iter(Query(limit=1000)))
        now = before[-1].recorded_at + timedelta(hours=2)
        plan = store.plan_retention(now=now)
        assert plan.count > 300
        removes = plan.removes(store.retention_policy)  # type: ignore[arg-type]
        gone = {e.position for e in before if removes(e)}
        assert len(gone) == plan.count
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.retention.worker", str(config), now.isoformat()],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert child.stdout is not None
        for steps, line in enumerate(child.stdout, 1):
            assert line.startswith("step"), line
            if steps == 3:
                os.kill(child.pid, signal.SIGKILL)
                break
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    try:
        with open_store(config) as store:
            result = store.verify()
            assert result.ok, result
            middle = {e.position for e in store.iter(Query(limit=1000)) if e.type != RECEIPT_TYPE}
            lost = {e.position for e in before} - middle
            assert lost <= gone, "something outside the plan is gone"
            assert lost, "the kill should land after the first step"
            assert gone - lost, "the kill should land before the last step"
            store.apply_retention(plan, policy=store.retention_policy)
            after = [e for e in store.iter(Query(limit=1000)) if e.type != RECEIPT_TYPE]
            assert after == [e for e in before if e.position not in gone]
            assert store.verify().ok
    finally:
        if backend == "postgres":
            from eventvault.backends.postgres.store import drop_schema

            schema = config.read_text().split('schema = "')[1].split('"')[0]
            drop_schema(dsn, schema)
