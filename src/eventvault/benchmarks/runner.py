"""Run the benchmark (or the soak) on scratch stores, one per run.

Always a *scratch* store (a temporary directory, or one under the directory the
caller names), never a configured one; PostgreSQL uses its own schemas
(``eventvault_bench``, ``eventvault_soak``), dropped before and after. Reads,
filters, the cold open and peak RSS are measured in a fresh child process
(``python -m eventvault.benchmarks.runner``) that opens the store the writer left
behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .soak import SoakReport, run_soak
from .workloads import (
    BenchError,
    bench_config,
    have,
    reset,
    run_copies,
    run_reads,
    run_writes,
)

__all__ = ["read_in_child", "run_bench", "soak_scratch"]


def run_bench(
    backend: str,
    *,
    events: int,
    single: int,
    threads: int,
    queries: int,
    runs: int,
    work_dir: str | None,
    dsn: str | None,
    compare: bool,
    with_copy: bool,
    say: Callable[[str], None],
) -> list[dict[str, Any]]:
    """Every workload ``runs`` times, each on a fresh scratch store; one result per run."""
    all_runs = []
    for run in range(runs):
        root = Path(tempfile.mkdtemp(prefix="eventvault-bench-", dir=work_dir))
        config = bench_config(backend, root / "store", dsn)
        reset(config)
        try:
            say(f"run {run + 1}/{runs}: {backend} backend in {root}")
            result = run_writes(config, events, single, threads, say)
            if backend == "postgres" and compare and not have("eventsourcing"):
                say(
                    "eventsourcing is not installed (pip install 'eventvault[bench]'): "
                    "no comparison this run"
                )
            elif backend == "postgres" and compare:
                from .compare import run_eventsourcing_writes

                pg_dsn = config["store"]["postgres"]["dsn"]
                theirs = run_eventsourcing_writes(pg_dsn, events, single, threads, say)
                result.update(theirs)
                for name in list(theirs):
                    ours = result[name.removeprefix("es_")]["events_per_s"]
                    result[f"ratio_{name.removeprefix('es_')}"] = {
                        "x": ours / theirs[name]["events_per_s"]
                    }
            if with_copy and backend != "memory":
                result.update(run_copies(config, root, dsn, say))
            if backend != "memory":
                say("reads, filters, open time and RSS in a fresh process")
                result.update(read_in_child(config, queries))
            all_runs.append(result)
        finally:
            shutil.rmtree(root, ignore_errors=True)
            reset(config)
    return all_runs


def read_in_child(config: dict[str, Any], queries: int) -> dict[str, Any]:
    """:func:`~eventvault.benchmarks.workloads.run_reads` in a fresh Python process."""
    proc = subprocess.run(
        [sys.executable, "-m", "eventvault.benchmarks.runner", json.dumps(config), str(queries)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"bench reader process failed:\n{proc.stderr.strip()}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def soak_scratch(
    backend: str,
    *,
    seconds: float,
    writers: int,
    work_dir: str | None,
    dsn: str | None,
    say: Callable[[str], None],
) -> SoakReport:
    """The soak (:func:`~eventvault.benchmarks.soak.run_soak`) on a scratch store of
    ``backend`` (file or postgres: several processes share it)."""
    root = Path(tempfile.mkdtemp(prefix="eventvault-soak-", dir=work_dir))
    config = bench_config(backend, root / "store", dsn)
    if backend == "postgres":
        config["store"]["postgres"]["schema"] = "eventvault_soak"
    reset(config)
    try:
        return run_soak(config, seconds=seconds, writers=writers, say=say)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        reset(config)


if __name__ == "__main__":  # the reader child process
    os.environ.setdefault("PYTHONHASHSEED", "0")
    print(json.dumps(run_reads(json.loads(sys.argv[1]), int(sys.argv[2]))))
