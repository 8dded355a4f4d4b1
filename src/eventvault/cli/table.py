"""The ``table`` output format: fixed-width columns, printed as the events arrive.

A table that waits for its last row to size its columns holds every event in
memory and prints nothing until the end (300k events took minutes and gigabytes).
This one sizes its columns from the first :data:`SIZING_ROWS` rows, then streams:
a later value wider than its column is cut with ``…``. Memory is bounded by that
first chunk, and the first row appears as soon as the first chunk is read.

Cells are plain text: nothing in an event is interpreted (no markup), and control
characters, bidi overrides and other unprintable ones (a terminal escape in a
hostile stream name) are shown escaped, as :func:`.output.shown` does everywhere.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import IO

import msgspec

from ..model import RecordedEvent
from .terminal import shown

__all__ = ["SIZING_ROWS", "write_table"]

#: Rows read before the column widths are fixed.
SIZING_ROWS = 100
_COLUMNS = ("pos", "recorded_at", "stream", "rev", "type", "actor", "correlation", "data")
#: Widest a name column grows to (longer names are cut with "…").
_NAME_MAX = 40
_DATA_MAX = 60  # the data column when the output is not a terminal
_GAP = "  "
#: Columns never cut (a cut number would be a wrong number): pos, recorded_at, rev.
_WHOLE = frozenset({0, 1, 3})
_POS_MIN = 8  # positions grow past the first chunk's: room for 99,999,999
_REV_MIN = 6  # and stream revisions: room for 999,999
_encoder = msgspec.json.Encoder()


def _cells(e: RecordedEvent) -> list[str]:
    return [
        str(e.position),
        e.recorded_at.isoformat(timespec="seconds").replace("+00:00", "Z"),
        shown(e.stream),
        str(e.stream_revision),
        shown(e.type),
        shown(e.actor or ""),
        shown(e.correlation_id or ""),
        shown(_encoder.encode(e.data).decode()),
    ]


def _fit(cell: str, width: int, whole: bool) -> str:
    return cell if whole or len(cell) <= width else cell[: max(width - 1, 0)] + "…"


def _widths(rows: list[list[str]], total: int | None) -> list[int]:
    widths = [len(c) for c in _COLUMNS]
    widths[0], widths[3] = _POS_MIN, _REV_MIN
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], min(len(cell), _NAME_MAX))
    fixed = sum(widths[:-1]) + len(_GAP) * (len(_COLUMNS) - 1)
    longest = max((len(r[-1]) for r in rows), default=0)
    room = _DATA_MAX if total is None else max(total - fixed, 10)
    widths[-1] = max(len(_COLUMNS[-1]), min(longest, room))
    return widths


def _line(cells: Iterable[str], widths: list[int]) -> str:
    parts = [
        _fit(c, w, i in _WHOLE).ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    ]
    return _GAP.join(parts).rstrip()


def write_table(events: Iterable[RecordedEvent], out: IO[str]) -> int:
    """Write ``events`` as a table to ``out``, streaming; returns the count."""
    it: Iterator[RecordedEvent] = iter(events)
    first = [_cells(e) for e in islice(it, SIZING_ROWS)]
    total = shutil.get_terminal_size().columns if out.isatty() else None
    widths = _widths(first, total)
    out.write(_line(_COLUMNS, widths) + "\n")
    for row in first:
        out.write(_line(row, widths) + "\n")
    n = len(first)
    for e in it:
        out.write(_line(_cells(e), widths) + "\n")
        n += 1
    return n
