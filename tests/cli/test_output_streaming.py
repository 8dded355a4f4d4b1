"""Every output format streams with bounded memory, the table too (issue 17 item 8).

Measured on a real process over 100,000 events: the first row must come before the
whole result is read, and the peak RSS must stay near the interpreter's own (the
old table held every row: 94 s and 556 MB before its first row on this machine)."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from eventvault import NewEvent
from eventvault.backends.file import FileEventStore

from .helpers import EXE, clean_env

pytestmark = pytest.mark.system  # see README, "Tests"

N = 100_000


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("big")
    with FileEventStore(root / "eventvault-data", fsync="never") as store:
        for start in range(0, N, 5000):
            store.append(
                [
                    NewEvent(
                        type="load.x",
                        stream=f"s{i % 50}",
                        actor="agent:x",
                        correlation_id=f"run-{i % 7}",
                        data={"i": i, "pad": "x" * 100},
                    )
                    for i in range(start, start + 5000)
                ]
            )
    return root


class _PeakRss:
    """The peak resident size of a running process, from its own memory map's
    high-water mark (``VmHWM``). (``wait4``'s ``ru_maxrss`` would not do: Linux keeps
    it across ``exec``, so a child reports at least the size of the test process it
    was forked from.)"""

    def __init__(self, pid: int) -> None:
        self.kib = 0
        self._path = Path(f"/proc/{pid}/status")
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.is_set():
            try:
                status = self._path.read_text()
            except OSError:
                return
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    self.kib = max(self.kib, int(line.split()[1]))
            time.sleep(0.02)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()


@pytest.mark.parametrize("fmt", ["table", "text", "jsonl", "json", "csv"])
def test_query_all_streams_with_bounded_memory(big_store: Path, fmt: str) -> None:
    started = time.monotonic()
    proc = subprocess.Popen(
        [*EXE, "query", "--all", "--format", fmt],
        cwd=big_store,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    peak = _PeakRss(proc.pid)
    first = proc.stdout.readline()
    first_row = time.monotonic() - started
    lines = 1 + sum(1 for _ in proc.stdout)
    proc.wait(60)
    peak.stop()
    total = time.monotonic() - started
    assert proc.returncode == 0
    assert first
    rss_mb = peak.kib / 1024
    print(f"{fmt}: first line {first_row:.2f} s, all {total:.2f} s, peak RSS {rss_mb:.0f} MB")
    assert lines >= N  # every event printed (plus a header, or the JSON brackets)
    assert rss_mb < 160, f"{fmt} held the result in memory: {rss_mb:.0f} MB"
    assert first_row < total / 2 or first_row < 2.0, "nothing printed until the end"
    assert total < 60


def test_table_columns_stay_aligned_and_numbers_are_never_cut(big_store: Path) -> None:
    r = subprocess.run(
        [*EXE, "query", "--all", "--format", "table", "--stream", "s0"],
        cwd=big_store,
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    header, *rows = r.stdout.splitlines()
    assert header.split() == [
        "pos", "recorded_at", "stream", "rev", "type", "actor", "correlation", "data"
    ]  # fmt: skip
    assert len(rows) == N // 50
    last = rows[-1].split()
    assert last[0] == str(N - 49)  # the highest position, whole
    assert last[3] == str(N // 50 - 1)
    starts = {row.index("load.x") for row in rows}
    assert len(starts) == 1  # the type column starts at the same place in every row
