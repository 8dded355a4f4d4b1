"""``eventvault append``: one event from options, or (``--file``) JSON lines into the
store, checked whole, re-runnable.

Two passes over the input (stdin is first spooled to a temporary file, so memory
stays bounded and stdin gets the same guarantees as a file):

1. **Check every line** before anything is written: JSON, the event's fields, the
   size limit, reserved types, an id twice in the input, an id the store already
   holds with other content. Every error names the line; the store is untouched.
2. **Write** in atomic batches.

**Re-running is safe.** A line without an ``id`` gets one derived from the input's
bytes (its SHA-256) and the line number, so running the same command on the same
file again — after Ctrl-C, ``kill -9``, a crash — finds the lines already stored
(an id stored with the same content is an idempotent retry) and stores each line
exactly once. Other bytes mean other events: an edited or longer file is a new
input, and identical bytes imported on purpose a second time are reported as
"already stored" (give each line an ``id`` to control identity yourself).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import click
import msgspec

from .. import errors
from ..integrity.canonical import canonical_event_bytes_checked
from ..model import ExpectedRevision, NewEvent, parse_expected_revision
from ..registry import open_store
from ..sequencer import same_content
from ..store import RESERVED_TYPE_PREFIX, EventStore
from ..strict import explain_struct_error
from .common import EXIT_INTERRUPTED, Ctx, FileArg, _handle_errors, _time, pass_ctx
from .output import write_events

__all__ = ["append", "append_file", "derived_id", "seekable"]

#: Stands in for the store's own stamp when sizing an event before it is stamped:
#: the longest time text (microseconds shown) and a nine-digit stream revision.
_SIZING_TIME = datetime(2000, 1, 1, 0, 0, 0, 1, UTC)
_SIZING_REVISION = 999_999_999
_ID_DOMAIN = b"eventvault append --file v1\0"


def derived_id(input_digest: bytes, lineno: int) -> UUID:
    """The id of line ``lineno`` of an input whose SHA-256 is ``input_digest``, for a
    line that carries none: the same bytes always give the same ids (a UUIDv8)."""
    raw = bytearray(hashlib.sha256(_ID_DOMAIN + input_digest + lineno.to_bytes(8)).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x80  # version 8: custom
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 9562 variant
    return UUID(bytes=bytes(raw))


@dataclass(slots=True)
class _Checked:
    lines: int  # events (non-blank lines)
    digest: bytes  # SHA-256 of the whole input


def _parse(line: bytes, where: str, id_for_line: UUID | None) -> tuple[NewEvent, bool]:
    """The event on ``line`` (with ``id_for_line`` if it gives no id), and whether the
    line gives its id."""
    try:
        obj = msgspec.json.decode(line)
        if not isinstance(obj, dict):
            raise errors.ValidationError("each line must be a JSON object")
        has_id = "id" in obj
        if not has_id and id_for_line is not None:
            obj["id"] = str(id_for_line)  # (before building: occurred_at stays defaulted)
        return msgspec.convert(obj, NewEvent, strict=False), has_id
    except msgspec.ValidationError as exc:  # an unknown field gets the known names
        raise errors.ValidationError(f"{where}: {explain_struct_error(exc, NewEvent)}") from None
    except (msgspec.DecodeError, errors.ValidationError) as exc:
        raise errors.ValidationError(f"{where}: {exc}") from None


def _events(
    handle: IO[bytes], name: str, digest: Any = None, derive_from: bytes | None = None
) -> Iterator[tuple[int, NewEvent, bool]]:
    """(line number, event, whether the line gives the id) per non-blank line.

    Every line (blank ones too: ids follow the bytes) goes into ``digest`` when
    given; with ``derive_from`` (the input's digest) lines without an id get theirs.
    """
    for lineno, line in enumerate(handle, 1):
        if digest is not None:
            digest.update(line)
        if line.strip():
            derived = derived_id(derive_from, lineno) if derive_from is not None else None
            event, has_id = _parse(line, f"{name} line {lineno}", derived)
            yield lineno, event, has_id


def _check_size(event: NewEvent, limit: int, where: str) -> None:
    cdata, cmeta = event.__dict__["canonical"]
    size = len(
        canonical_event_bytes_checked(
            event.id,
            event.type,
            event.stream,
            _SIZING_REVISION,
            event.actor,
            event.correlation_id,
            event.causation_id,
            event.source,
            event.occurred_at,
            _SIZING_TIME,
            cdata,
            cmeta,
        )
    )
    if size > limit:
        raise errors.ValidationError(
            f"{where}: the event ({event.type}) is about {size:,} bytes; the limit is "
            f"{limit:,} (store.max_event_bytes)"
        )


def _check_all(
    handle: IO[bytes], name: str, store: EventStore | None, max_event_bytes: int
) -> _Checked:
    """Pass 1: raise, naming the line, at the first line that cannot be stored
    (``store``: None when it does not exist yet, so it holds no id)."""
    digest = hashlib.sha256()
    explicit: dict[int, int] = {}  # id (as int) -> line, for ids the input gives
    lines = 0
    for lineno, event, has_id in _events(handle, name, digest):
        lines += 1
        where = f"{name} line {lineno}"
        if event.type.startswith(RESERVED_TYPE_PREFIX):
            raise errors.ValidationError(
                f"{where}: event type {event.type!r} is reserved: types starting with "
                f"{RESERVED_TYPE_PREFIX!r} are written by eventvault itself"
            )
        _check_size(event, max_event_bytes, where)
        if not has_id:
            continue  # (derived ids are unique per line and follow the content)
        first = explicit.setdefault(event.id.int, lineno)
        if first != lineno:
            raise errors.ValidationError(
                f"{where}: event id {event.id} appears twice (also on line {first})"
            )
        stored = store.get(event.id) if store is not None else None
        if stored is not None and not same_content(event, stored):
            conflict = errors.DuplicateEventError(event.id, stored.position)
            conflict.args = (f"{where}: {conflict}",)
            raise conflict
    if lines == 0:
        raise errors.ValidationError(f"{name}: no events found")
    return _Checked(lines=lines, digest=digest.digest())


@contextmanager
def seekable(handle: IO[bytes]) -> Iterator[IO[bytes]]:
    """``handle`` itself if it is a regular file, else its bytes spooled to disk."""
    name = getattr(handle, "name", "-")
    if name not in ("-", "<stdin>") and handle.seekable():
        yield handle
        return
    with tempfile.TemporaryFile(prefix="eventvault-append-") as spool:
        shutil.copyfileobj(handle, spool, 1 << 20)
        spool.seek(0)
        yield spool


def append_file(
    ctx: Ctx, /, handle: IO[bytes], batch_size: int, expected: int | ExpectedRevision | None
) -> None:
    """The ``append --file`` command (see the module docstring)."""
    raw_name = getattr(handle, "name", "-")
    name = "<stdin>" if raw_name in ("-", "<stdin>") else str(raw_name)
    progress = _Progress()
    cfg = ctx.config()
    try:
        with seekable(handle) as source, ExitStack() as stack:
            try:
                existing: EventStore | None = stack.enter_context(open_store(cfg, create=False))
            except errors.StoreNotFoundError:
                existing = None  # created only once the input has passed its checks
            checked = _check_all(source, name, existing, cfg.store.max_event_bytes)
            store = (
                existing
                if existing is not None
                else stack.enter_context(open_store(cfg, create=True))
            )
            if expected is not None and checked.lines > batch_size:
                raise errors.ValidationError(
                    "--expected-revision with --file needs every event in one batch "
                    f"(got {checked.lines} events, --batch-size {batch_size})"
                )
            progress.total = checked.lines
            source.seek(0)
            try:
                _write_all(ctx, store, source, name, checked, batch_size, expected, progress)
            except KeyboardInterrupt:
                progress.settle(store)
                raise
    except KeyboardInterrupt:
        click.echo(f"interrupted: {progress.how_far(name)}", err=True)
        raise SystemExit(EXIT_INTERRUPTED) from None
    skipped = progress.done - progress.stored
    click.echo(
        msgspec.json.encode(
            {
                "appended": progress.stored,
                "already_stored": skipped,
                "lines": progress.total,
                "first_position": progress.first_position,
                "last_position": progress.last_position,
            }
        ).decode()
    )
    span = (
        f" (positions {progress.first_position}–{progress.last_position})"
        if progress.stored
        else ""
    )
    again = f"; {skipped:,} were already stored (a re-run of this input)" if skipped else ""
    ctx.say(f"appended {progress.stored:,} events{span}{again}")


@dataclass(slots=True)
class _Progress:
    """How far the writing pass got (for the summary and the interruption message)."""

    total: int | None = None  # events in the input (None: still checking it)
    done: int = 0  # events of the input known to be stored (by this run or before)
    stored: int = 0  # of these, stored by this run
    last_line: int = 0  # the input's line up to which everything is stored
    first_position: int | None = None
    last_position: int | None = None
    inflight: list[NewEvent] | None = None  # the batch being written
    inflight_last_line: int = 0

    def settle(self, store: EventStore) -> None:
        """After an interruption: whether the batch in flight made it (batches are
        atomic, so its last event tells)."""
        batch = self.inflight
        if batch and store.get(batch[-1].id) is not None:
            self.done += len(batch)
            self.last_line = self.inflight_last_line
        self.inflight = None

    def how_far(self, name: str) -> str:
        if self.total is None:
            return f"nothing was stored (still checking {name})"
        if not self.done:
            return f"nothing of {name} ({self.total:,} events) was stored"
        return (
            f"lines 1–{self.last_line:,} of {name} ({self.done:,} of {self.total:,} events) "
            "are stored; re-run the same command to store the rest (each line is stored "
            "exactly once)"
        )


def _write_all(
    ctx: Ctx,
    store: EventStore,
    source: IO[bytes],
    name: str,
    checked: _Checked,
    batch_size: int,
    expected: int | ExpectedRevision | None,
    progress: _Progress,
) -> None:
    """Pass 2: the events in atomic batches, with ids derived where lines give none."""
    with ctx.progress("appending", checked.lines) as advance:
        batch: list[NewEvent] = []
        progress.inflight = batch
        events = _events(source, name, derive_from=checked.digest)
        while True:
            item = next(events, None)
            if item is not None:
                lineno, event, _ = item
                batch.append(event)
                progress.inflight_last_line = lineno
            if batch and (item is None or len(batch) >= batch_size):
                new, lo, hi = _write(store, batch, expected)
                progress.done += len(batch)
                progress.stored += new
                progress.last_line = progress.inflight_last_line
                if lo is not None:
                    progress.first_position = progress.first_position or lo
                    progress.last_position = hi
                advance(progress.done)
                batch = []
                progress.inflight = batch
            if item is None:
                return


def _write(
    store: EventStore, batch: list[NewEvent], expected: int | ExpectedRevision | None
) -> tuple[int, int | None, int | None]:
    """Append one batch; return how many events it stored and their position range.

    Events already stored come back with positions up to the head before the call;
    the ones this call stored lie above it (the batch is one atomic commit)."""
    before = store.head()
    result = store.append(batch, expected_revision=expected)
    new = [e.position for e in result.events if e.position > before]
    return len(new), (min(new) if new else None), (max(new) if new else None)


def _json_object(value: str | None, name: str) -> dict[str, Any]:
    """A JSON object from an option: the text itself, ``@PATH`` (a file's content) or
    ``-`` (stdin) — large payloads do not fit in an argument list."""
    if value is None:
        return {}
    raw: str | bytes = value
    if value == "-":
        raw = sys.stdin.buffer.read()
    elif value.startswith("@"):
        try:
            raw = Path(value[1:]).read_bytes()
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or exc
            msg = f"cannot read {value[1:]!r}: {reason}"
            raise click.BadParameter(msg, param_hint=name) from None
    try:
        parsed = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=name) from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("must be a JSON object, e.g. '{\"k\": 1}'", param_hint=name)
    return parsed


def _expected(value: str | None) -> int | ExpectedRevision | None:
    if value is None:
        return None
    try:
        return parse_expected_revision(value)
    except errors.ValidationError as exc:
        raise click.BadParameter(str(exc), param_hint="--expected-revision") from None


@click.command("append")
@click.option("--type", "-t", "type_", metavar="NAME", help="Event type, e.g. build.started.")
@click.option("--stream", "-s", default="default", show_default=True)
@click.option("--actor", "-a", default=None)
@click.option("--correlation-id", default=None)
@click.option("--causation-id", default=None)
@click.option("--source", default=None)
@click.option(
    "--data",
    "-d",
    default=None,
    metavar="JSON",
    help="Payload, a JSON object; @FILE reads it from a file, - from stdin.",
)
@click.option(
    "--metadata",
    default=None,
    metavar="JSON",
    help="Metadata, a JSON object (or @FILE, or -).",
)
@click.option("--id", "event_id", default=None, help="Event id (UUID); re-sending it is safe.")
@click.option("--occurred-at", default=None, metavar="TIME", help="ISO-8601 or e.g. 5m (ago).")
@click.option(
    "--expected-revision",
    default=None,
    metavar="REV",
    help="Revision the stream must be at: a number, no_stream, stream_exists, any.",
)
@click.option(
    "--file",
    "file_",
    type=FileArg("rb"),
    default=None,
    help="Append many events from a JSON-lines file ('-' for stdin).",
)
@click.option(
    "-f",
    "file_short",
    type=FileArg("rb"),
    default=None,
    hidden=True,  # (deprecated: -f means --follow in tail and copy)
)
@click.option(
    "--batch-size",
    default=1000,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Events per atomic batch with --file.",
)
@pass_ctx
@_handle_errors
def append(
    ctx: Ctx,
    /,
    type_: str | None,
    stream: str,
    actor: str | None,
    correlation_id: str | None,
    causation_id: str | None,
    source: str | None,
    data: str | None,
    metadata: str | None,
    event_id: str | None,
    occurred_at: str | None,
    expected_revision: str | None,
    file_: IO[bytes] | None,
    file_short: IO[bytes] | None,
    batch_size: int,
) -> None:
    """Append one event from options, or many from JSON lines.

    \b
    Examples:
      eventvault append --type build.started --actor ci --correlation-id run-1 \\
          --data '{"sha": "abc"}'
      eventvault append --file events.jsonl      # one JSON object per line
      cat events.jsonl | eventvault append --file -

    Every line of the input (a file, or stdin) is checked before anything is
    written, so a bad line leaves the store untouched; errors name the line. A line
    without an "id" gets one derived from the input's bytes and the line number, so
    re-running the same command after an interruption stores each line exactly
    once. Prints the stored event (one) or a JSON summary (--file) on stdout.
    """
    expected = _expected(expected_revision)
    if file_short is not None:
        ctx.say("warning: 'append -f' is deprecated, write --file (-f means --follow elsewhere)")
        file_ = file_ if file_ is not None else file_short
    if data == "-" and metadata == "-":
        raise click.UsageError("only one of --data and --metadata can read stdin")
    if file_ is not None:
        if type_ is not None or data is not None:
            raise click.UsageError("use either --file or --type/--data, not both")
        append_file(ctx, file_, batch_size, expected)
        return
    if type_ is None:
        raise click.UsageError("missing --type (or --file)")
    kwargs: dict[str, Any] = {}
    if event_id is not None:
        kwargs["id"] = event_id
    if occurred_at is not None:
        kwargs["occurred_at"] = _time(occurred_at, "--occurred-at")
    event = NewEvent(
        type=type_,
        stream=stream,
        actor=actor,
        correlation_id=correlation_id,
        causation_id=causation_id,
        source=source,
        data=_json_object(data, "--data"),
        metadata=_json_object(metadata, "--metadata"),
        **kwargs,
    )
    with ctx.store(create=True) as store:
        result = store.append(event, expected_revision=expected)
    write_events(result.events, "jsonl")
