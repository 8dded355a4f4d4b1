"""``eventvault bench``: measure a backend on this machine.

A thin command: the workloads, the runner and the soak are in
:mod:`eventvault.benchmarks`, imported when the command runs. Always works on a
*scratch* store (a temporary directory, or the directory given with ``--dir``),
never the configured one.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from .common import Ctx, PathArg


def _soak(
    backend: str,
    duration: str,
    writers: int,
    work_dir: str | None,
    dsn: str | None,
    as_json: bool,
    say: Any,
) -> None:
    import dataclasses
    import json

    from ..benchmarks.report import soak_lines
    from ..benchmarks.runner import soak_scratch
    from ..benchmarks.soak import leak_summary
    from ..timeutil import parse_duration

    if backend == "memory":
        raise click.UsageError("the soak needs a store several processes share: file or postgres")
    try:
        seconds = parse_duration(duration).total_seconds()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--soak") from None
    say(f"soak: {backend} backend, {duration}, {writers} writer processes, a reader, "
        "a live tail, retention every 10 s")  # fmt: skip
    report = soak_scratch(
        backend, seconds=seconds, writers=writers, work_dir=work_dir, dsn=dsn, say=say
    )
    out = dataclasses.asdict(report)
    out["ok"] = report.ok
    out["leaks"] = leak_summary(report.samples)
    if as_json:
        click.echo(json.dumps(out, indent=2))
    else:
        for line in soak_lines(report, out["leaks"], backend):
            click.echo(line)
    if not report.ok:
        sys.exit(6)


@click.command()
@click.option(
    "--backend",
    "bench_backend",
    type=click.Choice(["file", "memory", "postgres"]),
    default="file",
    show_default=True,
)
@click.option(
    "--events",
    type=click.IntRange(1000),
    default=100_000,
    show_default=True,
    help="Events appended in batches (and then queried).",
)
@click.option(
    "--single",
    type=click.IntRange(10),
    default=2000,
    show_default=True,
    help="Events for the single-event workloads (x2 for the threaded one).",
)
@click.option("--threads", type=click.IntRange(1, 64), default=8, show_default=True)
@click.option(
    "--queries",
    type=click.IntRange(1),
    default=300,
    show_default=True,
    help="Queries per filter workload.",
)
@click.option(
    "--runs",
    type=click.IntRange(1, 20),
    default=1,
    show_default=True,
    help="Repeat everything; report median (min–max).",
)
@click.option(
    "--dir",
    "work_dir",
    type=PathArg(file_okay=False),
    default=None,
    help="Scratch directory (default: a temporary one, removed afterwards).",
)
@click.option("--dsn", default=None, help="PostgreSQL DSN for --backend postgres.")
@click.option("--json", "as_json", is_flag=True, help="Print raw results as JSON.")
@click.option(
    "--compare/--no-compare",
    default=True,
    show_default=True,
    help="postgres: also run the eventsourcing library's recorder (if installed; "
    "pip install 'eventvault[bench]') and print the ratios.",
)
@click.option(
    "--copy/--no-copy",
    "with_copy",
    default=False,
    show_default=True,
    help="Also measure 'eventvault copy' file -> postgres -> file (or the other way round).",
)
@click.option(
    "--soak",
    "soak_for",
    default=None,
    metavar="DURATION",
    help="Instead: the soak test for DURATION (e.g. 30m): writer processes, queries, a "
    "live tail, retention; every acknowledged event accounted for (see docs/reliability.md).",
)
@click.option("--soak-writers", type=click.IntRange(1, 32), default=3, show_default=True)
def bench(
    soak_for: str | None,
    soak_writers: int,
    with_copy: bool,
    bench_backend: str,
    events: int,
    single: int,
    threads: int,
    queries: int,
    runs: int,
    work_dir: str | None,
    dsn: str | None,
    as_json: bool,
    compare: bool,
) -> None:
    """Benchmark a backend on a scratch store (never your configured one).

    \b
    Examples:
      eventvault bench                              # file backend, 100k events
      eventvault bench --events 1000000 --runs 3    # the published figures
      eventvault bench --backend postgres --events 1000000 --runs 3
    """

    def say(message: str) -> None:
        click.echo(message, err=True)

    chosen = click.get_current_context().find_object(Ctx)
    remote = os.environ.get("EVENTVAULT_BACKEND") == "http"  # (it would override ours)
    if remote or (chosen is not None and (chosen.url or chosen.backend == "http")):
        # (bench measures a scratch store it makes; it cannot make one on a server)
        say(
            "error: bench measures a scratch store of its own, so it needs a local backend "
            "(--backend file|memory|postgres); for a server's throughput run "
            "scripts/client_bench.py or scripts/http_bench.py against it"
        )
        sys.exit(2)
    from ..benchmarks.workloads import BenchError

    try:
        if soak_for is not None:
            _soak(bench_backend, soak_for, soak_writers, work_dir, dsn, as_json, say)
            return
        from ..benchmarks.runner import run_bench

        all_runs = run_bench(
            bench_backend, events=events, single=single, threads=threads, queries=queries,
            runs=runs, work_dir=work_dir, dsn=dsn, compare=compare, with_copy=with_copy, say=say,
        )  # fmt: skip
    except BenchError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        import json

        click.echo(json.dumps(all_runs, indent=2))
        return
    from ..benchmarks.report import bench_lines

    for line in bench_lines(
        all_runs, backend=bench_backend, events=events, single=single, threads=threads,
        queries=queries,
    ):  # fmt: skip
        click.echo(line)
