"""The ``http`` backend's protocol, without I/O: requests built, answers parsed.

Both clients — :class:`~.store.HttpEventStore` (threads) and
:class:`~.aio.AsyncHttpEventStore` (asyncio) — build a :class:`Call` here, hand it
to their transport (httpx, sync or async), and give the answer back to
:meth:`Call.parse`; errors of either direction are mapped here too. So the wire
format, the error mapping and the retry rules exist once.

Retries (:class:`RetryPolicy`): a call is retried only when retrying cannot change
what it does — appends carry their event ids and the server stores an id once, so
a re-sent append whose first attempt did commit answers with the stored events;
reads change nothing. Only failures that say nothing about the request are
retried: no connection, a timeout, a dropped connection, 502/503/504 and 429.
Never a 4xx answer: the same request would be refused again.
"""

from __future__ import annotations

import random
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit
from uuid import UUID

import msgspec

from ... import errors
from ...model import (
    ExpectedRevision,
    NewEvent,
    Page,
    Query,
    RecordedEvent,
    StoreStats,
    VerifyResult,
)
from ...sequencer import Results

__all__ = [
    "Call",
    "Head",
    "RetryPolicy",
    "append_call",
    "check_url",
    "connection_error",
    "get_call",
    "head_call",
    "read_call",
    "stats_call",
    "verify_call",
]

T = TypeVar("T")

_encoder = msgspec.json.Encoder()

#: Which events left ``occurred_at`` to the library (see the server's requests.py).
DEFAULTED_HEADER = "eventvault-occurred-defaulted"
_MAX_MARKS = 8192


class Head(msgspec.Struct, frozen=True):
    head: int
    store_id: str
    backend: str
    hash_format: int = 1  # (absent from servers before hash format 2: the chain)


class _Records(msgspec.Struct, frozen=True):
    events: list[RecordedEvent]
    written: int


class _Page(msgspec.Struct, frozen=True):
    events: list[RecordedEvent]
    next_cursor: str | None = None


class _Written(msgspec.Struct, frozen=True):
    first_position: int
    last_position: int


class _Wire(msgspec.Struct, omit_defaults=True, gc=False):
    """A :class:`NewEvent` as the server decodes it; the payloads go as the canonical
    bytes validation produced."""

    type: str
    id: UUID
    stream: str
    data: msgspec.Raw
    metadata: msgspec.Raw
    actor: str | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    source: str | None = None
    occurred_at: Any = None


def _wire(ev: NewEvent) -> _Wire:
    extra = ev.__dict__
    data, metadata = extra["canonical"]
    return _Wire(
        ev.type,
        ev.id,
        ev.stream,
        data,
        metadata,
        ev.actor,
        ev.correlation_id,
        ev.causation_id,
        ev.source,
        ev.occurred_at,
    )


def encode_events(batch: Sequence[NewEvent]) -> bytes:
    """The body of an append of ``batch``."""
    return _encoder.encode([_wire(ev) for ev in batch])


class _ErrorBody(msgspec.Struct):
    type: str
    message: str
    details: dict[str, Any] = {}


class _Error(msgspec.Struct):
    error: _ErrorBody


