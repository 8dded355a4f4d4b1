"""The command line, as a user meets it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from eventvault.cli.main import cli


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVENTVAULT_CONFIG", raising=False)
    monkeypatch.delenv("EVENTVAULT_BACKEND", raising=False)
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return invoke


def test_zero_config_round_trip_across_processes(tmp_path: Path) -> None:
    """The issue's acceptance scenario, as separate processes in an empty directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTVAULT_")}
    exe = [sys.executable, "-m", "eventvault.cli"]

    def sh(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*exe, *args], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )

    r = sh(
        "append",
        "--type",
        "build.started",
        "--actor",
        "ci",
        "--correlation-id",
        "run-1",
        "--data",
        '{"sha":"abc"}',
    )
    assert r.returncode == 0, r.stderr
    r = sh("query", "--correlation-id", "run-1", "--format", "json")
    assert r.returncode == 0, r.stderr
    (event,) = json.loads(r.stdout)
    assert event["type"] == "build.started"
    assert event["data"] == {"sha": "abc"}
    assert event["position"] == 1
    assert event["recorded_at"]
    assert len(event["hash"]) == 64
    assert sh("verify").returncode == 0
    assert (tmp_path / "eventvault-data" / "segments").is_dir()


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["append", "--type", "x", "--data", "{bad"], 2, "not valid JSON"),
        (["append", "--type", "x", "--data", "[1]"], 2, "JSON object"),
        (["append", "--type", "bad type"], 2, "event type"),
        (["append"], 2, "missing --type"),
        (["query", "--format", "xml"], 2, "xml"),
        (["query", "--since", "yesterdayish"], 2, "not a time"),
        (["query", "--cursor", "nonsense"], 2, "cursor"),
        (["query", "--type", "a*b"], 2, "only allowed at the end"),
        (["append", "--type", "x", "--expected-revision", "soon"], 2, "revision number"),
        (["--config", "missing.toml", "query"], 3, "does not exist"),
    ],
)
def test_bad_input_gets_one_clear_line(run, args: list[str], code: int, message: str) -> None:  # type: ignore[no-untyped-def]
    assert run("init").exit_code == 0  # (reading commands need a store to exist)
    r = run(*args)
    assert r.exit_code == code
    assert message in r.output
    assert "Traceback" not in r.output


def test_typo_in_config_is_exit_3(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "eventvault.toml").write_text('[store]\nbakend = "file"\n')
    r = run("query")
    assert r.exit_code == 3
    assert r.output.strip().startswith(
        "error: eventvault.toml: unknown key 'store.bakend'; did you mean 'backend'?"
    )


def test_append_query_formats(run) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        assert (
            run(
                "append",
                "-t",
                f"task.step{i}",
                "-a",
                "agent:x",
                "--correlation-id",
                "r",
                "-d",
                json.dumps({"i": i, "text": "a,b"}),
            ).exit_code
            == 0
        )
    r = run("query", "--format", "jsonl")
    assert [json.loads(line)["data"]["i"] for line in r.stdout.splitlines()] == [0, 1, 2]
    r = run("query", "--format", "csv", "--reverse")
    lines = r.stdout.splitlines()
    assert lines[0].startswith("position,recorded_at,stream")
    assert lines[1].startswith("3,")
    r = run("query", "--format", "table", "--type", "task.step1")
    assert "task.step1" in r.stdout
    assert "task.step0" not in r.stdout
    r = run("query", "--format", "text", "--actor", "agent:x", "--limit", "2")
    assert len(r.stdout.splitlines()) == 2
    assert "more: --cursor" in r.stderr
    cursor = r.stderr.split("--cursor ")[1].split()[0]
    r = run("query", "--format", "jsonl", "--actor", "agent:x", "--limit", "2", "--cursor", cursor)
    assert [json.loads(x)["position"] for x in r.stdout.splitlines()] == [3]
    r = run("query", "--all", "--limit", "1", "--format", "jsonl")
    assert len(r.stdout.splitlines()) == 3
    assert run("query", "--format", "json", "--stream", "none").stdout.strip() == "[]"


