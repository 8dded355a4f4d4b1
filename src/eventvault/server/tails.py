"""Live-tail subscribers share one follower per store and are capped.

A thread per subscriber polling the store let 1,000 idle clients (read scope is
enough) slow every append a hundredfold and hold ~620 MB. Here:

* **One follower per store** (:class:`Hub`): a single thread follows the store
  (``store.subscribe``: in-process appends wake it at once, other writers are
  polled) and hands each batch of new events to the event loop in one call; the
  loop fans it out to the subscribers, matching each distinct filter once.
* **A subscriber costs nothing while idle** (:class:`Subscriber`): a small queue and
  an :class:`asyncio.Event`; no thread, no timer but the heartbeat.
* **Slow subscribers never hold anyone up**: a subscriber whose queue is full is
  dropped from the fan-out and catches up by reading the store itself, from the
  last event it sent — bounded memory per client, no unbounded buffering.
* **Caps** (:class:`Tails`): at most ``server.max_subscribers`` at once (then 503)
  and ``server.max_subscribers_per_token`` per token name (then 429).

Joining the fan-out without a gap or a duplicate: a subscriber first reads the
store up to a head it took (catch-up, ``sub.upto``); it joins with the events the
hub fanned out since then, which the hub keeps (``recent``: every event in
``(floor, last]``) — or, if its catch-up ended before ``floor``, it reads again.
The check and the join happen on the loop thread, which is also where the hub's
``last`` moves, so no batch can slip between them; events at or below ``upto``
that a later batch still carries are skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from ..model import Query, RecordedEvent
from ..store import EventStore
from .requests import HTTPError

__all__ = ["Hub", "Subscriber", "Tails"]

log = logging.getLogger("eventvault.server")

#: Events queued for one subscriber before it is made to catch up by itself.
WINDOW = 1024
#: Events the follower thread reads ahead of the loop's fan-out.
_AHEAD = 4096
#: Events a hub keeps after fanning them out, for subscribers joining late.
_RECENT = 2048
#: Encoded frames kept per hub (many subscribers send the same event).
_FRAMES = 4096


class Subscriber:
    """One live-tail client, as the fan-out sees it."""

    def __init__(self, query: Query, upto: int, kind: str) -> None:
        self.query = query  # (names and types only: positions are tracked here)
        self.key = query.filter_key()
        self.kind = kind  # which encoding its frames use
        self.upto = upto  # every match up to here is sent (or, catching up, read)
        self.queue: deque[RecordedEvent] = deque()
        self.wake = asyncio.Event()
        self.behind = False  # dropped from the fan-out: catch up from the store
        self.error: Exception | None = None
        self.hub: Hub | None = None

    def offer(self, events: list[RecordedEvent]) -> None:
        """Matching events of a batch (already filtered for this subscriber's query)."""
        if self.behind:
            return
        if events[0].position <= self.upto:  # (the batch overlaps the catch-up)
            events = [e for e in events if e.position > self.upto]
            if not events:
                return
        if len(self.queue) + len(events) > WINDOW:
            self.queue.clear()
            self.behind = True
            if self.hub is not None:
                self.hub.leave(self)
        else:
            self.queue.extend(events)
        self.wake.set()

    def fail(self, exc: Exception) -> None:
        self.error = exc
        self.wake.set()


class Hub:
    """The one follower of a store, and its subscribers (loop-owned state)."""

    def __init__(
        self, store: EventStore, loop: asyncio.AbstractEventLoop, start: int, poll: float
    ) -> None:
        self.store = store
        self.loop = loop
        self.last = start  # the last position fanned out (moves on the loop only)
        # The latest events fanned out: every one in (floor, last]. A subscriber whose
        # catch-up ended inside that window joins at once, even under a steady stream
        # of appends (it takes the rest from here instead of reading again).
        self.recent: deque[RecordedEvent] = deque()
        self.floor = start
        self.groups: dict[bytes, tuple[Query, set[Subscriber]]] = {}
        self.count = 0
        self.frames: dict[tuple[str, int], bytes] = {}
        self.on_idle: Callable[[Hub], None] | None = None
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._pending: list[RecordedEvent] = []
        self._scheduled = False
        self._thread = threading.Thread(
            target=self._follow, args=(start, poll), name="eventvault-tail", daemon=True
        )
        self._thread.start()

    # -- the follower thread -------------------------------------------------------------

    def _follow(self, start: int, poll: float) -> None:
        try:
            events = self.store.subscribe(
                Query(limit=1000), after=start, stop=self._stop, poll_interval=poll
            )
            for ev in events:
                with self._cond:
                    while len(self._pending) >= _AHEAD and not self._stop.is_set():
                        self._cond.wait(0.5)  # the loop is behind: wait, do not buffer
                    if self._stop.is_set():
                        return
                    self._pending.append(ev)
                    if not self._scheduled:
                        self._scheduled = True
                        self.loop.call_soon_threadsafe(self._fan_out)
        except Exception as exc:  # the reason goes to every subscriber
            with contextlib.suppress(RuntimeError):  # (the loop may be gone at exit)
                self.loop.call_soon_threadsafe(self._failed, exc)

    # -- on the loop ---------------------------------------------------------------------

    def _fan_out(self) -> None:
        with self._cond:
            batch, self._pending = self._pending, []
            self._scheduled = False
            self._cond.notify_all()
        if not batch:
            return
        self.last = batch[-1].position
        recent = self.recent
        recent.extend(batch)
        while len(recent) > _RECENT:
            self.floor = recent.popleft().position
        for query, subs in list(self.groups.values()):
            matched = [e for e in batch if query.matches(e)]
            if matched:
                for sub in list(subs):
                    sub.offer(matched)

    def _failed(self, exc: Exception) -> None:
        self.stop()
        for _query, subs in list(self.groups.values()):
            for sub in list(subs):
                sub.fail(exc)

    def join(self, sub: Subscriber) -> bool:
        """Add ``sub`` to the fan-out, with what went out since its catch-up ended;
        False if that is no longer here (then it reads the store again)."""
        if sub.upto < self.floor or self._stop.is_set():
            return False
        if self.last > sub.upto:
            missed = [e for e in self.recent if e.position > sub.upto and sub.query.matches(e)]
            if len(missed) > WINDOW:
                return False
            sub.queue.extend(missed)
            if missed:
                sub.wake.set()
        group = self.groups.get(sub.key)
        if group is None:
            group = self.groups[sub.key] = (sub.query, set())
        if sub not in group[1]:
            group[1].add(sub)
            self.count += 1
        sub.hub = self
        sub.behind = False
        return True

    def leave(self, sub: Subscriber) -> None:
        group = self.groups.get(sub.key)
        if group is not None and sub in group[1]:
            group[1].discard(sub)
            self.count -= 1
            if not group[1]:
                del self.groups[sub.key]
        sub.hub = None

    def frame(self, ev: RecordedEvent, kind: str, encode: Callable[[RecordedEvent], Any]) -> bytes:
        """``ev`` as an SSE frame, encoded once for every subscriber that sends it."""
        key = (kind, ev.position)
        got = self.frames.get(key)
        if got is None:
            got = sse_frame(ev, encode)
            if len(self.frames) >= _FRAMES:
                self.frames.clear()
            self.frames[key] = got
        return got

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()


def sse_frame(ev: RecordedEvent, encode: Callable[[RecordedEvent], Any]) -> bytes:
    return b"event: message\nid: %d\ndata: %s\n\n" % (
        ev.position,
        msgspec.json.encode(encode(ev)),
    )


class Tails:
    """Every live tail of one service: the hubs (one per store) and the caps."""

    def __init__(self, *, total: int, per_token: int, poll: float = 0.25) -> None:
        self.total = total
        self.per_token = per_token
        self.poll = poll
        self.hubs: dict[int, Hub] = {}
        self.open = 0
        self.by_token: dict[str, int] = {}
        self.subscribers: set[Subscriber] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._starting: dict[int, asyncio.Future[Hub]] = {}
        self._lock = threading.Lock()

    def admit(self, token: str) -> Callable[[], None]:
        """Count a new tail for ``token`` (refused beyond a cap); returns its release."""
        with self._lock:
            if self.open >= self.total:
                raise HTTPError(
                    503,
                    "TooManySubscribers",
                    f"the server has {self.open} live tails, its limit "
                    "(server.max_subscribers); retry later",
                    {"Retry-After": "5"},
                )
            mine = self.by_token.get(token, 0)
            if mine >= self.per_token:
                raise HTTPError(
                    429,
                    "TooManySubscribers",
                    f"token {token!r} has {mine} live tails open, its limit "
                    "(server.max_subscribers_per_token); close one or retry later",
                    {"Retry-After": "5"},
                )
            self.open += 1
            self.by_token[token] = mine + 1
        released = False

        def release() -> None:
            nonlocal released
            with self._lock:
                if released:
                    return
                released = True
                self.open -= 1
                left = self.by_token[token] - 1
                if left:
                    self.by_token[token] = left
                else:
                    del self.by_token[token]

        return release

    async def hub(self, store: EventStore, head: Callable[[], Any]) -> Hub:
        """The hub following ``store`` (started at its head if there is none; many
        subscribers arriving at once wait for the same start, which no client's
        disconnection can cancel)."""
        hub = self.hubs.get(id(store))
        if hub is not None and not hub.stopped:
            return hub
        starting = self._starting.get(id(store))
        if starting is None:
            starting = asyncio.ensure_future(self._start(store, head))
            self._starting[id(store)] = starting
        return await asyncio.shield(starting)

    async def _start(self, store: EventStore, head: Callable[[], Any]) -> Hub:
        try:
            start = await head()
            hub = Hub(store, asyncio.get_running_loop(), start, self.poll)
            self.hubs[id(store)] = hub
            return hub
        finally:
            del self._starting[id(store)]

    def enter(self, sub: Subscriber) -> None:
        self.loop = asyncio.get_running_loop()
        self.subscribers.add(sub)

    def leave(self, sub: Subscriber, store: EventStore) -> None:
        """``sub`` is gone: out of the fan-out; a hub left without subscribers stops."""
        self.subscribers.discard(sub)
        if sub.hub is not None:
            sub.hub.leave(sub)
        hub = self.hubs.get(id(store))
        if hub is not None and hub.count == 0:
            del self.hubs[id(store)]
            hub.stop()

    def close(self) -> None:
        """Shutting down: every tail ends now (called from any thread)."""
        for hub in list(self.hubs.values()):
            hub.stop()
        if self.loop is not None:
            with contextlib.suppress(RuntimeError):  # (the loop may be closed)
                self.loop.call_soon_threadsafe(self._wake_all)

    def _wake_all(self) -> None:
        for sub in list(self.subscribers):
            sub.wake.set()
