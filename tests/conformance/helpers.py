"""Small builders shared by the conformance tests."""

from __future__ import annotations

from typing import Any

from eventvault import NewEvent


def ev(type: str = "task.completed", **kw: Any) -> NewEvent:
    kw.setdefault("data", {"v": "aaaa"})
    return NewEvent(type=type, **kw)


def mixed(n: int) -> list[NewEvent]:
    """``n`` events over 3 types, 3 actors, 4 correlation ids and 2 streams."""
    types = ["task.started", "task.completed", "build.finished"]
    return [
        ev(
            types[i % 3],
            actor=f"agent:{i % 3}" if i % 5 else None,
            correlation_id=f"run-{i % 4}",
            stream=f"loop-{i % 2}",
            data={"v": "aaaa", "i": i},
        )
        for i in range(n)
    ]
