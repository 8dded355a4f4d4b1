"""Property tests of the sequencer (:mod:`eventvault.sequencer`): the one place that
decides positions, revisions, timestamps, hashes, idempotency and expectations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from eventvault.errors import EventVaultError, WrongExpectedRevisionError
from eventvault.groupcommit import Request
from eventvault.integrity.chain import GENESIS, verify_chain
from eventvault.model import ExpectedRevision, NewEvent, RecordedEvent
from eventvault.sequencer import ChainHead, StampedBatch, stamp_batch, stamp_group

T0 = datetime(2026, 1, 1, tzinfo=UTC)
EXPECTATIONS = st.one_of(
    st.sampled_from(list(ExpectedRevision)), st.integers(min_value=0, max_value=3)
)


class State:
    """What a store holds, as the sequencer's callbacks see it."""

    def __init__(self) -> None:
        self.by_id: dict[UUID, RecordedEvent] = {}
        self.revisions: dict[str, int] = {}
        self.log: list[RecordedEvent] = []
        self.head = ChainHead(position=0, hash=GENESIS, recorded_at=None)

    def write(self, new: list[RecordedEvent], head: ChainHead) -> None:
        for rec in new:
            self.by_id[rec.id] = rec
            self.revisions[rec.stream] = rec.stream_revision
            self.log.append(rec)
        self.head = head


@st.composite
def batches(draw: st.DrawFn) -> list[tuple[list[NewEvent], int | ExpectedRevision]]:
    """Batches over a few streams; some re-send events of earlier batches (retries)."""
    pool: list[NewEvent] = []
    out: list[tuple[list[NewEvent], int | ExpectedRevision]] = []
    for _ in range(draw(st.integers(1, 6))):
        single = draw(st.booleans())
        stream = draw(st.sampled_from("abc"))
        events: list[NewEvent] = []
        for _ in range(draw(st.integers(1, 3))):
            if pool and draw(st.integers(0, 4)) == 0:
                old = draw(st.sampled_from(pool))
                if all(e.id != old.id for e in events) and (not single or old.stream == stream):
                    events.append(old)  # a retry of an event sent before
                    continue
            ev = NewEvent(
                type="t",
                stream=stream if single else draw(st.sampled_from("abc")),
                data={"n": draw(st.integers(-5, 5))},
                occurred_at=T0,
            )
            pool.append(ev)
            events.append(ev)
        expected = draw(EXPECTATIONS) if single else ExpectedRevision.ANY
        out.append((events, expected))
    return out


@settings(max_examples=200, deadline=None)
@given(batches(), st.integers(0, 10_000))
def test_stamping_a_group_equals_stamping_its_batches_one_by_one(
    group_batches: list[tuple[list[NewEvent], int | ExpectedRevision]], offset_s: int
) -> None:
    now = T0 + timedelta(seconds=offset_s)
    together = State()
    group = [Request(list(b), e) for b, e in group_batches]
    stamped = stamp_group(
        group,
        together.head,
        revision_of=together.revisions.get,
        find=together.by_id.get,
        now=now,
    )
    together.write(stamped.new, stamped.head)

    alone = State()
    for (batch, expected), (_, outcome) in zip(group_batches, stamped.outcomes, strict=True):
        try:
            one: StampedBatch | EventVaultError = stamp_batch(
                batch,
                expected,
                alone.head,
                revision_of=alone.revisions.get,
                find=alone.by_id.get,
                now=now,
            )
        except EventVaultError as exc:
            one = exc
        if isinstance(one, EventVaultError):
            assert type(outcome) is type(one)
            assert str(outcome) == str(one)
            continue
        assert isinstance(outcome, StampedBatch)
        assert outcome.results == one.results
        assert outcome.new == one.new
        alone.write(one.new, one.head)
    assert together.log == alone.log
    assert together.head == alone.head
    # What the group wrote is a chain from genesis, positions 1, 2, 3...
    assert [r.position for r in together.log] == list(range(1, len(together.log) + 1))
    assert verify_chain(iter(together.log), start=GENESIS).ok


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 10**6), st.integers(1, 5))
def test_a_now_earlier_than_the_head_is_clamped(behind_us: int, n: int) -> None:
    head_time = T0 + timedelta(days=1)
    head = ChainHead(position=7, hash=b"\x01" * 32, recorded_at=head_time)
    batch = [NewEvent(type="t", occurred_at=T0) for _ in range(n)]
    stamped = stamp_batch(
        batch,
        ExpectedRevision.ANY,
        head,
        revision_of=lambda s: None,
        find=lambda i: None,
        now=head_time - timedelta(microseconds=behind_us),
    )
    assert [r.recorded_at for r in stamped.new] == [head_time] * n
    assert stamped.head.recorded_at == head_time
    assert [r.position for r in stamped.new] == list(range(8, 8 + n))


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 4), EXPECTATIONS, st.integers(0, 20))
def test_a_full_retry_skips_the_revision_check(
    n: int, expected: int | ExpectedRevision, more: int
) -> None:
    state = State()
    batch = [NewEvent(type="t", stream="s", data={"i": i}, occurred_at=T0) for i in range(n)]
    first = stamp_batch(
        batch,
        ExpectedRevision.ANY,
        state.head,
        revision_of=state.revisions.get,
        find=state.by_id.get,
        now=T0,
    )
    state.write(first.new, first.head)
    # The stream moves on; the retry's expectation (whatever it is) no longer holds.
    later = [NewEvent(type="t", stream="s", occurred_at=T0) for _ in range(more)]
    if later:
        moved = stamp_batch(
            later,
            ExpectedRevision.ANY,
            state.head,
            revision_of=state.revisions.get,
            find=state.by_id.get,
            now=T0,
        )
        state.write(moved.new, moved.head)
    retry = stamp_batch(
        batch,
        expected,
        state.head,
        revision_of=state.revisions.get,
        find=state.by_id.get,
        now=T0 + timedelta(hours=1),
    )
    assert retry.new == []
    assert retry.results == first.results
    assert retry.head == state.head
    # A partial retry (one new event with it) is checked.
    if expected is ExpectedRevision.NO_STREAM:
        try:
            stamp_batch(
                [*batch, NewEvent(type="t", stream="s", occurred_at=T0)],
                expected,
                state.head,
                revision_of=state.revisions.get,
                find=state.by_id.get,
                now=T0,
            )
        except WrongExpectedRevisionError:
            pass
        else:
            raise AssertionError("a partial retry must check the expected revision")
