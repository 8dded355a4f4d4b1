"""The live tail as Server-Sent Events.

A client first catches up (pages read from the store, in the worker pool), then
joins its store's fan-out (:mod:`.tails`: one follower per store, no thread per
client). Every frame is ``event: message`` (``event: error`` for the one that ends
a stream on a failure), ``id:`` the position — so a reconnecting ``EventSource``
resumes with ``Last-Event-ID`` — and ``data:`` the event as JSON.

A client that goes away stops costing anything at once: its stream is cancelled
where it waits, and it leaves the fan-out and its cap.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec

from ..model import Query, RecordedEvent
from ..store import EventStore
from .tails import Subscriber, Tails, sse_frame

__all__ = ["sse_stream"]

_PAGE = 1000  # events per catch-up read
_FLUSH = 256  # frames written at once


async def sse_stream(
    tails: Tails,
    store: EventStore,
    query: Query,
    after: int,
    *,
    run: Callable[..., Awaitable[Any]],
    heartbeat: float,
    shutdown: threading.Event,
    kind: str,
    encode: Callable[[RecordedEvent], Any],
) -> AsyncGenerator[bytes]:
    """The frames of one live tail of ``store``: events matching ``query`` (names
    and types only) after position ``after``."""
    sub = Subscriber(msgspec.structs.replace(query, after=None), after, kind)
    tails.enter(sub)
    try:
        yield b": eventvault live tail\nretry: 2000\n\n"
        async for frames in _follow(tails, sub, store, run, heartbeat, shutdown, kind, encode):
            yield frames
    except Exception as exc:  # the reason goes to the client, then the stream ends
        problem = {"type": type(exc).__name__, "message": str(exc)}
        yield b"event: error\ndata: %s\n\n" % msgspec.json.encode(problem)
    finally:
        tails.leave(sub, store)


async def _follow(
    tails: Tails,
    sub: Subscriber,
    store: EventStore,
    run: Callable[..., Awaitable[Any]],
    heartbeat: float,
    shutdown: threading.Event,
    kind: str,
    encode: Callable[[RecordedEvent], Any],
) -> AsyncIterator[bytes]:
    while not shutdown.is_set():
        if sub.hub is None:
            # Join the fan-out; only a subscriber starting (or fallen) behind what the
            # hub still holds reads the store first (catch-up), then tries again.
            hub = await tails.hub(store, lambda: run(store.head))
            if hub.join(sub):
                continue
            async for caught in _catch_up(sub, store, run, encode, shutdown):
                yield caught
            continue
        if not sub.queue:
            if sub.error is not None:  # (after what was queued before it)
                raise sub.error
            sub.wake.clear()
            try:
                async with asyncio.timeout(heartbeat):
                    await sub.wake.wait()
            except TimeoutError:
                yield b": keep-alive\n\n"
            continue
        hub = sub.hub
        frames: list[bytes] = []
        while sub.queue and len(frames) < _FLUSH:
            ev = sub.queue.popleft()
            sub.upto = ev.position  # (sent: a catch-up after falling behind starts here)
            frames.append(hub.frame(ev, kind, encode))
        yield b"".join(frames)


async def _catch_up(
    sub: Subscriber,
    store: EventStore,
    run: Callable[..., Awaitable[Any]],
    encode: Callable[[RecordedEvent], Any],
    shutdown: threading.Event,
) -> AsyncIterator[bytes]:
    """Frames of every match in ``(sub.upto, head]``, page by page; then ``sub.upto``
    is that head. (A subscriber that fell behind comes here too, from the last event
    it sent: what its queue held was dropped.)"""
    sub.behind = False
    head = await run(store.head)
    while not shutdown.is_set():
        page = msgspec.structs.replace(sub.query, after=sub.upto, before=head + 1, limit=_PAGE)
        events = (await run(store.read, page)).events
        if events:
            sub.upto = events[-1].position
            yield b"".join(sse_frame(e, encode) for e in events)
        if len(events) < _PAGE:
            sub.upto = max(sub.upto, head)
            return
