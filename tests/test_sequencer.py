"""Unit tests of the sequencer's rules (:mod:`eventvault.sequencer`) that the property
tests (tests/test_sequencer_properties.py) do not state one by one: duplicates,
partial retries, the size limit, the ``find_many`` pre-filter, a group's overlay and
settlement, and imports (``eventvault copy``)."""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventvault.errors import DuplicateEventError, ValidationError, WrongExpectedRevisionError
from eventvault.groupcommit import Request
from eventvault.integrity.chain import GENESIS, verify_chain
from eventvault.model import ExpectedRevision, NewEvent, RecordedEvent
from eventvault.sequencer import (
    Import,
    Keyed,
    Results,
    check_revision,
    same_content,
    stamp_batch,
    stamp_group,
    stamp_import,
)

from .test_sequencer_properties import T0, State, batches

ANY = ExpectedRevision.ANY


def _ev(i: int = 0, stream: str = "s", **kw: object) -> NewEvent:
    return NewEvent(type="t", stream=stream, data={"i": i}, occurred_at=T0, **kw)  # type: ignore[arg-type]


def _stamp(state: State, batch: Sequence[NewEvent], expected: object = ANY, **kw: object):  # type: ignore[no-untyped-def]
    out = stamp_batch(
        batch,
        expected,  # type: ignore[arg-type]
        state.head,
        revision_of=state.revisions.get,
        find=state.by_id.get,
        now=T0,
        **kw,  # type: ignore[arg-type]
    )
    state.write(out.new, out.head)
    return out


def test_an_id_stored_with_other_content_is_a_duplicate_and_decides_nothing() -> None:
    state = State()
    first = _ev(1)
    _stamp(state, [first])
    head = state.head
    other = NewEvent(id=first.id, type="t", stream="s", data={"i": 2}, occurred_at=T0)
    with pytest.raises(DuplicateEventError, match="position 1"):
        _stamp(state, [_ev(3), other])
    assert state.head is head
    assert len(state.log) == 1


def test_a_partial_retry_returns_the_stored_events_and_writes_only_the_new() -> None:
    state = State()
    a, b = _ev(1), _ev(2)
    first = _stamp(state, [a, b])
    c = _ev(3)
    again = _stamp(state, [b, c, a])
    assert isinstance(again.results, Results)
    assert again.results.written == 1
    assert [r.id for r in again.results] == [b.id, c.id, a.id]  # input order
    assert again.results[0] == first.results[1]
    assert again.results[2] == first.results[0]
    assert [(r.id, r.position, r.stream_revision) for r in again.new] == [(c.id, 3, 2)]


def test_a_partial_retry_checks_the_expected_revision() -> None:
    state = State()
    a = _ev(1)
    _stamp(state, [a])
    with pytest.raises(WrongExpectedRevisionError):
        _stamp(state, [a, _ev(2)], ExpectedRevision.NO_STREAM)


@pytest.mark.parametrize(
    ("expected", "current", "ok"),
    [
        (ANY, None, True),
        (ANY, 4, True),
        (ExpectedRevision.NO_STREAM, None, True),
        (ExpectedRevision.NO_STREAM, 0, False),
        (ExpectedRevision.STREAM_EXISTS, None, False),
        (ExpectedRevision.STREAM_EXISTS, 0, True),
        (0, 0, True),
        (0, None, False),
        (1, 0, False),
    ],
)
def test_check_revision(expected: int | ExpectedRevision, current: int | None, ok: bool) -> None:
    if ok:
        check_revision("s", expected, current)
    else:
        with pytest.raises(WrongExpectedRevisionError) as info:
            check_revision("s", expected, current)
        assert info.value.actual == current


def test_an_event_over_the_size_limit_is_refused_naming_it() -> None:
    state = State()
    with pytest.raises(ValidationError, match=r"event 1 \(t\) is \d+ bytes; the limit is 300"):
        _stamp(state, [_ev(1), NewEvent(type="t", data={"x": "y" * 400})], max_event_bytes=300)
    assert state.log == []


def test_a_defaulted_occurred_at_matches_any_but_a_given_one_must_be_equal() -> None:
    state = State()
    (stored,) = _stamp(state, [_ev(1)]).results
    resent = NewEvent(id=stored.id, type="t", stream="s", data={"i": 1})  # no occurred_at
    assert same_content(resent, stored)
    moved = NewEvent(
        id=stored.id, type="t", stream="s", data={"i": 1}, occurred_at=T0 + timedelta(1)
    )
    assert not same_content(moved, stored)


