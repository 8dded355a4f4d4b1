"""Receipts say what was removed, even when applies are killed again and again
(issue 15, item 9). Each apply first finishes the runs earlier receipts claimed and
did not finish removing — under those receipts — and only then claims new runs,
so no event is ever claimed by two receipts, and the oldest claimed runs cannot be
starved by newer ones while events keep becoming eligible."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from eventvault import NewEvent, Query, open_store
from eventvault.retention import RECEIPT_TYPE

from .test_kill_mid_apply import ROOT, config_for

pytestmark = pytest.mark.system  # see README, "Tests"

TYPES = ["debug.trace", "audit.login", "task.done", "debug.span", "task.started"]


def apply_and_kill(config: Path, now: str, after_steps: int) -> bool:
    """Run an apply in a child process; SIGKILL it after ``after_steps`` progress steps.
    Returns whether it was killed (False: it finished first)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.retention.worker", str(config), now],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    killed = False
    try:
        assert child.stdout is not None
        steps = 0
        for line in child.stdout:
            if line.startswith("step"):
                steps += 1
                if steps >= after_steps:
                    os.kill(child.pid, signal.SIGKILL)
                    killed = True
                    break
    finally:
        child.wait(timeout=60)
    return killed


def claimed_positions(receipts: list) -> list[set[int]]:  # type: ignore[type-arg]
    """Per receipt: the positions its runs claim (every position first..last)."""
    out = []
    for rec in receipts:
        claimed: set[int] = set()
        for run in rec.data["runs"]:
            claimed.update(range(run[0], run[1] + 1))
        out.append(claimed)
    return out


@pytest.mark.parametrize("backend", ["file", "postgres"])
def test_repeatedly_killed_applies_claim_each_event_once_and_finish_the_oldest(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    dsn = str(request.getfixturevalue("postgres_dsn")) if backend == "postgres" else ""
    config = config_for(backend, tmp_path, dsn)
    try:
        with open_store(config) as store:
            for i in range(0, 600, 10):
                store.append(
                    [
                        NewEvent(type=TYPES[(i + k) % 5], stream=f"s{(i + k) % 7}", data={"i": i})
                        for k in range(10)
                    ]
                )
            now = (
                store.read(Query(reverse=True, limit=1)).events[0].recorded_at + timedelta(hours=2)
            ).isoformat()
        kills = 0
        still_claimed: list[int] = []
        receipts_seen: list[int] = []
        for round_ in range(5):
            kills += apply_and_kill(config, now, after_steps=1)
            with open_store(config) as store:
                assert store.verify().ok
                receipts = list(store.iter(Query(types=[RECEIPT_TYPE], limit=1000)))
                claims = claimed_positions(receipts)
                seen: set[int] = set()
                for k, claimed in enumerate(claims):  # no position claimed twice
                    again = seen & claimed
                    assert not again, f"receipt {k + 1} re-claims {len(again)} positions"
                    seen |= claimed
                stored = {e.position for e in store.iter(Query(limit=1000))}
                still_claimed.append(len(seen & stored))
                receipts_seen.append(len(receipts))
                # New events keep pushing older ones out of max_count = 150: new runs
                # at the top, which a newest-first removal would always start with.
                store.append([NewEvent(type="task.done", data={"r": round_}) for _ in range(20)])
        assert kills >= 3, "the applies should have been interrupted"
        # While claimed events are still stored, every apply works on them (each
        # round removes some) and claims nothing new: the oldest claims finish first.
        for k in range(1, len(still_claimed)):
            if still_claimed[k - 1]:
                assert still_claimed[k] < still_claimed[k - 1], still_claimed
                assert receipts_seen[k] == receipts_seen[k - 1] or not still_claimed[k], (
                    receipts_seen,
                    still_claimed,
                )
        with open_store(config) as store:
            # A last, uninterrupted apply: every receipt's count is what went.
            store.apply_retention(now=None, policy=store.retention_policy)
            receipts = list(store.iter(Query(types=[RECEIPT_TYPE], limit=1000)))
            stored = {e.position for e in store.iter(Query(limit=1000))}
            claimed_total = sum(r.data["removed"]["count"] for r in receipts)
            ever = set(range(1, store.head() + 1))
            removed = ever - stored
            assert claimed_total == len(removed), (claimed_total, len(removed))
            for claimed in claimed_positions(receipts):
                assert not (claimed & stored)
            assert store.verify().ok
    finally:
        if backend == "postgres":
            from eventvault.backends.postgres.store import drop_schema

            schema = config.read_text().split('schema = "')[1].split('"')[0]
            drop_schema(dsn, schema)
