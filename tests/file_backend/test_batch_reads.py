"""Reading records scattered through one big batch reads and checksums it once."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventvault import NewEvent, Query
from eventvault.backends.file import FileEventStore
from eventvault.backends.file import segment as segment_module


def test_scattered_records_of_one_batch_cost_one_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's events among others' in a 10,000-event batch: one pread, not one per
    run of neighbours (it was 779 preads of the whole batch for a 1,000-event run)."""
    with FileEventStore(tmp_path / "s", fsync="never") as store:
        store.append(
            [
                NewEvent(type="t", correlation_id=f"run-{i % 10}", data={"i": i})
                for i in range(10_000)
            ]
        )
        reads: list[int] = []
        real = segment_module.os.pread

        def counting(fd: int, n: int, at: int) -> bytes:
            reads.append(n)
            return real(fd, n, at)

        monkeypatch.setattr(segment_module.os, "pread", counting)
        page = store.read(Query(correlation_ids=["run-3"], limit=1000))
        assert [e.data["i"] for e in page.events] == list(range(3, 10_000, 10))
        assert len(reads) <= 2  # (1,000 separate runs of neighbours before)
        backwards = store.read(Query(correlation_ids=["run-3"], reverse=True, limit=50))
        assert [e.data["i"] for e in backwards.events] == list(range(9993, 9502, -10))
