"""The live-tail fan-out in one process: failures reach the client, shutdown ends
every tail at once, a subscriber over its window falls back to reading the store,
a late joiner takes what the hub kept."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from eventvault import NewEvent, Query
from eventvault.backends.memory import MemoryEventStore
from eventvault.errors import StoreUnavailableError
from eventvault.server.sse import sse_stream
from eventvault.server.tails import WINDOW, Hub, Subscriber, Tails

pytestmark = pytest.mark.anyio


async def run(fn: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


class Failing(MemoryEventStore):
    """Its follower fails after the first event."""

    def subscribe(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for ev in super().subscribe(*args, **kwargs):
            yield ev
            raise StoreUnavailableError("the backend went away")


def stream(tails: Tails, store: MemoryEventStore, shutdown: threading.Event, **kw: Any) -> Any:
    return sse_stream(tails, store, Query(), kw.pop("after", 0), run=run,
                      heartbeat=kw.pop("heartbeat", 5.0), shutdown=shutdown, kind="event",
                      encode=lambda e: e)  # fmt: skip


async def test_a_follower_failure_ends_every_tail_with_an_error_frame() -> None:
    store = Failing()
    tails = Tails(total=10, per_token=10, poll=0.05)
    frames = stream(tails, store, threading.Event())
    assert (await anext(frames)).startswith(b": eventvault")
    pending = asyncio.ensure_future(anext(frames))
    await asyncio.sleep(0.2)  # (joined the fan-out)
    store.append(NewEvent(type="t.x"))
    first = await asyncio.wait_for(pending, 10)
    assert b"event: message\nid: 1\n" in first
    error = await asyncio.wait_for(anext(frames), 10)
    assert error.startswith(b"event: error\n")
    assert b"StoreUnavailableError" in error
    with pytest.raises(StopAsyncIteration):
        await anext(frames)
    assert tails.hubs == {}


async def test_shutdown_ends_idle_tails_at_once() -> None:
    store = MemoryEventStore()
    tails = Tails(total=10, per_token=10, poll=0.05)
    shutdown = threading.Event()
    frames = stream(tails, store, shutdown, heartbeat=60.0)
    await anext(frames)
    pending = asyncio.ensure_future(anext(frames))
    await asyncio.sleep(0.2)
    started = time.monotonic()
    shutdown.set()
    tails.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, 5)
    assert time.monotonic() - started < 2


async def test_heartbeats_while_idle() -> None:
    store = MemoryEventStore()
    tails = Tails(total=10, per_token=10, poll=0.05)
    frames = stream(tails, store, threading.Event(), heartbeat=0.1)
    await anext(frames)
    assert await asyncio.wait_for(anext(frames), 5) == b": keep-alive\n\n"
    await frames.aclose()
    assert tails.subscribers == set()


def events(store: MemoryEventStore, n: int) -> list[Any]:
    return store.append([NewEvent(type="t.x") for _ in range(n)]).events


async def test_a_subscriber_over_its_window_leaves_the_fan_out() -> None:
    store = MemoryEventStore()
    hub = Hub(store, asyncio.get_running_loop(), 0, 0.05)
    try:
        sub = Subscriber(Query(), 0, "event")
        assert hub.join(sub)
        batch = events(store, WINDOW + 1)
        sub.offer(batch[:10])
        assert len(sub.queue) == 10
        sub.offer(batch[10:])
        assert sub.behind
        assert not sub.queue
        assert sub.hub is None
        assert hub.count == 0
        sub.offer(batch)  # (ignored once behind)
        assert not sub.queue
    finally:
        hub.stop()


async def test_a_late_joiner_takes_what_the_hub_kept_or_reads_again() -> None:
    store = MemoryEventStore()
    hub = Hub(store, asyncio.get_running_loop(), 0, 0.05)
    try:
        batch = events(store, 5)
        hub._pending = list(batch)  # what the follower handed over
        hub._fan_out()
        late = Subscriber(Query(), 2, "event")
        assert hub.join(late)
        assert [e.position for e in late.queue] == [3, 4, 5]
        hub.floor = 4  # (the window moved on past it)
        again = Subscriber(Query(), 2, "event")
        assert not hub.join(again)
        hub.floor = 0
        many = Subscriber(Query(), 0, "event")
        hub.recent.extend(events(store, WINDOW + 1))
        assert not hub.join(many)  # (more missed than its window: read the store)
    finally:
        hub.stop()


def test_caps_count_and_release_once() -> None:
    from eventvault.server.requests import HTTPError

    tails = Tails(total=2, per_token=1)
    release = tails.admit("a")
    with pytest.raises(HTTPError) as per_token:
        tails.admit("a")
    assert per_token.value.status == 429
    other = tails.admit("b")
    with pytest.raises(HTTPError) as total:
        tails.admit("c")
    assert total.value.status == 503
    release()
    release()  # (idempotent)
    assert tails.open == 1
    other()
    assert tails.by_token == {}
