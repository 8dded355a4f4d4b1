"""Random operation sequences against a backend and the memory reference: same answers."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from eventvault import (
    NO_STREAM,
    EventStore,
    EventVaultError,
    MemoryEventStore,
    NewEvent,
    Query,
    RecordedEvent,
)

from .conftest import CLEANUP, FACTORIES, Place

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


def make_machine(backend: str) -> type[RuleBasedStateMachine]:
    class Compare(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.tmp = tempfile.TemporaryDirectory()
            self.ref = MemoryEventStore()
            self.place = Place(Path(self.tmp.name), None)
            self.sut = FACTORIES[backend](self.place)
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
                out, cursor = [], None
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
            if backend in CLEANUP:
                CLEANUP[backend](self.place)
            self.tmp.cleanup()

    Compare.__name__ = f"Compare_{backend}"
    return Compare


_settings = settings(
    max_examples=25,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestFileAgainstMemory = make_machine("file").TestCase
TestFileAgainstMemory.settings = _settings
TestPostgresAgainstMemory = pytest.mark.usefixtures("postgres_dsn")(
    make_machine("postgres").TestCase
)
TestPostgresAgainstMemory.settings = settings(
    max_examples=10,
    stateful_step_count=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
