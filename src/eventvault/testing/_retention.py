"""Retention, the same on every backend: plan, apply, receipts, verify across holes.

The oracle (:func:`expected_gone`) computes what must go straight from the
definition — per group, older than the window or beyond the newest ``max_count`` —
so the backends' fast planners are checked against something independent of them.
A backend may remove *less* than the definition allows only above ``plan.limit``
(the file backend never touches its active segment); never more.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any, ClassVar

import pytest

from ..backends.memory import MemoryEventStore
from ..config import RetentionConfig, RetentionRule
from ..copy import CopyError, copy_store
from ..errors import NotSupportedError, ValidationError
from ..integrity.chain import LEAF
from ..model import NewEvent, Query, RecordedEvent
from ..retention import RECEIPT_TYPE, Policy, resolve_policy
from ..store import EventStore
from ._base import (
    ContractBase,
    Stores,
    Tamper,
    can_retain,
    count,
    ev,
    import_records,
    need_tamper,
)

__all__ = ["RetentionBasicsContract", "RetentionContract"]

HOUR = timedelta(hours=1)


def policy(**kw: Any) -> Policy:
    rules = [RetentionRule(**r) for r in kw.pop("rules", [])]
    resolved = resolve_policy(RetentionConfig(rules=rules, **kw))
    assert resolved is not None
    return resolved


def everything(store: EventStore) -> list[RecordedEvent]:
    return list(store.iter(Query(limit=1000)))


def expected_gone(events: list[RecordedEvent], pol: Policy, now: datetime, limit: int) -> set[int]:
    """Positions the policy removes at ``now``, by definition (receipts excluded)."""
    groups: dict[int, list[RecordedEvent]] = {}
    for e in events:
        gid = pol.group_of(e.type, e.stream)
        if gid is not None:
            groups.setdefault(gid, []).append(e)
    windows = {gid: w for gid, _, w in pol.groups}
    gone: set[int] = set()
    for gid, members in groups.items():
        w = windows[gid]
        for rank, e in enumerate(reversed(members)):  # rank 0 = newest
            old = w.max_age is not None and e.recorded_at < now - w.max_age
            beyond = w.max_count is not None and rank >= w.max_count
            if (old or beyond) and e.position <= limit:
                gone.add(e.position)
    return gone


def append_in_waves(store: EventStore, waves: list[list[NewEvent]]) -> list[datetime]:
    """Append each wave as batches of 5; return each wave's first recorded_at."""
    starts: list[datetime] = []
    for wave in waves:
        time.sleep(0.003)  # waves get distinct recorded_at
        first = None
        for i in range(0, len(wave), 5):
            res = store.append(wave[i : i + 5])
            first = first or res.events[0].recorded_at
        assert first is not None
        starts.append(first)
    return starts


def wave(n: int, tag: str) -> list[NewEvent]:
    types = ["debug.trace", "audit.login", "task.done", "debug.span"]
    return [
        ev(
            types[i % 4],
            stream=f"{tag}-{i % 3}",
            actor=f"agent:{i % 2}",
            data={"v": "aaaa", "i": i},
        )
        for i in range(n)
    ]


MIXED = {
    "max_count": 40,
    "rules": [
        {"types": ["audit.*"], "keep": "forever"},
        {"types": ["debug.*"], "max_age": "1h"},
    ],
}


class RetentionBasicsContract(ContractBase):
    """What every backend does about retention, whether it can apply it or not."""

    def test_reserved_types_cannot_be_appended(self, store: EventStore) -> None:
        with pytest.raises(ValidationError, match="reserved"):
            store.append(NewEvent(type=RECEIPT_TYPE, data={"runs": []}))
        assert store.head() == 0

    def test_a_backend_without_retention_says_so(self, store: EventStore) -> None:
        if can_retain(store):
            assert store.plan_retention(policy(max_count=1)).count == 0
            return
        store.append(ev())
        with pytest.raises(NotSupportedError, match="not available"):
            store.plan_retention(policy(max_count=1))
        with pytest.raises(NotSupportedError, match="not available"):
            store.apply_retention(policy=policy(max_count=1))
        assert count(store) == 1


