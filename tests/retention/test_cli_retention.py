"""``eventvault retention plan | apply | run`` as an operator uses them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from eventvault.cli.main import cli

CONFIG = """
[store.file]
segment_max_bytes = 4096
[retention]
max_count = 50
[[retention.rules]]
types = ["debug.*"]
max_age = "7d"
[[retention.rules]]
types = ["audit.*"]
keep = "forever"
"""


@pytest.fixture
def store_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for key in list(os.environ):
        if key.startswith("EVENTVAULT_"):
            monkeypatch.delenv(key)
    (tmp_path / "eventvault.toml").write_text(CONFIG)
    lines = []
    for i in range(100):
        for t in ("debug.trace", "task.done", "audit.login"):
            lines.append(json.dumps({"type": t, "data": {"i": i}}))
    (tmp_path / "ev.jsonl").write_text("\n".join(lines) + "\n")
    r = CliRunner().invoke(cli, ["append", "--file", "ev.jsonl", "--batch-size", "10"])
    assert r.exit_code == 0, r.output
    return tmp_path


def invoke(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_plan_is_a_dry_run(store_dir: Path) -> None:
    r = invoke("retention", "plan", "--at", "+8d", "--format", "json")
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)
    assert plan["count"] == 144
    assert [g["rule"] for g in plan["groups"]] == ["retention.rules[0]", "retention"]
    assert plan["groups"][0]["count"] == 94  # debug events up to the end of the sealed segments
    assert plan["groups"][1]["count"] == 50  # 100 task.done, the newest 50 stay
    text = invoke("retention", "plan", "--at", "+8d").stdout
    assert "Would remove 144 events" in text
    assert "active segment" in text
    # Now nothing is a week old: only the count rule removes anything.
    assert "Would remove 50 events" in invoke("retention", "plan").stdout
    assert json.loads(invoke("stats", "--format", "json").stdout)["events"] == 300


def test_apply_asks_and_refuses_without_a_terminal(store_dir: Path) -> None:
    r = invoke("retention", "apply", "--at", "+8d")
    assert r.exit_code == 2
    assert "pass --yes" in r.stderr
    assert json.loads(invoke("stats", "--format", "json").stdout)["events"] == 300


def test_apply_yes_removes_records_and_verifies(store_dir: Path) -> None:
    r = invoke("retention", "apply", "--at", "+8d", "--yes", "--format", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["removed"] == 144
    assert out["receipt_positions"] == [301]
    receipts = json.loads(
        invoke("query", "--type", "eventvault.retention.applied", "--format", "json").stdout
    )
    assert receipts[0]["data"]["removed"]["count"] == 144
    v = json.loads(invoke("verify", "--format", "json").stdout)
    assert v["ok"]
    assert v["bridged"] >= 1
    text = invoke("verify").stdout
    assert f"{v['bridged']:,} hole(s) left by retention" in text
    assert json.loads(invoke("stats", "--format", "json").stdout)["events"] == 300 - 144 + 1
    # The receipt sealed the segment that was active: its old debug events go next,
    # then nothing is left to do.
    again = invoke("retention", "apply", "--at", "+8d", "--yes", "--format", "json")
    assert 0 < json.loads(again.stdout)["removed"] <= 10
    assert "Nothing to remove." in invoke("retention", "apply", "--at", "+8d", "--yes").stdout
    assert json.loads(invoke("verify", "--format", "json").stdout)["ok"]


def test_no_policy_means_nothing_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVENTVAULT_CONFIG", raising=False)
    assert invoke("init").exit_code == 0
    for command in ("plan", "apply"):
        r = invoke("retention", command)
        assert r.exit_code == 0
        assert "kept forever" in r.stdout


def test_run_applies_on_a_schedule_and_stops_on_sigterm(store_dir: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTVAULT_")}
    # A policy whose window has already passed: max_age under an hour needs allow_short.
    (store_dir / "eventvault.toml").write_text(
        CONFIG.replace("max_count = 50", "max_count = 50\nallow_short = true").replace(
            'max_age = "7d"', 'max_age = "1ms"'
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "eventvault.cli", "retention", "run", "--every", "1s"],
        cwd=store_dir,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    seen = []
    deadline = time.monotonic() + 30
    for line in proc.stderr:
        seen.append(line)
        if "nothing to remove" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    rest = proc.stderr.read()
    assert proc.wait(timeout=30) == 0, "".join(seen) + rest
    log = "".join(seen) + rest
    assert "removed 144 events" in log
    assert "nothing to remove" in log  # a later run found the job done
    assert "stopped after" in log
