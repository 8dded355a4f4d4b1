"""Loading one run — its events by correlation id — and building its trace."""

from __future__ import annotations

from itertools import islice
from typing import TYPE_CHECKING

from ..errors import ValidationError
from ..model import MAX_LIMIT, Query
from .model import RunTrace
from .outcomes import DEFAULT_OUTCOMES, Outcomes
from .tree import build_trace

if TYPE_CHECKING:  # (the store imports this module when asked for runs)
    from ..store import EventStore

__all__ = ["DEFAULT_MAX_EVENTS", "MAX_MAX_EVENTS", "load_run"]

#: The most events :func:`load_run` reads by default; a larger run is truncated.
DEFAULT_MAX_EVENTS = 10_000
#: The highest ``max_events`` accepted (a run's trace lives in memory).
MAX_MAX_EVENTS = 1_000_000


def load_run(
    store: EventStore,
    correlation_id: str,
    *,
    max_events: int = DEFAULT_MAX_EVENTS,
    outcomes: Outcomes = DEFAULT_OUTCOMES,
) -> RunTrace | None:
    """The run's events, causal tree and lanes; None when no event has this
    correlation id.

    Reads at most ``max_events`` events (the first ones, by position); a longer run
    comes back with ``truncated=True``. Causation ids that are no event of the run
    are looked up with ``store.get`` (a bounded number of times) to tell events of
    other runs from dangling references.
    """
    if not isinstance(correlation_id, str) or not correlation_id:
        raise ValidationError(
            f"a run is named by a non-empty correlation id, got {correlation_id!r}"
        )
    if type(max_events) is not int or not 1 <= max_events <= MAX_MAX_EVENTS:
        raise ValidationError(f"max_events must be 1–{MAX_MAX_EVENTS:,}, got {max_events!r}")
    page = min(max_events + 1, MAX_LIMIT)
    query = Query(correlation_ids=(correlation_id,), limit=page)
    events = list(islice(store.iter(query), max_events + 1))
    if not events:
        return None
    truncated = len(events) > max_events
    del events[max_events:]
    return build_trace(
        correlation_id,
        events,
        lookup=store.get,
        max_events=max_events,
        truncated=truncated,
        outcomes=outcomes,
    )
