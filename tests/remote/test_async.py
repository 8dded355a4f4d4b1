"""``AsyncHttpEventStore``: the same methods as coroutines, under load from many
tasks, with the same typed errors."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventvault import ExpectedRevision, MemoryEventStore, NewEvent, Query
from eventvault.backends.file import FileEventStore
from eventvault.backends.http import AsyncHttpEventStore
from eventvault.errors import (
    StoreClosedError,
    StoreUnavailableError,
    ValidationError,
    WrongExpectedRevisionError,
)

from ..conformance.served import Served
from ..server.test_process import free_port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    srv = Served(FileEventStore(tmp_path / "store"))
    yield srv
    srv.stop()


def test_many_tasks_append_and_read_at_once(served: Served) -> None:
    async def main() -> None:
        async with AsyncHttpEventStore(served.url) as store:

            async def producer(k: int) -> list[int]:
                positions = []
                for i in range(20):
                    batch = [
                        NewEvent(type="t", stream=f"s-{k}", data={"i": i, "j": j}) for j in range(5)
                    ]
                    result = await store.append(batch)
                    positions += [e.position for e in result.events]
                return positions

            async def reader() -> int:
                seen = 0
                for _ in range(20):
                    page = await store.read(Query(limit=50, reverse=True))
                    seen = max(seen, len(page.events))
                return seen

            results = await asyncio.gather(
                *(producer(k) for k in range(50)), *(reader() for _ in range(5))
            )
            positions = [p for r in results[:50] for p in r]  # type: ignore[union-attr]
            assert sorted(positions) == list(range(1, 5001))
            assert await store.head() == 5000
            everything = [e async for e in store.iter(Query(limit=700))]
            assert [e.position for e in everything] == list(range(1, 5001))
            for k in range(50):  # each stream in its order
                mine = [e for e in everything if e.stream == f"s-{k}"]
                assert [e.stream_revision for e in mine] == list(range(100))
            got = await store.get(everything[10].id)
            assert got == everything[10]
            assert await store.get("2c5ea4c0-4067-11e9-8bad-9b1deb4d3b7d") is None
            stats = await store.stats()
            assert stats.events == 5000
            with pytest.raises(WrongExpectedRevisionError) as info:
                await store.append(NewEvent(type="t", stream="s-1"), expected_revision=3)
            assert info.value.actual == 99
            with pytest.raises(ValidationError):
                await store.append(NewEvent(type="t", stream="new"), expected_revision=-1)
            await store.append(
                NewEvent(type="t", stream="new"), expected_revision=ExpectedRevision.NO_STREAM
            )

    asyncio.run(main())


def test_subscribe_follows_new_events(served: Served) -> None:
    async def main() -> None:
        async with AsyncHttpEventStore(served.url) as store:
            await store.append([NewEvent(type="old") for _ in range(3)])
            stop = asyncio.Event()
            seen: list[int] = []

            async def follow() -> None:
                async for ev in store.subscribe(
                    Query(types=["new.*"]), poll_interval=0.1, stop=stop
                ):
                    seen.append(ev.position)
                    if len(seen) == 10:
                        stop.set()

            task = asyncio.create_task(follow())
            for i in range(10):
                await store.append([NewEvent(type="new.x", data={"i": i}), NewEvent(type="noise")])
            await asyncio.wait_for(task, 30)
            assert seen == list(range(4, 24, 2))

    asyncio.run(main())


def test_a_server_that_is_down_and_a_closed_client_are_typed() -> None:
    async def main() -> None:
        store = AsyncHttpEventStore(f"http://127.0.0.1:{free_port()}", retries=1)
        with pytest.raises(StoreUnavailableError, match="cannot reach"):
            await store.append(NewEvent(type="t"))
        await store.aclose()
        with pytest.raises(StoreClosedError):
            await store.head()

    asyncio.run(main())


class _SlowStore(MemoryEventStore):
    """Each append takes 1 s (outside any lock: the server runs 64 at once)."""

    def append(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(1.0)
        return super().append(*args, **kwargs)


def test_more_tasks_than_connections_queue_for_the_pool_without_timing_out() -> None:
    """200 appends at once over 64 connections to a slow server (1 s an append): the
    last wait ~3 s for a connection, longer than the 2.5 s timeout — which bounds
    each request, not the wait in the queue (a pool timeout failed them). The 1.5 s
    between an append's time and the timeout is headroom for a loaded machine (with
    0.5 s against 1 s it failed under CI load)."""
    srv = Served(_SlowStore())

    async def main() -> None:
        async with AsyncHttpEventStore(srv.url, timeout=2.5, retries=0) as store:
            await asyncio.gather(*(store.append(NewEvent(type="t")) for _ in range(200)))
            assert await store.head() == 200

    try:
        asyncio.run(main())
    finally:
        srv.stop()
