"""``append --file``: the whole input is checked before the first write, errors name
lines, and an interrupted run can be re-run to store every line exactly once
(issue 17 items 5 and 6)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from eventvault.backends.file import FileEventStore

from .helpers import EXE, clean_env, ev

SMALL_LIMIT = "[store]\nmax_event_bytes = 2048\n"


def _lines(n: int, **extra: object) -> list[str]:
    return [json.dumps({"type": "imp.x", "data": {"i": i}, **extra}) for i in range(n)]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _count(tmp_path: Path) -> int:
    r = ev(tmp_path, "stats", "--format", "json")
    assert r.returncode == 0, r.stderr
    return int(json.loads(r.stdout)["events"])


@pytest.fixture
def store(tmp_path: Path) -> Path:
    (tmp_path / "eventvault.toml").write_text(SMALL_LIMIT)
    assert ev(tmp_path, "init").returncode == 0
    return tmp_path


def test_an_oversized_event_late_in_the_file_writes_nothing(store: Path) -> None:
    lines = _lines(2500)
    lines[2199] = json.dumps({"type": "imp.big", "data": {"blob": "x" * 3000}})
    _write(store / "in.jsonl", lines)
    r = ev(store, "append", "--file", "in.jsonl", "--batch-size", "1000")
    assert r.returncode == 2, r.stderr
    assert "in.jsonl line 2200" in r.stderr
    assert "max_event_bytes" in r.stderr
    assert "event 199" not in r.stderr  # (the batch-relative index of old)
    assert _count(store) == 0


def test_a_reserved_type_late_in_the_file_writes_nothing(store: Path) -> None:
    lines = _lines(2500)
    lines[-1] = json.dumps({"type": "eventvault.retention.applied"})
    _write(store / "in.jsonl", lines)
    r = ev(store, "append", "--file", "in.jsonl")
    assert r.returncode == 2, r.stderr
    assert "line 2500" in r.stderr
    assert "reserved" in r.stderr
    assert _count(store) == 0


def test_an_id_stored_with_other_content_is_found_before_writing(store: Path) -> None:
    taken = str(uuid.uuid4())
    assert ev(store, "append", "--type", "first.one", "--id", taken).returncode == 0
    lines = _lines(2500)
    lines[1800] = json.dumps({"type": "other.content", "id": taken})
    _write(store / "in.jsonl", lines)
    r = ev(store, "append", "--file", "in.jsonl")
    assert r.returncode == 4, r.stderr
    assert "line 1801" in r.stderr
    assert taken in r.stderr
    assert _count(store) == 1


def test_a_duplicate_id_across_batches_is_reported_like_within_one(store: Path) -> None:
    twice = str(uuid.uuid4())
    lines = _lines(2500)
    lines[2] = json.dumps({"type": "imp.x", "id": twice})
    lines[2400] = json.dumps({"type": "imp.x", "id": twice})
    _write(store / "across.jsonl", lines)
    r = ev(store, "append", "--file", "across.jsonl", "--batch-size", "1000")
    assert r.returncode == 2, r.stderr
    assert "line 2401" in r.stderr
    assert "line 3" in r.stderr
    assert "appears twice" in r.stderr
    _write(store / "within.jsonl", [*lines[:10], lines[2]])
    r2 = ev(store, "append", "--file", "within.jsonl", "--batch-size", "1000")
    assert r2.returncode == 2
    assert "line 11" in r2.stderr
    assert "line 3" in r2.stderr
    assert "appears twice" in r2.stderr
    assert _count(store) == 0


def test_stdin_is_checked_whole_before_the_first_write(store: Path) -> None:
    lines = _lines(2500)
    lines[-1] = '{"type": "imp.x", "data": {"i": NaN}}'
    r = ev(store, "append", "--file", "-", input="\n".join(lines) + "\n")
    assert r.returncode == 2
    assert "<stdin> line 2500" in r.stderr
    assert _count(store) == 0


def test_a_rerun_stores_nothing_twice_and_counts_what_it_stored(store: Path) -> None:
    _write(store / "in.jsonl", _lines(1500))
    first = ev(store, "append", "--file", "in.jsonl", "--batch-size", "400")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["appended"] == 1500
    again = ev(store, "append", "--file", "in.jsonl", "--batch-size", "700")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["appended"] == 0
    assert report["already_stored"] == 1500
    assert "already stored" in again.stderr
    assert _count(store) == 1500
    # Other bytes are other events, even where lines repeat.
    _write(store / "other.jsonl", [*_lines(1500), json.dumps({"type": "imp.extra"})])
    third = ev(store, "append", "--file", "other.jsonl")
    assert json.loads(third.stdout)["appended"] == 1501
    assert _count(store) == 3001


N = 40_000


def _head(path: Path) -> int:
    with FileEventStore(path / "eventvault-data", create=False) as s:
        return s.head()


def _interrupt_and_rerun(tmp_path: Path, stop: signal.Signals) -> str:
    (tmp_path / "eventvault.toml").write_text("")  # fsync always: slow enough to interrupt
    assert ev(tmp_path, "init").returncode == 0
    _write(tmp_path / "big.jsonl", _lines(N))
    proc = subprocess.Popen(
        [*EXE, "append", "--file", "big.jsonl", "--batch-size", "200"],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while _head(tmp_path) < 2000:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(stop)
    _out, err = proc.communicate(timeout=60)
    expected = 130 if stop == signal.SIGINT else -signal.SIGKILL
    assert proc.returncode == expected, err
    stored = _head(tmp_path)
    assert 2000 <= stored < N, "interrupt earlier: the run finished"
    r = ev(tmp_path, "append", "--file", "big.jsonl", "--batch-size", "1000")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["appended"] == N - stored
    assert report["already_stored"] == stored
    dump = ev(tmp_path, "query", "--all", "--format", "jsonl")
    seen = [json.loads(x)["data"]["i"] for x in dump.stdout.splitlines()]
    assert sorted(seen) == list(range(N))  # every line exactly once
    return err


def test_ctrl_c_says_how_far_it_got_and_a_rerun_stores_each_line_once(tmp_path: Path) -> None:
    err = _interrupt_and_rerun(tmp_path, signal.SIGINT)
    assert "interrupted" in err
    assert "lines 1–" in err
    assert f"of {N:,}" in err
    assert "re-run the same command" in err


@pytest.mark.system
def test_kill_9_then_a_rerun_stores_each_line_once(tmp_path: Path) -> None:
    _interrupt_and_rerun(tmp_path, signal.SIGKILL)
