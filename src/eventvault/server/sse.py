"""The live tail as Server-Sent Events.

Each client gets a thread that follows the store (``store.subscribe``) and hands
events to the event loop through a bounded window. A slow client only slows its
own thread — the store and other clients never wait for it — and when the window
is full the thread waits (no unbounded buffering). ``id:`` is the position, so a
reconnecting ``EventSource`` resumes with ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec

from ..model import Query, RecordedEvent
from ..store import EventStore

__all__ = ["sse_stream"]

_WINDOW = 512  # events in flight between a client's thread and the loop
_END = object()


def _frame(ev: RecordedEvent, encode: Callable[[RecordedEvent], Any]) -> bytes:
    return b"id: %d\ndata: %s\n\n" % (ev.position, msgspec.json.encode(encode(ev)))


async def sse_stream(
    store: EventStore,
    query: Query,
    after: int | None,
    *,
    heartbeat: float,
    shutdown: threading.Event,
    encode: Callable[[RecordedEvent], Any],
    on_open: Callable[[], None],
    on_close: Callable[[], None],
) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    room = threading.Semaphore(_WINDOW)
    stop = threading.Event()

    def follow() -> None:
        try:
            for ev in store.subscribe(query, after=after, stop=stop, poll_interval=0.25):
                while not room.acquire(timeout=0.5):
                    if stop.is_set() or shutdown.is_set():
                        return
                loop.call_soon_threadsafe(inbox.put_nowait, ev)
                if shutdown.is_set():
                    break
        except Exception as exc:  # the reason goes to the client, then the stream ends
            loop.call_soon_threadsafe(inbox.put_nowait, exc)
        finally:
            loop.call_soon_threadsafe(inbox.put_nowait, _END)

    on_open()
    thread = threading.Thread(target=follow, name="eventvault-sse", daemon=True)
    thread.start()
    try:
        yield b": eventvault live tail\nretry: 2000\n\n"
        while not shutdown.is_set():
            try:
                item = await asyncio.wait_for(inbox.get(), heartbeat)
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            if item is _END:
                break
            if isinstance(item, Exception):
                message = msgspec.json.encode({"type": type(item).__name__, "message": str(item)})
                yield b"event: error\ndata: %s\n\n" % message
                break
            room.release()
            frames = [_frame(item, encode)]
            while not inbox.empty() and len(frames) < 256:  # flush what is already here
                nxt = inbox.get_nowait()
                if nxt is _END or isinstance(nxt, Exception):
                    inbox.put_nowait(nxt)
                    break
                room.release()
                frames.append(_frame(nxt, encode))
            yield b"".join(frames)
    finally:
        stop.set()
        on_close()
