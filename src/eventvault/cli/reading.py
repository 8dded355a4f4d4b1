"""``eventvault query``, ``get`` and ``tail``: reading events, filtered, paged, live."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
import msgspec

from .. import errors
from ..model import RecordedEvent
from .common import Ctx, PathArg, _handle_errors, _query, pass_ctx, query_options, read_only_option
from .output import FORMATS, write_events

__all__ = ["get", "query", "tail"]


@click.command("query")
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


@click.command("get")
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


@click.command("tail")
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
