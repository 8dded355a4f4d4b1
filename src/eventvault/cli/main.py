"""The ``eventvault`` command line.

Data goes to stdout, messages and progress bars to stderr. Exit codes:

====  =========================================================
0     success
1     unexpected internal error (set EVENTVAULT_DEBUG=1 for a traceback)
2     bad input: usage, an invalid event (an unknown field too), query, cursor, time
      or number
3     configuration error
4     conflict: wrong expected revision, or an id reused with other content
5     store unavailable: I/O error, disk full, server unreachable, a write to a
      read-only store
6     integrity: verify found a broken chain, or stored data is corrupt
7     no store where the configuration points (reading commands never create one)
130   interrupted (Ctrl-C / SIGINT)
====  =========================================================
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import click
import msgspec

from .. import errors
from ..backends.file.config import FileConfig
from ..backends.postgres.config import PostgresConfig
from ..config import DEFAULT_FILE_NAME
from ..model import (
    MAX_LIMIT,
    ExpectedRevision,
    NewEvent,
    RecordedEvent,
    parse_expected_revision,
)
from ..registry import backend_names, open_store
from ..spi import require_retaining
from ..store import EventStore
from .common import (
    EXIT_INTEGRITY,
    EXIT_INTERNAL,
    Ctx,
    FileArg,
    PathArg,
    _handle_errors,
    _query,
    _time,
    pass_ctx,
    query_options,
    read_only_option,
)
from .output import FORMATS, shown, write_events


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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "-c",
    "config",
    metavar="PATH",
    envvar=None,
    help="Config file (default: $EVENTVAULT_CONFIG, ./eventvault.toml, built-in).",
)
@click.option(
    "--backend",
    type=click.Choice(backend_names()),
    default=None,
    help="Override store.backend from the configuration.",
)
@click.option(
    "--url",
    metavar="URL",
    default=None,
    help="A server to use (`eventvault serve`): the http backend; token from EVENTVAULT_TOKEN.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or messages on stderr.")
@click.version_option(package_name="eventvault")
@click.pass_context
def cli(
    ctx: click.Context, config: str | None, backend: str | None, url: str | None, quiet: bool
) -> None:
    """eventvault: an append-only, verifiable event store.

    The global options (--config, --backend, --url, -q) may also follow the command:
    'eventvault verify --config prod.toml'.

    \b
    Zero configuration uses the file backend in ./eventvault-data:
      eventvault append --type build.started --actor ci --data '{"sha": "abc"}'
      eventvault query --type 'build.*' --since 2h --format json
      eventvault verify

    \b
    Exit codes: 0 ok, 1 internal error, 2 bad input, 3 configuration,
    4 conflict, 5 store unavailable, 6 integrity (verify), 7 no store at the
    configured place (only init, append, import, serve create one),
    130 interrupted.
    """
    ctx.obj = Ctx(config, backend, quiet, url)


@cli.command()
@click.option(
    "--write-config",
    is_flag=True,
    help=f"Also write a commented config file with the defaults (to --config PATH, or "
    f"./{DEFAULT_FILE_NAME}).",
)
@pass_ctx
@_handle_errors
def init(ctx: Ctx, /, write_config: bool) -> None:
    """Create the store (and optionally a config file).

    \b
    Example:
      eventvault init --write-config
    """
    if write_config:
        # (to --config PATH when given: the file this command then reads)
        target = Path(ctx.config_path or DEFAULT_FILE_NAME)
        if target.exists():
            raise errors.ConfigError(f"{target} exists already; not overwriting it")
        try:
            target.write_text(STARTER_CONFIG, encoding="utf-8")
        except OSError as exc:
            raise errors.ConfigError(f"cannot write {target}: {exc.strerror or exc}") from None
        ctx.say(f"wrote {target}")
    cfg = ctx.config()
    with open_store(cfg) as store:
        where = {
            "file": cfg.store.options(FileConfig).path,
            "postgres": f"schema {cfg.store.options(PostgresConfig).schema}",
        }
        detail = f" ({where[cfg.backend]})" if cfg.backend in where else ""
        ctx.say(f"store ready: {cfg.backend} backend{detail}, {store.head()} events")


@cli.command()
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
        from .appending import append_file

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


@cli.command()
@read_only_option
@query_options
@click.option("--after", type=click.IntRange(min=0), default=None, help="Positions after this.")
@click.option("--before", type=click.IntRange(min=0), default=None, help="Positions before this.")
@click.option(
    "--cursor",
    default=None,
    help="Continue from a previous page's cursor (with --reverse: go back from there).",
)
@click.option(
    "--cursor-file",
    type=PathArg(dir_okay=False),
    default=None,
    metavar="PATH",
    help="Write the next page's cursor to PATH (empty: no more pages), even with -q.",
)
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(1, 10_000),
    default=100,
    show_default=True,
    help="Events per page.",
)
@click.option("--all", "all_pages", is_flag=True, help="Every matching event, page after page.")
@click.option("--reverse", "-r", is_flag=True, help="Newest first.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
@pass_ctx
@_handle_errors
def query(
    ctx: Ctx,
    /,
    after: int | None,
    before: int | None,
    cursor: str | None,
    cursor_file: str | None,
    limit: int,
    all_pages: bool,
    reverse: bool,
    fmt: str,
    **filters: Any,
) -> None:
    """Read events, filtered and paged.

    Filters combine with AND; a repeated option is an OR. Prints the next page's
    cursor on stderr when there is more (and to --cursor-file, for scripts). A
    cursor works in either direction: with --reverse it goes back from where its
    page stopped.

    \b
    Examples:
      eventvault query --correlation-id run-7 --format json
      eventvault query --type 'task.*' --actor agent:coder --since 2h
      eventvault query --all --format jsonl | jq .type
      eventvault query --format jsonl --cursor-file next.txt    # then, while -s next.txt:
      eventvault query --format jsonl --cursor "$(cat next.txt)" --cursor-file next.txt

    A backup that restores exactly (ids, times, hashes):
    'eventvault export' writes one, 'eventvault import' loads it.
    """
    q = _query(after=after, before=before, limit=limit, reverse=reverse, cursor=cursor, **filters)
    with ctx.store() as store:
        if all_pages:
            if cursor is not None:
                raise click.UsageError("--all reads from the start; drop --cursor")
            write_events(store.iter(q), fmt)
            if cursor_file is not None:
                _write_cursor(cursor_file, None)
            return
        page = store.read(q, cursor=cursor)
        write_events(page.events, fmt)
        if cursor_file is not None:
            _write_cursor(cursor_file, page.next_cursor)
        if page.next_cursor:
            ctx.say(f"more: --cursor {page.next_cursor}")
            limit_given = click.get_current_context().get_parameter_source("limit")
            if limit_given is click.core.ParameterSource.DEFAULT and sys.stderr.isatty():
                ctx.say(
                    f"(showing {len(page.events)} events, the default --limit; --all prints "
                    "every matching one)"
                )


@cli.command()
@click.argument("event_id", metavar="ID")
@click.option(
    "--format", "fmt", type=click.Choice(("json", "text")), default="json", show_default=True
)
@pass_ctx
@_handle_errors
def get(ctx: Ctx, /, event_id: str, fmt: str) -> None:
    """Print one event by its id; exit 2 if no event has that id.

    \b
    Example:
      eventvault get 0190d2a4-5b7e-7c1a-9f3e-2d4b6a8c0e1f
    """
    with ctx.store() as store:
        event = store.get(event_id)
    if event is None:
        raise errors.ValidationError(f"no event with id {event_id} in this store")
    write_events([event], "jsonl" if fmt == "json" else "text")


def _write_cursor(path: str, cursor: str | None) -> None:
    """The next page's cursor (or nothing, at the end) into ``path``, atomically: a
    script reading it never sees half a cursor."""
    tmp = Path(f"{path}.tmp")
    tmp.write_text(f"{cursor}\n" if cursor else "", encoding="ascii")
    os.replace(tmp, path)


@cli.command()
@read_only_option
@query_options
@click.option(
    "--limit",
    "--lines",
    "-n",
    "lines",
    type=click.IntRange(0, 10_000),
    default=10,
    show_default=True,
    help="How many recent events to show first (--lines: the old name).",
)
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events as they arrive.")
@click.option(
    "--format", "fmt", type=click.Choice(("text", "jsonl")), default="text", show_default=True
)
@pass_ctx
@_handle_errors
def tail(ctx: Ctx, /, lines: int, follow: bool, fmt: str, **filters: Any) -> None:
    """Show the latest events; with -f, follow new ones live (Ctrl-C stops).

    \b
    Examples:
      eventvault tail -n 20
      eventvault tail -f --type 'deploy.*' --format jsonl
    """
    q = _query(**filters)
    with ctx.store() as store:
        recent: list[RecordedEvent] = []
        if lines:
            recent = store.read(msgspec.structs.replace(q, limit=lines, reverse=True)).events
            write_events(reversed(recent), fmt)
        if not follow:
            return
        start = recent[0].position if recent else store.head()
        for event in store.subscribe(q, after=start):
            write_events([event], fmt)


_BY_FIELDS = {"type": "type", "actor": "actor", "stream": "stream",
               "correlation-id": "correlation_id"}  # fmt: skip


@cli.command()
@read_only_option
@click.option(
    "--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True
)
@click.option(
    "--by",
    "by",
    type=click.Choice(tuple(_BY_FIELDS)),
    default=None,
    help="Instead: count the events per type, actor, stream or correlation id.",
)
@query_options
@pass_ctx
@_handle_errors
def stats(ctx: Ctx, /, fmt: str, by: str | None, **filters: Any) -> None:
    """Summarise the store: counts, positions, times, size; or, with --by, the
    events per type, actor, stream or correlation id (the filters narrow what
    --by counts).

    \b
    Examples:
      eventvault stats --format json
      eventvault stats --by type --since 24h
    """
    if by is not None:
        _counts_by(ctx, by, fmt, _query(limit=MAX_LIMIT, **filters))
        return
    if any(filters.values()):
        raise click.UsageError("the filters narrow --by; without it stats covers the store")
    with ctx.store() as store:
        st = store.stats()
    if fmt == "json":
        click.echo(msgspec.json.encode(st).decode())
        return
    for key, value in msgspec.structs.asdict(st).items():
        if key == "details":
            for dkey, dvalue in value.items():
                click.echo(f"{dkey:>20}: {dvalue}")
        elif key == "streams" and value is None:
            click.echo(f"{key:>20}: - (not kept by this backend; 'stats --by stream' counts them)")
        else:
            shown = _stamp(value) if isinstance(value, datetime) else value
            click.echo(f"{key:>20}: {'-' if value is None else shown}")


def _counts_by(ctx: Ctx, by: str, fmt: str, q: Any) -> None:
    """Every matching event, counted per value of one field (bounded memory: one
    counter per distinct value)."""
    field = _BY_FIELDS[by]
    counts: dict[str | None, int] = {}
    with ctx.store() as store:
        total = store.stats().events
        with ctx.progress("counting", total) as advance:
            for done, event in enumerate(store.iter(q), 1):
                key = getattr(event, field)
                counts[key] = counts.get(key, 0) + 1
                if done % 10_000 == 0:
                    advance(done)
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0] or ""))
    if fmt == "json":
        body = {"by": by, "counts": [{by: k, "events": n} for k, n in ordered]}
        click.echo(msgspec.json.encode(body).decode())
        return
    width = max([len(by), *(len(k or "-") for k, _ in ordered)])
    click.echo(f"{by:<{width}}  events")
    for key, n in ordered:
        shown_key = shown(key or "-")
        click.echo(f"{shown_key:<{width}}  {n:>6,}")


@cli.command("list")
@click.argument("what", type=click.Choice(("types", "actors", "streams", "correlation-ids")))
@click.option(
    "--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True
)
@query_options
@pass_ctx
@_handle_errors
def list_command(ctx: Ctx, /, what: str, fmt: str, **filters: Any) -> None:
    """List the types, actors, streams or correlation ids in use, with their event
    counts (the same as 'stats --by').

    \b
    Examples:
      eventvault list streams
      eventvault list types --since 7d --format json
    """
    by = {"types": "type", "actors": "actor", "streams": "stream"}.get(what, "correlation-id")
    _counts_by(ctx, by, fmt, _query(limit=MAX_LIMIT, **filters))


@cli.command()
@read_only_option
@click.option(
    "--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True
)
@click.option(
    "--against",
    type=PathArg(dir_okay=False),
    default=None,
    metavar="CONFIG",
    help="Instead: compare this store with another, event by event (e.g. after a copy).",
)
@pass_ctx
@_handle_errors
def verify(ctx: Ctx, /, fmt: str, against: str | None) -> None:
    """Recompute the hash chain; exit 6 at the first broken event.

    With --against, compare this store with another one event by event (ids, content,
    revisions, times, hashes) and exit 6 at the first difference.

    \b
    Examples:
      eventvault verify && echo "record intact"
      eventvault --config file.toml verify --against postgres.toml
    """
    if against is not None:
        _verify_against(ctx, against, fmt)
        return
    with ctx.store() as store:
        total = store.head()
        with ctx.progress("verifying", total) as advance:
            result = store.verify(progress=lambda done, _total: advance(done))
        where = _segment_of(store, result.first_bad_position)
    if fmt == "json":
        body = msgspec.to_builtins(result)
        if where is not None:
            body["file"] = where
        click.echo(msgspec.json.encode(body).decode())
    elif result.ok:
        holes = (
            f" ({result.bridged:,} hole(s) left by retention, accounted for by "
            f"{result.receipts:,} receipt(s))"
            if result.bridged
            else ""
        )
        click.echo(f"ok: {result.checked} events verified{holes}, head hash {result.head_hash}")
    else:
        click.echo(
            f"BROKEN at position {result.first_bad_position}: {result.reason} "
            f"({result.checked} events before it verified)" + (f" — in {where}" if where else "")
        )
    if not result.ok:
        sys.exit(EXIT_INTEGRITY)


def _segment_of(store: EventStore, position: int | None) -> str | None:
    """The file backend's segment file holding ``position`` (segments are named by
    their first position, see backends/file/store.py), for a person to look at."""
    path = getattr(store, "path", None)
    if position is None or store.backend_name != "file" or not isinstance(path, Path):
        return None
    firsts = sorted(int(p.stem) for p in (path / "segments").glob("*.jsonl") if p.stem.isdigit())
    holding = [f for f in firsts if f <= position]
    return str(path / "segments" / f"{holding[-1]:020d}.jsonl") if holding else None


def _verify_against(ctx: Ctx, against: str, fmt: str) -> None:
    from ..copy import compare_stores
    from .copying import describe, explicit_config

    with ctx.store() as store, open_store(explicit_config(against), create=False) as other:
        ctx.say(f"comparing {store.backend_name} with {other.backend_name} ({against})…")
        cmp = compare_stores(store, other)
    if fmt == "json":
        click.echo(msgspec.json.encode(cmp).decode())
    else:
        click.echo(describe(cmp))
    if not cmp.ok:
        sys.exit(EXIT_INTEGRITY)


@cli.command()
@pass_ctx
@_handle_errors
def reindex(ctx: Ctx) -> None:
    """Rebuild the file backend's indexes from its segments.

    \b
    Example:
      eventvault reindex
    """
    from ..backends.file import FileEventStore

    with ctx.store() as store:
        if not isinstance(store, FileEventStore):
            raise errors.NotSupportedError(
                f"reindex is for the file backend, not {store.backend_name}"
            )
        n = store.reindex()
    ctx.say(f"rebuilt {n} segment index(es); the active segment is indexed in memory")


@cli.group()
def retention() -> None:
    """Retention policy: what is kept, and for how long (default: forever).

    \b
    Example:
      eventvault retention show
      eventvault retention plan
      eventvault retention apply --yes
      eventvault retention run --every 1h
    """


@retention.command("show")
@pass_ctx
@_handle_errors
def retention_show(ctx: Ctx, /) -> None:
    """Print the effective retention policy in plain words.

    \b
    Example:
      eventvault retention show
    """
    from ..retention import resolve_policy

    policy = resolve_policy(ctx.config().retention)
    if policy is None:
        click.echo("No retention policy: every event is kept forever (the default).")
        return
    for line in policy.describe():
        click.echo(line)


def _policy_or_say(ctx: Ctx, store: EventStore) -> Any:
    policy = store.retention_policy
    if policy is None:
        click.echo("No retention policy: every event is kept forever (the default).")
    return policy


def _human_bytes(n: int | None) -> str:
    if n is None:
        return "?"
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1000
    raise AssertionError  # pragma: no cover


def _stamp(value: Any) -> str:
    return "-" if value is None else value.isoformat(timespec="seconds").replace("+00:00", "Z")


def _print_plan(plan: Any) -> None:
    click.echo(
        f"Retention plan for the {plan.backend} store at {_stamp(plan.now)} "
        f"(head {plan.head:,}; positions up to {plan.limit:,} may be removed)"
    )
    if plan.backend == "file" and plan.limit < plan.head:
        click.echo(
            f"  (the file backend never touches its active segment: positions above "
            f"{plan.limit:,} wait until it is sealed)"
        )
    click.echo("Policy:")
    for line in plan.policy:
        click.echo(f"  {line}")
    click.echo("")
    click.echo(
        f"{'rule':<20} {'events':>12}  {'positions':<23} {'oldest':<20} {'newest':<20} "
        f"{'bytes':>10}"
    )
    for g in plan.groups:
        span = f"{g.first_position:,} - {g.last_position:,}" if g.count else "-"
        click.echo(
            f"{g.rule:<20} {g.count:>12,}  {span:<23} {_stamp(g.oldest):<20} "
            f"{_stamp(g.newest):<20} {_human_bytes(g.bytes) if g.count else '-':>10}"
        )
    click.echo("")
    if plan.count:
        click.echo(f"Would remove {plan.count:,} events ({_human_bytes(plan.bytes)}).")
    else:
        click.echo("Nothing to remove.")


_AT = click.option(
    "--at",
    "at",
    metavar="TIME",
    help="Plan as of this time instead of now (ISO-8601, '2h' ago, '+30d' ahead).",
)
_RFORMAT = click.option(
    "--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True
)


@retention.command("plan")
@_AT
@_RFORMAT
@pass_ctx
@_handle_errors
def retention_plan(ctx: Ctx, /, at: str | None, fmt: str) -> None:
    """Dry run: what the policy would remove now, per rule. Removes nothing.

    \b
    Example:
      eventvault retention plan
      eventvault retention plan --at +30d --format json
    """
    now = _time(at, "--at")  # (a bad --at is an error even when there is no policy)
    with ctx.store() as store:
        if _policy_or_say(ctx, store) is None:
            return
        plan = store.plan_retention(now=now)
    if fmt == "json":
        click.echo(_plan_json(plan))
    else:
        _print_plan(plan)


def _plan_json(plan: Any, **extra: Any) -> str:
    body = msgspec.to_builtins(plan)
    body["count"] = plan.count
    body["bytes"] = plan.bytes
    body.update(extra)
    return msgspec.json.encode(body).decode()


@retention.command("apply")
@_AT
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (for scripts).")
@_RFORMAT
@pass_ctx
@_handle_errors
def retention_apply(ctx: Ctx, /, at: str | None, yes: bool, fmt: str) -> None:
    """Remove what the policy says, after showing the plan and asking.

    Appends a receipt (eventvault.retention.applied) naming what goes and the
    chain hashes at the cuts, so `eventvault verify` still passes afterwards.

    \b
    Example:
      eventvault retention apply          # shows the plan, asks
      eventvault retention apply --yes    # in scripts
    """
    now = _time(at, "--at")
    with ctx.store() as store:
        policy = _policy_or_say(ctx, store)
        if policy is None:
            return
        plan = store.plan_retention(now=now)
        if fmt == "text":
            _print_plan(plan)
        if not plan.count:
            if fmt == "json":
                click.echo(_plan_json(plan, removed=0, receipt_positions=[]))
            return
        if not yes:
            if not sys.stdin.isatty():
                raise errors.ValidationError(
                    "refusing to remove events without confirmation; pass --yes"
                )
            click.confirm(f"Remove {plan.count:,} events?", abort=True, err=True)
        with ctx.progress("removing", plan.count) as advance:
            report = store.apply_retention(
                plan, policy=policy, progress=lambda done, _total: advance(done)
            )
    if fmt == "json":
        click.echo(
            _plan_json(
                plan,
                removed=report.removed,
                runs=report.runs,
                receipt_positions=report.receipt_positions,
                seconds=report.seconds,
            )
        )
    else:
        from ..retention.schedule import describe_report

        click.echo(describe_report(report))


@retention.command("run")
@click.option(
    "--every",
    metavar="DURATION",
    help="How often to apply the policy (default: retention.check_interval).",
)
@pass_ctx
@_handle_errors
def retention_run(ctx: Ctx, /, every: str | None) -> None:
    """Apply the policy now and then on a schedule, until interrupted.

    Logs one line per run on stderr. Stops cleanly on Ctrl-C or SIGTERM.

    \b
    Example:
      eventvault retention run --every 1h
    """
    import signal
    import threading

    from ..retention.schedule import RetentionScheduler
    from ..timeutil import parse_duration

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    with ctx.store() as store:
        policy = _policy_or_say(ctx, store)
        if policy is None:
            return
        require_retaining(store.backend)  # fail now, not once an hour forever
        try:
            interval = parse_duration(every) if every is not None else policy.check_interval
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--every") from None
        if not 1 <= interval.total_seconds() <= 365 * 86400:
            raise click.BadParameter("must be from 1s to 365d", param_hint="--every")
        scheduler = RetentionScheduler(store, policy, interval)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, lambda *_: scheduler.stop())
        ctx.say(f"applying the retention policy every {every or interval}; Ctrl-C to stop")
        try:
            scheduler.run_forever()
        except KeyboardInterrupt:
            scheduler.stop()
    ctx.say(f"stopped after {scheduler.runs} run(s)")


from .bench import bench  # noqa: E402 - registers the bench command on the group
from .copying import copy_command  # noqa: E402 - registers the copy command
from .exporting import export_command, import_command  # noqa: E402
from .serve import serve  # noqa: E402

cli.add_command(bench)
cli.add_command(copy_command)
cli.add_command(export_command)
cli.add_command(import_command)
cli.add_command(serve)
from .runs import COMMANDS as RUN_COMMANDS  # noqa: E402 - runs, trace, diff

for _command in RUN_COMMANDS:
    cli.add_command(_command)


def _global_option(attr: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def store(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value:  # (None / False: not given after the command; keep what came before)
            setattr(ctx.ensure_object(Ctx), attr, value)

    return store


def _accept_global_options(command: click.Command) -> None:
    """Let --config, --backend and -q follow the subcommand too (``eventvault verify
    --config x.toml``), as kubectl and the nats CLI allow: each command gets hidden
    copies that write into the same :class:`Ctx`. A command's own option of the same
    name (``bench --backend``: which backend to measure) wins."""
    taken = {opt for p in command.params for opt in getattr(p, "opts", [])}
    extra = [
        click.Option(
            ["--config", "-c"], metavar="PATH", expose_value=False, hidden=True,
            callback=_global_option("config_path"),
        ),
        click.Option(
            ["--backend"], type=click.Choice(backend_names()), expose_value=False,
            hidden=True, callback=_global_option("backend"),
        ),
        click.Option(
            ["--url"], metavar="URL", expose_value=False, hidden=True,
            callback=_global_option("url"),
        ),
        click.Option(
            ["--quiet", "-q"], is_flag=True, expose_value=False, hidden=True,
            callback=_global_option("quiet"),
        ),
    ]  # fmt: skip
    for option in extra:
        if not taken.intersection(option.opts):
            # Parsed before the command's own options, so a callback sees the Ctx set.
            command.params.insert(0, option)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _accept_global_options(sub)


for _command in cli.commands.values():
    _accept_global_options(_command)


STARTER_CONFIG = """\
# eventvault configuration. Every key is optional; these are the defaults.
# Docs: README.md, section "Configuration".

