"""Copying a store whose retention runs meanwhile (issue 15, item 8).

Semantics: a copy resumes by chain position — after the newest destination event
the source still holds (its hash proves the history up to it is the same) — so
a destination whose newest events the source removed since is still a faithful
prefix. Comparing, an event one store holds and the other does not is allowed
exactly where the other store's chain has a hole (which its ``verify`` only
accepts when a retention receipt accounts for it): the destination keeps what it
copied before the source's retention removed it, and says how many."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventvault import EventStore, NewEvent, Query
from eventvault.backends.file import FileEventStore
from eventvault.config import RetentionConfig
from eventvault.copy import compare_stores, copy_store
from eventvault.model import Import
from eventvault.retention import RECEIPT_TYPE, resolve_policy


@pytest.fixture(params=["file", "postgres"])
def dst(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStore]:
    if request.param == "file":
        store: EventStore = FileEventStore(tmp_path / "dst")
        yield store
        store.close()
        return
    from eventvault.backends.postgres.store import PostgresEventStore, drop_schema

    dsn = request.getfixturevalue("postgres_dsn")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    store = PostgresEventStore(dsn, schema=schema)
    yield store
    store.close()
    drop_schema(dsn, schema)


def source(tmp_path: Path, n: int) -> FileEventStore:
    src = FileEventStore(tmp_path / "src", segment_max_bytes=4096)
    for i in range(0, n, 10):
        src.append(
            [NewEvent(type="task.done", stream=f"s{k % 3}", data={"i": i + k}) for k in range(10)]
        )
    return src


def keep_newest(src: EventStore, count: int) -> int:
    policy = resolve_policy(RetentionConfig(max_count=count))
    assert policy is not None
    return src.apply_retention(policy=policy).removed


def test_a_copy_resumes_after_the_source_removed_the_destinations_newest_events(
    tmp_path: Path, dst: EventStore
) -> None:
    src = source(tmp_path, 300)
    with src:
        dst.backend.import_records(Import(src.read(Query(limit=100)).events))  # an interrupted copy
        assert keep_newest(src, 100) >= 150  # removes the destination's newest (100)
        assert src.get(dst.read(Query(reverse=True, limit=1)).events[0].id) is None
        report = copy_store(src, dst)
        assert report.comparison is not None
        assert report.comparison.ok, report.comparison.difference
        assert report.comparison.removed_by_retention == 100
        # Resumed after the newest destination event the source still holds.
        assert report.copied == len(list(src.iter()))
        result = dst.verify()
        assert result.ok, result
        assert result.head_hash == src.verify().head_hash
        # And again: nothing to do, still identical.
        again = copy_store(src, dst)
        assert again.copied == 0
        assert again.comparison is not None
        assert again.comparison.ok


def test_a_follow_copy_while_the_source_applies_retention_ends_identical(
    tmp_path: Path, dst: EventStore
) -> None:
    src = source(tmp_path, 200)
    with src:
        stop = threading.Event()
        out: list[object] = []

        def follow() -> None:
            try:
                out.append(
                    copy_store(src, dst, follow=True, stop=stop, batch=50, poll_interval=0.05)
                )
            except BaseException as exc:
                out.append(exc)

        copier = threading.Thread(target=follow)
        copier.start()
        for round_ in range(3):
            time.sleep(0.2)
            src.append([NewEvent(type="task.done", data={"r": round_}) for _ in range(40)])
            time.sleep(0.2)
            keep_newest(src, 60)
        src.append([NewEvent(type="task.done", data={"end": True}) for _ in range(5)])
        deadline = time.monotonic() + 30
        while dst.head() < 1 or (
            dst.read(Query(reverse=True, limit=1)).events[0].id
            != src.read(Query(reverse=True, limit=1)).events[0].id
        ):
            assert time.monotonic() < deadline, "the follow copy did not catch up"
            time.sleep(0.05)
        stop.set()
        copier.join(30)
        (report,) = out
        assert not isinstance(report, BaseException), report
        assert report.comparison is not None  # type: ignore[attr-defined]
        assert report.comparison.ok, report.comparison.difference  # type: ignore[attr-defined]
        assert report.comparison.removed_by_retention > 0  # type: ignore[attr-defined]
        assert dst.verify().ok
        assert compare_stores(src, dst).ok
        assert compare_stores(dst, src).ok  # either way round
        receipts = list(dst.iter(Query(types=[RECEIPT_TYPE])))
        assert len(receipts) == 3  # the source's receipts came along


def test_a_destination_with_other_content_is_still_refused(tmp_path: Path, dst: EventStore) -> None:
    from eventvault.copy import CopyError

    src = source(tmp_path, 50)
    with src:
        dst.append(NewEvent(type="other"))
        with pytest.raises(CopyError):
            copy_store(src, dst)


def test_an_event_missing_without_a_hole_is_still_a_difference(
    tmp_path: Path, dst: EventStore
) -> None:
    src = source(tmp_path, 30)
    with src:
        dst.backend.import_records(Import(src.read(Query(limit=30)).events))
        assert compare_stores(src, dst).ok
        other = FileEventStore(tmp_path / "other")
        with other:
            events = src.read(Query(limit=30)).events
            other.backend.import_records(Import(events[:10] + events[11:], rechain=False))
            result = compare_stores(src, other)
            assert not result.ok
            assert result.removed_by_retention == 0


def test_a_copy_resumes_at_the_newest_event_the_source_still_holds(
    tmp_path: Path, dst: EventStore
) -> None:
    """A per-type rule removed the destination's newest event (and every other one
    of its type) from the source, but kept the events of other types around it."""
    from eventvault.config import RetentionRule

    src = FileEventStore(tmp_path / "src", segment_max_bytes=4096)
    with src:
        for i in range(0, 300, 10):
            src.append(
                [
                    NewEvent(type="debug.x" if (i + k) % 2 else "task.done", data={"i": i + k})
                    for k in range(10)
                ]
            )
        copied = src.read(Query(limit=100)).events
        assert copied[-1].type == "debug.x"
        dst.backend.import_records(Import(copied))
        policy = resolve_policy(
            RetentionConfig(rules=[RetentionRule(types=["debug.*"], max_count=10)])
        )
        assert policy is not None
        assert src.apply_retention(policy=policy).removed >= 100
        assert src.get(copied[-1].id) is None
        assert src.get(copied[-2].id) is not None  # the anchor
        report = copy_store(src, dst)
        assert report.resumed_after == copied[-2].position
        assert report.comparison is not None
        assert report.comparison.ok, report.comparison.difference
        # Every destination event the source removed (the debug.* ones it holds).
        assert report.comparison.removed_by_retention == 50
        assert dst.verify().ok
        assert compare_stores(dst, src).removed_by_retention == 50


def test_the_cli_resumes_and_says_what_only_the_destination_holds(tmp_path: Path) -> None:
    import subprocess
    import sys

    from eventvault import open_store

    def config(name: str) -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(
            f'[store]\nbackend = "file"\n[store.file]\npath = "{tmp_path / name}"\n'
            "segment_max_bytes = 4096\n"
        )
        return path

    src_cfg, dst_cfg = config("a"), config("b")
    with open_store(src_cfg) as src, open_store(dst_cfg) as dst:
        for i in range(0, 300, 10):
            src.append([NewEvent(type="task.done", data={"i": i + k}) for k in range(10)])
        dst.backend.import_records(Import(src.read(Query(limit=100)).events))
        keep_newest(src, 100)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "eventvault.cli",
            "copy",
            "--from",
            str(src_cfg),
            "--to",
            str(dst_cfg),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "identical" in out
    assert "more held by only one store" in out
    assert "resumed from the source's start" in out
