"""The multi-process stress test: every role at once, and ``kill -9`` at random.

Three writers with different segment sizes, two quiet processes that wake up
after others rolled several segments, two retention appliers, a tailer and a
reader share one store for ``EV_STRESS_SECONDS`` (default 60). Every second or
so one of them, picked at random, is ``SIGKILL``ed and started again. Then:

* every acknowledged ``keep.x`` event is stored exactly once, at the position it
  was acknowledged at; an acknowledged ``debug.x`` event (retention may remove
  those) is stored at its position or not at all — a position is never reused;
* the chain verifies;
* the tail never went back and, up to where it got, missed no kept event;
* every process still alive at the end can append and read (none is wedged).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eventvault import Query
from eventvault.backends.file import FileEventStore

pytestmark = pytest.mark.system  # see README, "Tests"

WORKER = [sys.executable, str(Path(__file__).with_name("stress_worker.py"))]
ROLES = [
    ("writer", 4096),
    ("writer", 16384),
    ("writer", 65536),
    ("quiet", 1 << 20),
    ("quiet", 8192),
    ("applier", 16384),
    ("applier", 4096),
    ("tailer", 16384),
    ("reader", 16384),
]


def lines(paths: list[Path], kind: str) -> list[list[str]]:
    out = []
    for p in paths:
        if not p.exists():  # killed before it got to open its file
            continue
        for line in p.read_text().split("\n"):
            parts = line.split(" ")
            if parts[0] == kind and (kind != "ack" or len(parts) == 4):
                out.append(parts)
    return out


@pytest.mark.slow
def test_every_role_at_once_with_kill_9(tmp_path: Path) -> None:
    seconds = float(os.environ.get("EV_STRESS_SECONDS", "60"))
    store = tmp_path / "store"
    FileEventStore(store).close()
    stop = tmp_path / "stop"
    rng = random.Random(15)
    outs: dict[int, list[Path]] = {k: [] for k in range(len(ROLES))}
    procs: dict[int, subprocess.Popen[bytes]] = {}
    kills = 0

    def start(k: int) -> None:
        role, seg = ROLES[k]
        out = tmp_path / f"out-{k}-{len(outs[k])}"
        outs[k].append(out)
        extra = []
        if role == "tailer":  # resume after what the last incarnation saw
            seen = lines(outs[k][:-1], "seen")
            extra = [seen[-1][2] if seen else "0"]
        seed = str(k * 1000 + len(outs[k]))
        procs[k] = subprocess.Popen(
            [*WORKER, role, str(store), str(out), seed, str(seg), str(stop), *extra]
        )

    for k in range(len(ROLES)):
        start(k)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(rng.uniform(0.3, 1.5))
        for k, p in procs.items():  # a process that ended by itself failed
            assert p.poll() is None, (ROLES[k], outs[k][-1].read_text()[-3000:])
        k = rng.randrange(len(ROLES))
        os.kill(procs[k].pid, signal.SIGKILL)
        procs[k].wait()
        kills += 1
        start(k)
    stop.touch()
    for k, p in procs.items():
        assert p.wait(timeout=120) == 0, (ROLES[k], outs[k][-1].read_text()[-3000:])
        assert lines([outs[k][-1]], "final"), ROLES[k]  # it appended and read at the end
    every = [o for k in outs for o in outs[k]]
    errors = lines(every, "ERROR")
    assert not errors, errors

    acked = lines(every, "ack")
    with FileEventStore(store) as s:
        events = list(s.iter(Query(limit=5000)))
        result = s.verify()
    by_id = {str(e.id): e for e in events}
    assert len(by_id) == len(events), "an event is stored twice"
    positions = [e.position for e in events]
    assert positions == sorted(set(positions))
    at = {e.position: str(e.id) for e in events}
    lost = []
    for _, eid, pos, typ in acked:
        stored = by_id.get(eid)
        if stored is None:
            if typ != "debug.x":
                lost.append((eid, pos, typ))
            assert at.get(int(pos)) is None, f"position {pos} reused by {at.get(int(pos))}"
        else:
            assert stored.position == int(pos), (eid, pos, stored.position)
    assert not lost, f"{len(lost)} acknowledged events lost: {lost[:5]}"
    assert result.ok, result
    # The tail: never back, and nothing kept missed up to where it got.
    tails = [k for k, (role, _) in enumerate(ROLES) if role == "tailer"]
    seen = lines([o for k in tails for o in outs[k]], "seen")
    seen_pos = [int(p) for _, _, p in seen]
    assert seen_pos == sorted(set(seen_pos))
    reach = seen_pos[-1] if seen_pos else 0
    seen_ids = {line[1] for line in seen}
    missed = [eid for _, eid, pos, typ in acked if typ == "keep.x" and int(pos) <= reach]
    assert not [eid for eid in missed if eid not in seen_ids]
    assert len(acked) > 1000, len(acked)
    assert kills >= seconds / 2, kills
