"""Runs as text: the run list, the causal tree, a timeline by actor lane, a diff.

Everything from an event is *data*: it reaches the terminal only through
``rich.text.Text`` (which never parses markup, so ``[bold red]root[/bold red]``
prints as written) after :func:`safe` has escaped control and format characters
(escape sequences, carriage returns, bidirectional overrides), so an event can
neither style, move nor hide what is printed around it. Colours appear on a
terminal only; piped output is plain text (rich also honours ``NO_COLOR``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from typing import IO, Any

import msgspec
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .model import DiffStep, RunDiff, RunPage, RunTrace, TraceNode

__all__ = [
    "console_for",
    "format_us",
    "render_diff",
    "render_runs",
    "render_timeline",
    "render_tree",
    "safe",
]

#: Indentation stops growing here; deeper nodes show their depth as a number.
MAX_INDENT = 24
#: Cells of the timeline's bar.
BAR_WIDTH = 40
#: Longest JSON value shown in a diff line.
VALUE_WIDTH = 80

_PLAIN = re.compile(r"[^\x20-\x7e]")
_encoder = msgspec.json.Encoder()


def _escape_char(ch: str) -> str:
    category = unicodedata.category(ch)
    if category[0] == "C" or category in ("Zl", "Zp"):
        code = ord(ch)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return ch


def safe(value: object) -> str:
    """``value`` as one line of inert text: control, format and line/paragraph
    separator characters become ``\\xNN`` / ``\\uNNNN``."""
    text = value if isinstance(value, str) else str(value)
    if not _PLAIN.search(text):
        return text
    return "".join(_escape_char(ch) for ch in text)


def console_for(out: IO[str]) -> Console:
    """A console that writes ``out``: colours on a terminal only, no markup, no
    highlighting, no emoji codes, no wrapping of long lines when piped."""
    tty = out.isatty()
    return Console(
        file=out,
        markup=False,
        highlight=False,
        emoji=False,
        soft_wrap=not tty,
        force_terminal=None,
        no_color=not tty or None,
        width=None if tty else 10_000,
    )


def format_us(us: int | None) -> str:
    """A duration for people: ``0ms``, ``850ms``, ``1.25s``, ``2m05s``, ``3h02m``."""
    if us is None:
        return "-"
    sign = "-" if us < 0 else ""
    us = abs(us)
    if us < 1_000_000:
        return f"{sign}{us / 1000:.0f}ms" if us >= 1000 or us == 0 else f"{sign}{us}µs"
    seconds = us / 1_000_000
    if seconds < 60:
        return f"{sign}{seconds:.2f}s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{sign}{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{sign}{hours}h{minutes:02d}m"


def _stamp(value: Any) -> str:
    return str(value.isoformat(timespec="milliseconds").replace("+00:00", "Z"))


def render_runs(page: RunPage) -> Table:
    """The run list as a table (one row per run, newest first)."""
    table = Table(show_edge=False, pad_edge=False)
    for col in ("run", "last event at", "duration", "events", "actors", "outcome", "last type"):
        table.add_column(col, no_wrap=True, justify="right" if col == "events" else "left")
    styles = {"failed": "red", "succeeded": "green", "cancelled": "yellow"}
    for run in page.runs:
        more = f" +{len(run.actors) - 3}" if len(run.actors) > 3 else ""
        actors = ", ".join(run.actors[:3]) + more
        table.add_row(
            Text(safe(run.correlation_id), style="bold"),
            Text(_stamp(run.last_recorded_at)),
            Text(format_us(run.duration_us)),
            Text(str(run.events)),
            Text(safe(actors)),
            Text(safe(run.outcome or "-"), style=styles.get(run.outcome or "", "")),
            Text(safe(run.last_type)),
        )
    return table


def _header(trace: RunTrace) -> Iterator[Text]:
    s = trace.summary
    line = Text()
    line.append(f"run {safe(trace.correlation_id)}", style="bold")
    line.append(
        f"  {s.events} events  {len(s.actors)} actor(s)  {format_us(s.duration_us)}"
        f"  from {_stamp(s.first_recorded_at)}"
    )
    if s.outcome:
        style = "red" if s.outcome == "failed" else "green"
        line.append(f"  outcome {safe(s.outcome)}", style=style)
    yield line
    if trace.truncated:
        yield Text(
            f"truncated: the run has more than {trace.max_events:,} events; "
            f"only the first {trace.max_events:,} are shown",
            style="yellow",
        )
    for problem in trace.problems:
        yield Text(f"problem ({problem.kind}): {safe(problem.message)}", style="yellow")


def _node_text(trace: RunTrace, node: TraceNode) -> Text:
    line = Text()
    line.append(f"+{format_us(node.offset_us)} ", style="dim")
    if node.kind == "virtual":
        line.append(f"◇ {safe(node.label)}", style="magenta")
        return line
    ev = trace.events[node.event or 0]
    line.append(safe(ev.type), style="bold")
    if ev.actor:
        line.append(f"  {safe(ev.actor)}", style="cyan")
    line.append(f"  {safe(ev.stream)}#{ev.stream_revision}  @{ev.position}", style="dim")
    if node.children:
        line.append(f"  took {format_us(node.to_last_descendant_us)}")
    elif node.to_next_sibling_us is not None:
        line.append(f"  next +{format_us(node.to_next_sibling_us)}", style="dim")
    if node.cycle_cut:
        line.append("  ↺ cycle cut here", style="yellow")
    return line


def render_tree(trace: RunTrace) -> Iterator[Text]:
    """The causal tree, one line per node, indented below its cause."""
    yield from _header(trace)
    # cont[n]: what the lines below node n carry for it ("│  " while siblings follow).
    cont: list[str] = [""] * len(trace.nodes)
    for node in trace.nodes:
        last = node.to_next_sibling_us is None
        if node.parent is None:
            prefix, cont[node.id] = "", ""
        else:
            above = cont[node.parent]
            prefix = above + ("└─ " if last else "├─ ")
            # Past MAX_INDENT levels the indentation stops growing: the depth says it.
            cont[node.id] = above + ("   " if last else "│  ") if node.depth < MAX_INDENT else above
        line = Text(prefix, style="dim")
        if node.depth > MAX_INDENT:
            line.append(f"[depth {node.depth}] ", style="dim")
        line.append_text(_node_text(trace, node))
        yield line


def render_timeline(trace: RunTrace, *, width: int = BAR_WIDTH) -> Iterator[Text]:
    """A waterfall: one row per event, grouped by actor lane; the bar runs from the
    event to its last descendant (at least one cell)."""
    yield from _header(trace)
    total = max(trace.summary.duration_us, 1)
    node_of = {n.event: n for n in trace.nodes if n.event is not None}
    names = [safe(lane.actor or "(no actor)") for lane in trace.lanes]
    label_width = min(max(map(len, names), default=0), 30)
    scale = Text(" " * (label_width + 11))
    scale.append(f"|0{' ' * (width - 2 - len(format_us(total)))}{format_us(total)}|", style="dim")
    yield scale
    for lane in trace.lanes:
        name = safe(lane.actor or "(no actor)")
        name = name if len(name) <= label_width else name[: label_width - 1] + "…"
        for k, index in enumerate(lane.events):
            node = node_of[index]
            first = node.offset_us * (width - 1) // total
            cells = max(1, node.to_last_descendant_us * width // total)
            cells = min(cells, width - first)
            row = Text()
            row.append(f"{name if k == 0 else '':<{label_width}} ", style="cyan")
            row.append(f"{'+' + format_us(node.offset_us):>9} ", style="dim")
            row.append("·" * first, style="dim")
            row.append("█" * cells, style="red" if node.cycle_cut else "green")
            row.append("·" * (width - first - cells), style="dim")
            row.append(f"  {safe(trace.events[index].type)}")
            yield row


def _value(value: Any) -> str:
    text = safe(_encoder.encode(value).decode())
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 1] + "…"


def _who(step: DiffStep) -> str:
    return f"{safe(step.actor) + ' ' if step.actor else ''}{safe(step.type)}"


def render_diff(diff: RunDiff, *, context: int = 2) -> Iterator[Text]:
    """The diff as lines: ``=`` same, ``~`` changed, ``-`` only in A, ``+`` only in B,
    ``↕`` moved; long stretches of identical steps are folded to ``context`` lines
    on either side."""
    head = Text()
    head.append(f"diff {safe(diff.a)} → {safe(diff.b)}", style="bold")
    head.append(
        f"  A: {diff.a_events} events in {format_us(diff.a_duration_us)}"
        f"  B: {diff.b_events} events in {format_us(diff.b_duration_us)}"
    )
    yield head
    yield Text(
        f"{diff.same} same, {diff.changed} changed, {diff.only_a} only in A, "
        f"{diff.only_b} only in B, {diff.moved} moved, {diff.timing} with step times "
        f"differing by more than {format_us(diff.timing_threshold_us)}"
    )
    if diff.identical and not diff.timing:
        yield Text("the runs match step for step", style="green")
        return
    plain = [s.kind == "same" and not (s.slower or s.faster) for s in diff.steps]
    n = len(diff.steps)
    k = 0
    while k < n:
        if plain[k]:
            end = k
            while end < n and plain[end]:
                end += 1
            lead = context if k else 0
            trail = context if end < n else 0
            if end - k > lead + trail + 1:
                for s in diff.steps[k : k + lead]:
                    yield from _step_lines(s)
                yield Text(f"  … {end - k - lead - trail} identical steps", style="dim")
                for s in diff.steps[end - trail : end]:
                    yield from _step_lines(s)
                k = end
                continue
        yield from _step_lines(diff.steps[k])
        k += 1


_MARKS = {
    "same": ("=", "dim"),
    "changed": ("~", "yellow"),
    "only_a": ("-", "red"),
    "only_b": ("+", "green"),
    "moved": ("↕", "magenta"),
}


def _step_lines(step: DiffStep) -> Iterator[Text]:
    mark, style = _MARKS[step.kind]
    line = Text(f"{mark} ", style=style)
    line.append(_who(step), style=style if step.kind != "same" else "")
    where = {
        "only_a": f"  (A @{step.a_position})",
        "only_b": f"  (B @{step.b_position})",
        "moved": f"  (A @{step.a_position} → B @{step.b_position})",
    }.get(step.kind, f"  (A @{step.a_position}, B @{step.b_position})")
    line.append(where, style="dim")
    if step.slower or step.faster:
        word = "slower" if step.slower else "faster"
        line.append(
            f"  {word} by {format_us(abs(step.timing_delta_us or 0))} "
            f"(A {format_us(step.a_step_us)}, B {format_us(step.b_step_us)})",
            style="red" if step.slower else "cyan",
        )
    yield line
    for change in step.changes:
        detail = Text(f"    {safe(change.path) or '(whole data)'} ", style="dim")
        if change.kind == "added":
            detail.append(f"added {_value(change.b)}", style="green")
        elif change.kind == "removed":
            detail.append(f"removed {_value(change.a)}", style="red")
        else:
            detail.append(f"{_value(change.a)} → {_value(change.b)}", style="yellow")
        yield detail
    if step.changes_truncated:
        yield Text("    … more changes not shown", style="dim")