_records = msgspec.json.Decoder(_Records)
_page = msgspec.json.Decoder(_Page)
_event = msgspec.json.Decoder(RecordedEvent)
_head = msgspec.json.Decoder(Head)
_stats = msgspec.json.Decoder(StoreStats)
_verify = msgspec.json.Decoder(VerifyResult)
_written = msgspec.json.Decoder(_Written)
_error = msgspec.json.Decoder(_Error)


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request and how to read its answer."""

    method: str
    path: str
    parse_ok: Callable[[int, bytes], T]
    params: Sequence[tuple[str, str]] = ()
    body: bytes | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Safe to send again after a failure that says nothing about the request.
    retry: bool = True
    #: Statuses other than 2xx that are an answer, not an error (e.g. 404 of a get).
    accept: frozenset[int] = frozenset()
    #: Seconds the server may take to answer beyond the client's timeout (long polls).
    extra_time: float = 0.0

    def parse(self, base_url: str, status: int, headers: Mapping[str, str], body: bytes) -> T:
        if 200 <= status < 300 or status in self.accept:
            try:
                return self.parse_ok(status, body)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise errors.StoreUnavailableError(
                    f"{base_url} answered {self.method} {self.path} with something that is "
                    f"not eventvault's ({exc}): is store.http.url the address of "
                    "`eventvault serve`?"
                ) from None
        raise error_from_answer(base_url, self.method, self.path, status, body)


# -- building calls ---------------------------------------------------------------------


def append_call(
    batch: Sequence[NewEvent], expected: int | ExpectedRevision, *, records: bool = True
) -> Call[Results]:
    """POST /v1/events; the whole records back (``records``) or only positions."""
    params: list[tuple[str, str]] = []
    if expected is not ExpectedRevision.ANY:
        value = expected.value if isinstance(expected, ExpectedRevision) else str(expected)
        params.append(("expected_revision", value))
    body = encode_events(batch)
    headers = {"content-type": "application/json"}
    defaulted = [i for i, ev in enumerate(batch) if "occurred_defaulted" in ev.__dict__]
    if len(defaulted) == len(batch):
        headers[DEFAULTED_HEADER] = "all"
    elif defaulted:
        marks = ",".join(map(str, defaulted))
        if len(marks) <= _MAX_MARKS:  # (beyond: a re-send must repeat the time)
            headers[DEFAULTED_HEADER] = marks
    if records:
        headers["prefer"] = "return=representation"
        return Call("POST", "/v1/events", _parse_records, params, body, headers)
    n = len(batch)
    return Call("POST", "/v1/events", lambda _s, b: _parse_written(b, n), params, body, headers)


def _parse_records(_status: int, body: bytes) -> Results:
    got = _records.decode(body)
    return Results(got.events, got.written)


def _parse_written(body: bytes, n: int) -> Results:
    _written.decode(body)  # (checks it is an append's answer)
    return Results((), n)


def query_params(query: Query, limit: int) -> list[tuple[str, str]]:
    params: list[tuple[str, str]] = []
    for name, values in (
        ("type", query.types),
        ("actor", query.actors),
        ("correlation_id", query.correlation_ids),
        ("stream", query.streams),
        ("causation_id", query.causation_ids),
    ):
        params.extend((name, v) for v in values)
    if query.since is not None:
        params.append(("since", query.since.isoformat()))
    if query.until is not None:
        params.append(("until", query.until.isoformat()))
    if query.after is not None:
        params.append(("after", str(query.after)))
    if query.before is not None:
        params.append(("before", str(query.before)))
    params.append(("limit", str(limit)))
    if query.reverse:
        params.append(("order", "desc"))
    return params


def read_call(query: Query, limit: int, cursor: str | None = None) -> Call[Page]:
    params = query_params(query, limit)
    if cursor is not None:
        params.append(("cursor", cursor))
    return Call("GET", "/v1/events", _parse_page, params)


def _parse_page(_status: int, body: bytes) -> Page:
    got = _page.decode(body)
    return Page(events=got.events, next_cursor=got.next_cursor)


def get_call(event_id: UUID) -> Call[RecordedEvent | None]:
    return Call("GET", f"/v1/events/{event_id}", _parse_get, accept=frozenset({404}))


def _parse_get(status: int, body: bytes) -> RecordedEvent | None:
    if status == 404:
        kind = _error.decode(body).error.type  # (a 404 of something else is not "none")
        if kind != "NotFound":
            raise msgspec.ValidationError(f"a 404 of type {kind}")
        return None
    return _event.decode(body)


def head_call(after: int | None = None, wait: float = 0.0) -> Call[Head]:
    params: list[tuple[str, str]] = []
    if after is not None and wait > 0:
        params = [("after", str(after)), ("wait", f"{wait:.3f}")]
    return Call("GET", "/v1/head", lambda _s, b: _head.decode(b), params, extra_time=wait)


def stats_call() -> Call[StoreStats]:
    return Call("GET", "/v1/stats", lambda _s, b: _stats.decode(b))


def verify_call() -> Call[VerifyResult]:
    """The server's own verification (admin scope); 409 is a broken chain's answer."""
    return Call("POST", "/v1/verify", lambda _s, b: _verify.decode(b), accept=frozenset({409}))


# -- errors ---------------------------------------------------------------------------

#: Error types the store raises, by the name the server sends.
_STORE_ERRORS: dict[str, type[errors.EventVaultError]] = {
    cls.__name__: cls
    for cls in (
        errors.ValidationError,
        errors.ConflictError,
        errors.WrongExpectedRevisionError,
        errors.DuplicateEventError,
        errors.NotSupportedError,
        errors.StoreUnavailableError,
        errors.ReadOnlyStoreError,
        errors.StoreNotFoundError,
        errors.CorruptionError,
        errors.StoreError,
    )
}


def _typed(
    cls: type[errors.EventVaultError], message: str, details: Mapping[str, Any]
) -> errors.EventVaultError:
    """An instance of ``cls`` with ``message`` as it is (some classes build theirs)
    and the fields the server sent (``stream``, ``actual``...)."""
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    if cls is errors.WrongExpectedRevisionError:
        expected = details.get("expected")
        if isinstance(expected, str):
            expected = ExpectedRevision(expected)
        exc.__dict__.update(
            stream=details.get("stream"), expected=expected, actual=details.get("actual")
        )
    elif cls is errors.DuplicateEventError:
        event_id = details.get("event_id")
        exc.__dict__.update(
            event_id=UUID(event_id) if event_id else None, position=details.get("position")
        )
    elif cls is errors.CorruptionError and type(details.get("position")) is int:
        exc.__dict__.update(position=details["position"])  # (verify reports it there)
    return exc


def error_from_answer(
    base_url: str, method: str, path: str, status: int, body: bytes
) -> errors.EventVaultError:
    """The eventvault error a non-2xx answer stands for."""
    try:
        err = _error.decode(body).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        err = None
    if err is None:  # not eventvault answering (a proxy, another service, a wrong path)
        shown = f"{base_url} answered {method} {path} with HTTP {status}"
        if status in (502, 503, 504, 429):
            return errors.StoreUnavailableError(f"{shown}; try again later")
        return errors.ConfigError(
            f"{shown} and no eventvault error: is store.http.url (EVENTVAULT_URL) the "
            "address of `eventvault serve`?"
        )
    if status == 401:
        return errors.AuthenticationError(
            f"{base_url} refused the request: {err.message} (set store.http.token or "
            "EVENTVAULT_TOKEN to a token the server knows)"
        )
    if status == 403:
        return errors.PermissionDeniedError(f"{base_url} refused the request: {err.message}")
    if err.type == "StoreClosedError":  # the server's store, not this client
        return errors.StoreUnavailableError(
            f"{base_url}: the server's store is closed ({err.message})"
        )
    if err.type in _STORE_ERRORS:
        cls = _STORE_ERRORS[err.type]
        if status >= 500 and not issubclass(cls, errors.StoreError):
            cls = errors.StoreError
        return _typed(cls, err.message, err.details)
    if status in (429, 502, 503, 504):
        return errors.StoreUnavailableError(f"{base_url}: {err.message}")
    if status >= 500:
        return errors.StoreError(f"{base_url}: HTTP {status}: {err.message}")
    return errors.ValidationError(f"{base_url} refused the request (HTTP {status}): {err.message}")


#: Answers worth another attempt of a call that is safe to repeat.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


def check_url(url: str | None, source: str = "store.http.url") -> str:
    """``url`` without a trailing slash, or a ConfigError saying what is wrong."""
    if not url:
        raise errors.ConfigError(
            f"{source} is not set: give the server's address in the config file "
            '([store.http] url = "https://ev.example:8730"), as EVENTVAULT_URL or --url'
        )
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise errors.ConfigError(
            f"{source}: {url!r} is not an http:// or https:// address of a server, e.g. "
            "https://ev.example:8730"
        )
    try:
        parts.port  # noqa: B018 - (raises on a port out of range)
    except ValueError as exc:
        raise errors.ConfigError(f"{source}: {url!r}: {exc}") from None
    return url.rstrip("/")


def _tls_failure(exc: BaseException) -> ssl.SSLError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        for arg in getattr(seen, "args", ()):
            if isinstance(arg, ssl.SSLError):
                return arg
        seen = seen.__cause__ or seen.__context__
    return None


def connection_error(
    base_url: str, exc: BaseException, *, timeout: float, kind: str
) -> tuple[errors.EventVaultError, bool]:
    """The error a transport failure stands for, and whether a retry may help.

    ``kind`` is the failure's class in the transport's words: ``connect``,
    ``timeout``, ``tls`` or ``protocol``."""
    tls = _tls_failure(exc)
    if kind == "tls" or tls is not None:
        reason = getattr(tls, "reason", None) or str(tls or exc)
        hint = ""
        if "WRONG_VERSION_NUMBER" in str(reason) or "record layer" in str(reason):
            hint = " — is the server speaking plain HTTP? use an http:// URL then"
        elif "CERTIFICATE_VERIFY_FAILED" in str(tls or exc):
            hint = " — its certificate is not trusted: set store.http.ca_file to its CA"
        return (
            errors.StoreUnavailableError(f"TLS with {base_url} failed: {reason}{hint}"),
            False,
        )
    if kind == "timeout":
        return (
            errors.StoreUnavailableError(
                f"{base_url} did not answer within {timeout:g}s (store.http.timeout)"
            ),
            True,
        )
    if kind == "protocol":
        return (
            errors.StoreUnavailableError(
                f"{base_url} closed the connection or did not speak HTTP: {exc or type(exc)}"
                " (an https:// URL on a TLS port needs https://)"
            ),
            True,
        )
    return (
        errors.StoreUnavailableError(
            f"cannot reach the eventvault server at {base_url}: {exc or type(exc).__name__} "
            "(is `eventvault serve` running there? check store.http.url / EVENTVAULT_URL)"
        ),
        True,
    )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``retries`` extra attempts, exponential back-off with jitter."""

    retries: int = 3
    first_delay: float = 0.1
    max_delay: float = 2.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        """Seconds to wait before attempt ``attempt`` + 1 (``attempt`` counts from 1)."""
        if retry_after and retry_after.isascii() and retry_after.isdigit():
            return min(float(retry_after), self.max_delay * 4)
        base: float = min(self.first_delay * 2.0 ** (attempt - 1), self.max_delay)
        return base * (0.5 + random.random() / 2)

    def again(self, call: Call[Any], attempt: int, status: int | None) -> bool:
        """Whether to send ``call`` again after attempt ``attempt`` failed (``status``:
        the answer's, None for a transport failure)."""
        if not call.retry or attempt > self.retries:
            return False
        return status is None or status in RETRY_STATUSES
