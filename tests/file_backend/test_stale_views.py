"""Processes whose view of the segments went stale while others rolled and ran retention.

Each test drives real processes (``agent.py``) step by step: a *quiet* process
holds a view of the store, a *busy* one fills segments, rolls on and applies
retention, then the quiet one wakes up. Every acknowledged event must stay
stored exactly once, positions must never be reused, the store must verify, and
the quiet process must keep working.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from eventvault import NewEvent, StoreUnavailableError
from eventvault.backends.file import FileEventStore

AGENT = [sys.executable, str(Path(__file__).with_name("agent.py"))]


class Agent:
    """One store-holding process, driven one JSON command at a time."""

    def __init__(self, path: Path, segment_max_bytes: int) -> None:
        self.proc = subprocess.Popen(
            [*AGENT, str(path), str(segment_max_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.call_raw() == {"ready": True}

    def call_raw(self, cmd: dict[str, Any] | None = None) -> dict[str, Any]:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        if cmd is not None:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"the agent died (exit {self.proc.wait()})"
        out: dict[str, Any] = json.loads(line)
        return out

    def __call__(self, op: str, **kw: Any) -> dict[str, Any]:
        out = self.call_raw({"op": op, **kw})
        assert "error" not in out, out["error"]
        return out

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0


def check(path: Path, acked: list[str]) -> list[int]:
    """Every acknowledged id stored once, positions strictly increasing, chain ok."""
    with FileEventStore(path) as store:
        events = list(store.iter())
        ids = [str(e.id) for e in events]
        assert len(set(ids)) == len(ids), "an event is stored twice"
        missing = set(acked) - set(ids)
        assert not missing, f"{len(missing)} acknowledged events lost"
        positions = [e.position for e in events]
        assert positions == sorted(set(positions)), "a position is used twice"
        result = store.verify()
        assert result.ok, result
        return positions


def test_quiet_process_after_the_next_segment_was_deleted(tmp_path: Path) -> None:
    """Retention deleted the segment after the quiet process's (stale) active one:
    its append must not re-create that segment and reuse a removed position."""
    path = tmp_path / "s"
    quiet = Agent(path, 1 << 20)
    busy = Agent(path, 4096)
    try:
        acked = quiet("append", n=10)["ids"]  # > 4096 bytes: busy rolls at once
        for _ in range(12):
            busy("append", n=5, type="debug.x")
        keep = busy("append", n=1)
        acked += keep["ids"]
        assert busy("apply", hours=2)["removed"] >= 40
        head = busy("head")["head"]
        late = quiet("append", n=1)
        acked += late["ids"]
        assert late["positions"] == [head + 1]
        assert quiet("head")["head"] == head + 1
        assert quiet("verify")["ok"]
    finally:
        quiet.close()
        busy.close()
    check(path, acked)


def test_quiet_process_whose_own_segment_was_compacted(tmp_path: Path) -> None:
    """Retention rewrote the quiet process's (stale) active segment: an append through
    the old descriptor would go to the orphaned file — acknowledged and gone."""
    path = tmp_path / "s"
    quiet = Agent(path, 1 << 20)
    busy = Agent(path, 4096)
    try:
        acked = quiet("append", n=5)["ids"]
        quiet("append", n=5, type="debug.x")  # seg 1 now > 4096 bytes, half debug
        for _ in range(8):
            busy("append", n=5, type="debug.x")  # whole segments of debug events
        acked += busy("append", n=1)["ids"]
        assert busy("apply", hours=2)["removed"] >= 25  # seg 1 compacted, others deleted
        head = busy("head")["head"]
        late = quiet("append", n=1)
        acked += late["ids"]
        assert late["positions"] == [head + 1]
    finally:
        quiet.close()
        busy.close()
    check(path, acked)


def test_process_that_opened_an_empty_store_after_segment_one_was_deleted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s"
    FileEventStore(path).close()
    quiet = Agent(path, 4096)  # sees no segment at all
    busy = Agent(path, 4096)
    try:
        for _ in range(10):
            busy("append", n=5, type="debug.x")
        assert busy("apply", hours=2)["removed"] >= 20
        assert not (path / "segments" / f"{1:020d}.jsonl").exists()
        head = busy("head")["head"]
        assert quiet("head")["head"] == head
        late = quiet("append", n=1)
        assert late["positions"] == [head + 1]
        acked = late["ids"]
    finally:
        quiet.close()
        busy.close()
    check(path, acked)


def test_quiet_process_after_the_next_segment_was_compacted(tmp_path: Path) -> None:
    """The segment after the quiet process's stale active one was compacted (its
    positions have gaps): the quiet process must not be wedged by it."""
    path = tmp_path / "s"
    quiet = Agent(path, 1 << 20)
    busy = Agent(path, 4096)
    try:
        acked = quiet("append", n=10)["ids"]
        for _ in range(6):
            acked += busy("append", n=3)["ids"]
            busy("append", n=3, type="debug.x")
        assert busy("apply", hours=2)["removed"] > 0
        head = busy("head")["head"]
        assert quiet("head")["head"] == head
        assert quiet("positions")["positions"] == busy("positions")["positions"]
        late = quiet("append", n=1)
        acked += late["ids"]
        assert late["positions"] == [head + 1]
        assert quiet("verify")["ok"]
    finally:
        quiet.close()
        busy.close()
    check(path, acked)


CREATE = """
import sys, time
from pathlib import Path
from eventvault.backends.file import FileEventStore
base, rounds, start = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
for r in range(rounds):
    time.sleep(max(0.0, start + 0.25 * r - time.time()))
    try:
        with FileEventStore(base / f"r{r}") as s:
            print(r, s.store_id, flush=True)
    except Exception as exc:
        print(r, "ERROR", type(exc).__name__, exc, flush=True)
