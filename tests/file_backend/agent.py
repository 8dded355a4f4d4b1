"""A store-holding process a test drives line by line (for multi-process scenarios).

``python agent.py PATH SEGMENT_MAX_BYTES`` opens a :class:`FileEventStore` and then
answers one JSON command per stdin line with one JSON line on stdout:

* ``{"op": "append", "n": 5, "type": "keep.x", "pad": 300}`` -> ``{"positions": [...],
  "ids": [...]}``
* ``{"op": "head"}`` -> ``{"head": 12}``
* ``{"op": "positions"}`` -> ``{"positions": [...]}`` (every stored event)
* ``{"op": "apply", "hours": 2}`` -> ``{"removed": 40}`` (retention: ``debug.*`` older
  than one hour, at the newest event's time plus ``hours``)
* ``{"op": "verify"}`` -> ``{"ok": true}``

A command that raises answers ``{"error": "<type>: <message>"}`` and the agent
keeps going, so a test can see every later call fail too (a wedged process).
"""

from __future__ import annotations

import json
import sys
from datetime import timedelta
from typing import Any

from eventvault import NewEvent, Query
from eventvault.backends.file import FileEventStore
from eventvault.config import RetentionConfig, RetentionRule
from eventvault.retention import resolve_policy


def run(store: FileEventStore, cmd: dict[str, Any]) -> dict[str, Any]:
    op = cmd["op"]
    if op == "append":
        batch = [
            NewEvent(
                type=cmd.get("type", "keep.x"),
                stream=cmd.get("stream", "s"),
                data={"pad": "x" * cmd.get("pad", 300)},
            )
            for _ in range(cmd.get("n", 1))
        ]
        events = store.append(batch).events
        return {"positions": [e.position for e in events], "ids": [str(e.id) for e in events]}
    if op == "head":
        return {"head": store.head()}
    if op == "positions":
        return {"positions": [e.position for e in store.iter(Query(limit=5000))]}
    if op == "apply":
        rule = RetentionRule(types=["debug.*"], max_age="1h")
        policy = resolve_policy(RetentionConfig(rules=[rule]))
        newest = store.read(Query(reverse=True, limit=1)).events[0].recorded_at
        report = store.apply_retention(policy=policy, now=newest + timedelta(hours=cmd["hours"]))
        return {"removed": report.removed}
    if op == "verify":
        result = store.verify()
        return {"ok": result.ok, "reason": result.reason}
    raise ValueError(op)


def main() -> None:
    path, seg = sys.argv[1], int(sys.argv[2])
    with FileEventStore(path, segment_max_bytes=seg) as store:
        print(json.dumps({"ready": True}), flush=True)
        for line in sys.stdin:
            try:
                out = run(store, json.loads(line))
            except Exception as exc:  # reported to the driving test
                out = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
