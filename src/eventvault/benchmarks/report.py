"""The text ``eventvault bench`` prints: a table of median (min–max) over the runs,
and the soak's account."""

from __future__ import annotations

import statistics
from typing import Any

from .soak import SoakReport

__all__ = ["bench_lines", "fmt", "soak_lines", "summary"]


def summary(runs: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(workload, metric, 'median (min–max)') rows over all runs."""
    rows = []
    for name in runs[0]:
        if not isinstance(runs[0][name], dict):
            vals = [r[name] for r in runs]
            rows.append((name, "MB", fmt(vals)))
            continue
        for metric in runs[0][name]:
            if metric == "events" and not name.startswith(("open", "retention_", "copy_")):
                continue
            vals = [r[name][metric] for r in runs]
            rows.append((name, metric, fmt(vals)))
    return rows


def fmt(vals: list[float]) -> str:
    """The median, and the range when there is more than one value."""
    med = statistics.median(vals)
    if len(vals) == 1:
        return f"{med:,.3f}" if med < 100 else f"{med:,.0f}"
    lo, hi = min(vals), max(vals)
    if med < 100:
        return f"{med:,.3f} ({lo:,.3f}–{hi:,.3f})"
    return f"{med:,.0f} ({lo:,.0f}–{hi:,.0f})"


def bench_lines(
    runs: list[dict[str, Any]],
    *,
    backend: str,
    events: int,
    single: int,
    threads: int,
    queries: int,
) -> list[str]:
    """The heading and one line per (workload, metric)."""
    lines = [
        f"eventvault bench: backend={backend} events={events} single={single} "
        f"threads={threads} queries={queries} runs={len(runs)} (median (min–max))"
    ]
    for name, metric, value in summary(runs):
        lines.append(f"  {name:<30} {metric:<14} {value}")
    return lines


def soak_lines(report: SoakReport, leaks: dict[str, Any], backend: str) -> list[str]:
    """The soak's account: totals, p99 per minute, memory and descriptors, OK/FAILED."""
    lines = [
        f"soak {backend} {report.seconds:.0f} s: acknowledged {report.acknowledged:,} "
        f"({report.acknowledged_kept:,} kept by policy), found {report.found_kept:,} "
        f"({report.found_distinct:,} distinct), missing {report.missing}, tail saw "
        f"{report.tail_seen:,} (in order: {report.tail_in_order}), retention "
        f"{report.retention_runs} runs / {report.retention_removed:,} removed, verify "
        f"{'ok' if report.verify_ok else 'BROKEN'} ({report.verify_checked:,} events), "
        f"{report.queries:,} queries"
    ]
    for row in report.per_minute:
        lines.append(
            f"  minute {row['minute']:>3}: {row['appends']:>7,} appends p99 "
            f"{row['append_p99_ms']:>8.1f} ms, {row['queries']:>6,} queries p99 "
            f"{row['query_p99_ms']:>8.1f} ms"
        )
    for pid, leak in leaks.items():
        lines.append(
            f"  pid {pid}: RSS {leak['rss_mb_early']} -> {leak['rss_mb_late']} MB (anonymous "
            f"{leak['anon_mb_early']} -> {leak['anon_mb_late']} MB), fds "
            f"{leak['fds_early']} -> {leak['fds_late']}"
        )
    lines.append("OK" if report.ok else "FAILED")
    return lines