@settings(max_examples=100, deadline=None)
@given(batches(), st.booleans())
def test_find_many_is_only_a_pre_filter(
    group_batches: list[tuple[list[NewEvent], int | ExpectedRevision]], exact: bool
) -> None:
    """Stamping with ``find_many`` (exact, or a superset: every index) decides what
    stamping without it decides, batch by batch and as a group (whose ``find_many``
    must see the ids stamped earlier in the group)."""

    def run(with_filter: bool) -> list[object]:
        state = State()

        def find_many(batch: Sequence[Keyed], stamped: AbstractSet[int]) -> Sequence[int]:
            if not exact:
                return range(len(batch))
            return [i for i, e in enumerate(batch) if e.id in state.by_id or e.id.int in stamped]

        out = stamp_group(
            [Request(list(b), e) for b, e in group_batches],
            state.head,
            revision_of=state.revisions.get,
            find=state.by_id.get,
            find_many=find_many if with_filter else None,
            now=T0,
        )
        return [
            (type(o), str(o)) if isinstance(o, Exception) else (o.results, o.new, o.head)
            for _, o in out.outcomes
        ]

    assert run(True) == run(False)


def test_a_group_settles_each_request_and_says_what_each_writes() -> None:
    state = State()
    (taken,) = _stamp(state, [_ev(0, "x")]).results
    ok1 = Request([_ev(1, "a"), _ev(2, "b")], ANY)
    bad = Request([_ev(3, "x")], ExpectedRevision.NO_STREAM)  # x exists: fails alone
    retry = Request(
        [NewEvent(id=taken.id, type="t", stream="x", data={"i": 0}, occurred_at=T0)], ANY
    )
    ok2 = Request([_ev(4, "a")], 0)  # sees ok1's revision of "a" through the overlay
    group = stamp_group(
        [ok1, bad, retry, ok2],
        state.head,
        revision_of=state.revisions.get,
        find=state.by_id.get,
        now=T0,
    )
    assert group.failed
    assert [r.position for r in group.new] == [2, 3, 4]
    assert group.head.position == 4
    assert group.revisions == {"a": 1, "b": 0}
    chunks = group.settle()
    assert [req for req, _ in chunks] == [ok1, ok2]  # the retry writes nothing
    assert isinstance(bad.error, WrongExpectedRevisionError)
    assert [r.position for r in ok1.results] == [2, 3]
    assert retry.results == [taken]
    assert retry.error is None
    assert [r.stream_revision for r in ok2.results] == [1]


def _source(n: int, streams: str = "ab") -> list[RecordedEvent]:
    src = State()
    return list(_stamp(src, [_ev(i, streams[i % len(streams)]) for i in range(n)]).new)


def _import(state: State, records: Sequence[RecordedEvent], rechain: bool = False):  # type: ignore[no-untyped-def]
    out = stamp_import(
        Import(records, rechain=rechain),
        state.head,
        revision_of=state.revisions.get,
        find=state.by_id.get,
    )
    state.write(out.new, out.head)
    return out


def test_an_import_keeps_the_hashes_and_a_reimport_writes_nothing() -> None:
    records = _source(6)
    dst = State()
    first = _import(dst, records[:4])
    assert [r.hash for r in first.new] == [r.hash for r in records[:4]]
    assert dst.head.hash == bytes.fromhex(records[3].hash)
    again = _import(dst, records)  # an interrupted copy, run again from the start
    assert again.results.written == 2
    assert [r.id for r in again.new] == [r.id for r in records[4:]]
    assert dst.log == records
    assert verify_chain(iter(dst.log), start=GENESIS).ok


def test_an_import_renumbers_positions_after_the_destinations_head() -> None:
    dst = State()
    _stamp(dst, [_ev(100, "other")])
    records = _source(3)
    out = _import(dst, records, rechain=True)
    assert [r.position for r in out.new] == [2, 3, 4]
    assert [r.stream_revision for r in out.new] == [r.stream_revision for r in records]
    assert out.new[0].hash != records[0].hash  # chained on top of this store's head
    assert verify_chain(iter(dst.log), start=GENESIS).ok


def test_an_import_of_an_id_held_with_another_hash_is_a_duplicate() -> None:
    records = _source(2)
    dst = State()
    _import(dst, records)
    forged = msgspec.structs.replace(records[1], hash="00" * 32)
    with pytest.raises(DuplicateEventError):
        _import(dst, [forged])
    _import(dst, [forged], rechain=True)  # a rechained slice compares content only


def test_an_import_must_keep_revisions_increasing_and_time_monotonic() -> None:
    records = _source(4, "a")
    dst = State()
    _import(dst, records[2:], rechain=True)
    with pytest.raises(ValidationError, match="is at revision 3 here"):
        _import(dst, records[:1], rechain=True)
    late = msgspec.structs.replace(_source(1, "z")[0], recorded_at=datetime(2000, 1, 1, tzinfo=UTC))
    with pytest.raises(ValidationError, match="before the destination's newest event"):
        _import(dst, [late], rechain=True)
    assert [r.id for r in dst.log] == [r.id for r in records[2:]]
