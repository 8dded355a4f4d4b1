"""The on-disk line format of a segment.

One JSON object per line: a :class:`~eventvault.RecordedEvent` as msgspec encodes
it. The last line of every appended batch ends in ``,"c":1}`` — the *commit
marker*. A batch is committed once its marker line is complete; bytes after the
last marker belong to a batch that was being written (another process's write in
progress, or a writer that crashed) and are never indexed or returned. Recovery
cuts them — so a batch is all-or-nothing even across ``kill -9``.

The hash field doubles as the record checksum: ``verify`` and index rebuilds
recompute it; a record that does not even decode is reported as corruption.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import accumulate
from typing import NoReturn
from uuid import UUID

import msgspec

from ...errors import CorruptionError
from ...model import RecordedEvent

__all__ = ["COMMIT", "LineHead", "decode_record", "encode_batch", "scan_committed"]

COMMIT = b',"c":1}\n'
_encoder = msgspec.json.Encoder()
_record_decoder = msgspec.json.Decoder(RecordedEvent)


class LineHead(msgspec.Struct, gc=False):
    """The fields the index needs; msgspec skips the rest of the line cheaply."""

    position: int
    stream_revision: int
    recorded_at: datetime
    id: UUID
    type: str
    stream: str
    hash: str
    actor: str | None = None
    correlation_id: str | None = None


_head_decoder = msgspec.json.Decoder(LineHead)


def encode_batch(records: Sequence[RecordedEvent]) -> tuple[bytes, list[int]]:
    """The bytes of one batch (commit marker on its last line) and each record's offset."""
    buf = _encoder.encode_lines(records)  # one C call; JSON text never holds a raw newline
    buf = buf[:-2] + COMMIT  # '}\n' -> ',"c":1}\n'
    lines = buf.split(b"\n")
    lines.pop()
    offsets = list(accumulate((len(line) + 1 for line in lines[:-1]), initial=0))
    return buf, offsets


def decode_record(line: bytes | memoryview, where: str) -> RecordedEvent:
    try:
        return _record_decoder.decode(line)
    except msgspec.DecodeError as exc:
        raise CorruptionError(f"{where}: record does not decode ({exc})") from None


def decode_run(
    buf: bytes, positions: Sequence[int], lo: int, count: int, where: str
) -> list[RecordedEvent]:
    """Decode ``count`` consecutive records (one C call for the whole run), checking
    each sits at the position the index gives it (``positions[lo:lo + count]``)."""
    try:
        run = _record_decoder.decode_lines(buf)
    except msgspec.DecodeError:
        run = None
    if run is None or len(run) != count:
        # Find the culprit, to name it exactly.
        lines = buf.split(b"\n")[:count]
        for k, line in enumerate(lines):
            decode_record(line, f"{where} position {positions[lo + k]}")
        raise CorruptionError(f"{where}: expected {count} records from position {positions[lo]}")
    k = lo
    for rec in run:  # (a plain loop: most runs are one record long)
        if rec.position != positions[k]:
            raise CorruptionError(
                f"{where}: found position {rec.position} where {positions[k]} belongs"
            )
        k += 1
    return run


def scan_committed(
    buf: bytes, base: int, next_position: int, where: str, *, gaps: bool = False
) -> tuple[list[tuple[int, LineHead]], int]:
    """Parse the committed batches at the start of ``buf`` (file offset ``base``).

    Returns ``(offset, head)`` per record and the file offset just past the last
    commit marker. A record that fails to decode, or whose position is out of
    sequence, *before* the last marker is corruption (raised); after it, it is an
    uncommitted tail (left to the caller to ignore or cut). ``gaps``: positions
    only need to increase (a sealed segment retention compacted).
    """
    end = buf.rfind(COMMIT)
    if end < 0:
        return [], base
    end += len(COMMIT)
    committed = buf[:end]
    try:
        heads = _head_decoder.decode_lines(committed)  # one C call for all lines
    except msgspec.DecodeError:
        heads = None
    lines = committed.split(b"\n")
    lines.pop()  # the empty string after the final newline
    if heads is None or len(heads) != len(lines):
        _raise_first_bad(committed, base, next_position, where)
    offsets = list(accumulate((len(line) + 1 for line in lines), initial=base))
    expect = next_position
    for head, offset in zip(heads, offsets, strict=False):
        if head.position != expect and not (gaps and head.position > expect):
            raise CorruptionError(
                f"{where}: position {head.position} at byte {offset}, expected {expect}"
            )
        expect = head.position + 1
    return list(zip(offsets, heads, strict=False)), base + end


def _raise_first_bad(buf: bytes, base: int, next_position: int, where: str) -> NoReturn:
    """Find the line that does not decode, and say exactly where it is."""
    pos = 0
    expect = next_position
    while pos < len(buf):
        nl = buf.find(b"\n", pos)
        line = buf[pos : nl + 1]
        try:
            _head_decoder.decode(line)
        except msgspec.DecodeError as exc:
            raise CorruptionError(
                f"{where}: bad record at byte {base + pos} (after position {expect - 1}): {exc}"
            ) from None
        expect += 1
        pos = nl + 1
    raise CorruptionError(f"{where}: blank or malformed line after position {expect - 1}")
