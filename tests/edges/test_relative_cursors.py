"""Issue 17.13: the next page of ``query --since 2h`` continues the same query.

A cursor remembers the instant its query's relative times were resolved against;
repeating the same relative filter with the cursor resolves it against that instant
again, so it is the same query. A different filter is still a different query.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from eventvault import MemoryEventStore, NewEvent, Query, ValidationError
from eventvault.cursor import cursor_resolved_at

from ..server.conftest import ClientMaker

EXE = [sys.executable, "-m", "eventvault.cli"]


def sh(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTVAULT_")}
    return subprocess.run(
        [*EXE, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def _cursor(stderr: str) -> str:
    m = re.search(r"--cursor (\S+)", stderr)
    assert m, stderr
    return m.group(1)


def test_cli_pages_through_a_relative_window(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(f'{{"type": "a.b", "data": {{"i": {i}}}}}\n' for i in range(5)))
    assert sh(tmp_path, "append", "--file", str(src)).returncode == 0
    seen: list[int] = []
    r = sh(tmp_path, "query", "--since", "2h", "--until", "+1h", "--limit", "2", "--format", "json")
    assert r.returncode == 0, r.stderr
    seen += [e["data"]["i"] for e in json.loads(r.stdout)]
    cursor = _cursor(r.stderr)
    while True:
        time.sleep(0.01)  # "2h ago" is another instant now
        r = sh(tmp_path, "query", "--since", "2h", "--until", "+1h", "--limit", "2",
               "--format", "json", "--cursor", cursor)  # fmt: skip
        assert r.returncode == 0, r.stderr
        seen += [e["data"]["i"] for e in json.loads(r.stdout)]
        if "--cursor" not in r.stderr:
            break
        cursor = _cursor(r.stderr)
    assert seen == [0, 1, 2, 3, 4]


def test_cli_a_changed_relative_filter_is_another_query(tmp_path: Path) -> None:
    for _ in range(3):
        assert sh(tmp_path, "append", "--type", "a.b").returncode == 0
    r = sh(tmp_path, "query", "--since", "2h", "--limit", "1")
    cursor = _cursor(r.stderr)
    r = sh(tmp_path, "query", "--since", "3h", "--limit", "1", "--cursor", cursor)
    assert r.returncode == 2
    assert "different query" in r.stderr


@pytest.mark.anyio
async def test_http_pages_through_a_relative_window(make_client: ClientMaker) -> None:
    async with make_client() as c:
        await c.post("/v1/events", json=[{"type": "a.b", "data": {"i": i}} for i in range(5)])
        seen: list[int] = []
        url = "/v1/events?since=2h&limit=2"
        r = await c.get(url)
        while True:
            assert r.status_code == 200, r.text
            body = r.json()
            seen += [e["data"]["i"] for e in body["events"]]
            if body["next_cursor"] is None:
                break
            time.sleep(0.01)
            r = await c.get(f"{url}&cursor={body['next_cursor']}")
        assert seen == [0, 1, 2, 3, 4]
        first = (await c.get(url)).json()["next_cursor"]
        r = await c.get(f"/v1/events?since=3h&limit=2&cursor={first}")
        assert r.status_code == 400
        assert "different query" in r.json()["error"]["message"]


def test_the_cursor_carries_the_instant_and_the_library_is_unchanged() -> None:
    store = MemoryEventStore()
    store.append([NewEvent(type="a.b") for _ in range(3)])
    at = datetime.now(UTC)
    q = Query(since=at - timedelta(hours=2), limit=1, resolved_at=at)
    cursor = store.read(q).next_cursor
    assert cursor is not None
    assert cursor_resolved_at(cursor) == at
    plain = store.read(Query(limit=1)).next_cursor
    assert plain is not None
    assert cursor_resolved_at(plain) is None
    # resolved_at is not a filter: the same bounds without it continue the same query
    assert len(store.read(Query(since=at - timedelta(hours=2), limit=1), cursor=cursor)) == 1
    with pytest.raises(ValidationError):
        cursor_resolved_at("not a cursor!")
