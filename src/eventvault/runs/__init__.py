"""Runs: the events of one correlation id — listed, traced as a causal tree, diffed.

Everything here works over any :class:`~eventvault.EventStore` through its public
read API; a backend with an index of runs plugs in through :class:`RunIndex`.

>>> from eventvault import MemoryEventStore, NewEvent
>>> from eventvault.runs import list_runs, load_run
>>> with MemoryEventStore() as store:
...     started = NewEvent(type="run.started", correlation_id="run-1", actor="ci")
...     _ = store.append([started, NewEvent(type="run.failed", correlation_id="run-1",
...                                         actor="ci", causation_id=str(started.id))])
...     [r.outcome for r in list_runs(store).runs], len(load_run(store, "run-1").nodes)
(['failed'], 2)
"""

from __future__ import annotations

from .diff import DEFAULT_TIMING_THRESHOLD, diff_runs
from .listing import MAX_RUNS_PAGE, RunIndex, RunKey, ScanRunIndex, list_runs
from .loading import DEFAULT_MAX_EVENTS, load_run
from .model import (
    DiffStep,
    FieldChange,
    Lane,
    RunDiff,
    RunPage,
    RunSummary,
    RunTrace,
    TraceNode,
    TraceProblem,
)
from .outcomes import DEFAULT_OUTCOMES, Outcomes, outcome_of, parse_outcomes
from .tree import build_trace

__all__ = [
    "DEFAULT_MAX_EVENTS",
    "DEFAULT_OUTCOMES",
    "DEFAULT_TIMING_THRESHOLD",
    "MAX_RUNS_PAGE",
    "DiffStep",
    "FieldChange",
    "Lane",
    "Outcomes",
    "RunDiff",
    "RunIndex",
    "RunKey",
    "RunPage",
    "RunSummary",
    "RunTrace",
    "ScanRunIndex",
    "TraceNode",
    "TraceProblem",
    "build_trace",
    "diff_runs",
    "list_runs",
    "load_run",
    "outcome_of",
    "parse_outcomes",
]
