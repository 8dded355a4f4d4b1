"""Write tests/data/file_store_v1/: a small file store made by TODAY's code.

    python scripts/make_golden_store.py

Run once, when the format is current; never regenerate it to make a test pass. The
test (tests/file_backend/test_golden_store.py) opens a copy with whatever code is
checked out and requires every event to read back and the chain to verify: a future
format change must keep reading (or upgrade) stores written like this one.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

from eventvault import NewEvent
from eventvault.backends.file.store import FileEventStore

OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "file_store_v1"


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    store = FileEventStore(OUT, segment_max_bytes=4096)  # small: the first segment seals
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    streams = ["run-1", "run-2", "agent/ünï", "default"]
    for i in range(12):
        store.append(
            [
                NewEvent(
                    id=UUID(int=(0x0190A1B2C3D47E5F8A9B << 48) + i),
                    type=["task.started", "tool.called", "task.completed"][i % 3],
                    stream=streams[i % len(streams)],
                    actor=None if i % 5 == 0 else f"agent-{i % 2}",
                    correlation_id=f"run-{i % 2 + 1}",
                    source="tests/make_golden_store" if i % 4 == 0 else None,
                    occurred_at=start + timedelta(seconds=i, microseconds=(i % 2) * 250_000),
                    data={
                        "i": i,
                        "text": "ünïcode ✓ 😀" if i % 3 == 0 else "plain",
                        "numbers": [1e23, -0.0, 2**53 + 1, 0.1],
                        "nested": {"b": [i, {"c": None}], "a": True},
                        "padding": "x" * 200,
                    },
                    metadata={"attempt": i % 2},
                )
            ]
        )
    events = [e.to_dict() for e in store.iter()]
    result = store.verify()
    assert result.ok, result
    store.close()
    (OUT / "lock").unlink(missing_ok=True)  # the writer lock is not part of the format
    manifest = {
        "description": (
            "A file store written by eventvault's file backend (store format of this "
            "commit): 12 events in 4 streams, segment_max_bytes=4096 so the first segment "
            "is sealed with its index. events lists what every later version must read back."
        ),
        "head_hash": result.head_hash,
        "events": events,
    }
    (OUT.parent / "file_store_v1.json").write_text(
        json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", "utf-8"
    )
    print(f"wrote {OUT}: {len(events)} events, head {result.head_hash}")


if __name__ == "__main__":
    main()