class RetentionContract(ContractBase):
    """For a backend that applies retention (``plan_retention``/``apply_retention``)."""

    #: True if ``apply_retention`` removes all of a plan in one atomic step (the
    #: memory store): the crash tests then do not insist on a half-done state.
    retention_in_one_step: ClassVar[bool] = False

    @pytest.fixture(autouse=True)
    def _retention_capable(self, store: EventStore) -> None:
        """A store that cannot apply retention skips these tests, saying so (it must
        still refuse, which :class:`RetentionBasicsContract` checks)."""
        if not can_retain(store):
            pytest.skip(f"the {store.backend_name} backend does not apply retention")

    def test_no_policy_keeps_everything(self, store: EventStore) -> None:
        store.append([ev() for _ in range(5)])
        plan = store.plan_retention(now=datetime.now().astimezone() + timedelta(days=3650))
        assert plan.count == 0
        assert plan.groups == []
        report = store.apply_retention(plan)
        assert report.removed == 0
        assert report.receipt_positions == []
        assert len(everything(store)) == 5

    def test_plan_matches_the_definition_and_removes_nothing(self, store: EventStore) -> None:
        starts = append_in_waves(store, [wave(60, "a"), wave(60, "b")])
        pol = policy(**MIXED)
        now = starts[1] + HOUR  # wave a is older than 1h, wave b is not
        before = everything(store)
        plan = store.plan_retention(pol, now=now)
        assert everything(store) == before
        gone = expected_gone(before, pol, now, plan.limit)
        assert plan.count == len(gone) > 0
        by_rule = {g.rule: g for g in plan.groups}
        assert set(by_rule) == {"retention.rules[1]", "retention"}
        debug = by_rule["retention.rules[1]"]
        debug_gone = sorted(p for p in gone if before[p - 1].type.startswith("debug."))
        if debug_gone:
            assert (debug.first_position, debug.last_position) == (debug_gone[0], debug_gone[-1])
            assert debug.oldest == before[debug_gone[0] - 1].recorded_at
            assert debug.newest is not None
            assert debug.newest < starts[1]
        # Never early: one microsecond less, and nothing of wave b's age is due.
        assert (
            store.plan_retention(pol, now=starts[0] + HOUR - timedelta(microseconds=1))
            .groups[0]
            .count
            == 0
        )

    def test_apply_removes_exactly_the_plan_and_records_it(self, store: EventStore) -> None:
        starts = append_in_waves(store, [wave(60, "a"), wave(60, "b")])
        pol = policy(**MIXED)
        now = starts[1] + HOUR
        before = everything(store)
        plan = store.plan_retention(pol, now=now)
        gone = expected_gone(before, pol, now, plan.limit)
        report = store.apply_retention(plan, policy=pol)
        assert report.removed == len(gone) == plan.count
        after = everything(store)
        receipts = [e for e in after if e.type == RECEIPT_TYPE]
        assert [e.position for e in receipts] == report.receipt_positions
        survivors = [e for e in after if e.type != RECEIPT_TYPE]
        assert survivors == [e for e in before if e.position not in gone]
        for p in sorted(gone)[:20]:
            assert store.get(before[p - 1].id) is None
        assert not any(e.position in gone for e in store.iter(Query(types=["debug.*"], limit=7)))
        data = receipts[0].data
        assert data["removed"]["count"] == len(gone)
        assert data["checkpoint"]["position"] == max(gone)
        assert data["checkpoint"]["hash"] == before[max(gone) - 1].hash
        assert sum(run[2] for r in receipts for run in r.data["runs"]) == len(gone)
        result = store.verify()
        assert result.ok, result
        assert result.receipts == 1
        assert result.bridged >= 1
        assert result.checked == len(after)
        # Applying the same plan again finds nothing left to do.
        again = store.apply_retention(store.plan_retention(pol, now=now), policy=pol)
        assert again.removed == 0
        assert again.receipt_positions == []

    def test_receipts_and_forever_rules_are_never_removed(self, store: EventStore) -> None:
        starts = append_in_waves(store, [wave(40, "a"), wave(8, "b")])
        pol = policy(max_count=1, rules=[{"types": ["audit.*"], "keep": "forever"}])
        audits = [e.position for e in everything(store) if e.type == "audit.login"]
        for k in range(3):  # receipts accumulate; none is ever taken by max_count = 1
            store.apply_retention(policy=pol, now=starts[1] + timedelta(days=k + 1))
        after = everything(store)
        assert [e.position for e in after if e.type == "audit.login"] == audits
        assert sum(e.type == RECEIPT_TYPE for e in after) >= 1
        assert store.verify().ok

    def test_revisions_survive_removal(self, store: EventStore) -> None:
        first = store.append([ev("debug.x", stream="gone") for _ in range(12)])
        for _ in range(6):  # enough to seal the file backend's segment behind them
            store.append([ev("task.done", stream="other") for _ in range(10)])
        pol = policy(rules=[{"types": ["debug.*"], "max_age": "1h"}])
        report = store.apply_retention(policy=pol, now=first.events[-1].recorded_at + 2 * HOUR)
        assert report.removed == 12
        assert list(store.iter(Query(streams=["gone"]))) == []
        again = store.append(ev("debug.x", stream="gone"), expected_revision=11)
        assert again.events[0].stream_revision == 12
        assert store.verify().ok

    def test_tampering_is_still_found_after_retention(
        self, store: EventStore, tamper: Tamper | None
    ) -> None:
        alter = need_tamper(tamper)
        starts = append_in_waves(store, [wave(60, "a"), wave(60, "b")])
        pol = policy(**MIXED)
        store.apply_retention(policy=pol, now=starts[1] + HOUR)
        survivor = [e for e in everything(store) if e.type == "task.done"][-1]
        store = alter(store, survivor.position)
        result = store.verify()
        assert not result.ok
        assert result.first_bad_position == survivor.position

    def test_a_crash_in_the_middle_leaves_a_store_that_verifies(self, stores: Stores) -> None:
        store = stores.new()
        starts = append_in_waves(store, [wave(100, "a"), wave(60, "b")])
        pol = policy(**MIXED)
        now = starts[1] + HOUR
        before = everything(store)
        plan = store.plan_retention(pol, now=now)
        gone = expected_gone(before, pol, now, plan.limit)
        assert len(gone) > 10

        class Crash(BaseException):
            pass

        steps = 0

        def die_after_one_step(done: int, total: int | None) -> None:
            nonlocal steps
            if done > total // 2 if total else False:  # removal has begun
                steps += 1
                raise Crash

        with pytest.raises(Crash):
            store.apply_retention(plan, policy=pol, progress=die_after_one_step)
        store = stores.reopen(store)
        middle = {e.position for e in everything(store) if e.type != RECEIPT_TYPE}
        assert {e.position for e in before} - middle <= gone  # nothing outside the plan is gone
        if not self.retention_in_one_step:  # (then nothing is in between)
            assert middle & gone, "the crash should have come in the middle of the removal"
            assert gone - middle, "the crash should have come after the first step"
        assert store.verify().ok
        store.apply_retention(policy=pol, now=now)  # finishes the job
        final = [e for e in everything(store) if e.type != RECEIPT_TYPE]
        assert final == [e for e in before if e.position not in gone]
        assert store.verify().ok

    def test_stream_rules_select_by_stream_and_type(self, store: EventStore) -> None:
        """Rules may name streams (alone or with types); the first match still decides."""
        starts = append_in_waves(store, [wave(60, "a"), wave(30, "b")])
        pol = policy(
            rules=[
                {"streams": ["a-0"], "types": ["task.*"], "keep": "forever"},
                {"streams": ["a-0", "a-1"], "max_count": 3},
                {"types": ["debug.*"], "max_age": "1h"},
            ]
        )
        now = starts[1] + HOUR
        before = everything(store)
        plan = store.plan_retention(pol, now=now)
        gone = expected_gone(before, pol, now, plan.limit)
        assert plan.count == len(gone) > 0
        store.apply_retention(plan, policy=pol)
        after = [e for e in everything(store) if e.type != RECEIPT_TYPE]
        assert after == [e for e in before if e.position not in gone]
        kept = {(e.stream, e.type) for e in after}
        assert ("a-0", "task.done") in kept  # forever, first rule
        assert store.verify().ok

    def test_a_copy_after_retention_verifies_where_positions_differ(self, stores: Stores) -> None:
        """Receipts name source positions; a copy numbers 1, 2, 3… So the bridges across
        holes must hold by hash, in any numbering — also for an interrupted apply's state —
        and a survivor deleted from the copy next to a hole must still be caught."""
        store = stores.new()
        starts = append_in_waves(store, [wave(100, "a"), wave(60, "b"), wave(30, "c")])
        pol = policy(**MIXED)

        class Crash(BaseException):
            pass

        def crash_mid_removal(done: int, total: int | None) -> None:
            if total and done > total // 2:
                raise Crash

        store.apply_retention(policy=pol, now=starts[1] + HOUR)
        with pytest.raises(Crash):  # a second, interrupted apply: partial runs
            store.apply_retention(policy=pol, now=starts[2] + 2 * HOUR, progress=crash_mid_removal)
        store = stores.reopen(store)
        source = store.verify()
        assert source.ok
        assert source.bridged > 0
        copy = MemoryEventStore(hash_format=store.hash_format)
        report = copy_store(store, copy)
        assert report.comparison is not None
        assert report.comparison.ok
        result = copy.verify()
        assert result.ok, result
        assert result.head_hash == source.head_hash
        if store.hash_format == LEAF:
            # Leaf hashes: the copy, numbered 1, 2, 3…, has no holes left to bridge;
            # the copy checked the source's against its receipts (and refuses a
            # source with a hole no receipt records), and a survivor deleted from
            # the copy later leaves a gap none of the copy's own receipts records.
            assert result.bridged == 0
            held = copy.backend
            k = len(held._events) // 2
            del held._events[k], held._positions[k]
            assert not copy.verify().ok
            with pytest.raises(CopyError, match="no retention receipt"):
                copy_store(copy, MemoryEventStore())
            return
        assert result.bridged == source.bridged
        # Delete, in the copy, each survivor that sits right before a hole: caught every time.
        events = list(copy.iter(Query(limit=1000)))
        src_events = list(store.iter(Query(limit=1000)))
        before_hole = [
            k
            for k in range(len(src_events) - 1)
            if src_events[k + 1].position != src_events[k].position + 1
            and src_events[k].type != RECEIPT_TYPE
        ]
        assert before_hole
        for k in before_hole[:5]:
            forged = MemoryEventStore()
            import_records(forged, [e for j, e in enumerate(events) if j != k])
            assert not forged.verify().ok, f"deleting survivor #{k} next to a hole went unnoticed"
