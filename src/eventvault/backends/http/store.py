"""``HttpEventStore``: a store behind ``eventvault serve``, with the store's own API.

:class:`HttpBackend` maps every method of the backend contract onto the
service's HTTP API through :mod:`.protocol` (shared with the asyncio client);
httpx keeps the connections alive between calls. Reading, paging, the live tail
and verification are the façade's own algorithms over that API, so their
promises (no gap, no duplicate, cursors tied to the query and the store) are the
same as for a local store: the cursors are the server's store's own, and
``verify`` recomputes the hash chain here, from the events the server sends —
it does not take the server's word for it.

What the client cannot do is said, not skipped: retention runs in the server
(its ``[retention]`` configuration), and a copy goes into the server's store
from the server's host (``eventvault copy``), where it can write records as they
are.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, TypeVar
from uuid import UUID

import httpx

from ... import errors
from ...model import ExpectedRevision, NewEvent, Page, Query, RecordedEvent, StoreStats
from ...spi import Backend, Importing, Proving, Results, Retaining
from ...store import EventStore
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

__all__ = ["HttpBackend", "HttpEventStore", "client_options"]

T = TypeVar("T")

#: The longest one long poll of the live tail waits on the server (seconds).
_LONG_POLL = 10.0


def client_options(
    token: str | None, timeout: float, ca_file: str | None, verify_tls: bool
) -> dict[str, Any]:
    """What both httpx clients are built with."""
    headers = {"user-agent": "eventvault-http-backend", "accept": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    verify: Any = verify_tls
    if verify_tls and ca_file:
        import ssl

        try:
            verify = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise errors.ConfigError(f"store.http.ca_file {ca_file!r}: {exc}") from None
    return {
        "headers": headers,
        "timeout": request_timeout(timeout),
        "verify": verify,
        "limits": httpx.Limits(max_connections=64, max_keepalive_connections=32),
        "follow_redirects": False,
    }


def request_timeout(seconds: float) -> httpx.Timeout:
    """``seconds`` to connect, to send, and between bytes of the answer — but no limit
    on waiting for a pooled connection: many tasks at once queue for the pool (each
    request's own limits bound how long a connection stays taken)."""
    return httpx.Timeout(seconds, pool=None)


def transport_failure(exc: httpx.TransportError) -> str:
    """The kind :func:`.protocol.connection_error` wants."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.LocalProtocolError):
        return "protocol"
    return "connect"


class HttpBackend(Backend):
    """A client of ``eventvault serve`` at ``url`` (``token``: a bearer token).

    Neither :class:`~eventvault.spi.Importing` nor :class:`~eventvault.spi.Retaining`
    (see :attr:`lacks`): both are the server's store's to do, on its host."""

    name = "http"
    lacks: ClassVar[Mapping[type, str]] = {
        Importing: (
            "(they keep the source's hashes and times, which only the store itself may "
            "write): run `eventvault copy` on the server's host, into the store "
            "`eventvault serve` serves"
        ),
        Retaining: (
            "from a client: the server applies it on its schedule ([retention] in the "
            "configuration of `eventvault serve`)"
        ),
        Proving: (
            "on the client side: ask the server (GET /v1/log/checkpoint, "
            "/v1/events/{id}/proof, /v1/log/consistency) or use `eventvault log watch --url`"
        ),
    }

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
        self._client = httpx.Client(
            base_url=self.url, **client_options(token, timeout, ca_file, verify_tls)
        )
        self._about: Head | None = None
        self._lock = threading.Lock()
        self._closed = False

    # -- the transport ------------------------------------------------------------------

    def _send(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            attempt += 1
            timeout = request_timeout(self.timeout + call.extra_time)
            try:
                answer = self._client.request(
                    call.method,
                    call.path,
                    params=list(call.params),
                    content=call.body,
                    headers=dict(call.headers),
                    timeout=timeout,
                )
            except httpx.TransportError as exc:
                error, retryable = connection_error(
                    self.url, exc, timeout=self.timeout, kind=transport_failure(exc)
                )
                if not (retryable and self.retry.again(call, attempt, None)):
                    raise error from exc
                time.sleep(self.retry.delay(attempt))
                continue
            except (
                RuntimeError
            ) as exc:  # httpx: "Cannot send a request, as the client has been closed"
                raise errors.StoreClosedError from exc
            if self.retry.again(call, attempt, answer.status_code) and answer.status_code >= 400:
                time.sleep(self.retry.delay(attempt, answer.headers.get("retry-after")))
                continue
            return call.parse(self.url, answer.status_code, answer.headers, answer.content)

    def _check_open(self) -> None:
        if self._closed:
            raise errors.StoreClosedError

    def about(self) -> Head:
        """The server's store: its id, backend and head (asked once, then cached)."""
        if self._about is None:
            self._about = self._send(head_call())
        return self._about

    # -- the backend contract ----------------------------------------------------------------

    @property
    def store_id(self) -> str:
        return self.about().store_id

    @property
    def hash_format(self) -> int:  # type: ignore[override]
        return self.about().hash_format

    @property
    def contiguous_positions(self) -> bool:  # type: ignore[override]
        return self.about().backend != "eventstoredb"

    def commit(self, batch: list[NewEvent], expected: int | ExpectedRevision) -> Results:
        return self._send(append_call(batch, expected))

    def send(self, batch: list[NewEvent]) -> int:
        """Append ``batch`` (any revision) and return only how many events it holds."""
        return self._send(append_call(batch, ExpectedRevision.ANY, records=False)).written

    def read_page(self, query: Query, cursor: str | None) -> Page:
        """One page, as the server's store pages it."""
        return self._send(read_call(query, query.limit, cursor))

    def read(self, query: Query, limit: int) -> list[RecordedEvent]:
        return self._send(read_call(query, min(limit, 10_000))).events

    def get(self, event_id: UUID) -> RecordedEvent | None:
        return self._send(get_call(event_id))

    def head(self) -> int:
        self._check_open()
        return self._send(head_call()).head

    def stats(self) -> StoreStats:
        self._check_open()
        return self._send(stats_call())

    def wait(self, head: int, timeout: float) -> None:
        self._send(head_call(head, min(timeout, _LONG_POLL)))

    def verify_on_server(self) -> Any:
        """The server's own verification (``POST /v1/verify``, admin scope)."""
        return self._send(verify_call())

    def close(self) -> None:
        self._closed = True
        self._client.close()


class HttpEventStore(EventStore):
    """A client of ``eventvault serve`` at ``url`` (``token``: a bearer token): an
    :class:`~eventvault.EventStore` over an :class:`HttpBackend`."""

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
        super().__init__(
            HttpBackend(
                url,
                token=token,
                timeout=timeout,
                retries=retries,
                ca_file=ca_file,
                verify_tls=verify_tls,
            )
        )

    @property
    def backend(self) -> HttpBackend:
        backend = self._backend
        assert isinstance(backend, HttpBackend)
        return backend

    @property
    def url(self) -> str:
        return self.backend.url

    @property
    def timeout(self) -> float:
        return self.backend.timeout

    @property
    def retry(self) -> RetryPolicy:
        return self.backend.retry

    def about(self) -> Head:
        """The server's store: its id, backend and head (asked once, then cached)."""
        return self.backend.about()

    def send(self, batch: list[NewEvent]) -> int:
        """Append ``batch`` (checked like :meth:`append`, any revision) and return only
        how many events it holds — the lean answer, for producers that need no records."""
        self._check_open()
        if not batch:
            raise errors.ValidationError("append needs at least one event")
        return self.backend.send(batch)

    def read(self, query: Query | None = None, *, cursor: str | None = None) -> Page:
        """One page, as the server's store pages it (its cursors are those of the
        store behind the server)."""
        self._check_open()
        query = query if query is not None else Query()
        return self.backend.read_page(query, cursor)

    def verify_on_server(self) -> Any:
        """The server's own verification (``POST /v1/verify``, admin scope) — cheaper
        than :meth:`verify`, which fetches every event and checks the chain here."""
        self._check_open()
        return self.backend.verify_on_server()

    def subscribe(
        self,
        query: Query | None = None,
        *,
        after: int | None = None,
        poll_interval: float = 0.5,
        stop: threading.Event | None = None,
    ) -> Iterator[RecordedEvent]:
        """As for every store; while the server cannot be reached the tail keeps
        trying (``stop`` or :meth:`close` ends it) and resumes after the last event
        it delivered — no gap, no duplicate. Errors that a retry cannot fix (a
        refused token, a bad query) end it with their exception."""
        query = query if query is not None else Query()
        last = after
        failures = 0
        while True:
            try:
                for ev in EventStore.subscribe(
                    self, query, after=last, poll_interval=poll_interval, stop=stop
                ):
                    last = ev.position
                    failures = 0
                    yield ev
                return
            except errors.StoreUnavailableError:
                failures += 1
                if self._closed or (stop is not None and stop.is_set()):
                    return
                pause = self.retry.delay(min(failures, 6))
                if stop is not None:
                    stop.wait(pause)
                else:
                    time.sleep(pause)