"""


def test_concurrent_first_opens_agree_on_one_store(tmp_path: Path) -> None:
    """Six processes open the same new directory at the same instant, 20 times."""
    rounds = 20
    start = time.time() + 3.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE, str(tmp_path), str(rounds), str(start)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    ids: dict[str, set[str]] = {}
    for out in outputs:
        for line in out.splitlines():
            r, rest = line.split(" ", 1)
            assert not rest.startswith("ERROR"), line
            ids.setdefault(r, set()).add(rest)
    assert len(ids) == rounds
    assert all(len(v) == 1 for v in ids.values()), ids
    for r in range(rounds):
        with FileEventStore(tmp_path / f"r{r}") as s:
            assert s.store_id in ids[str(r)]


def test_empty_segment_named_file_above_the_real_ones_is_not_appended_to(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s"
    with FileEventStore(path, segment_max_bytes=4096) as s:
        for _ in range(10):
            s.append([NewEvent(type="t.x", data={"pad": "x" * 200}) for _ in range(3)])
    bogus = path / "segments" / f"{900:020d}.jsonl"
    bogus.touch()  # a restore tool, a stray `touch`
    with FileEventStore(path, segment_max_bytes=4096) as s:
        assert s.head() == 30
        rec = s.append(NewEvent(type="t.after")).events[0]
        assert rec.position == 31
        assert bogus.name in s.stats().details["ignored_files"]
    assert bogus.stat().st_size == 0
    with FileEventStore(path, segment_max_bytes=4096) as s:
        assert s.head() == 31
        assert s.verify().ok
        assert s.get(rec.id) == rec


APPLIER = """
import random, sys, time
from datetime import timedelta
from eventvault import NewEvent, Query
from eventvault.backends.file import FileEventStore
from eventvault.config import RetentionConfig, RetentionRule
from eventvault.retention import resolve_policy
path, seconds, role = sys.argv[1], float(sys.argv[2]), sys.argv[3]
policy = resolve_policy(RetentionConfig(rules=[RetentionRule(types=["debug.*"], max_age="1h")]))
end = time.monotonic() + seconds
errors = 0
with FileEventStore(path, segment_max_bytes=16384) as s:
    i = 0
    while time.monotonic() < end:
        i += 1
        try:
            if role == "writer":
                s.append([NewEvent(type="debug.x" if k % 2 else "keep.x", data={"pad": "x" * 80})
                          for k in range(4)])
                continue
            # A cut at a random stored event: runs keep compacting the same segments.
            seen = s.read(Query(limit=5000)).events
            cut = random.choice(seen).recorded_at
            s.apply_retention(policy=policy, now=cut + timedelta(hours=1, microseconds=1))
        except Exception as exc:
            errors += 1
            print("ERROR", type(exc).__name__, exc, flush=True)
            if errors > 3:
                sys.exit(3)
