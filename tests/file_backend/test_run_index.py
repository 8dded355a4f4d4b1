"""The file store's index of runs: run maps saved beside sealed segments' indexes
(reused on reopen, never trusted when stale or damaged), other processes' appends,
a read-only store, memory (a summary per run, not per event)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from eventvault import NewEvent, Query
from eventvault.backends.file import FileEventStore
from eventvault.backends.file import runindex as _runindex
from eventvault.runs import ScanRunIndex
from eventvault.runs.outcomes import DEFAULT_OUTCOMES

SEG = 4096


def _fill(store: FileEventStore, n: int, prefix: str = "r") -> list[str]:
    names = [f"{prefix}{k}" for k in range(9)]
    for i in range(n):
        store.append(
            [
                NewEvent(
                    type="job.failed" if i % 7 == 6 else "job.step",
                    correlation_id=names[(i + j) % 9],
                    actor=f"agent:{(i + 2 * j) % 4}",
                    stream=f"s-{i % 3}",
                )
                for j in range(2)
            ]
        )
    return names


def _same_as_scan(store: FileEventStore, names: list[str]) -> None:
    head = store.head()
    scan, index = ScanRunIndex(store), store.backend
    for before in (None, head, head // 2, 3):
        want = scan.newest_runs(Query(), head=head, before=before, limit=5)
        assert index.newest_runs(Query(), head=head, before=before, limit=5) == want
    want_s = scan.run_summaries(names, head=head, outcomes=DEFAULT_OUTCOMES)
    assert index.run_summaries(names, head=head, outcomes=DEFAULT_OUTCOMES) == want_s


def test_run_maps_are_saved_and_reused_on_reopen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FileEventStore(tmp_path, segment_max_bytes=SEG) as store:
        names = _fill(store, 80)
        store.runs(limit=3)  # (maps of the segments still indexed in memory)
        assert store.backend._writes is not None
        store.backend._writes.flush_index_writes()
        _same_as_scan(store, names)  # (their index files took over: maps saved)
    saved = sorted((tmp_path / "index").glob("*.runs"))
    assert len(saved) >= 3  # one per sealed segment
    built: list[int] = []
    real = _runindex.build_runs

    def counting(index: object, count: int) -> object:
        built.append(count)
        return real(index, count)  # type: ignore[arg-type]

    monkeypatch.setattr(_runindex, "build_runs", counting)
    with FileEventStore(tmp_path, segment_max_bytes=SEG) as store:
        _same_as_scan(store, names)
    assert len(built) == 1  # only the active segment's map: the sealed ones were read


def test_a_damaged_or_stale_run_file_is_rebuilt(tmp_path: Path) -> None:
    with FileEventStore(tmp_path, segment_max_bytes=SEG) as store:
        names = _fill(store, 80)
        store.runs(limit=3)
    first, second, *_ = sorted((tmp_path / "index").glob("*.runs"))
    raw = bytearray(first.read_bytes())
    raw[-5] ^= 0xFF  # a flipped bit in the body: the CRC says no
    first.write_bytes(bytes(raw))
    second.write_bytes(first.read_bytes()[:10])  # torn
    # Another segment's map under this one's name: its stamp says no.
    third = sorted((tmp_path / "index").glob("*.runs"))[2]
    third.write_bytes(sorted((tmp_path / "index").glob("*.runs"))[3].read_bytes())
    with FileEventStore(tmp_path, segment_max_bytes=SEG) as store:
        _same_as_scan(store, names)
    with FileEventStore(tmp_path, segment_max_bytes=SEG) as store:  # saved again, good now
        _same_as_scan(store, names)


def test_a_read_only_store_lists_runs_without_writing(tmp_path: Path) -> None:
    with FileEventStore(tmp_path, segment_max_bytes=SEG) as store:
        names = _fill(store, 60)
    with FileEventStore(tmp_path, segment_max_bytes=SEG, read_only=True) as store:
        _same_as_scan(store, names)
    assert not list((tmp_path / "index").glob("*.runs"))


_WRITER = """
import sys
from eventvault import NewEvent
from eventvault.backends.file import FileEventStore
with FileEventStore(sys.argv[1], segment_max_bytes=int(sys.argv[2])) as s:
    for i in range(40):
        s.append([NewEvent(type="job.step", correlation_id=f"p{i % 5}", actor="agent:p"),
                  NewEvent(type="job.step", correlation_id=f"r{i % 9}", stream="s-9")])
"""


def test_another_process_appends_are_listed(tmp_path: Path) -> None:
    """The run maps follow what another process appends, also across its rolls."""
    with FileEventStore(tmp_path, segment_max_bytes=SEG) as store:
        names = _fill(store, 30)
        store.runs(limit=3)  # (the maps exist before the other process writes)
        subprocess.run(
            [sys.executable, "-c", _WRITER, str(tmp_path), str(SEG)], check=True, timeout=120
        )
        names += [f"p{k}" for k in range(5)]
        page = store.runs(limit=5)
        assert {r.correlation_id for r in page.runs} >= {"p4", "r3"}
        _same_as_scan(store, names)


def test_memory_is_a_summary_per_run(tmp_path: Path) -> None:
    """10,000 events in 3 runs: the active segment's map holds 3 entries."""
    with FileEventStore(tmp_path) as store:
        for i in range(100):
            store.append(
                [NewEvent(type="t.x", correlation_id=f"c{(i + k) % 3}") for k in range(100)]
            )
        store.runs(limit=3)
        active = store.backend._s.segs.active_index()
        assert active is not None
        assert active.runs is not None
        assert len(active.runs) == 3
        assert sum(r.count for r in active.runs.values()) == 10_000
