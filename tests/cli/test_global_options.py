"""--config, --backend and -q are accepted after the subcommand too (issue 17 item 9)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .helpers import ev


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "x.toml").write_text('[store.file]\npath = "./elsewhere"\n')
    assert ev(tmp_path, "--config", "x.toml", "append", "--type", "a.b").returncode == 0
    return tmp_path


@pytest.mark.parametrize(
    "args",
    [
        ["verify", "--config", "x.toml"],
        ["verify", "-c", "x.toml"],
        ["verify", "--config=x.toml", "--format", "json"],
        ["stats", "--format", "json", "--config", "x.toml"],
        ["query", "--format", "jsonl", "--config", "x.toml", "-q"],
        ["retention", "plan", "--config", "x.toml"],
        ["export", "--config", "x.toml"],
    ],
)
def test_global_options_after_the_command(project: Path, args: list[str]) -> None:
    r = ev(project, *args)
    assert r.returncode == 0, r.stderr
    assert "No such option" not in r.stderr
    assert not (project / "eventvault-data").exists()  # it used x.toml's store


def test_after_the_command_wins_over_before(project: Path) -> None:
    (project / "y.toml").write_text('[store.file]\npath = "./missing"\n')
    r = ev(project, "--config", "y.toml", "stats", "--config", "x.toml", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["events"] == 1


def test_quiet_and_backend_after_the_command(project: Path) -> None:
    r = ev(project, "append", "--type", "c.d", "--backend", "memory", "-q")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert json.loads(r.stdout)["position"] == 1  # a fresh memory store, not x.toml's
    assert not (project / "eventvault-data").exists()
    noisy = ev(project, "--config", "x.toml", "verify", "--against", "x.toml")
    quiet = ev(project, "--config", "x.toml", "verify", "--against", "x.toml", "--quiet")
    assert noisy.stderr
    assert quiet.stderr == ""


def test_bench_keeps_its_own_backend_option(tmp_path: Path) -> None:
    r = ev(tmp_path, "bench", "--help")
    assert "--backend [file|memory|postgres]" in r.stdout
