"""Exporting a store to a file and importing it back, exactly (``eventvault export`` /
``eventvault import``).

An export is JSON lines: a header, every event as the store recorded it (the
``query --format jsonl`` form: ids, positions, revisions, ``recorded_at``,
hashes…), then a trailer with the count and the chain head::

    {"eventvault_export": 1, "backend": "file", "store_id": "…", "filtered": false, …}
    {"position": 1, "stream_revision": 0, "recorded_at": "…", "id": "…", …, "hash": "…"}
    …
    {"eventvault_export_end": {"events": 1000000, "head_hash": "5f1c…"}}

Import writes the events as :func:`~eventvault.copy.copy_store` does — ids, streams,
revisions, times and hashes kept, so the chain head is the source's — and checks
the whole file first: a file without its trailer (cut short), with a different
count, an event that would not pass as a new one, or a hash that does not chain
from the event before it (an edited file) is refused before anything is written.
Like a copy, an interrupted import can be re-run: it continues after the events
already imported and never stores one twice. A filtered export (a slice) is chained
afresh on import, as a filtered copy is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import IO

import msgspec

from .errors import ConflictError, CorruptionError, ValidationError
from .integrity.bridges import Bridges
from .integrity.chain import CHAIN, GENESIS, LEAF, record_hash, verify_chain
from .model import MAX_LIMIT, Import, NewEvent, Query, RecordedEvent, utcnow
from .retention import RECEIPT_TYPE
from .store import EventStore

__all__ = [
    "EXPORT_FORMAT",
    "CheckedExport",
    "ExportReport",
    "ImportReport",
    "check_export",
    "export_store",
    "import_store",
]

EXPORT_FORMAT = 1
#: Events per destination transaction on import.
IMPORT_BATCH = 5000

#: ``progress(done, total)``; total is None when it is not known cheaply.
Progress = Callable[[int, int | None], None]


class ExportHeader(msgspec.Struct, frozen=True, kw_only=True):
    eventvault_export: int
    backend: str
    store_id: str
    exported_at: datetime
    filtered: bool  # a slice: its hashes do not chain, import rechains
    contiguous: bool  # the source numbers positions 1, 2, 3… (gaps: retention's holes)
    #: The source's hash format (1: chained hashes, 2: leaf hashes; absent in exports
    #: written before format 2 existed, all of them chained).
    hash_format: int = CHAIN


class ExportEnd(msgspec.Struct, frozen=True, kw_only=True):
    events: int
    head_hash: str | None


class _Trailer(msgspec.Struct, frozen=True, kw_only=True):
    eventvault_export_end: ExportEnd


class ExportReport(msgspec.Struct, frozen=True, kw_only=True):
    events: int
    head_hash: str | None
    seconds: float


class ImportReport(msgspec.Struct, frozen=True, kw_only=True):
    imported: int  # events this run wrote
    already_stored: int  # events a previous (interrupted) run had imported
    events: int  # events in the file
    head_hash: str | None  # the file's chain head (the store's, unless rechained)
    rechained: bool
    seconds: float


_encoder = msgspec.json.Encoder()
_event_decoder = msgspec.json.Decoder(RecordedEvent)
_header_decoder = msgspec.json.Decoder(ExportHeader)
_trailer_decoder = msgspec.json.Decoder(_Trailer)


def export_store(
    store: EventStore,
    out: IO[bytes],
    query: Query | None = None,
    *,
    progress: Progress | None = None,
) -> ExportReport:
    """Write the events of ``store`` matching ``query`` (all: None) to ``out``.

    Streams page by page (bounded memory). The export holds the events up to the
    head as of the start: events appended meanwhile are left for the next one.
    """
    started = time.monotonic()
    query = query if query is not None else Query()
    if query.reverse:
        raise ValidationError("an export goes in position order; drop reverse")
    everything = msgspec.structs.replace(query, limit=Query().limit) == Query()
    head = store.head()
    before = head + 1 if query.before is None else min(query.before, head + 1)
    q = msgspec.structs.replace(query, limit=MAX_LIMIT, before=before)
    total = store.stats().events if everything else None
    header = ExportHeader(
        eventvault_export=EXPORT_FORMAT,
        backend=store.backend_name,
        store_id=store.store_id,
        exported_at=utcnow(),
        filtered=not everything,
        contiguous=store.contiguous_positions,
        hash_format=store.hash_format,
    )
    out.write(_encoder.encode(header) + b"\n")
    count = 0
    last_hash: str | None = None
    buf = bytearray()
    for event in store.iter(q):
        _encoder.encode_into(event, buf, len(buf))
        buf += b"\n"
        count += 1
        last_hash = event.hash
        if len(buf) >= 1 << 20:
            out.write(buf)
            buf.clear()
            if progress is not None:
                progress(count, total)
    out.write(buf)
    end = _Trailer(eventvault_export_end=ExportEnd(events=count, head_hash=last_hash))
    out.write(_encoder.encode(end) + b"\n")
    out.flush()
    if progress is not None:
        progress(count, total)
    return ExportReport(events=count, head_hash=last_hash, seconds=time.monotonic() - started)


def _as_new(event: RecordedEvent) -> None:
    """Raise ValidationError unless ``event`` would pass as a new event: names, texts,
    the payload's JSON (retention receipts, of reserved types, are part of an export
    and pass here: only ``append`` refuses those)."""
    NewEvent(
        type=event.type,
        data=event.data,
        stream=event.stream,
        actor=event.actor,
        correlation_id=event.correlation_id,
        causation_id=event.causation_id,
        source=event.source,
        occurred_at=event.occurred_at,
        metadata=event.metadata,
        id=event.id,
    )


class CheckedExport(msgspec.Struct, kw_only=True):
    """An export that passed :func:`check_export`, and where importing it continues."""

    header: ExportHeader
    events: int
    head_hash: str | None
    resume_line: int  # events of the file the destination holds already (a prefix)


def _lines(handle: IO[bytes], name: str) -> Iterator[tuple[int, bytes]]:
    for lineno, line in enumerate(handle, 1):
        if line.strip():
            yield lineno, line


def _header(handle: IO[bytes], name: str) -> ExportHeader:
    first = handle.readline()
    try:
        header = _header_decoder.decode(first)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise ValidationError(
            f"{name} line 1: not an eventvault export (no export header); to append "
            "events from plain JSON lines use 'eventvault append --file'"
        ) from None
    if header.eventvault_export != EXPORT_FORMAT:
        raise ValidationError(
            f"{name}: export format {header.eventvault_export} is not supported by this "
            f"version of eventvault (it reads format {EXPORT_FORMAT})"
        )
    return header


def check_export(handle: IO[bytes], name: str, store: EventStore | None) -> CheckedExport:
    """Check a whole export against ``store`` (None: a store yet to be created) before
    anything is written; raise, naming the line, at the first problem."""
    header = _header(handle, name)
    newest = store.read(Query(reverse=True, limit=1)).events if store is not None else []
    oldest = store.read(Query(limit=1)).events if store is not None else []
    store_format = store.hash_format if store is not None else None
    resume_line = 0
    count = 0
    prev: RecordedEvent | None = None
    trailer: ExportEnd | None = None
    for lineno, line in _lines(handle, name):
        where = f"{name} line {lineno + 1}"  # (the header was line 1)
        if trailer is not None:
            raise ValidationError(f"{where}: data after the export's end line")
        if line.startswith(b'{"eventvault_export_end"'):
            try:
                trailer = _trailer_decoder.decode(line).eventvault_export_end
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise ValidationError(f"{where}: a damaged end line: {exc}") from None
            continue
        try:
            event = _event_decoder.decode(line)
            _as_new(event)
        except (msgspec.DecodeError, msgspec.ValidationError, ValidationError) as exc:
            raise ValidationError(f"{where}: {exc}") from None
        if header.hash_format == LEAF:
            if record_hash(GENESIS, event, LEAF).hex() != event.hash:
                raise CorruptionError(
                    f"{where}: event {event.id} (source position {event.position}) does not "
                    "match its hash: the export was altered or damaged"
                )
        elif (
            not header.filtered
            and header.contiguous
            and prev is not None
            and event.position == prev.position + 1
            and record_hash(bytes.fromhex(prev.hash), event).hex() != event.hash
        ):
            raise CorruptionError(
                f"{where}: event {event.id} (source position {event.position}) does not "
                "chain to the event before it: the export was altered or damaged"
            )
        count += 1
        if count == 1 and oldest and oldest[0].id != event.id:
            raise ConflictError(
                f"the store already holds events, and its oldest ({oldest[0].id}) is not "
                f"the first event of {name}: import into an empty store"
            )
        if newest and event.id == newest[0].id:
            # (hashes of another format are other numbers; the id and place decide)
            same_format = header.hash_format == store_format
            if not header.filtered and same_format and event.hash != newest[0].hash:
                raise ConflictError(
                    f"{where}: event {event.id} is in the store with another hash: the "
                    "store is not an (interrupted) import of this file"
                )
            resume_line = count
        prev = event
    if trailer is None:
        raise ValidationError(
            f"{name}: the export has no end line: it was cut short (interrupted or disk "
            f"full while exporting); {count:,} events were read. Export again."
        )
    last_hash = prev.hash if prev is not None else None
    if trailer.events != count or trailer.head_hash != last_hash:
        raise ValidationError(
            f"{name}: the end line says {trailer.events:,} events ending in "
            f"{trailer.head_hash}, the file holds {count:,} ending in {last_hash}"
        )
    if newest and not resume_line:
        raise ConflictError(
            f"the store already holds events, and its newest ({newest[0].id}) is not in "
            f"{name}: import into an empty store"
        )
    if not header.filtered and (
        header.hash_format == LEAF or store_format is None or store_format == LEAF
    ):
        _verify_export(handle, name, header)
    return CheckedExport(
        header=header, events=count, head_hash=trailer.head_hash, resume_line=resume_line
    )


def _verify_export(handle: IO[bytes], name: str, header: ExportHeader) -> None:
    """Verify a whole (unfiltered) export as ``verify`` would its store: every hash
    in the export's format, and every gap in its positions against its own retention
    receipts. For an export that an import re-hashes (into a leaf-hash store) or of
    leaf hashes (each vouching for its event alone), nothing else would see a line
    deleted, or (in the chain format) one edited. What it cannot see without the
    source's Merkle tree: a leaf-hash event edited together with its own hash — an
    audit bundle (``export --bundle``) carries the proofs for that."""
    marker = b'"' + RECEIPT_TYPE.encode() + b'"'  # (a cheap filter; the type decides)
    maybe = (_event_decoder.decode(line) for line in _export_lines(handle, name) if marker in line)
    receipts = [ev for ev in maybe if ev.type == RECEIPT_TYPE]
    bridges = Bridges(header.store_id).add_all(receipts)
    result = verify_chain(
        (_event_decoder.decode(line) for line in _export_lines(handle, name)),
        bridges=bridges.walker(),
        receipts=bridges.receipts,
        contiguous=header.contiguous,
        hashes=header.hash_format,
    )
    if not result.ok:
        raise CorruptionError(
            f"{name}: the export does not verify at source position "
            f"{result.first_bad_position}: {result.reason} (the export was altered or "
            "damaged)"
        )


def _export_lines(handle: IO[bytes], name: str) -> Iterator[bytes]:
    """The event lines of an export (checked already), read again from the start."""
    handle.seek(0)
    _header(handle, name)
    for _, line in _lines(handle, name):
        if not line.startswith(b'{"eventvault_export_end"'):
            yield line


def import_store(
    store: EventStore,
    handle: IO[bytes],
    *,
    name: str = "input",
    checked: CheckedExport | None = None,
    batch: int = IMPORT_BATCH,
    progress: Progress | None = None,
) -> ImportReport:
    """Import an export (see the module docstring) into ``store``; ``handle`` must be
    seekable (it is read twice: checked whole, then written). ``checked``: what
    :func:`check_export` found, if the caller checked already."""
    started = time.monotonic()
    if checked is None:
        checked = check_export(handle, name, store)
    handle.seek(0)
    _header(handle, name)
    # (a store of another hash format computes every hash its own way)
    rechain = checked.header.filtered or checked.header.hash_format != store.hash_format
    imported = 0
    done = 0
    page: list[RecordedEvent] = []

    def flush() -> None:
        nonlocal imported
        store.import_records(Import(page, rechain=rechain))
        imported += len(page)
        if progress is not None:
            progress(done, checked.events)
        page.clear()

    for _lineno, line in _lines(handle, name):
        if line.startswith(b'{"eventvault_export_end"'):
            break
        done += 1
        if done <= checked.resume_line:
            continue  # imported by an earlier, interrupted run
        page.append(_event_decoder.decode(line))
        if len(page) >= batch:
            flush()
    if page:
        flush()
    if progress is not None:
        progress(done, checked.events)
    return ImportReport(
        imported=imported,
        already_stored=checked.resume_line,
        events=checked.events,
        head_hash=checked.head_hash,
        rechained=rechain,
        seconds=time.monotonic() - started,
    )
