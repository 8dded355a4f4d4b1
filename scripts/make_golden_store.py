"""Write tests/data/file_store_v<N>/: a small file store made by TODAY's code.

    python scripts/make_golden_store.py [--version N]

N is the store format version this code writes (1: hash-chained events, written by
the commit before hash format 2; 2: leaf hashes, the default now). Run once, when
the format is current; never regenerate one to make a test pass (the script
refuses to overwrite). The test (tests/file_backend/test_golden_store.py) opens a
copy of each with whatever code is checked out and requires every event to read
back and the store to verify: a future format change must keep reading (or
upgrade) stores written like these.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

from eventvault import NewEvent
from eventvault.backends.file.store import FileEventStore

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--version", type=int, choices=(1, 2), default=2)
    version = ap.parse_args().version
    out = DATA / f"file_store_v{version}"
    if out.exists():
        sys.exit(f"{out} exists: golden stores are never regenerated")
    # small segments: the first one seals
    store = FileEventStore(out, segment_max_bytes=4096, hash_format=version)
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
    (out / "lock").unlink(missing_ok=True)  # the writer lock is not part of the format
    manifest = {
        "description": (
            "A file store written by eventvault's file backend (store format of this "
            "commit): 12 events in 4 streams, segment_max_bytes=4096 so the first segment "
            "is sealed with its index. events lists what every later version must read back."
        ),
        "head_hash": result.head_hash,
        "events": events,
    }
    (DATA / f"file_store_v{version}.json").write_text(
        json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", "utf-8"
    )
    print(f"wrote {out}: {len(events)} events, head {result.head_hash}")


if __name__ == "__main__":
    main()
