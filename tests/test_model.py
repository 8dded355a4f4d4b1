"""Validation at the edge: event fields, ids, times."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from uuid import UUID

import pytest

from eventvault import ExpectedRevision, NewEvent, ValidationError


@pytest.mark.parametrize(
    "name", ["task.completed", "a", "ci:build/step-1", "_x", "A" * 200, "v2.task_done"]
)
def test_good_type_names(name: str) -> None:
    assert NewEvent(type=name).type == name


@pytest.mark.parametrize("name", ["", "A" * 201, ".x", "task.*", "has space", "é", "-x", 3])
def test_bad_type_names(name: object) -> None:
    with pytest.raises(ValidationError, match="event type"):
        NewEvent(type=name)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stream", ""),
        ("stream", "x" * 201),
        ("actor", "a\nb"),
        ("correlation_id", ""),
        ("source", "s" * 1001),
        ("actor", 5),
    ],
)
def test_bad_text_fields(field: str, value: object) -> None:
    with pytest.raises(ValidationError, match=field):
        NewEvent(type="t", **{field: value})  # type: ignore[arg-type]


def test_ids_and_times_are_filled_in_once() -> None:
    e = NewEvent(type="t")
    assert isinstance(e.id, UUID)
    assert e.id.version == 7
    assert e.occurred_at.tzinfo is not None
    assert NewEvent(type="t").id != e.id


def test_string_id_is_parsed() -> None:
    e = NewEvent(type="t", id="01234567-89ab-7def-8123-456789abcdef")  # type: ignore[arg-type]
    assert e.id == UUID("01234567-89ab-7def-8123-456789abcdef")
    with pytest.raises(ValidationError, match="UUID"):
        NewEvent(type="t", id="nope")  # type: ignore[arg-type]


def test_times_become_utc() -> None:
    plus2 = timezone(timedelta(hours=2))
    e = NewEvent(type="t", occurred_at=datetime(2026, 1, 1, 12, tzinfo=plus2))
    assert e.occurred_at.utcoffset() == timedelta(0)
    assert e.occurred_at.hour == 10
    with pytest.raises(ValidationError, match="timezone"):
        NewEvent(type="t", occurred_at=datetime(2026, 1, 1))
    with pytest.raises(ValidationError, match="datetime"):
        NewEvent(type="t", occurred_at="2026-01-01")  # type: ignore[arg-type]


def test_sentinels_print_their_names() -> None:
    assert str(ExpectedRevision.NO_STREAM) == "NO_STREAM"


def test_public_all_is_sorted_and_complete() -> None:
    import eventvault

    names = [n for n in eventvault.__all__ if not n.startswith("__")]
    assert names == sorted(names, key=lambda n: (not n.isupper(), n))
    for name in eventvault.__all__:
        assert hasattr(eventvault, name)


def test_importing_the_core_needs_no_extras() -> None:
    import subprocess
    import sys

    code = (
        "import sys, eventvault, eventvault.cli.main;"
        "bad=[m for m in ('psycopg','psycopg_pool','fastapi','uvicorn','kurrentdbclient')"
        " if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
