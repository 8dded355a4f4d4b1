"""``eventvault copy`` and ``verify --against`` as real processes: file -> postgres ->
file with 100k events, a SIGKILL in the middle, ``--follow``, and differences."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from eventvault import NewEvent, Query, open_store
from eventvault.copy import compare_stores

EV = [sys.executable, "-m", "eventvault.cli"]


def file_config(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'[store]\nbackend = "file"\n[store.file]\npath = "{tmp_path / name}"\n')
    return path


def pg_config(tmp_path: Path, name: str, dsn: str) -> Path:
    path = tmp_path / f"{name}.toml"
    schema = f"t_{uuid.uuid4().hex[:12]}"
    path.write_text(
        f'[store]\nbackend = "postgres"\n[store.postgres]\ndsn = "{dsn}"\nschema = "{schema}"\n'
    )
    return path


def fill(config: Path, n: int, start: int = 0) -> None:
    types = ["agent.tool.called", "agent.step", "ci.build.finished", "deploy.done", "chat.msg"]
    with open_store(config) as store:
        for i in range(start, start + n, 1000):
            store.append(
                [
                    NewEvent(
                        type=types[k % 5],
                        stream=f"run-{k % 37}",
                        actor=f"agent-{k % 4}",
                        correlation_id=f"c-{k % 11}",
                        data={"k": k, "text": "x" * (k % 40)},
                    )
                    for k in range(i, min(i + 1000, start + n))
                ]
            )


def run(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [*EV, *map(str, args)], check=False, capture_output=True, text=True, timeout=600
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


def heads(*configs: Path) -> list[str | None]:
    out = []
    for config in configs:
        with open_store(config) as store:
            result = store.verify()
            assert result.ok, result
            out.append(result.head_hash)
    return out


@pytest.mark.system
def test_round_trip_file_postgres_file_100k(tmp_path: Path, postgres_dsn: str) -> None:
    a, b, c = (
        file_config(tmp_path, "a"),
        pg_config(tmp_path, "b", postgres_dsn),
        file_config(tmp_path, "c"),
    )
    fill(a, 100_000)
    first = run("copy", "--from", a, "--to", b, "--format", "json")
    report = json.loads(first.stdout)
    assert report["copied"] == 100_000
    assert report["comparison"]["ok"]
    run("copy", "--from", b, "--to", c)
    head_a, head_b, head_c = heads(a, b, c)
    assert head_a == head_b == head_c
    with open_store(a) as sa, open_store(c) as sc:
        cmp = compare_stores(sa, sc)
        assert cmp.ok, cmp
        assert cmp.events == 100_000
        assert cmp.streams == 37
    agree = run("--config", c, "verify", "--against", a)
    assert "identical: 100,000 events in 37 streams" in agree.stdout


@pytest.mark.system
def test_sigkill_mid_copy_then_rerun_completes_exactly(tmp_path: Path, postgres_dsn: str) -> None:
    a, b = file_config(tmp_path, "a"), pg_config(tmp_path, "b", postgres_dsn)
    fill(a, 60_000)
    proc = subprocess.Popen(
        [*EV, "copy", "--from", str(a), "--to", str(b), "--batch", "500"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # Kill it once part (but not all) of the events have landed.
    deadline = time.monotonic() + 120
    landed = 0
    with open_store(b) as sb:
        while time.monotonic() < deadline:
            landed = sb.stats().events
            if landed >= 5_000:
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        landed = sb.stats().events
    assert 0 < landed < 60_000, f"kill landed at {landed}: not in the middle"
    again = json.loads(run("copy", "--from", a, "--to", b, "--format", "json").stdout)
    assert again["resumed_after"] is not None
    assert again["copied"] == 60_000 - landed
    assert again["comparison"]["ok"]
    head_a, head_b = heads(a, b)
    assert head_a == head_b
    with open_store(b) as sb:
        ids = [e.id for e in sb.iter(Query(limit=10_000))]
    assert len(ids) == len(set(ids)) == 60_000


def test_follow_reaches_everything_appended_during_the_copy(tmp_path: Path) -> None:
    a, b = file_config(tmp_path, "a"), file_config(tmp_path, "b")
    fill(a, 20_000)
    proc = subprocess.Popen(
        [*EV, "copy", "--from", str(a), "--to", str(b), "--follow", "--batch", "300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for round_ in range(5):
            fill(a, 1_000, start=20_000 + round_ * 1_000)
            time.sleep(0.1)
        deadline = time.monotonic() + 60
        with open_store(b) as sb:
            while sb.stats().events < 25_000 and time.monotonic() < deadline:
                time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "identical: 25,000 events" in out, (out, err)


def test_a_difference_exits_6_and_names_it(tmp_path: Path) -> None:
    a, b = file_config(tmp_path, "a"), file_config(tmp_path, "b")
    fill(a, 2_000)
    run("copy", "--from", a, "--to", b)
    with open_store(a) as sa:
        sa.append(NewEvent(type="late.one"))
    proc = run("--config", a, "verify", "--against", b, check=False)
    assert proc.returncode == 6
    assert "DIFFERENT after 2,000 equal events" in proc.stdout
    # A store that is not a copy is refused, untouched.
    other = file_config(tmp_path, "other")
    fill(other, 10)
    refused = run("copy", "--from", a, "--to", other, check=False)
    assert refused.returncode == 4
    assert "not a copy of this source" in refused.stderr
    with open_store(other) as so:
        assert so.stats().events == 10


def test_environment_overrides_do_not_turn_both_sides_into_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = file_config(tmp_path, "a"), file_config(tmp_path, "b")
    fill(a, 100)
    monkeypatch.setenv("EVENTVAULT_FILE_PATH", str(tmp_path / "elsewhere"))
    run("copy", "--from", a, "--to", b)
    assert (tmp_path / "b").exists()
    assert not (tmp_path / "elsewhere").exists()


def test_slice_copy_on_the_command_line(tmp_path: Path) -> None:
    a, b = file_config(tmp_path, "a"), file_config(tmp_path, "b")
    fill(a, 5_000)
    out = json.loads(
        run("copy", "--from", a, "--to", b, "--type", "agent.*", "--format", "json").stdout
    )
    assert out["rechained"]
    assert out["copied"] == 2_000
    assert out["comparison"]["ok"]
    with open_store(b) as sb:
        assert sb.verify().ok
        assert {e.type for e in sb.iter(Query(limit=5000))} == {"agent.tool.called", "agent.step"}
