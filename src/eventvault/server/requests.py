"""Turning HTTP requests into eventvault calls, and errors into HTTP answers."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from .. import errors
from ..cursor import cursor_resolved_at
from ..model import ExpectedRevision, NewEvent, Query, parse_expected_revision
from ..strict import explain_struct_error
from ..timeutil import parse_time
from .cloudevents import BATCH_TYPE, STRUCTURED_TYPE, from_batch, from_binary, from_structured

__all__ = [
    "HTTPError",
    "error_response",
    "events_from_body",
    "expected_revision",
    "json_response",
    "query_from_params",
    "read_body",
]

_encoder = msgspec.json.Encoder()
#: Plain JSON bodies decode straight into validated events (one C pass).
_events_decoder = msgspec.json.Decoder(NewEvent | list[NewEvent])


class HTTPError(Exception):
    """An answer other than success, with a body a person can act on."""

    def __init__(
        self,
        status: int,
        kind: str,
        message: str,
        headers: Mapping[str, str] = {},
        details: Mapping[str, Any] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.headers = dict(headers)
        #: The error's fields a client rebuilds it from (``error.details`` in the body).
        self.details = details


#: Most specific first.
STATUS: list[tuple[type[BaseException], int]] = [
    (errors.WrongExpectedRevisionError, 409),
    (errors.DuplicateEventError, 409),
    (errors.ConflictError, 409),
    (errors.ValidationError, 400),
    (errors.NotSupportedError, 400),
    (errors.StoreClosedError, 503),
    (errors.StoreUnavailableError, 503),
    (errors.CorruptionError, 500),
    (errors.EventVaultError, 500),
]


def json_response(
    content: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(_encoder.encode(content), status, headers, media_type="application/json")


def error_response(
    status: int,
    kind: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    details: Mapping[str, Any] | None = None,
) -> Response:
    error: dict[str, Any] = {"type": kind, "message": message}
    if details:
        error["details"] = details
    return json_response({"error": error}, status, headers)


def _details(exc: errors.EventVaultError) -> dict[str, Any] | None:
    """The fields of the errors that carry some (so a client raises the same error)."""
    if isinstance(exc, errors.WrongExpectedRevisionError):
        expected = exc.expected
        shown = expected.value if isinstance(expected, ExpectedRevision) else expected
        return {"stream": exc.stream, "expected": shown, "actual": exc.actual}
    if isinstance(exc, errors.DuplicateEventError):
        return {"event_id": str(exc.event_id), "position": exc.position}
    position = getattr(exc, "position", None)
    if isinstance(exc, errors.CorruptionError) and type(position) is int:
        return {"position": position}  # (a damaged record: where the chain breaks)
    return None


def _public_name(exc: errors.EventVaultError) -> str:
    """The name of the nearest class of ``eventvault.errors`` (a backend's own
    subclass, e.g. the file backend's DamagedRecordError, is sent as its public base,
    so a client raises the same type)."""
    for cls in type(exc).__mro__:
        if cls.__module__ == errors.__name__:
            return cls.__name__
    return type(exc).__name__


def from_store_error(exc: errors.EventVaultError) -> HTTPError:
    status = next(code for cls, code in STATUS if isinstance(exc, cls))
    return HTTPError(status, _public_name(exc), str(exc), details=_details(exc))


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The whole body, refused (413) beyond ``limit`` bytes and (408) beyond ``timeout``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):  # (isdigit() takes '²')
            raise HTTPError(400, "BadRequest", "Content-Length is not a number")
        if int(declared) > limit:
            raise HTTPError(
                413,
                "PayloadTooLarge",
                f"body of {declared} bytes; the limit is {limit} (server.max_body_bytes)",
            )
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):  # (no task per request, unlike wait_for)
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HTTPError(
                        413, "PayloadTooLarge", f"body over {limit} bytes (server.max_body_bytes)"
                    )
                chunks.append(chunk)
    except TimeoutError:
        raise HTTPError(408, "RequestTimeout", f"the body took longer than {timeout:g} s") from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _decode(body: bytes) -> Any:
    if not body.strip():
        raise HTTPError(400, "ValidationError", "the body is empty; send a JSON event or array")
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise HTTPError(400, "ValidationError", f"body is not valid JSON: {_why(exc)}") from None


def _why(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 at byte {exc.start}"
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)


def _plain_events(body: bytes) -> tuple[list[NewEvent], bool]:
    if not body.strip():
        raise HTTPError(400, "ValidationError", "the body is empty; send a JSON event or array")
    try:
        decoded = _events_decoder.decode(body)
    except msgspec.ValidationError as exc:
        # e.g. "Expected `str`, got `int` - at `$[3].type`", or our own check's message
        why = explain_struct_error(exc, NewEvent)
        raise errors.ValidationError(f"invalid event: {why}") from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise HTTPError(400, "ValidationError", f"body is not valid JSON: {_why(exc)}") from None
    if isinstance(decoded, list):
        if not decoded:
            raise errors.ValidationError("the array is empty; send at least one event")
        return decoded, False
    return [decoded], True


def events_from_body(
    content_type: str, headers: Mapping[str, str], body: bytes
) -> tuple[list[NewEvent], bool]:
    """The events a POST carries, and whether they came as one (not an array)."""
    base = content_type.split(";", 1)[0].strip().lower()
    if "ce-specversion" in headers:
        return [from_binary(headers, content_type or None, body)], True
    if base == STRUCTURED_TYPE:
        return [from_structured(_decode(body))], True
    if base == BATCH_TYPE:
        return from_batch(_decode(body)), False
    if base in ("application/json", ""):
        return _plain_events(body)
    raise HTTPError(
        415,
        "UnsupportedMediaType",
        f"Content-Type {content_type!r}: send application/json, {STRUCTURED_TYPE}, "
        f"{BATCH_TYPE}, or a binary-mode CloudEvent (ce-* headers)",
    )


#: Which events of a batch left ``occurred_at`` to their producer's library: "all",
#: or their indexes (``0,3,4``). The times are sent (they are when the events
#: happened); marked, a re-sent event with another such time is still the same event.
DEFAULTED_HEADER = "eventvault-occurred-defaulted"


def mark_defaulted(batch: list[NewEvent], value: str) -> None:
    """Mark the events ``value`` (the :data:`DEFAULTED_HEADER`) names."""
    if value == "all":
        chosen: Any = batch
    else:
        try:
            chosen = [batch[int(i)] for i in value.split(",") if i.isascii() and i.isdigit()]
        except IndexError:
            raise HTTPError(
                400, "ValidationError", f"{DEFAULTED_HEADER} names an event the body lacks"
            ) from None
    for ev in chosen:
        ev.__dict__["occurred_defaulted"] = True


def expected_revision(value: str | None) -> int | ExpectedRevision | None:
    return None if value is None or value == "" else parse_expected_revision(value)


def _many(params: Any, name: str) -> list[str]:
    """Repeated (``?type=a&type=b``) or comma-separated (``?type=a,b``) values."""
    out: list[str] = []
    for value in params.getlist(name):
        out.extend(v for v in (p.strip() for p in value.split(",")) if v)
    return out


def _int(params: Any, name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        if not value.isascii():  # int() takes other scripts' digits ('٣'); we do not
            raise ValueError(value)
        return int(value)
    except ValueError:  # (also: more digits than int() takes)
        shown = repr(value) if len(value) <= 40 else f"{len(value)} characters"
        raise errors.ValidationError(f"{name} must be an integer, got {shown}") from None


def _time(params: Any, name: str, now: datetime) -> Any:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        return parse_time(value, now=now)
    except ValueError as exc:
        raise errors.ValidationError(f"{name}: {exc}") from None


def query_from_params(params: Any, *, default_limit: int = 100) -> Query:
    order = params.get("order", "asc")
    if order not in ("asc", "desc"):
        raise errors.ValidationError(f"order must be asc or desc, got {order!r}")
    limit = _int(params, "limit")
    # Relative times resolve against now, or — continuing from a cursor — against the
    # instant its query resolved them, so ?since=2h names the same query on every page.
    cursor = params.get("cursor")
    resolved = (cursor_resolved_at(cursor) if cursor else None) or datetime.now(UTC)
    return Query(
        types=_many(params, "type"),
        actors=_many(params, "actor"),
        correlation_ids=_many(params, "correlation_id"),
        streams=_many(params, "stream"),
        causation_ids=_many(params, "causation_id"),
        since=_time(params, "since", resolved),
        until=_time(params, "until", resolved),
        resolved_at=resolved if params.get("since") or params.get("until") else None,
        after=_int(params, "after"),
        before=_int(params, "before"),
        limit=default_limit if limit is None else limit,
        reverse=order == "desc",
    )
