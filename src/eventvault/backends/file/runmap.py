"""One segment's runs: a summary per correlation id, in order of last appearance.

A :class:`SegmentRuns` maps each correlation id with events in one segment to a
:class:`SegmentRun` — how many events, the first and last slot, their types, the
actors and streams in order of first appearance. Its dict order is the order of
each run's *last* event in the segment (an updated run moves to the end), so
reading it backwards yields the segment's runs newest first with no sorting.

It is derived data, like the rest of a segment's index: built from the index's
posting lists (:func:`build_runs`) the first time a listing needs it, then kept
current by :meth:`~.index.MemIndex.add` and :meth:`~.index.MemIndex.add_batch` as
records are indexed (this process's appends and other processes' alike, which a
catch-up indexes). A segment retention rewrote or deleted is a new index, so it
never holds a removed event. (No imports of the index: the index imports this.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

__all__ = ["SegmentRun", "SegmentRuns", "build_runs"]


class SegmentRun:
    """A run's events within one segment (slots are the segment's)."""

    __slots__ = ("actors", "count", "first", "first_type", "last", "last_type", "streams")

    def __init__(self, slot: int, type: str, actor: str | None, stream: str) -> None:
        self.count = 1
        self.first = self.last = slot
        self.first_type = self.last_type = type
        self.actors: tuple[str, ...] = () if actor is None else (actor,)
        self.streams: tuple[str, ...] = (stream,)

    @classmethod
    def of(
        cls,
        count: int,
        first: int,
        last: int,
        first_type: str,
        last_type: str,
        actors: tuple[str, ...],
        streams: tuple[str, ...],
    ) -> SegmentRun:
        """A run as saved (:mod:`.runfile`)."""
        run = cls.__new__(cls)
        run.count, run.first, run.last = count, first, last
        run.first_type, run.last_type = first_type, last_type
        run.actors, run.streams = actors, streams
        return run

    def add(self, slot: int, type: str, actor: str | None, stream: str) -> None:
        """One more event, after every one so far."""
        self.count += 1
        self.last = slot
        self.last_type = type
        if actor is not None and actor not in self.actors:
            self.actors += (actor,)
        if stream not in self.streams:
            self.streams += (stream,)


class SegmentRuns(dict[str, SegmentRun]):
    """Correlation id -> :class:`SegmentRun`, ordered by each run's last slot."""

    def note(self, cid: str, slot: int, type: str, actor: str | None, stream: str) -> None:
        """Index one event (slots ascending)."""
        run = self.pop(cid, None)
        if run is None:
            run = SegmentRun(slot, type, actor, stream)
        else:
            run.add(slot, type, actor, stream)
        self[cid] = run


class _Postings(Protocol):
    def postings(self, field: str) -> Mapping[str, Sequence[int]]: ...


def build_runs(index: _Postings, count: int) -> SegmentRuns:
    """The runs of the first ``count`` slots of ``index``, from its posting lists
    (one pass per field over the slots; no record is read)."""
    if not count:
        return SegmentRuns()
    columns: dict[str, list[str | None]] = {}
    for field in ("type", "actor", "stream"):
        column: list[str | None] = [None] * count
        for key, slots in index.postings(field).items():
            for slot in slots:
                if slot < count:
                    column[slot] = key
        columns[field] = column
    types, actors, streams = columns["type"], columns["actor"], columns["stream"]
    found: list[tuple[int, str, SegmentRun]] = []
    for cid, slots in index.postings("correlation_id").items():
        run: SegmentRun | None = None
        for slot in slots:
            if slot >= count:
                break
            if run is None:
                run = SegmentRun(slot, types[slot] or "", actors[slot], streams[slot] or "")
            else:
                run.add(slot, types[slot] or "", actors[slot], streams[slot] or "")
        if run is not None:
            found.append((run.last, cid, run))
    found.sort(key=lambda item: item[0])
    out = SegmentRuns()
    for _, cid, run in found:
        out[cid] = run
    return out
