"""Paging from scripts: --cursor-file carries the cursor (also with -q), and a cursor
continues in the other direction with --reverse (issue 17 item 10)."""

from __future__ import annotations

import json
from pathlib import Path

from eventvault import NewEvent, open_store

from .helpers import ev


def _store(tmp_path: Path, n: int) -> None:
    with open_store({"store": {"file": {"path": str(tmp_path / "eventvault-data")}}}) as s:
        s.append([NewEvent(type="p.x", data={"i": i}) for i in range(n)])


def test_a_script_pages_through_everything_with_a_cursor_file(tmp_path: Path) -> None:
    _store(tmp_path, 23)
    seen: list[int] = []
    args = ["-q", "query", "--format", "jsonl", "--limit", "5", "--cursor-file", "next.txt"]
    r = ev(tmp_path, *args)
    rounds = 1
    while True:
        assert r.returncode == 0, r.stderr
        assert r.stderr == ""  # -q: quiet, yet the cursor is not lost
        seen += [json.loads(x)["data"]["i"] for x in r.stdout.splitlines()]
        cursor = (tmp_path / "next.txt").read_text().strip()
        if not cursor:
            break
        r = ev(tmp_path, *args, "--cursor", cursor)
        rounds += 1
    assert seen == list(range(23))
    assert rounds == 5
    assert not (tmp_path / "next.txt.tmp").exists()


def test_reverse_continues_back_from_a_forward_cursor(tmp_path: Path) -> None:
    _store(tmp_path, 10)
    r = ev(tmp_path, "query", "--format", "jsonl", "--limit", "6", "--cursor-file", "c")
    cursor = (tmp_path / "c").read_text().strip()
    assert cursor
    r = ev(tmp_path, "query", "--format", "jsonl", "--reverse", "--cursor", cursor)
    assert r.returncode == 0, r.stderr
    assert [json.loads(x)["data"]["i"] for x in r.stdout.splitlines()] == [4, 3, 2, 1, 0]


def test_all_pages_leave_an_empty_cursor_file(tmp_path: Path) -> None:
    _store(tmp_path, 3)
    (tmp_path / "c").write_text("stale\n")
    r = ev(tmp_path, "query", "--all", "--format", "json", "--cursor-file", "c")
    assert r.returncode == 0
    assert len(json.loads(r.stdout)) == 3
    assert (tmp_path / "c").read_text() == ""
