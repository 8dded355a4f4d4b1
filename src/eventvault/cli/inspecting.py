"""``eventvault stats``, ``list``, ``verify`` and ``reindex``: a store as a whole —
its summary, its counts per field, its hash chain, the file backend's indexes."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import msgspec

from .. import errors
from ..integrity.chain import HASH_FORMATS
from ..model import MAX_LIMIT
from ..registry import open_store
from ..store import EventStore
from .common import (
    EXIT_INTEGRITY,
    Ctx,
    PathArg,
    _handle_errors,
    _query,
    pass_ctx,
    query_options,
    read_only_option,
)
from .output import iso_seconds, shown

__all__ = ["list_command", "reindex", "stats", "verify"]

_BY_FIELDS = {"type": "type", "actor": "actor", "stream": "stream",
               "correlation-id": "correlation_id"}  # fmt: skip


@click.command("stats")
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
        hashes = store.hash_format
    if fmt == "json":
        body = msgspec.to_builtins(st)
        body["hash_format"] = hashes
        click.echo(msgspec.json.encode(body).decode())
        return
    for key, value in msgspec.structs.asdict(st).items():
        if key == "details":
            for dkey, dvalue in value.items():
                click.echo(f"{dkey:>20}: {dvalue}")
        elif key == "streams" and value is None:
            click.echo(f"{key:>20}: - (not kept by this backend; 'stats --by stream' counts them)")
        else:
            shown = iso_seconds(value) if isinstance(value, datetime) else value
            click.echo(f"{key:>20}: {'-' if value is None else shown}")
    click.echo(f"{'hash format':>20}: {hashes} ({HASH_FORMATS.get(hashes, '?')} hashes)")


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


@click.command("list")
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


@click.command("verify")
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
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    metavar="FILE_DIR_OR_URL",
    help="A signed checkpoint seen before: a file, every file in a directory, or a "
    "server's latest (http(s)://…). Repeatable. Needs --key.",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="KEY_OR_FILE",
    help="The log's verifier key (or a file holding it) the checkpoints must be signed by.",
)
@pass_ctx
@_handle_errors
def verify(
    ctx: Ctx,
    /,
    fmt: str,
    against: str | None,
    checkpoints: tuple[str, ...],
    keys: tuple[str, ...],
) -> None:
    """Recompute the hash chain (and the Merkle tree, where the store keeps one); exit
    6 at the first broken event.

    With --checkpoint and --key, also check that the store is consistent with every
    signed checkpoint given — the same root at its size, and a consistency proof to
    now — which finds the newest events removed, a rewrite with recomputed hashes,
    inserted events and a replaced (forked) store (docs/audit.md).

    With --against, compare this store with another one event by event (ids, content,
    revisions, times, hashes) and exit 6 at the first difference.

    \b
    Examples:
      eventvault verify && echo "record intact"
      eventvault verify --checkpoint seen/ --key prod.pub
      eventvault --config file.toml verify --against postgres.toml
    """
    if against is not None:
        if checkpoints:
            raise click.UsageError("--against compares two stores; --checkpoint is for one")
        _verify_against(ctx, against, fmt)
        return
    if keys and not checkpoints:
        raise click.UsageError("--key verifies checkpoints: pass --checkpoint too")
    signed = []
    if checkpoints:
        from .auditkeys import load_verifiers, read_checkpoints

        signed = read_checkpoints(checkpoints, load_verifiers(keys))
        ctx.say(f"{len(signed)} signed checkpoint(s) read, signatures verified")
    with ctx.store() as store:
        total = store.head()
        with ctx.progress("verifying", total) as advance:
            result = store.verify(
                progress=lambda done, _total: advance(done),
                checkpoints=[cp for _, cp in signed],
            )
        where = _segment_of(store, result.first_bad_position)
    if fmt == "json":
        body = msgspec.to_builtins(result)
        if where is not None:
            body["file"] = where
        if signed:
            body["checkpoints"] = [
                {"source": label, "origin": cp.origin, "tree_size": cp.size,
                 "root_hash": cp.root_hash.hex()}
                for label, cp in signed
            ]  # fmt: skip
        click.echo(msgspec.json.encode(body).decode())
    elif result.ok:
        holes = (
            f" ({result.bridged:,} hole(s) left by retention, accounted for by "
            f"{result.receipts:,} receipt(s))"
            if result.bridged
            else ""
        )
        click.echo(f"ok: {result.checked} events verified{holes}, head hash {result.head_hash}")
        if result.tree_size is not None:
            click.echo(
                f"ok: Merkle tree of {result.tree_size:,} leaves, root {result.tree_root}"
                + _checked(result.checkpoints_checked, signed)
            )
    else:
        click.echo(
            f"BROKEN at position {result.first_bad_position}: {result.reason} "
            f"({result.checked} events before it verified)" + (f" — in {where}" if where else "")
        )
    if not result.ok:
        sys.exit(EXIT_INTEGRITY)


def _checked(count: int, signed: list[Any]) -> str:
    if not signed:
        return " (no signed checkpoint given: see --checkpoint)"
    return f"; consistent with {count} signed checkpoint(s)"


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


@click.command("reindex")
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