[store]
backend = "file"                 # file | postgres | memory
max_event_bytes = 1_048_576      # largest event (canonical JSON bytes)

[store.file]
path = "./eventvault-data"       # relative to this file's directory
fsync = "always"                 # always | interval | never
fsync_interval = "200ms"         # with fsync = "interval"
segment_max_bytes = 67_108_864

# [store.postgres]                # pip install 'eventvault[postgres]'
# dsn = "${EVENTVAULT_POSTGRES_DSN}"   # required with backend = "postgres"
# schema = "eventvault"

# Retention: without a [retention] table every event is kept forever.
# [retention]
# max_age = "90d"                # and/or max_count = 50_000_000
# check_interval = "1h"          # how often 'eventvault serve' applies it
# [[retention.rules]]            # the first rule matching an event decides
# types = ["debug.*"]
# max_age = "7d"

# The HTTP service ('eventvault serve').
# [server]
# host = "127.0.0.1"             # beyond loopback needs tokens
# port = 8730
# [[server.tokens]]
# name = "ci-runner"
# token = "${EVENTVAULT_TOKEN_CI}"   # 16+ characters, from the environment
# scopes = ["append", "read"]      # append | read | admin
"""


def main() -> None:
    """Entry point of the ``eventvault`` command."""
    # The connection pool logs every retry; the CLI reports the one error that counts.
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
    try:
        cli.main(standalone_mode=True)
    except SystemExit:
        raise
    except Exception as exc:  # pragma: no cover - last resort, no traceback for users
        if os.environ.get("EVENTVAULT_DEBUG"):
            raise
        click.echo(
            f"internal error: {type(exc).__name__}: {exc} (set EVENTVAULT_DEBUG=1 for a traceback)",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)
