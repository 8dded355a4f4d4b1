"""``eventvault copy``: move events between stores (any backends), resumably, verified."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
import msgspec

from ..config import Config
from ..copy import (
    DEFAULT_BATCH,
    Comparison,
    compare_stores,
    copy_store,
    verifies_source_first,
    verify_source,
)
from ..registry import env_overrides, load_config, open_store
from ..store import EventStore
from .common import (
    EXIT_INTEGRITY,
    Ctx,
    PathArg,
    _handle_errors,
    _query,
    pass_ctx,
    query_options,
)


def explicit_config(path: str) -> Config:
    """A config file as written: the ``EVENTVAULT_*`` overrides that pick a backend or a
    path are ignored (they would make both sides of a copy the same store); ``${VAR}``
    interpolation still reads the environment."""
    overrides = env_overrides()
    env = {k: v for k, v in os.environ.items() if k not in overrides}
    return load_config(path, env=env)


@contextmanager
def _open(path: str, *, create: bool) -> Iterator[EventStore]:
    with open_store(explicit_config(path), create=create) as store:
        yield store


def describe(cmp: Comparison) -> str:
    if cmp.ok:
        same = (
            f"head hash {cmp.head_hash}"
            if cmp.head_hash == cmp.other_head_hash
            else f"head hashes {cmp.head_hash} / {cmp.other_head_hash} (hashed afresh: a slice, "
            "or another hash format)"
        )
        kept = (
            f"; {cmp.removed_by_retention:,} more held by only one store (the other's "
            "retention removed them, as its receipts record)"
            if cmp.removed_by_retention
            else ""
        )
        return f"identical: {cmp.events:,} events in {cmp.streams:,} streams, {same}{kept}"
    return f"DIFFERENT after {cmp.events:,} equal events: {cmp.difference}"


@click.command("copy")
@click.option(
    "--from", "src_path", required=True, type=PathArg(dir_okay=False), help="Source config."
)
@click.option(
    "--to", "dst_path", required=True, type=PathArg(dir_okay=False), help="Destination config."
)
@query_options
@click.option(
    "--batch",
    type=click.IntRange(1, 10_000),
    default=DEFAULT_BATCH,
    show_default=True,
    help="Events per destination transaction.",
)
@click.option(
    "--follow", "-f", is_flag=True, help="After catching up, keep copying new events (Ctrl-C ends)."
)
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Compare both stores event by event at the end.",
)
@click.option(
    "--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True
)
@pass_ctx
@_handle_errors
def copy_command(
    ctx: Ctx,
    /,
    src_path: str,
    dst_path: str,
    batch: int,
    follow: bool,
    verify: bool,
    fmt: str,
    **filters: Any,
) -> None:
    """Copy every event (or a filtered slice) from one store into another.

    Keeps ids, streams, revisions and times, and the hashes between stores of one
    hash format (both end with the same head hash); a destination of the other
    format hashes every event its own way, after checking the source. Safe to
    interrupt and re-run: it continues where it stopped and never copies an event
    twice. Exits 6 if the stores differ at the end.

    \b
    Examples:
      eventvault copy --from file.toml --to postgres.toml
      eventvault copy --from prod.toml --to slice.toml --type 'deploy.*' --since 7d
      eventvault copy --from old.toml --to new.toml --follow     # cut-over, see README
    """
    query = _query(**filters)
    stop = threading.Event()
    if follow:
        # Ctrl-C and SIGTERM end --follow cleanly: the batch in flight finishes.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    with _open(src_path, create=False) as src, _open(dst_path, create=True) as dst:
        total = src.stats().events
        ctx.say(
            f"copying {src.backend_name} ({src_path}) -> {dst.backend_name} ({dst_path})"
            + (", then following" if follow else "")
        )
        verified_to = None
        if verifies_source_first(src, dst, query):
            ctx.say(
                "verifying the source first: the copy computes every hash afresh, so the "
                "source's hashes and Merkle tree are checked while they can be"
            )
            with ctx.progress("verifying", total) as checked:
                verified_to = verify_source(src, lambda done, _total: checked(done))
        with ctx.progress("copying", total) as advance:
            report = copy_store(
                src,
                dst,
                query,
                batch=batch,
                verify=False,
                follow=follow,
                stop=stop,
                progress=lambda done, _total: advance(done),
                source_verified_to=verified_to,
            )
        resumed = (
            ""
            if report.resumed_after is None
            else " (resumed from the source's start: its retention removed all the "
            "destination held)"
            if report.resumed_after == 0
            else f" (resumed after source position {report.resumed_after})"
        )
        rate = report.copied / report.seconds if report.seconds > 0 else 0.0
        ctx.say(
            f"copied {report.copied:,} events in {report.seconds:.1f} s "
            f"({rate:,.0f} events/s){resumed}"
        )
        cmp = None
        if verify:
            ctx.say("comparing both stores event by event…")
            cmp = compare_stores(src, dst, query, rechain=report.rechained)
    out: dict[str, Any] = msgspec.to_builtins(report)
    if cmp is not None:
        out["comparison"] = msgspec.to_builtins(cmp)
    if fmt == "json":
        click.echo(msgspec.json.encode(out).decode())
    elif cmp is not None:
        click.echo(describe(cmp))
    if cmp is not None and not cmp.ok:
        sys.exit(EXIT_INTEGRITY)
