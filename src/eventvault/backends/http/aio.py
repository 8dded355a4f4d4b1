"""``AsyncHttpEventStore``: the ``http`` backend's methods as coroutines.

The requests, answers, errors and retry rules are :mod:`.protocol`'s, as for the
threaded :class:`~.store.HttpEventStore`; only the transport differs (httpx's
``AsyncClient``). ``iter`` and ``subscribe`` are async generators. ``verify``
asks the server to verify (admin scope); the threaded client's ``verify``
recomputes the chain itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from types import TracebackType
from typing import Any, Self, TypeVar
from uuid import UUID

import httpx
import msgspec

from ... import errors
from ...model import (
    AppendResult,
    ExpectedRevision,
    NewEvent,
    Page,
    Query,
    RecordedEvent,
    StoreStats,
    VerifyResult,
)
from ...store import _check_expected, _normalise_batch, as_uuid
from .protocol import (
    Call,
    Head,
    RetryPolicy,
    append_call,
    check_url,
    connection_error,
    get_call,
    head_call,
    read_call,
    stats_call,
    verify_call,
)
from .store import _LONG_POLL, client_options, request_timeout, transport_failure

__all__ = ["AsyncHttpEventStore"]

T = TypeVar("T")


class AsyncHttpEventStore:
    """A client of ``eventvault serve`` for asyncio code; use ``async with``."""

    backend_name = "http"

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        ca_file: str | None = None,
        verify_tls: bool = True,
    ) -> None:
        self.url = check_url(url, "url")
        self.timeout = timeout
        self.retry = RetryPolicy(retries)
        self._client = httpx.AsyncClient(
            base_url=self.url, **client_options(token, timeout, ca_file, verify_tls)
        )
        self._closed = False

    @classmethod
    def from_config(cls, config: Any = None) -> AsyncHttpEventStore:
        """The store ``[store.http]`` of a configuration names (as :func:`open_store`)."""
        from ...registry import load_config
        from . import store_options

        return cls(**store_options(load_config(config)))

    async def _send(self, call: Call[T]) -> T:
        if self._closed:
            raise errors.StoreClosedError
        attempt = 0
        while True:
            attempt += 1
            try:
                answer = await self._client.request(
                    call.method,
                    call.path,
                    params=list(call.params),
                    content=call.body,
                    headers=dict(call.headers),
                    timeout=request_timeout(self.timeout + call.extra_time),
                )
            except httpx.TransportError as exc:
                error, retryable = connection_error(
                    self.url, exc, timeout=self.timeout, kind=transport_failure(exc)
                )
                if not (retryable and self.retry.again(call, attempt, None)):
                    raise error from exc
                await asyncio.sleep(self.retry.delay(attempt))
                continue
            if answer.status_code >= 400 and self.retry.again(call, attempt, answer.status_code):
                await asyncio.sleep(self.retry.delay(attempt, answer.headers.get("retry-after")))
                continue
            return call.parse(self.url, answer.status_code, answer.headers, answer.content)

    async def append(
        self,
        events: NewEvent | Iterable[NewEvent],
        *,
        expected_revision: int | ExpectedRevision | None = None,
    ) -> AppendResult:
        batch = _normalise_batch(events)
        expected = _check_expected(batch, expected_revision)
        records = await self._send(append_call(batch, expected))
        return AppendResult(events=records, written=records.written)

    async def get(self, event_id: UUID | str) -> RecordedEvent | None:
        key = as_uuid(event_id)
        if key is None:
            raise errors.ValidationError(f"{event_id!r} is not an event id (UUID)")
        return await self._send(get_call(key))

    async def read(self, query: Query | None = None, *, cursor: str | None = None) -> Page:
        query = query if query is not None else Query()
        return await self._send(read_call(query, query.limit, cursor))

    async def iter(
        self, query: Query | None = None, *, page_size: int = 1000
    ) -> AsyncIterator[RecordedEvent]:
        query = query if query is not None else Query(limit=page_size)
        cursor: str | None = None
        while True:
            page = await self.read(query, cursor=cursor)
            for ev in page.events:
                yield ev
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def head(self) -> int:
        return (await self.about()).head

    async def about(self) -> Head:
        """The server's store: its id, backend and head."""
        return await self._send(head_call())

    async def stats(self) -> StoreStats:
        return await self._send(stats_call())

    async def verify(self) -> VerifyResult:
        """The server's verification of its store (admin scope)."""
        return await self._send(verify_call())

    async def subscribe(
        self,
        query: Query | None = None,
        *,
        after: int | None = None,
        poll_interval: float = 0.5,
        stop: asyncio.Event | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """Events after ``after`` (default: from the start), then new ones — no gap, no
        duplicate; while the server is unreachable it keeps trying and resumes after
        the last event it delivered. Ends when ``stop`` is set or the store closes."""
        query = query if query is not None else Query()
        if query.reverse:
            raise errors.ValidationError("subscribe reads forwards; reverse=True is not allowed")
        last = max(after or 0, query.after or 0)
        batch = msgspec.structs.replace(query, limit=1000)
        failures = 0
        while not self._closed and not (stop is not None and stop.is_set()):
            try:
                head = await self.head()
                events = (
                    await self._send(read_call(msgspec.structs.replace(batch, after=last), 1000))
                ).events
                if events:
                    for ev in events:
                        yield ev
                        last = ev.position
                    failures = 0
                    continue
                last = max(last, head)  # (as EventStore.subscribe: nothing in (last, head])
                if query.before is not None and last >= query.before - 1:
                    return
                await self._send(head_call(head, min(poll_interval, _LONG_POLL)))
            except errors.StoreUnavailableError:
                failures += 1
                await asyncio.sleep(self.retry.delay(min(failures, 6)))

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
