"""The on-disk line format of a segment.

One JSON object per line: a :class:`~eventvault.RecordedEvent` as msgspec encodes
it. The last line of every appended batch carries the *commit marker*, and since
format 2 the batch's checksum just before it::

    {"position":7,...,"hash":"9f..."}
    {"position":8,...,"hash":"41...","k":"1c291ca3","c":1}

``k`` is the CRC32C (hex) of the batch's bytes from its first byte up to the
``,"k":`` of its last line. Lines written before checksums (format 1) end in
``,"c":1}`` alone; they stay readable and are simply not checksummed.

A batch is committed once its marker line is complete; bytes after the last
marker belong to a batch being written (another process's write in progress, or a
writer that died) and are never indexed or returned. A batch whose checksum fails
*and* that holds NUL bytes — which JSON text never does — is a *torn* write: the
marker reached the disk but pages before it did not (a write-back that reordered
pages, then a crash). At the end of the active segment such a batch, and whatever
follows it, was never acknowledged under ``fsync = "always"``: ``fdatasync``
returns only once every earlier byte of the file is durable, so no later batch
can have been acknowledged either. Recovery cuts it and reports it. Anywhere
else, and for any other damage, the checksum failing is a
:class:`~eventvault.CorruptionError` naming the file and position.

Reads check the checksum of every batch they return records from (CRC32C runs at
memory speed); ``verify`` recomputes the hash chain on top. Index rebuilds parse
the records and check the checksums; they do not recompute the chain hashes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from itertools import accumulate
from typing import NoReturn
from uuid import UUID

import crc32c
import msgspec

from ...errors import CorruptionError
from ...model import RecordedEvent

__all__ = [
    "COMMIT",
    "DamagedRecordError",
    "LineHead",
    "Scan",
    "batch_ok",
    "decode_record",
    "encode_batch",
    "scan_committed",
    "seal_lines",
    "unsealed",
]

log = logging.getLogger("eventvault.file")

COMMIT = b',"c":1}\n'
_CRC_KEY = b',"k":"'
# ,"k":"xxxxxxxx","c":1}\n — what follows the checksummed bytes of a batch
_SEAL = len(_CRC_KEY) + 8 + 1 + len(COMMIT)
_encoder = msgspec.json.Encoder()
_record_decoder = msgspec.json.Decoder(RecordedEvent)


class DamagedRecordError(CorruptionError):
    """A stored record fails its checks: ``position`` is the first one found bad,
    ``last`` the last position of the batch whose checksum failed."""

    def __init__(self, message: str, position: int, last: int) -> None:
        super().__init__(message)
        self.position = position
        self.last = last


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


def seal_lines(plain: bytes) -> bytes:
    """Records (``{...}\\n`` lines) made one batch: checksum and marker on the last."""
    body = plain[:-2]  # '}\n' -> the checksummed bytes
    return b"%s%s%08x%s" % (body, _CRC_KEY, crc32c.crc32c(body), b'"' + COMMIT)


def unsealed(line: bytes) -> bytes:
    """A batch's last line without its marker (and checksum): a plain record line."""
    if not line.endswith(COMMIT):
        return line
    if line[-_SEAL : -_SEAL + len(_CRC_KEY)] == _CRC_KEY:
        return line[:-_SEAL] + b"}\n"
    return line[: -len(COMMIT)] + b"}\n"


def encode_batch(records: Sequence[RecordedEvent]) -> tuple[bytes, list[int]]:
    """The bytes of one batch (checksum and commit marker on its last line) and each
    record's offset."""
    plain = _encoder.encode_lines(records)  # one C call; JSON text never holds a raw newline
    buf = seal_lines(plain)
    lines = plain.split(b"\n")
    lines.pop()
    offsets = list(accumulate((len(line) + 1 for line in lines[:-1]), initial=0))
    return buf, offsets


def batch_ok(buf: bytes | memoryview, start: int, end: int) -> bool:
    """Whether the batch at ``buf[start:end]`` (ending in its marker) passes its
    checksum; a format-1 batch has none and passes."""
    key = end - _SEAL
    if key < start or buf[key : key + len(_CRC_KEY)] != _CRC_KEY:
        return True
    try:
        want = int(bytes(buf[key + len(_CRC_KEY) : key + len(_CRC_KEY) + 8]), 16)
    except ValueError:
        return False
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    return bool(crc32c.crc32c(view[start:key]) == want)


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


class Scan(msgspec.Struct, gc=False):
    """What :func:`scan_committed` found."""

    heads: list[tuple[int, LineHead]]  # (file offset, head) per committed record
    batch_ends: list[int]  # for each batch: how many of ``heads`` end with it
    end: int  # file offset just past the last committed batch (before a torn one)
    torn: bool = False  # a torn batch starts at ``end`` (see the module docstring)


def scan_committed(
    buf: bytes, base: int, next_position: int, where: str, *, gaps: bool = False
) -> Scan:
    """Parse the committed batches at the start of ``buf`` (file offset ``base``).

    A record that fails to decode, or whose position is out of sequence, *before*
    the last marker is corruption (raised) — unless it lies in a torn batch, where
    the scan ends (``torn``; the caller cuts it or waits for the writer to). After
    the last marker it is an uncommitted tail (left to the caller to ignore or cut).
    ``gaps``: a sealed segment — positions only need to increase (retention may
    have compacted it), and a torn batch is corruption too (it is not a tail).
    """
    ends: list[int] = []
    at = 0
    torn = False
    view = memoryview(buf)
    while True:
        nxt = buf.find(COMMIT, at)
        if nxt < 0:
            break
        nxt += len(COMMIT)
        ok = batch_ok(view, at, nxt)
        if not gaps and buf.find(b"\0", at, nxt) >= 0:
            torn = True  # (format 1 batches have no checksum: the NUL alone tells)
            break
        if not ok:
            log.error(
                "%s: the batch at byte %d fails its checksum; its records will be refused",
                where,
                base + at,
            )
        ends.append(nxt)
        at = nxt
    if not ends:
        return Scan([], [], base, torn)
    committed = buf[: ends[-1]]
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
    # Batch ends as record counts: a batch ends after the line ending at ``end``.
    counts: list[int] = []
    k = 0
    for end in ends:
        while offsets[k + 1] - base < end:
            k += 1
        k += 1
        counts.append(k)
    return Scan(list(zip(offsets, heads, strict=False)), counts, base + ends[-1], torn)


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
