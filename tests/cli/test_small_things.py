"""The small things a user trips on (issue 17 item 11), through the real command."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import tomllib
import uuid
from pathlib import Path

import pytest

from eventvault import load_config

from .helpers import EXE, clean_env, ev


@pytest.fixture
def store(tmp_path: Path) -> Path:
    lines = [
        json.dumps({"type": f"k.{i % 3}", "actor": f"agent:{i % 2}", "stream": f"s{i % 4}",
                    "data": {"i": i}})
        for i in range(24)
    ]  # fmt: skip
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    assert ev(tmp_path, "append", "--file", "in.jsonl").returncode == 0
    return tmp_path


def test_the_progress_bar_shows_a_readable_rate(tmp_path: Path) -> None:
    lines = [json.dumps({"type": "p.x", "data": {"i": i}}) for i in range(6000)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    master, slave = pty.openpty()  # stderr on a terminal: the bar is drawn
    proc = subprocess.Popen(
        [*EXE, "append", "--file", "in.jsonl", "--batch-size", "100"],
        cwd=tmp_path, env={**clean_env(), "COLUMNS": "120", "TERM": "xterm"},
        stdout=subprocess.PIPE, stderr=slave,
    )  # fmt: skip
    os.close(slave)
    drawn = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        drawn += chunk
    proc.wait(60)
    os.close(master)
    text = drawn.decode(errors="replace")
    assert "ev/s" in text  # the bar was drawn
    assert "None ev/s" not in text
    assert not re.search(r"\d+\.\d{3,} ev/s", text)
    assert re.search(r"(\d[\d,]*|–) ev/s", text)


def test_data_from_a_file_or_stdin(tmp_path: Path) -> None:
    big = {"blob": "x" * 200_000}  # beyond what an argument list takes
    (tmp_path / "payload.json").write_text(json.dumps(big))
    r = ev(tmp_path, "append", "--type", "big.x", "--data", "@payload.json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["data"] == big
    r = ev(tmp_path, "append", "--type", "in.x", "--data", "-", "--metadata", '{"m": 1}',
           input='{"from": "stdin"}')  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["data"] == {"from": "stdin"}
    r = ev(tmp_path, "append", "--type", "x.y", "--data", "@missing.json")
    assert r.returncode == 2
    assert "cannot read 'missing.json'" in r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "2h", "--until", "3h"], "is not before --until"),
        (["--since", "2026-01-02", "--until", "2026-01-01"], "the range is empty"),
        (["--after", "10", "--before", "5"], "the range is empty"),
    ],
)
def test_an_inverted_range_is_an_error_not_an_empty_answer(
    store: Path, args: list[str], message: str
) -> None:
    r = ev(store, "query", *args)
    assert r.returncode == 2
    assert message in r.stderr
    assert r.stdout == ""


def test_one_vocabulary_for_short_options(store: Path) -> None:
    assert len(ev(store, "tail", "-n", "3", "--format", "jsonl").stdout.splitlines()) == 3
    assert len(ev(store, "tail", "--limit", "4", "--format", "jsonl").stdout.splitlines()) == 4
    assert len(ev(store, "tail", "--lines", "2", "--format", "jsonl").stdout.splitlines()) == 2
    assert len(ev(store, "query", "-n", "5", "--format", "jsonl").stdout.splitlines()) == 5
    r = ev(store, "append", "-f", "in.jsonl")  # the old short form still works…
    assert r.returncode == 0
    assert "deprecated" in r.stderr  # …and says what to write instead
    assert "-f, --file" not in ev(store, "append", "--help").stdout


def test_get_prints_one_event_by_id(store: Path) -> None:
    first = json.loads(ev(store, "query", "--limit", "1", "--format", "json").stdout)[0]
    r = ev(store, "get", first["id"])
    assert r.returncode == 0
    assert json.loads(r.stdout) == first
    missing = str(uuid.uuid4())
    r = ev(store, "get", missing)
    assert r.returncode == 2
    assert f"no event with id {missing}" in r.stderr
    assert ev(store, "get", "not-a-uuid").returncode == 2


def test_counts_by_type_actor_stream_and_lists(store: Path) -> None:
    r = ev(store, "stats", "--by", "type", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["counts"] == [
        {"type": "k.0", "events": 8}, {"type": "k.1", "events": 8}, {"type": "k.2", "events": 8}
    ]  # fmt: skip
    r = ev(store, "list", "streams")
    assert r.stdout.split() == ["stream", "events", "s0", "6", "s1", "6", "s2", "6", "s3", "6"]
    r = ev(store, "list", "actors", "--type", "k.0", "--format", "json")
    assert {c["actor"]: c["events"] for c in json.loads(r.stdout)["counts"]} == {
        "agent:0": 4, "agent:1": 4
    }  # fmt: skip
    stats = ev(store, "stats").stdout
    assert "stats --by stream" in stats  # the file backend says how to count streams
    assert "oldest_recorded_at: 20" in stats
    assert "+00:00" not in stats  # times as ISO 8601 with Z


def test_init_write_config_honours_config_and_shows_every_section(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    r = ev(tmp_path, "--config", "conf/ev.toml", "init", "--write-config")
    assert r.returncode == 0, r.stderr
    text = (tmp_path / "conf" / "ev.toml").read_text()
    assert not (tmp_path / "eventvault.toml").exists()
    assert (tmp_path / "conf" / "eventvault-data" / "eventvault.json").exists()
    assert "# [retention]" in text
    assert "# [server]" in text
    # Uncommenting every example gives a configuration that loads.
    uncommented = re.sub(r"(?m)^# (\[|[a-z_]+ = )", r"\1", text)
    assert {"retention", "server"} <= set(tomllib.loads(uncommented))
    (tmp_path / "full.toml").write_text(uncommented)
    env = {"EVENTVAULT_POSTGRES_DSN": "postgresql://a@b/c", "EVENTVAULT_TOKEN_CI": "t" * 20}
    cfg = load_config(tmp_path / "full.toml", env=env)
    assert cfg.retention is not None
    assert cfg.server.tokens[0].name == "ci-runner"


def test_invalid_choices_are_listed_and_env_overrides_named(tmp_path: Path) -> None:
    (tmp_path / "eventvault.toml").write_text('[store.file]\nfsync = "sometimes"\n')
    r = ev(tmp_path, "stats")
    assert r.returncode == 3
    assert "choose one of always, interval, never" in r.stderr
    (tmp_path / "eventvault.toml").unlink()
    r = ev(tmp_path, "stats", env=clean_env(EVENTVAULT_FSYNC="sometimes"))
    assert r.returncode == 3
    assert "EVENTVAULT_FSYNC (environment)" in r.stderr
    assert "built-in default" not in r.stderr


def test_verify_json_on_a_broken_store_names_the_last_good_hash(store: Path) -> None:
    events = [json.loads(x) for x in ev(store, "query", "--format", "jsonl").stdout.splitlines()]
    (segment,) = (store / "eventvault-data" / "segments").glob("*.jsonl")
    raw = segment.read_bytes()
    assert raw.count(b'"data":{"i":5}') == 1
    segment.write_bytes(raw.replace(b'"data":{"i":5}', b'"data":{"i":7}'))
    r = ev(store, "verify", "--format", "json")
    assert r.returncode == 6
    result = json.loads(r.stdout)
    assert result["ok"] is False
    assert result["first_bad_position"] == 6
    assert result["head_hash"] is None  # a broken chain has no verified head
    assert result["last_good_hash"] == events[4]["hash"]
    assert result["file"] == str(segment)  # the segment file to look at
    text = ev(store, "verify")
    assert f"in {segment}" in text.stdout


def test_help_and_readme_document_the_same_exit_codes(tmp_path: Path) -> None:
    from eventvault.cli import common

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("### Exit codes", 1)[1].split("\n\n", 2)[1]
    documented = {int(m) for m in re.findall(r"(?m)^\| (\d+) \|", table)}
    used = {v for k, v in vars(common).items() if k.startswith("EXIT_") and isinstance(v, int)}
    assert documented == used
    helped = ev(tmp_path, "--help").stdout.split("Exit codes:", 1)[1].split("Options:")[0]
    assert {int(m) for m in re.findall(r"\b(\d+) [a-z]", helped)} == used
