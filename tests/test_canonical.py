"""The canonical form survives PostgreSQL JSONB, and payload checks reject bad JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import hypothesis.strategies as st
import psycopg
import pytest
from hypothesis import given, settings

from eventvault import NewEvent, ValidationError
from eventvault.integrity.canonical import canonical_event_bytes, check_json_object

TEXT = st.text(
    st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=20
)
SCALARS = (
    st.none()
    | st.booleans()
    | TEXT
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=20,
)
OBJECTS = st.dictionaries(TEXT, JSON, max_size=6)


FIXED = NewEvent(type="t")


def canon(data: dict[str, Any]) -> bytes:
    NewEvent(type="t", data=data)  # must be a valid payload in the first place
    return canonical_event_bytes(
        id=FIXED.id,
        type="t",
        stream="s",
        stream_revision=0,
        actor=None,
        correlation_id=None,
        causation_id=None,
        source=None,
        occurred_at=FIXED.occurred_at,
        recorded_at=FIXED.occurred_at,
        data=data,
        metadata={},
    )


@pytest.fixture(scope="module")
def pg(postgres_dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        yield conn


@settings(max_examples=300, deadline=None)
@given(data=OBJECTS)
def test_canonical_form_survives_a_jsonb_round_trip(pg: psycopg.Connection, data: dict) -> None:
    from eventvault.integrity.canonical import _encoder

    text = _encoder.encode(data).decode()
    (back,) = pg.execute("select (%s::jsonb)::text", (text,)).fetchone()  # type: ignore[misc]
    assert canon(json.loads(back)) == canon(data)


@settings(max_examples=200, deadline=None)
@given(data=OBJECTS)
def test_canonical_form_ignores_key_order(data: dict) -> None:
    assert canon(dict(reversed(list(data.items())))) == canon(data)


def test_known_jsonb_rewrites_hash_the_same(pg: psycopg.Connection) -> None:
    data = {"b": [1e300, 1.0, -0.0, 1.5e-7, 1e20, 0.1], "a": 2**70}
    (back,) = pg.execute("select (%s::jsonb)::text", (json.dumps(data),)).fetchone()  # type: ignore[misc]
    assert json.loads(back) != data  # JSONB really did rewrite it ...
    assert canon(json.loads(back)) == canon(data)  # ... and the hash does not care


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"x": math.nan}, "NaN"),
        ({"x": [math.inf]}, "NaN"),
        ({"x": "a\x00b"}, "NUL"),
        ({"a\x00": 1}, "NUL"),
        ({1: "int key"}, "keys must be strings"),
        ({"x": {1, 2}}, "not a JSON type"),
        ({"x": b"bytes"}, "not a JSON type"),
        ({"x": object()}, "not a JSON type"),
    ],
)
def test_bad_payload_is_rejected(data: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        NewEvent(type="t", data=data)
    with pytest.raises(ValidationError, match=message):
        NewEvent(type="t", metadata=data)


def test_deep_nesting_is_rejected() -> None:
    deep: Any = 1
    for _ in range(100):
        deep = [deep]
    with pytest.raises(ValidationError, match="deeper"):
        check_json_object({"x": deep}, "data")


def test_payload_must_be_an_object() -> None:
    with pytest.raises(ValidationError, match="JSON object"):
        NewEvent(type="t", data=[1, 2])  # type: ignore[arg-type]


def test_tuples_are_accepted_as_arrays() -> None:
    assert canon({"x": (1, 2)}) == canon({"x": [1, 2]})


def test_same_payload_compares_what_the_chain_covers() -> None:
    from eventvault.integrity.canonical import same_payload

    # What PostgreSQL JSONB gives back for these is another Python value, same JSON.
    assert same_payload({"a": 1e23, "b": 1e308}, {"b": 10**308, "a": 10**23})
    assert same_payload({"x": -0.0, "y": 1.0}, {"y": 1, "x": 0})
    assert same_payload({"t": [1.5e-7]}, {"t": [1.5e-7]})
    # Equal in Python, different JSON: not the same payload.
    assert not same_payload({"a": True}, {"a": 1})
    assert not same_payload({"a": 0}, {"a": False})
    assert not same_payload({"a": 1e23}, {"a": 10**23 + 1})


def test_a_retry_must_match_booleans_exactly() -> None:
    from eventvault import DuplicateEventError, MemoryEventStore, NewEvent

    store = MemoryEventStore()
    event = NewEvent(type="t", data={"flag": True})
    store.append(event)
    with pytest.raises(DuplicateEventError):
        store.append(NewEvent(type="t", data={"flag": 1}, id=event.id))
