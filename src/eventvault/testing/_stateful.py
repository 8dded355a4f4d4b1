"""Random operation sequences against a backend and the memory reference: same answers."""

from __future__ import annotations

from typing import Any, ClassVar

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ..backends.memory import MemoryEventStore
from ..errors import EventVaultError
from ..model import NO_STREAM, NewEvent, Query, RecordedEvent
from ..store import EventStore
from ._base import ContractBase, StoreFactory

__all__ = ["StatefulContract"]

STREAMS = st.sampled_from(["s1", "s2", "s3"])
TYPES = st.sampled_from(["a.x", "a.y", "b.z"])
ACTORS = st.sampled_from([None, "u1", "u2"])


def view(e: RecordedEvent) -> tuple[Any, ...]:
    # recorded_at (and so hash) differ between two stores; everything else must not.
    return (
        e.position,
        e.stream_revision,
        e.id,
        e.type,
        e.stream,
        e.actor,
        e.correlation_id,
        e.data,
    )


def outcome(store: EventStore, fn: Any) -> Any:
    try:
        return ("ok", fn(store))
    except EventVaultError as exc:
        return ("error", type(exc).__name__)


def make_machine(make_store: StoreFactory) -> type[RuleBasedStateMachine]:
    """A state machine whose every run opens a fresh store with ``make_store``."""

    class Compare(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.ref = MemoryEventStore()
            self.sut = make_store()
            self.sent: list[NewEvent] = []

        def both(self, fn: Any) -> None:
            a, b = outcome(self.ref, fn), outcome(self.sut, fn)
            assert a == b

        @rule(
            n=st.integers(1, 5),
            stream=STREAMS,
            type_=TYPES,
            actor=ACTORS,
            corr=st.sampled_from(["c1", "c2", None]),
            expect=st.sampled_from([None, NO_STREAM, 0, 1, 2, 5]),
        )
        def append(
            self, n: int, stream: str, type_: str, actor: str | None, corr: str | None, expect: Any
        ) -> None:
            batch = [
                NewEvent(
                    type=type_,
                    stream=stream,
                    actor=actor,
                    correlation_id=corr,
                    data={"i": len(self.sent) + i},
                )
                for i in range(n)
            ]
            self.sent.extend(batch)
            self.both(lambda s: [view(e) for e in s.append(batch, expected_revision=expect).events])

        @precondition(lambda self: self.sent)
        @rule(data=st.data())
        def resend(self, data: st.DataObject) -> None:
            again = data.draw(st.sampled_from(self.sent))
            self.both(lambda s: [view(e) for e in s.append(again).events])

        @rule(
            types=st.lists(st.sampled_from(["a.*", "a.x", "b.z", "*"]), max_size=2),
            actors=st.lists(ACTORS.filter(bool), max_size=2),
            streams=st.lists(STREAMS, max_size=2),
            after=st.none() | st.integers(0, 30),
            limit=st.integers(1, 8),
            reverse=st.booleans(),
        )
        def read(
            self,
            types: list[str],
            actors: list[str],
            streams: list[str],
            after: int | None,
            limit: int,
            reverse: bool,
        ) -> None:
            q = Query(
                types=types,
                actors=actors,
                streams=streams,
                after=after,
                limit=limit,
                reverse=reverse,
            )

            def pages(s: EventStore) -> list[list[tuple[Any, ...]]]:
                out: list[list[tuple[Any, ...]]] = []
                cursor = None
                while True:
                    page = s.read(q, cursor=cursor)
                    out.append([view(e) for e in page.events])
                    if page.next_cursor is None:
                        return out
                    cursor = page.next_cursor

            self.both(pages)

        @invariant()
        def heads_agree(self) -> None:
            assert self.ref.head() == self.sut.head()

        @invariant()
        def chain_verifies(self) -> None:
            assert self.sut.verify().ok

        def teardown(self) -> None:
            self.sut.close()
            self.ref.close()

    return Compare


class StatefulContract(ContractBase):
    """The backend and the memory reference, driven by the same random operations,
    give the same answers (positions, revisions, errors, pages) and the backend's
    chain verifies after every step. Each example opens a fresh store with
    ``make_store``; override :attr:`stateful_settings` for a slower backend."""

    stateful_settings: ClassVar[settings] = settings(
        max_examples=25,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )

    def test_agrees_with_the_memory_reference(self, make_store: StoreFactory) -> None:
        run_state_machine_as_test(make_machine(make_store), settings=self.stateful_settings)
