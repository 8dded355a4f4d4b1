"""What the run functions return: frozen msgspec Structs with a JSON form.

Times inside a run are integers of microseconds (``*_us``): offsets from the run's
first event and durations, all on the store's clock (``recorded_at``), so they are
exact, never negative and need no parsing in a browser. ``to_json()`` gives the
form the HTTP API and ``--format json`` print.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from ..model import RecordedEvent

__all__ = [
    "DiffStep",
    "FieldChange",
    "Lane",
    "RunDiff",
    "RunPage",
    "RunSummary",
    "RunTrace",
    "TraceNode",
    "TraceProblem",
]

_encoder = msgspec.json.Encoder()


class _Json(msgspec.Struct, frozen=True, kw_only=True):
    def to_builtins(self) -> Any:
        """Plain dicts, lists, strings and numbers (UUIDs and times as text)."""
        return msgspec.to_builtins(self)

    def to_json(self) -> bytes:
        """The JSON form (what the HTTP API and ``--format json`` give)."""
        return _encoder.encode(self)


class RunSummary(_Json, frozen=True, kw_only=True):
    """One run at a glance: the events that share ``correlation_id``."""

    correlation_id: str
    events: int
    first_position: int
    last_position: int
    first_recorded_at: datetime
    last_recorded_at: datetime
    duration_us: int
    """From the first event's ``recorded_at`` to the last one's."""
    actors: tuple[str, ...]
    """Every actor seen, in order of first appearance (events without one are left out)."""
    streams: tuple[str, ...]
    first_type: str
    last_type: str
    outcome: str | None = None
    """What the last event type says (``failed``, ``succeeded``, …), from the outcome
    patterns; None when none matches."""


class RunPage(_Json, frozen=True, kw_only=True):
    """One page of :func:`~eventvault.runs.list_runs`, newest run first."""

    runs: list[RunSummary]
    next_cursor: str | None = None


NodeKind = Literal["event", "virtual"]
VirtualKind = Literal["external", "outside", "missing", "unchecked"]


class TraceNode(_Json, frozen=True, kw_only=True):
    """One node of a run's causal tree; ``RunTrace.nodes`` lists them depth first.

    An *event* node stands for ``RunTrace.events[event]``. A *virtual* node stands
    for a ``causation_id`` that is no event of the run (see ``virtual``); it is
    always a root, and the events it caused are its children.
    """

    id: int
    """This node's index in ``RunTrace.nodes``."""
    kind: NodeKind
    event: int | None
    """Index into ``RunTrace.events`` (event nodes)."""
    label: str
    """The event type, or a description of the virtual node."""
    causation_id: str | None
    """Virtual nodes: the id the children name as their cause."""
    virtual: VirtualKind | None = None
    """``external``: not an event id (a command, a request); ``outside``: an event of
    the store in another run (or none); ``missing``: an event id the store does not
    hold (a dangling reference); ``unchecked``: not looked up (too many)."""
    parent: int | None
    children: tuple[int, ...]
    depth: int
    offset_us: int
    """From the run's first event to this node (virtual: to its first child)."""
    to_next_sibling_us: int | None
    """Until the next node with the same parent starts (None for the last one)."""
    to_last_descendant_us: int
    """Until the last event below this node (0 for a leaf)."""
    cycle_cut: bool = False
    """This event's cause is part of a causation cycle; the tree cuts the cycle here."""


class Lane(_Json, frozen=True, kw_only=True):
    """The events of one actor in a run, in order (``actor`` None: events without one)."""

    actor: str | None
    events: tuple[int, ...]
    """Indexes into ``RunTrace.events``."""
    first_offset_us: int
    last_offset_us: int


ProblemKind = Literal["cycle", "dangling"]


class TraceProblem(_Json, frozen=True, kw_only=True):
    """Something wrong with a run's causation, reported rather than raised.

    ``cycle``: these events cause one another in a ring (``events``, in ring order
    from the event the tree cut). ``dangling``: ``causation_id`` looks like an event
    id but the store holds no such event; ``events`` name it as their cause.
    """

    kind: ProblemKind
    events: tuple[str, ...]
    causation_id: str | None = None
    message: str


class RunTrace(_Json, frozen=True, kw_only=True):
    """A run's events (position order), its causal tree and its actor lanes."""

    correlation_id: str
    summary: RunSummary
    events: list[RecordedEvent]
    nodes: list[TraceNode]
    """Depth first, each parent before its children, siblings in position order."""
    roots: tuple[int, ...]
    lanes: list[Lane]
    problems: list[TraceProblem]
    truncated: bool = False
    """The run holds more than ``max_events`` events: only the first ones are here."""
    max_events: int


ChangeKind = Literal["added", "removed", "changed"]


class FieldChange(_Json, frozen=True, kw_only=True):
    """One difference between two events' ``data`` at a JSON Pointer (RFC 6901) path."""

    path: str
    kind: ChangeKind
    a: Any = None
    """The value in run A (absent for ``added``)."""
    b: Any = None
    """The value in run B (absent for ``removed``)."""


StepKind = Literal["same", "changed", "only_a", "only_b", "moved"]


class DiffStep(_Json, frozen=True, kw_only=True):
    """One line of a run diff, in alignment order.

    ``same``/``changed``: an event of A aligned with one of B (same actor and type;
    ``changed`` when their data differ). ``only_a``/``only_b``: an event the other
    run has no counterpart for. ``moved``: the same actor and type in both, but out
    of order (the step sits at B's place; ``a`` says where A had it).
    """

    kind: StepKind
    actor: str | None
    type: str
    a: int | None = None
    """Index into run A's events."""
    b: int | None = None
    a_position: int | None = None
    b_position: int | None = None
    changes: tuple[FieldChange, ...] = ()
    changes_truncated: bool = False
    a_offset_us: int | None = None
    b_offset_us: int | None = None
    a_step_us: int | None = None
    """Time since the previous event of run A (0 for its first)."""
    b_step_us: int | None = None
    timing_delta_us: int | None = None
    """``b_step_us - a_step_us`` for aligned events."""
    slower: bool = False
    """``|timing_delta_us|`` exceeds the threshold and B took longer."""
    faster: bool = False


class RunDiff(_Json, frozen=True, kw_only=True):
    """Two runs aligned by their (actor, type) sequences."""

    a: str
    b: str
    a_events: int
    b_events: int
    steps: list[DiffStep]
    same: int
    changed: int
    only_a: int
    only_b: int
    moved: int
    timing_threshold_us: int
    timing: int
    """Aligned events whose step time differs by more than the threshold."""
    a_duration_us: int
    b_duration_us: int

    @property
    def identical(self) -> bool:
        """Same events, same data (timing aside)."""
        return self.same == self.a_events == self.b_events