def test_append_from_file_checks_every_line_first(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    good = "\n".join(json.dumps({"type": "imp.x", "data": {"i": i}}) for i in range(25))
    bad = good + '\n{"type": "imp.x", "data": {"i": NaN}}\n'
    (tmp_path / "bad.jsonl").write_text(bad)
    r = run("append", "--file", "bad.jsonl")
    assert r.exit_code == 2
    assert "line 26" in r.stderr
    assert run("stats").exit_code == 7  # not even an empty store was created
    assert run("init").exit_code == 0
    assert run("append", "--file", "bad.jsonl").exit_code == 2
    assert run("stats", "--format", "json").output.count('"events":0') == 1
    (tmp_path / "good.jsonl").write_text(good + "\n\n")
    r = run("append", "--file", "good.jsonl", "--batch-size", "10")
    assert r.exit_code == 0
    assert '"appended": 25' in r.stdout or '"appended":25' in r.stdout
    r = run("append", "--file", "-", input='{"type": "from.stdin"}\n')
    assert r.exit_code == 0
    assert json.loads(run("stats", "--format", "json").stdout)["events"] == 26


def test_append_from_file_rejects_mixed_options(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "e.jsonl").write_text('{"type": "a"}\n')
    assert run("append", "--file", "e.jsonl", "--type", "x").exit_code == 2
    assert run("append", "--file", "-", input="\n").exit_code == 2
    assert run("append", "--file", "-", input="[1]\n").exit_code == 2


def test_expected_revision_conflict_is_exit_4(run) -> None:  # type: ignore[no-untyped-def]
    assert run("append", "-t", "a", "-s", "s1", "--expected-revision", "no_stream").exit_code == 0
    r = run("append", "-t", "a", "-s", "s1", "--expected-revision", "no_stream")
    assert r.exit_code == 4
    assert "expected revision" in r.output
    assert run("append", "-t", "a", "-s", "s1", "--expected-revision", "0").exit_code == 0


def test_idempotent_append_by_id(run) -> None:  # type: ignore[no-untyped-def]
    eid = "01234567-89ab-7def-8123-456789abcdef"
    args = ("append", "-t", "a", "--id", eid, "--occurred-at", "2026-01-01T00:00:00Z")
    first = json.loads(run(*args).stdout)
    second = json.loads(run(*args).stdout)
    assert first == second
    r = run("append", "-t", "b", "--id", eid)
    assert r.exit_code == 4


def test_tail_shows_the_latest(run) -> None:  # type: ignore[no-untyped-def]
    for i in range(5):
        run("append", "-t", f"t.n{i}")
    r = run("tail", "-n", "2")
    assert "t.n3" in r.stdout
    assert "t.n4" in r.stdout
    assert "t.n2" not in r.stdout
    r = run("tail", "-n", "1", "--format", "jsonl")
    assert json.loads(r.stdout)["type"] == "t.n4"


def test_stats_verify_reindex_init(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = run("init", "--write-config")
    assert r.exit_code == 0
    assert (tmp_path / "eventvault.toml").exists()
    assert run("init", "--write-config").exit_code == 3
    run("append", "-t", "a")
    assert "events: 1" in run("stats").stdout
    r = run("verify", "--format", "json")
    assert json.loads(r.stdout)["ok"] is True
    assert "ok: 1 events verified" in run("verify").stdout
    assert run("reindex").exit_code == 0
    assert run("--backend", "memory", "reindex").exit_code == 2


def test_verify_failure_is_exit_6(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("append", "-t", "a", "-d", '{"v": "aaaa"}')
    seg = next((tmp_path / "eventvault-data" / "segments").iterdir())
    seg.write_bytes(seg.read_bytes().replace(b'"aaaa"', b'"aaab"'))
    r = run("verify")
    assert r.exit_code == 6
    assert "BROKEN at position 1" in r.output


def test_every_command_has_help_with_an_example(run) -> None:  # type: ignore[no-untyped-def]
    for name in cli.commands:
        r = run(name, "--help")
        assert r.exit_code == 0, name
        assert "Example" in r.output, f"{name} --help shows no example"


def test_bench_postgres_compares_with_eventsourcing(run, postgres_dsn: str) -> None:  # type: ignore[no-untyped-def]
    r = run(
        "bench",
        "--backend",
        "postgres",
        "--dsn",
        postgres_dsn,
        "--events",
        "1000",
        "--single",
        "20",
        "--threads",
        "2",
        "--queries",
        "3",
        "--json",
    )
    assert r.exit_code == 0, r.output
    (result,) = json.loads(r.stdout[r.stdout.index("[") :])
    assert result["es_append_batch_1000"]["events_per_s"] > 0
    assert result["ratio_append_single_2_threads"]["x"] > 0
    assert result["query_correlation_id"]["p50_ms"] > 0


def test_bench_runs_small(run) -> None:  # type: ignore[no-untyped-def]
    r = run(
        "bench",
        "--backend",
        "memory",
        "--events",
        "1000",
        "--single",
        "20",
        "--threads",
        "2",
        "--json",
    )
    (result,) = json.loads(r.stdout[r.stdout.index("[") :])
    assert result["append_batch_1000"]["events_per_s"] > 0
    r = run("bench", "--events", "2000", "--single", "20", "--threads", "2", "--queries", "5")
    assert r.exit_code == 0, r.output
    assert "replay_all" in r.stdout
    assert "peak_rss_mb" in r.stdout
