"""Security pass: names never reach the file system or SQL as code; modes are tight."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

import pytest

from eventvault import NewEvent, Query
from eventvault.backends.file import FileEventStore
from eventvault.errors import ValidationError

HOSTILE = [
    "../../../../tmp/evil",
    "/etc/passwd",
    "..\\..\\windows",
    "'; DROP TABLE events; --",
    '" OR 1=1 --',
    "$(rm -rf /)",
    "%2e%2e%2f",
    "stream\u00a0name",  # (a bidi override is refused outright: tests/test_names.py)
    "a" * 200,
]


def test_hostile_names_stay_data_in_the_file_backend(tmp_path: Path) -> None:
    root = tmp_path / "root"
    data = root / "data"
    with FileEventStore(data) as store:
        for name in HOSTILE:
            store.append(NewEvent(type="sec.test", stream=name, actor=name, correlation_id=name,
                                  source=name, data={name: name}))  # fmt: skip
        for name in HOSTILE:
            (ev,) = store.read(Query(streams=[name])).events
            assert ev.stream == name
        assert store.verify().ok
    # Nothing was created outside the data directory, and inside it only the store's
    # own files (named by positions, never by a stream or type).
    outside = [p for p in root.rglob("*") if data not in p.parents and p != data]
    assert outside == []
    for path in data.rglob("*"):
        assert all(h.split("/")[-1] not in path.name for h in HOSTILE), path
    assert not Path("/tmp/evil").exists()


@pytest.mark.parametrize("name", ["", "a\x00b", "line\nbreak", "tab\there"])
def test_control_characters_in_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError):
        NewEvent(type="sec.test", stream=name)


def test_hostile_names_stay_data_in_postgres(postgres_dsn: str) -> None:
    from eventvault.backends.postgres.store import PostgresEventStore, drop_schema

    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with PostgresEventStore(postgres_dsn, schema=schema) as store:
            for name in HOSTILE:
                store.append(NewEvent(type="sec.test", stream=name, actor=name,
                                      correlation_id=name, data={name: name}))  # fmt: skip
            for name in HOSTILE:
                for q in (
                    Query(streams=[name]),
                    Query(actors=[name]),
                    Query(correlation_ids=[name]),
                ):
                    (ev,) = store.read(q).events
                    assert ev.stream == name
            # Type patterns are LIKE prefixes: '_' (a LIKE wildcard) is escaped.
            store.append(NewEvent(type="sec.x_y"))
            store.append(NewEvent(type="sec.xzy"))
            assert [e.type for e in store.read(Query(types=["sec.x_*"])).events] == ["sec.x_y"]
            assert store.stats().events == len(HOSTILE) + 2
            assert store.verify().ok
    finally:
        drop_schema(postgres_dsn, schema)


def test_store_files_and_directories_are_private(tmp_path: Path) -> None:
    old = os.umask(0)  # even with a permissive umask
    try:
        with FileEventStore(tmp_path / "data") as store:
            store.append(NewEvent(type="sec.test"))
    finally:
        os.umask(old)
    for path in (tmp_path / "data").rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"
