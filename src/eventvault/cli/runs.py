"""``eventvault runs``, ``trace`` and ``diff``: what happened in a run, and how two differ."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import click
from rich.text import Text

from .. import errors
from ..runs import DEFAULT_MAX_EVENTS, RunTrace, diff_runs, list_runs, load_run
from ..runs.listing import MAX_RUNS_PAGE, runs_cursor_resolved_at
from ..runs.loading import MAX_MAX_EVENTS
from ..runs.render import (
    console_for,
    render_diff,
    render_runs,
    render_timeline,
    render_tree,
    safe,
)
from ..store import EventStore
from ..timeutil import parse_duration
from .common import Ctx, _handle_errors, _query, pass_ctx, query_options

__all__ = ["COMMANDS", "diff", "runs", "trace"]

_MAX_EVENTS = click.option(
    "--max-events",
    type=click.IntRange(1, MAX_MAX_EVENTS),
    default=DEFAULT_MAX_EVENTS,
    show_default=True,
    help="Read at most this many events of a run (a longer one is shown truncated).",
)


def _print(lines: Iterable[Text]) -> None:
    console = console_for(sys.stdout)
    for line in lines:
        console.print(line)


def _json(value: Any) -> None:
    sys.stdout.write(value.to_json().decode())
    sys.stdout.write("\n")
    sys.stdout.flush()


def _load(ctx: Ctx, store: EventStore, run_id: str, max_events: int) -> RunTrace:
    trace = load_run(store, run_id, max_events=max_events)
    if trace is None:
        raise errors.ValidationError(
            f"no run {safe(run_id)!r}: no event has this correlation id "
            "(`eventvault runs` lists the runs)"
        )
    if trace.truncated:
        ctx.say(
            f"warning: run {safe(run_id)!r} has more than {max_events:,} events; only the "
            f"first {max_events:,} are shown (raise --max-events to see more)"
        )
    return trace


@click.command()
@query_options
@click.option(
    "--limit",
    "-n",
    type=click.IntRange(1, MAX_RUNS_PAGE),
    default=50,
    show_default=True,
    help="Runs per page.",
)
@click.option("--cursor", default=None, help="Continue from a previous page's cursor.")
@click.option(
    "--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True
)
@pass_ctx
@_handle_errors
def runs(ctx: Ctx, /, limit: int, cursor: str | None, fmt: str, **filters: Any) -> None:
    """List runs (events sharing a correlation id), newest first.

    A run is listed when one of its events matches the filters; its summary covers
    the whole run. Prints the next page's cursor on stderr when there is more.

    \b
    Examples:
      eventvault runs
      eventvault runs --actor agent:coder --since 2h --format json
      eventvault runs --type 'deploy.*' --limit 10
    """
    # A relative --since/--until resolves against the instant the first page did.
    resolved = runs_cursor_resolved_at(cursor) if cursor else None
    query = _query(**filters, resolved_at=resolved)
    with ctx.store() as store:
        page = list_runs(store, query, limit=limit, cursor=cursor)
    if fmt == "json":
        _json(page)
    elif page.runs:
        console_for(sys.stdout).print(render_runs(page))
    else:
        ctx.say("no runs match (a run is the events sharing a correlation id)")
    if page.next_cursor:
        ctx.say(f"more: --cursor {page.next_cursor}")


@click.command()
@click.argument("run_id", metavar="RUN")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("tree", "timeline", "json")),
    default="tree",
    show_default=True,
)
@_MAX_EVENTS
@pass_ctx
@_handle_errors
def trace(ctx: Ctx, /, run_id: str, fmt: str, max_events: int) -> None:
    """Show one run: its causal tree (who caused what), or a timeline by actor.

    RUN is a correlation id. An event's parent is the event whose id is its
    causation id; causes that are no event of the run (a command, a request) show
    as ◇ nodes, and causation cycles or dangling references are reported.

    \b
    Examples:
      eventvault trace run-7
      eventvault trace run-7 --format timeline
      eventvault trace run-7 --format json > run-7.json
    """
    with ctx.store() as store:
        run = _load(ctx, store, run_id, max_events)
    if fmt == "json":
        _json(run)
    elif fmt == "timeline":
        _print(render_timeline(run))
    else:
        _print(render_tree(run))


def _threshold(value: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--timing-threshold") from None


@click.command()
@click.argument("run_a", metavar="RUN_A")
@click.argument("run_b", metavar="RUN_B")
@click.option(
    "--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True
)
@click.option(
    "--timing-threshold",
    default="1s",
    show_default=True,
    metavar="DURATION",
    help="Flag steps whose time differs by more than this (e.g. 200ms, 2s).",
)
@_MAX_EVENTS
@pass_ctx
@_handle_errors
def diff(
    ctx: Ctx, /, run_a: str, run_b: str, fmt: str, timing_threshold: str, max_events: int
) -> None:
    """Compare two runs step by step: what only one has, what changed, what slowed.

    The runs are aligned by their (actor, type) sequences, so an inserted step does
    not make the rest differ; data differences are listed field by field.

    \b
    Examples:
      eventvault diff run-6 run-7
      eventvault diff run-6 run-7 --timing-threshold 200ms --format json
    """
    threshold = _threshold(timing_threshold)
    with ctx.store() as store:
        a = _load(ctx, store, run_a, max_events)
        b = _load(ctx, store, run_b, max_events)
    result = diff_runs(a, b, timing_threshold=threshold)
    if fmt == "json":
        _json(result)
    else:
        _print(render_diff(result))


#: The commands this module adds to the ``eventvault`` group.
COMMANDS = (runs, trace, diff)
