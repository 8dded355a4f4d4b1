"""Bridging the holes retention leaves in the hash chain, from its receipts.

A receipt (:mod:`eventvault.retention.receipts`) lists the *runs* of stored events it
removed, each with the hash of its last event and of the stored event before it.
:class:`Bridges` collects them; a :class:`BridgeWalker` tells :func:`~.chain.bridge`
(and so ``verify`` and ``copy``) which recorded hashes an event after a hole may chain
to. Reading receipts here, not in the retention package, keeps verification free of
everything else retention does.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator

from ..model import RecordedEvent

__all__ = ["GENESIS_HEX", "BridgeWalker", "Bridges"]

#: The hash the first event chains to, as receipts write it.
GENESIS_HEX = "0" * 64


class Bridges:
    """The runs receipts recorded, for bridging holes in the chain.

    **By hash** (runs with ``before_hash``). Each run is an edge ``before_hash ->
    last_hash``: the events after the one hashed ``before_hash``, up to the one
    hashed ``last_hash``, were all removed — recorded. Walking the stored events
    in order, every event ``w`` makes the runs reachable from ``hash(w)`` *open*;
    an event that does not chain to its stored predecessor is bridged only by an
    open ``last_hash`` it chains to. That is sound in any numbering: a path of runs
    from a stored ``w`` covers every original event between ``w`` and the
    bridged event, so any missing event there was recorded as removed. A survivor
    deleted next to a hole is never walked, so the runs that start after it never
    open, and the event after the hole fails. An interrupted removal (a run cut to
    its older part) still verifies: the run opened at the event before it.

    **By position** (runs of receipts this very store wrote, and five-element runs
    from receipts written before ``before_hash`` existed). Each run
    ``[first..last]`` removed from after the stored event ``before`` accounts for
    ``(before, last]``; runs whose ``[before, last]`` overlap form one *component*
    ``[low, high]``. A hole between survivors
    ``q`` and ``s`` is bridged by the largest run end ``r`` with ``q < r < s``,
    provided ``r``'s component reaches back to ``q`` (``low <= q``). Only valid in
    the numbering the receipts were written in; it also covers the rare states the
    hash rule cannot see (a run rooted inside the remnant of an interrupted older
    run, that remnant removed afterwards). Each rule alone guarantees every missing
    event between two stored ones was recorded, so a hole either bridges is sound.
    """

    def __init__(self, store_id: str | None = None) -> None:
        self._store_id = store_id
        self._edges: dict[str, list[str]] = {}  # before_hash -> last_hash of each run
        self._ends_at: dict[str, int] = {}  # last_hash -> recorded position of that event
        self._hashes: dict[int, str] = {}  # (by position) run end -> hash of the event there
        self._spans: list[tuple[int, int]] = []  # (by position) (before, last) of every run
        #: (before, last) of the runs of receipts that name this store (``covers``)
        self._own: list[tuple[int, int]] = []
        self._own_lows: list[int] | None = None
        self._own_highs: list[int] = []
        self._ends: list[int] | None = None
        self._lows: list[int] = []
        self._highs: list[int] = []
        self.receipts = 0

    def add_receipt(self, receipt: RecordedEvent) -> None:
        self.receipts += 1
        runs = receipt.data.get("runs")
        if not isinstance(runs, list):
            return
        for run in runs:
            if not (
                isinstance(run, list)
                and len(run) >= 5
                and all(type(run[k]) is int for k in (0, 1, 4))
                and isinstance(run[3], str)
                and 0 <= run[4] < run[0] <= run[1]
            ):
                continue
            by_hash = len(run) >= 6 and isinstance(run[5], str) and bool(run[5])
            if by_hash:
                ends = self._edges.setdefault(run[5], [])
                ends.append(run[3])
                self._ends_at[run[3]] = run[1]
                if len(run) >= 7 and isinstance(run[6], list):
                    ends.extend(h for h in run[6] if isinstance(h, str))
            # Positions only mean something in the store that wrote them (not in a copy).
            native = not by_hash or receipt.data.get("store") == self._store_id
            if native and run[1] < receipt.position:  # (it speaks of the past)
                self._hashes[run[1]] = run[3]
                self._spans.append((run[4], run[1]))
                if self._store_id is not None and receipt.data.get("store") == self._store_id:
                    self._own.append((run[4], run[1]))
        self._ends = None
        self._own_lows = None

    def add_all(self, receipts: Iterable[RecordedEvent]) -> Bridges:
        for rec in receipts:
            self.add_receipt(rec)
        return self

    def __len__(self) -> int:
        return len(self._hashes) + len(self._ends_at)

    def walker(self) -> BridgeWalker:
        """A fresh walk over the stored events, from the first."""
        return BridgeWalker(self)

    def _build(self) -> list[int]:
        self._ends = sorted(self._hashes)
        self._lows, self._highs = _components(self._spans)
        return self._ends

    def covers(self, q: int, s: int) -> bool:
        """(By position) whether receipts *naming this store* record every position
        strictly between survivors ``q`` and ``s`` as removed: the hole rule of the
        leaf hash format, where an event's hash does not say what came before it.
        (Unlike :meth:`between`, no hash confirms the hole, so a receipt without a
        ``store`` — written before receipts named one, maybe in another store whose
        copy this is, numbered otherwise — never counts here.)"""
        if not self._own:
            return False
        if self._own_lows is None:
            self._own_lows, self._own_highs = _components(self._own)
        k = bisect.bisect_right(self._own_lows, q) - 1  # the one component that can hold q+1
        return k >= 0 and self._own_highs[k] >= s - 1

    def between(self, q: int, s: int) -> tuple[int, str] | None:
        """(By position) the run end bridging a hole between survivors ``q`` and ``s``."""
        if not self._hashes:
            return None
        ends = self._ends if self._ends is not None else self._build()
        i = bisect.bisect_left(ends, s) - 1
        if i < 0 or ends[i] <= q:
            return None
        r = ends[i]
        k = bisect.bisect_right(self._lows, r) - 1  # the component holding r
        if k < 0 or self._lows[k] > q or self._highs[k] < r:
            return None
        return r, self._hashes[r]


def _components(spans: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """Runs ``(before, last]`` merged where they overlap or touch: the ``(low, high]``
    stretches of positions recorded as removed, sorted (lows, highs)."""
    lows: list[int] = []
    highs: list[int] = []
    for low, high in sorted(spans):
        if highs and low <= highs[-1]:
            highs[-1] = max(highs[-1], high)
        else:
            lows.append(low)
            highs.append(high)
    return lows, highs


class BridgeWalker:
    """One walk's open runs (see :class:`Bridges`): tell it every stored event's hash
    in order (:meth:`walked`); ask it what a broken link may chain to instead."""

    def __init__(self, bridges: Bridges) -> None:
        self._bridges = bridges
        self._open: list[str] = []  # last_hashes, in the order they opened
        self._seen: set[str] = set()
        self.walked(GENESIS_HEX)  # runs that removed the very first events

    def walked(self, event_hash: str) -> None:
        edges = self._bridges._edges
        if event_hash not in edges:
            return
        todo = [event_hash]
        while todo:  # everything reachable from this event's hash opens
            for end in edges.get(todo.pop(), ()):
                if end not in self._seen:
                    self._seen.add(end)
                    self._open.append(end)
                    todo.append(end)

    def covers(self, q: int, s: int) -> bool:
        """See :meth:`Bridges.covers`."""
        return self._bridges.covers(q, s)

    def is_root(self, event_hash: str) -> bool:
        """Whether recorded runs start right after the event with this hash."""
        return event_hash in self._bridges._edges

    def mark(self) -> int:
        """How many runs are open now (for :meth:`candidates` later)."""
        return len(self._open)

    def candidates(
        self, q: int, s: int, mark: int | None = None
    ) -> Iterator[tuple[str, int | None]]:
        """Hashes an event at ``s`` after the stored event at ``q`` may chain to across a
        hole, with the recorded position of the event removed there: the newest open
        runs first (the likeliest), then the by-position bridge. ``mark``: only the
        runs open at that time."""
        end = len(self._open) if mark is None else mark
        ends_at = self._bridges._ends_at
        for k in range(end - 1, -1, -1):
            h = self._open[k]
            yield h, ends_at.get(h)
        hole = self._bridges.between(q, s)
        if hole is not None:
            yield hole[1], hole[0]
