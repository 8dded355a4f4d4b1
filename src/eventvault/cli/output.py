"""Writing events to stdout as table, JSON, JSON lines, CSV or one-line text."""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any

import msgspec

from ..model import RecordedEvent
from .terminal import shown

__all__ = ["FORMATS", "iso_seconds", "shown", "write_events"]

FORMATS = ("table", "json", "jsonl", "csv", "text")
CSV_COLUMNS = (
    "position", "recorded_at", "stream", "stream_revision", "type", "actor",
    "correlation_id", "causation_id", "source", "occurred_at", "id", "hash", "data", "metadata",
)  # fmt: skip
_encoder = msgspec.json.Encoder()


def _csv_rows(events: Iterable[RecordedEvent]) -> Iterator[list[Any]]:
    for e in events:
        d = e.to_dict()
        yield [
            _encoder.encode(d[c]).decode() if c in ("data", "metadata") else d[c]
            for c in CSV_COLUMNS
        ]


def _text(e: RecordedEvent) -> str:
    who = f" {shown(e.actor)}" if e.actor else ""
    corr = f" [{shown(e.correlation_id)}]" if e.correlation_id else ""
    data = _encoder.encode(e.data).decode()
    if len(data) > 120:
        data = data[:117] + "..."
    stamp = e.recorded_at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    where = f"{shown(e.stream)}#{e.stream_revision}"
    return f"{e.position:>8} {stamp} {where} {shown(e.type)}{who}{corr} {shown(data)}"


def iso_seconds(value: Any) -> str:
    """A time to the second, ``Z`` for UTC (``-`` for none): the stats and retention
    tables."""
    return "-" if value is None else value.isoformat(timespec="seconds").replace("+00:00", "Z")


def write_events(events: Iterable[RecordedEvent], fmt: str, out: IO[str] | None = None) -> int:
    """Write ``events`` in ``fmt``, streaming where the format allows; returns the count."""
    out = out if out is not None else sys.stdout
    n = 0
    if fmt == "jsonl":
        for e in events:
            out.write(_encoder.encode(e).decode())
            out.write("\n")
            n += 1
    elif fmt == "json":
        out.write("[")
        for e in events:
            out.write(",\n " if n else "\n ")
            out.write(_encoder.encode(e).decode())
            n += 1
        out.write("\n]\n" if n else "]\n")
    elif fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        for row in _csv_rows(events):
            writer.writerow(row)
            n += 1
    elif fmt == "text":
        for e in events:
            out.write(_text(e) + "\n")
            n += 1
    else:  # table: fixed-width columns, streamed (see table.py)
        from .table import write_table

        n = write_table(events, out)
    out.flush()
    return n