print("done", i, flush=True)
"""


def test_two_retention_appliers_on_one_store(tmp_path: Path) -> None:
    """Two processes apply retention in a loop while a third appends: neither may
    pair a cached index with a rewritten file ("record does not decode")."""
    path = tmp_path / "s"
    with FileEventStore(path, segment_max_bytes=2048) as s:
        for _ in range(30):
            s.append([NewEvent(type="debug.x", data={"pad": "x" * 80}) for _ in range(4)])
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPLIER, str(path), "12", role],
            stdout=subprocess.PIPE,
            text=True,
        )
        for role in ("writer", "applier", "applier")
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out
        assert "ERROR" not in out, out
    check(path, [])


def test_an_empty_file_below_an_empty_active_segment_does_not_break_the_chain(
    tmp_path: Path,
) -> None:
    """A crash right after rolling left an empty active segment, and a stray empty
    segment-named file sits between the sealed ones: the chain head before the
    active segment must come from the real segment before it."""
    path = tmp_path / "s"
    with FileEventStore(path, segment_max_bytes=4096) as s:
        for _ in range(10):
            s.append([NewEvent(type="t.x", data={"pad": "x" * 200}) for _ in range(3)])
        head = s.head()
    names = sorted(p.name for p in (path / "segments").glob("*.jsonl"))
    (path / "segments" / f"{head + 1:020d}.jsonl").touch()  # the crashed roll
    (path / "segments" / f"{int(names[-1][:20]) + 1:020d}.jsonl").touch()  # a stray
    with FileEventStore(path, segment_max_bytes=4096) as s:
        assert s.head() == head
        rec = s.append(NewEvent(type="t.after")).events[0]
        assert rec.position == head + 1
        assert s.verify().ok


def test_an_exception_in_the_middle_of_a_write_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever stops a write after its bytes reached the file (here a MemoryError
    from fdatasync), they are cut: a later catch-up must not index an event whose
    append failed."""
    from eventvault.backends.file import writing

    path = tmp_path / "s"
    with FileEventStore(path) as s:
        s.append(NewEvent(type="t.before"))
        size = sum(p.stat().st_size for p in (path / "segments").glob("*.jsonl"))
        real = writing.os.fdatasync

        def boom(fd: int) -> None:
            raise MemoryError("injected")

        monkeypatch.setattr(writing.os, "fdatasync", boom)
        failed = NewEvent(type="t.failed")
        # (the base class's boundary makes the MemoryError a typed error)
        with pytest.raises(StoreUnavailableError, match="out of memory") as raised:
            s.append(failed)
        assert "injected" in str(raised.value.__cause__)
        monkeypatch.setattr(writing.os, "fdatasync", real)
        assert sum(p.stat().st_size for p in (path / "segments").glob("*.jsonl")) == size
        s.append(NewEvent(type="t.after"))
    with FileEventStore(path) as s:
        assert [e.type for e in s.iter()] == ["t.before", "t.after"]
        assert s.get(failed.id) is None


def test_a_retention_run_whose_state_file_looks_unchanged_is_caught_up_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the two-appliers test under load: retention.json is replaced by a
    rename, and a new file can get the old one's inode, size and (coarse, per-tick)
    times — so a writer's cheap "did retention run?" check can miss a run, keep a
    view naming deleted sealed segments and fail its append with ENOENT. A file the
    view names being gone is itself proof the view is stale: list again and retry."""
    from datetime import UTC, datetime, timedelta

    from eventvault.retention import resolve_policy
    from eventvault.retention.config import RetentionConfig

    path = tmp_path / "s"
    busy = FileEventStore(path, segment_max_bytes=2048)
    for _ in range(20):  # many sealed segments
        busy.append(NewEvent(type="debug.x", stream="w", data={"pad": "x" * 80}))
    busy.append(NewEvent(type="keep", stream="other"))
    quiet = FileEventStore(path, segment_max_bytes=2048)  # its view: every segment
    try:
        segs = quiet.backend._s.segs
        frozen = segs._state_stamp()
        monkeypatch.setattr(segs, "_state_stamp", lambda: frozen)  # the collision
        policy = resolve_policy(RetentionConfig(max_age="1h"))
        later = datetime.now(UTC) + timedelta(hours=2)
        report = busy.apply_retention(policy=policy, now=later)
        assert report.removed >= 10
        late = quiet.append(NewEvent(type="debug.x", stream="w"))  # ENOENT before the fix
        assert late.last_revision == 20  # revisions never restart after retention
        assert quiet.verify().ok
    finally:
        quiet.close()
        busy.close()
