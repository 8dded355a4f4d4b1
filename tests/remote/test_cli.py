"""The CLI against a real ``eventvault serve``: every read and append command, and
one clear line (and the documented exit code) for what a new user gets wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ..server.test_process import Served, free_port
from .conftest import READER

EV = [sys.executable, "-m", "eventvault.cli"]


def ev(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EV, *args], check=False, env=env, input=stdin, capture_output=True, text=True, timeout=120
    )


def test_append_query_get_stats_verify_through_the_server(
    server: Served, client_env: dict[str, str]
) -> None:
    env = dict(client_env)
    del env["EVENTVAULT_BACKEND"]  # --url alone means the http backend
    del env["EVENTVAULT_URL"]
    url = ["--url", server.url]
    out = ev(
        env, *url, "append", "-t", "build.started", "--correlation-id", "run-7", "-d", '{"a": 1}'
    )
    assert out.returncode == 0, out.stderr
    lines = "\n".join(
        json.dumps({"type": "build.step", "correlation_id": f"run-{i + 5}"}) for i in range(5)
    )
    out = ev(env, *url, "append", "--file", "-", stdin=lines + "\n")
    assert out.returncode == 0, out.stderr
    out = ev(env, "query", "--correlation-id", "run-7", "--format", "jsonl", *url)
    assert out.returncode == 0, out.stderr
    got = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(e["type"], e["data"]) for e in got] == [
        ("build.started", {"a": 1}),
        ("build.step", {}),
    ]
    out = ev(env, *url, "get", got[0]["id"], "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["position"] == 1
    out = ev(env, *url, "query", "--all", "--format", "jsonl", "--limit", "2")
    assert len(out.stdout.splitlines()) == 6, out.stderr
    out = ev(env, *url, "stats", "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["events"] == 6
    out = ev(env, *url, "verify")
    assert out.returncode == 0, out.stderr
    out = ev(env, *url, "tail", "-n", "2", "--format", "jsonl")
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 2


def _one_line(out: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    assert "Traceback" not in out.stderr
    return lines[0]


def test_what_a_new_user_gets_wrong_is_one_line_each(
    server: Served, client_env: dict[str, str]
) -> None:
    cases = [
        ({"EVENTVAULT_TOKEN": "wrong"}, ["append", "-t", "a.b"], 3, "EVENTVAULT_TOKEN"),
        ({"EVENTVAULT_TOKEN": READER}, ["append", "-t", "a.b"], 3, "lacks the 'append' scope"),
        (
            {"EVENTVAULT_URL": f"http://127.0.0.1:{free_port()}"},
            ["query"],
            5,
            "cannot reach the eventvault server",
        ),
        ({"EVENTVAULT_URL": server.url + "/nope"}, ["stats"], 3, "eventvault serve"),
        ({"EVENTVAULT_URL": server.url.replace("http:", "https:")}, ["query"], 5, "plain HTTP"),
        ({"EVENTVAULT_URL": "localhost:8730"}, ["query"], 3, "not an http:// or https://"),
    ]
    for change, args, code, text in cases:
        out = ev({**client_env, **change}, *args)
        line = _one_line(out)
        assert out.returncode == code, (change, out.stderr)
        assert text in line, (change, line)
    big = "\n".join(json.dumps({"type": "t", "data": {"pad": "x" * 1000}}) for _ in range(100))
    out = ev(client_env, "append", "--file", "-", stdin=big + "\n")
    assert out.returncode == 2, out.stderr
    assert "413" in _one_line(out)
    out = ev(client_env, "stats", "--format", "json")
    assert json.loads(out.stdout)["events"] == 0  # nothing half-appended


def test_local_only_commands_say_so(
    server: Served, client_env: dict[str, str], tmp_path: Path
) -> None:
    out = ev(client_env, "reindex")
    assert out.returncode == 2
    assert "reindex is for the file backend, not http" in _one_line(out)
    with_policy = tmp_path / "client.toml"
    with_policy.write_text('[store]\nbackend = "http"\n[retention]\nmax_count = 5\n')
    for args in (["retention", "apply", "--yes"], ["retention", "plan"]):
        out = ev(client_env, "-c", str(with_policy), *args)
        assert out.returncode == 2, out.stderr
        assert "the server applies it on its schedule" in _one_line(out)
    out = ev(client_env, "bench")
    assert out.returncode == 2
    assert "bench measures a scratch store" in _one_line(out)
    out = ev(client_env, "serve")
    assert out.returncode == 2
    assert "serve needs a store of its own" in _one_line(out)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTVAULT_")}
    out = ev(env, "--backend", "http", "query")
    assert out.returncode == 3
    assert "store.http.url is not set" in _one_line(out)
