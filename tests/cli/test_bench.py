"""``eventvault bench`` is a thin command over :mod:`eventvault.benchmarks`."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from click.testing import CliRunner

from eventvault.benchmarks import runner
from eventvault.benchmarks.report import fmt, summary
from eventvault.benchmarks.workloads import BenchError
from eventvault.cli.main import cli


def test_a_failed_benchmark_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_a: Any, **_k: Any) -> list[dict[str, Any]]:
        raise BenchError("verify failed after retention: nope")

    monkeypatch.setattr(runner, "run_bench", broken)
    r = CliRunner().invoke(cli, ["bench", "--backend", "memory"])
    assert r.exit_code == 1
    assert "Error: verify failed after retention: nope" in r.output
    assert "Traceback" not in r.output


def test_the_summary_is_median_and_range() -> None:
    runs = [{"a": {"events_per_s": v, "events": 5}, "peak_rss_mb": 1.5} for v in (100, 300, 200)]
    assert summary(runs) == [
        ("a", "events_per_s", "200 (100–300)"),
        ("peak_rss_mb", "MB", "1.500 (1.500–1.500)"),
    ]
    assert fmt([0.5]) == "0.500"


def test_the_library_does_not_import_the_benchmarks() -> None:
    code = (
        "import sys, eventvault, eventvault.cli.main; "
        "print(sorted(m for m in sys.modules if 'benchmarks' in m))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
