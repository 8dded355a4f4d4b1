"""``eventvault runs``, ``trace`` and ``diff`` as a user runs them: real processes, a
real file store, and names chosen to break a careless terminal renderer."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eventvault import NewEvent, open_store
from eventvault.runs import load_run
from eventvault.runs.render import console_for, render_tree, safe

MARKUP = "[bold red]root[/bold red]"
CLOSER = "agent:x[/]"
# Names with C1 controls or bidi overrides are refused at the edge (README, "Validation
# at the edge"), so they cannot reach a run; render.safe still escapes them (see
# test_safe_escapes below) for stores written before that rule.
C1 = "agent:c1-csi"
BIDI = "user:evil"
RUN = "run[/]-1"


def cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTVAULT_")}
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "eventvault.cli", *args],
        cwd=cwd, env=env, capture_output=True, text=True, encoding="utf-8", check=False,
    )  # fmt: skip


@pytest.fixture
def here(tmp_path: Path) -> Path:
    """A file store in ./eventvault-data with two hostile runs and one big one."""
    config = {"store": {"backend": "file", "file": {"path": str(tmp_path / "eventvault-data")}}}
    with open_store(config) as store:
        for run, payload in ((RUN, "plain"), ("run-2", "\x1b[31mred\x1b[0m")):
            root = NewEvent(
                type="run.started", actor=MARKUP, correlation_id=run, causation_id="[blink]cmd",
                stream="s[/]", data={"note": payload},
            )  # fmt: skip
            step = NewEvent(
                type="tool.called", actor=CLOSER, correlation_id=run, causation_id=str(root.id),
                data={"args": {"path": payload}},
            )  # fmt: skip
            extra = (
                [NewEvent(type="tool.retry", actor=C1, correlation_id=run)]
                if run == "run-2"
                else []
            )
            done = NewEvent(
                type="run.failed", actor=BIDI, correlation_id=run, causation_id=str(step.id)
            )
            store.append([root, step, *extra, done])
        store.append([NewEvent(type="step.done", correlation_id="big") for _ in range(30)])
    return tmp_path


def assert_inert(text: str) -> None:
    assert "\x1b" not in text
    assert "\x9b" not in text
    assert "\u202e" not in text


def test_runs_table_prints_names_literally(here: Path) -> None:
    r = cli(here, "runs")
    assert r.returncode == 0, r.stderr
    assert_inert(r.stdout)
    assert MARKUP in r.stdout
    assert C1 in r.stdout
    assert BIDI in r.stdout
    lines = r.stdout.splitlines()
    assert lines[0].split()[0] == "run"
    assert [line.split()[0] for line in lines[2:]] == ["big", "run-2", RUN]


def test_runs_json_and_paging(here: Path) -> None:
    r = cli(here, "runs", "--format", "json", "--limit", "2", "--actor", MARKUP)
    assert r.returncode == 0, r.stderr
    page = json.loads(r.stdout)
    assert [run["correlation_id"] for run in page["runs"]] == ["run-2", RUN]
    assert page["runs"][0]["actors"] == [MARKUP, CLOSER, C1, BIDI]
    assert page["next_cursor"] is None
    r = cli(here, "runs", "--limit", "1", "--format", "json")
    cursor = r.stderr.split("more: --cursor ")[1].strip()
    assert cursor == json.loads(r.stdout)["next_cursor"]
    r = cli(here, "runs", "--limit", "1", "--format", "json", "--cursor", cursor)
    assert [run["correlation_id"] for run in json.loads(r.stdout)["runs"]] == ["run-2"]
    r = cli(here, "runs", "--actor", "nobody")
    assert (r.returncode, r.stdout) == (0, "")
    assert "no runs match" in r.stderr
    r = cli(here, "runs", "--actor", "nobody", "--format", "json")
    assert json.loads(r.stdout) == {"runs": [], "next_cursor": None}
    r = cli(here, "runs", "--cursor", "garbage")
    assert r.returncode == 2
    assert "cursor" in r.stderr


def test_trace_tree_timeline_and_json(here: Path) -> None:
    r = cli(here, "trace", RUN)
    assert r.returncode == 0, r.stderr
    assert_inert(r.stdout)
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"run {RUN}  3 events")
    assert "◇ external cause [blink]cmd" in lines[1]
    assert f"└─ +0ms run.started  {MARKUP}  s[/]#0" in lines[2]
    assert f"tool.called  {CLOSER}" in lines[3]
    assert BIDI in lines[4]

    r = cli(here, "trace", RUN, "--format", "timeline")
    assert r.returncode == 0, r.stderr
    assert_inert(r.stdout)
    assert MARKUP in r.stdout
    assert "█" in r.stdout

    r = cli(here, "trace", "run-2", "--format", "json")
    body = json.loads(r.stdout)
    assert body["correlation_id"] == "run-2"
    assert len(body["events"]) == 4
    assert body["events"][0]["data"]["note"] == "\x1b[31mred\x1b[0m"  # JSON keeps the data
    assert {n["kind"] for n in body["nodes"]} == {"event", "virtual"}


def test_trace_of_an_unknown_or_oversized_run(here: Path) -> None:
    r = cli(here, "trace", "no\x1b[2Jsuch")
    assert r.returncode == 2
    assert r.stdout == ""
    assert "no run" in r.stderr
    assert "\x1b" not in r.stderr
    r = cli(here, "trace", "big", "--max-events", "10")
    assert r.returncode == 0, r.stderr
    assert "more than 10 events" in r.stderr
    assert "truncated" in r.stdout
    assert r.stdout.count("step.done") == 10


def test_diff_text_and_json(here: Path) -> None:
    r = cli(here, "diff", RUN, "run-2", "--timing-threshold", "200ms")
    assert r.returncode == 0, r.stderr
    assert_inert(r.stdout)
    assert "1 only in B" in r.stdout
    assert f"+ {C1} tool.retry" in r.stdout
    assert '/args/path "plain" → "\\u001b[31mred\\u001b[0m"' in r.stdout
    assert f"~ {MARKUP} run.started" in r.stdout

    r = cli(here, "diff", RUN, "run-2", "--format", "json")
    body = json.loads(r.stdout)
    assert (body["same"], body["changed"], body["only_b"]) == (1, 2, 1)
    assert body["timing_threshold_us"] == 1_000_000

    r = cli(here, "diff", RUN, RUN)
    assert "the runs match step for step" in r.stdout

    r = cli(here, "diff", RUN, "run-2", "--timing-threshold", "soon")
    assert r.returncode == 2
    assert "--timing-threshold" in r.stderr
    r = cli(here, "diff", RUN, "missing")
    assert r.returncode == 2
    assert "no run 'missing'" in r.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colours_on_a_terminal_only_and_markup_stays_literal(here: Path) -> None:
    with open_store(
        {"store": {"backend": "file", "file": {"path": str(here / "eventvault-data")}}}
    ) as s:
        trace = load_run(s, RUN)
    assert trace is not None
    tty, pipe = _Terminal(), io.StringIO()
    for out in (tty, pipe):
        console = console_for(out)
        for line in render_tree(trace):
            console.print(line)
    assert "\x1b[" in tty.getvalue()  # styled
    assert "\x1b" not in pipe.getvalue()  # plain
    for out in (tty, pipe):
        assert MARKUP in out.getvalue()
        assert "\x9b" not in out.getvalue()


def test_safe_escapes_controls_and_format_characters() -> None:
    assert safe("ok [b]x[/b] ü 日本") == "ok [b]x[/b] ü 日本"
    assert (
        safe("a\x1b[2Jb\rc\x9bd\u202ee\u2028f\x00") == "a\\x1b[2Jb\\x0dc\\x9bd\\u202ee\\u2028f\\x00"
    )
    assert safe(12) == "12"


def test_runs_pages_continue_with_a_relative_since(here: Path) -> None:
    """The next page of 'runs --since 2h' is the same listing: '2h' resolves against
    the first page's instant (it was refused as 'filters changed')."""
    first = cli(here, "runs", "--since", "2h", "--limit", "1", "--format", "json")
    assert first.returncode == 0, first.stderr
    page = json.loads(first.stdout)
    assert len(page["runs"]) == 1
    assert page["next_cursor"]
    time.sleep(1.1)  # (so '2h' now resolves to another instant)
    second = cli(
        here, "runs", "--since", "2h", "--limit", "1", "--format", "json",
        "--cursor", page["next_cursor"],
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    names = [r["correlation_id"] for r in json.loads(second.stdout)["runs"]]
    assert names
    assert names[0] != page["runs"][0]["correlation_id"]
    changed = cli(here, "runs", "--since", "3h", "--cursor", page["next_cursor"])
    assert changed.returncode == 2
    assert "filters changed" in changed.stderr
