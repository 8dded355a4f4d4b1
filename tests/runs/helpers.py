"""Hand-made recorded events for the run tests (exact ids, positions and times)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from eventvault import RecordedEvent

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def uid(n: int) -> UUID:
    """A fixed event id per number (so tests can name causes before events exist)."""
    return UUID(int=(0x0190_0000_0000_7000_8000_0000_0000_0000 | n))


def rec(
    n: int,
    type: str = "step.done",
    *,
    cause: str | int | None = None,
    actor: str | None = "agent:a",
    ms: int | None = None,
    run: str = "run-1",
    data: dict[str, Any] | None = None,
    position: int | None = None,
) -> RecordedEvent:
    """Event number ``n`` (position ``n`` unless given, recorded ``ms`` after T0);
    ``cause``: an event number (its id) or a causation id as text."""
    return RecordedEvent(
        position=n if position is None else position,
        stream_revision=n,
        recorded_at=T0 + timedelta(milliseconds=n if ms is None else ms),
        id=uid(n),
        type=type,
        stream="s",
        actor=actor,
        correlation_id=run,
        causation_id=str(uid(cause)) if isinstance(cause, int) else cause,
        occurred_at=T0,
        data=data or {},
        hash="0" * 64,
    )
