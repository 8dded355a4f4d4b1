"""The HTTP service: an ASGI app (FastAPI) over any store.

Every storage call runs in a worker thread (a thread pool) — the event loop
never waits on a disk or a database — and many concurrent appends meet in the
backend's group commit, so they share fsyncs and transactions.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial
from typing import Any
from uuid import UUID

import anyio
import msgspec
from anyio import to_thread
from fastapi import Depends, FastAPI
from fastapi import Query as Param
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from .. import errors
from ..config import Config
from ..model import MAX_POSITION, Query, RecordedEvent
from ..retention.plan import RetentionReport
from ..retention.schedule import RetentionScheduler
from ..store import EventStore, as_uuid
from ..strict import check_names
from ..timeutil import parse_duration
from . import cloudevents as ce
from .auth import Principal, TokenBook
from .console import add_console
from .holder import StoreHolder
from .metrics import Metrics
from .reads import Budget, json_page_chunks, read_pages
from .remote import remote_routes
from .requests import (
    DEFAULTED_HEADER,
    HTTPError,
    error_response,
    events_from_body,
    expected_revision,
    from_store_error,
    json_response,
    mark_defaulted,
    query_from_params,
    read_body,
)
from .runs_api import add_runs_routes
from .sse import sse_stream
from .startup import check_serving
from .tails import Tails

__all__ = ["Service", "create_app"]

log = logging.getLogger("eventvault.server")
access_log = logging.getLogger("eventvault.access")

NDJSON = "application/x-ndjson"
_record = msgspec.json.Encoder()


def _plain(ev: RecordedEvent) -> RecordedEvent:
    return ev


class Written(msgspec.Struct, frozen=True, gc=False):
    """What an append answers per event."""

    id: UUID
    position: int
    stream: str
    stream_revision: int
    recorded_at: datetime
    hash: str


class Appended(msgspec.Struct, frozen=True, gc=False):
    events: list[Written]
    first_position: int
    last_position: int


def _written(ev: RecordedEvent) -> Written:
    return Written(ev.id, ev.position, ev.stream, ev.stream_revision, ev.recorded_at, ev.hash)


class _Shutdown(threading.Event):
    """Set when the service stops; setting it also ends every live tail at once."""

    def __init__(self, on_set: Callable[[], None]) -> None:
        super().__init__()
        self._on_set = on_set

    def set(self) -> None:
        super().set()
        self._on_set()


class Service:
    """What the app's routes share: the store (swappable), tokens, metrics, settings."""

    def __init__(self, holder: StoreHolder, config: Config, tokens: TokenBook, host: str) -> None:
        self.holder = holder
        self.host = host  # where the server listens: a reload is checked against it
        self.config = config
        self.tokens = tokens
        self.metrics = Metrics()
        srv = config.server
        self.tails = Tails(total=srv.max_subscribers, per_token=srv.max_subscribers_per_token)
        self.shutdown = _Shutdown(self.tails.close)
        # Worker threads for storage calls (many at once: they meet in group commit).
        self.executor = ThreadPoolExecutor(64, thread_name_prefix="eventvault-io")
        self.scheduler: RetentionScheduler | None = None
        srv = config.server
        self.max_body = srv.max_body_bytes
        self.body_timeout = parse_duration(srv.body_timeout).total_seconds()
        self.heartbeat = parse_duration(srv.heartbeat).total_seconds()
        self.max_response = srv.max_response_bytes

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def authorize(self, request: Request, scope: str) -> Principal:
        principal = self.tokens.who(request.headers.get("authorization"))
        if principal is None:
            raise HTTPError(
                401,
                "Unauthorized",
                "send 'Authorization: Bearer <token>' with a token from server.tokens",
                {"WWW-Authenticate": 'Bearer realm="eventvault"'},
            )
        request.state.principal = principal.name
        if not principal.may(scope):
            raise HTTPError(403, "Forbidden", f"token {principal.name!r} lacks the {scope!r} scope")
        return principal

    def anonymous(self, endpoint: str) -> bool:
        """Whether ``endpoint`` answers without a token (``server.anonymous``)."""
        return endpoint in self.config.server.anonymous

    def gate(self, request: Request, endpoint: str, scope: str = "read") -> Principal | None:
        """The caller of an operations endpoint: None when it came without a token to an
        endpoint open to anonymous callers; otherwise as :meth:`authorize`."""
        if self.anonymous(endpoint) and not request.headers.get("authorization"):
            return self.tokens.who(None)  # (LOCAL when no tokens are configured)
        return self.authorize(request, scope)

    # -- appending -------------------------------------------------------------------

    async def append(self, request: Request, expected: str | None) -> Response:
        """POST /v1/events (also reached by :class:`_Edge`'s fast path)."""
        m = self.metrics
        try:
            self.authorize(request, "append")
            body = await read_body(request, self.max_body, self.body_timeout)
            started = time.perf_counter()
            batch, _single = events_from_body(
                request.headers.get("content-type", ""), request.headers, body
            )
            marked = request.headers.get(DEFAULTED_HEADER)
            if marked:
                mark_defaulted(batch, marked)
            revision = expected_revision(expected)
            with self.holder.lease() as store:
                result = await self.run(partial(store.append, batch, expected_revision=revision))
        except HTTPError as exc:
            m.append_requests.labels(exc.kind).inc()
            return error_response(exc.status, exc.kind, exc.message, exc.headers)
        except errors.EventVaultError as exc:
            mapped = from_store_error(exc)
            m.append_requests.labels(mapped.kind).inc()
            return error_response(mapped.status, mapped.kind, mapped.message, None, mapped.details)
        m.append_latency.observe(time.perf_counter() - started)
        m.appends_ok.inc()
        written = len(batch) if result.written is None else result.written
        m.events_appended.inc(written)
        if written < len(batch):
            m.events_retried.inc(len(batch) - written)
        if "return=representation" in request.headers.get("prefer", ""):  # (RFC 7240)
            # The whole records and how many were new: what the http backend returns.
            return json_response({"events": result.events, "written": written}, 201)
        out = Appended(
            [_written(e) for e in result.events], result.first_position, result.last_position
        )
        return json_response(out, 201)

    # -- retention -------------------------------------------------------------------

    def start_retention(self) -> None:
        store = self.holder.current
        policy = store.retention_policy
        if policy is None or self.config.retention is None:
            return
        if not store.supports_retention:
            log.warning(
                "retention: the %s backend cannot apply it; not scheduled", store.backend_name
            )
            return
        every = parse_duration(self.config.retention.check_interval)
        self.scheduler = RetentionScheduler(store, policy, every, on_report=self._retention_ran)
        self.scheduler.start()
        log.info("retention: applied every %s", self.config.retention.check_interval)

    def stop_retention(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
            self.scheduler = None

    def _retention_ran(self, report: RetentionReport) -> None:
        self.metrics.retention_runs.labels("ok").inc()
        self.metrics.events_removed.inc(report.removed)

    # -- reload ----------------------------------------------------------------------

    def reload(self, load: Callable[[], Config], opener: Callable[[Config], EventStore]) -> bool:
        """Swap in a new configuration's store and tokens (SIGHUP). A bad configuration
        (or an unreachable backend) keeps the old one, and so does one that start-up
        would refuse (:func:`check_serving`: e.g. no tokens on a public bind); the
        reason is logged and counted (``eventvault_config_reloads{outcome}``)."""
        try:
            config = load()
        except Exception as exc:  # keep serving, say why
            self.metrics.reloads.labels("failed").inc()
            log.error("reload failed, keeping the current configuration: %s", exc)  # noqa: TRY400
            return False
        try:
            tokens = check_serving(config, self.host)
        except errors.ConfigError as exc:
            self.metrics.reloads.labels("refused").inc()
            log.error("reload refused, keeping the current configuration: %s", exc)  # noqa: TRY400
            return False
        try:
            store = opener(config)
        except Exception as exc:  # keep serving, say why
            self.metrics.reloads.labels("failed").inc()
            log.error("reload failed, keeping the current configuration: %s", exc)  # noqa: TRY400
            return False
        if (config.server.host, config.server.port) != (
            self.config.server.host,
            self.config.server.port,
        ):
            log.warning("reload: server.host/port changes need a restart; still listening")
        self.stop_retention()
        old = self.holder.current
        self.tokens = tokens
        self.config = config
        self.holder.swap(store, config)
        self.start_retention()
        self.metrics.reloads.labels("ok").inc()
        log.info(
            "reloaded %s: %s backend (was %s); in-flight requests finish on the old one",
            config.source,
            store.backend_name,
            old.backend_name,
        )
        return True


def create_app(
    store: EventStore,
    config: Config | None = None,
    *,
    tokens: TokenBook | None = None,
    retention: bool = True,
    close_store: bool = True,
    host: str | None = None,
) -> FastAPI:
    """The ASGI app serving ``store``. ``config`` supplies ``[server]`` and ``[retention]``
    (default: the built-in defaults); ``tokens`` defaults to ``config.server.tokens``.
    ``host``: the interface the server listens on (default ``server.host``); a reload
    that could not serve there is refused.
    ``retention``: run the configured policy on its schedule in this process.
    ``close_store``: close the store (and any a reload opened) when the app shuts down."""
    config = config if config is not None else Config()
    svc = Service(
        StoreHolder(store, config),
        config,
        tokens or TokenBook.from_config(config.server),
        host if host is not None else config.server.host,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc.shutdown.clear()
        if retention:
            svc.start_retention()
        try:
            yield
        finally:
            svc.shutdown.set()
            svc.stop_retention()
            if close_store:
                await to_thread.run_sync(svc.holder.close)

    app = _App(
        dependencies=[Depends(_known_params_only)],
        title="eventvault",
        summary="An append-only, verifiable event store over HTTP.",
        version=_version(),
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc come from packaged files (server/console.py)
        redoc_url=None,
        openapi_tags=[
            {"name": "events", "description": "Append and read events."},
            {"name": "runs", "description": "Runs: the events sharing a correlation id."},
            {"name": "operations", "description": "Health, readiness, metrics."},
        ],
    )
    app.state.service = svc
    app.service = svc
    _routes(app, svc)
    add_runs_routes(app, svc)
    add_console(app, svc)
    remote_routes(app, svc)
    _errors(app)
    app.add_middleware(_Edge, service=svc)
    app.fast_append = _fast_append(svc)
    _schemas(app)
    return app


async def _known_params_only(request: Request) -> None:
    """Refuse a query parameter the route does not declare (every route): an
    ignored ``?typ=`` would answer with every event, unfiltered. (A coroutine: a
    plain function would be run in a worker thread for every request — one per live
    tail.)"""
    route = request.scope.get("route")
    if isinstance(route, APIRoute):
        known = [p.alias for p in route.dependant.query_params]
        check_names("query parameter", request.query_params.keys(), known)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("eventvault")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0"


# -- routes -------------------------------------------------------------------------

_EVENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/NewEvent"},
                        {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/NewEvent"},
                            "minItems": 1,
                        },
                    ]
                }
            },
            ce.STRUCTURED_TYPE: {"schema": {"$ref": "#/components/schemas/CloudEvent"}},
            ce.BATCH_TYPE: {
                "schema": {"type": "array", "items": {"$ref": "#/components/schemas/CloudEvent"}}
            },
        },
    },
    "responses": {
        "201": {"description": "Stored (durably): positions and hashes, in input order."},
        "400": {"description": "Invalid event(s); nothing was stored."},
        "409": {"description": "Wrong expected revision, or an id reused with other content."},
        "413": {"description": "Body over server.max_body_bytes."},
        "415": {"description": "Unsupported Content-Type."},
    },
}


def _routes(app: FastAPI, svc: Service) -> None:
    m = svc.metrics

    @app.post(
        "/v1/events",
        tags=["events"],
        status_code=201,
        summary="Append one event, an atomic batch, or CloudEvents (structured, batch, binary)",
        openapi_extra=_EVENT_BODY,
    )
    async def append(
        request: Request,
        expected_revision_: str | None = Param(
            None,
            alias="expected_revision",
            description="A revision number, any, no_stream or stream_exists (all events "
            "must then share one stream).",
        ),
    ) -> Response:
        return await svc.append(request, expected_revision_)

    @app.get("/v1/events", tags=["events"], summary="Read events: filters, cursor, order")
    async def read(
        request: Request,
        type_: list[str] = Param(
            [],
            alias="type",
            description="Type or pattern ending in *; repeat or comma-separate for OR.",
        ),
        actor: list[str] = Param([], description="Actor (OR)."),
        correlation_id: list[str] = Param([], description="Correlation id (OR)."),
        stream: list[str] = Param([], description="Stream (OR)."),
        causation_id: list[str] = Param([], description="Causation id (OR)."),
        since: str | None = Param(
            None, description="Recorded at or after: ISO-8601, now, or ago (2h, 7d)."
        ),
        until: str | None = Param(None, description="Recorded before."),
        after: str | None = Param(None, description="Positions after this."),
        before: str | None = Param(None, description="Positions before this."),
        limit: str | None = Param(None, description="Page size, 1-10000 (default 100)."),
        order: str | None = Param(None, description="asc (default) or desc."),
        cursor: str | None = Param(None, description="next_cursor of the previous page."),
    ) -> Response:
        svc.authorize(request, "read")
        query = query_from_params(request.query_params)
        accept = request.headers.get("accept", "")
        encode: Callable[[RecordedEvent], Any] = (
            ce.to_cloudevent if ce.BATCH_TYPE in accept else _plain
        )
        if NDJSON in accept:
            return _ndjson(svc, query, cursor, encode)
        started = time.perf_counter()
        lease = svc.holder.lease()
        store = lease.__enter__()
        try:
            budget = Budget(svc.max_response, store.max_event_bytes)
            pages = read_pages(svc.run, store, query, cursor, budget, query.limit)
            page = await anext(pages)
            body = _record.encode([encode(e) for e in page.events])
            budget.spent(len(body), len(page.events))
            m.query_latency.observe(time.perf_counter() - started)
            more = page.next_cursor is not None and len(page.events) < query.limit
            if encode is not _plain:
                # (The cursor is a header, so the body cannot be streamed: a batch of
                # CloudEvents ends at the byte bound; X-Next-Cursor goes on from there.)
                parts, size, cursor_out = [body], len(body), page.next_cursor
                if more:
                    async for nxt in pages:
                        chunk = _record.encode([encode(e) for e in nxt.events])
                        budget.spent(len(chunk), len(nxt.events))
                        parts.append(chunk)
                        size += len(chunk)
                        cursor_out = nxt.next_cursor
                        if size >= svc.max_response:
                            break
                joined = b",".join(p[1:-1] for p in parts if len(p) > 2)
                return Response(b"[" + joined + b"]", media_type=ce.BATCH_TYPE,
                                headers={"X-Next-Cursor": cursor_out or ""})  # fmt: skip
            if not more:
                tail = b',"next_cursor":' + _record.encode(page.next_cursor) + b"}"
                return Response(b'{"events":' + body + tail, media_type="application/json")
        except BaseException:
            lease.__exit__(None, None, None)
            raise
        else:
            if encode is not _plain or not more:
                lease.__exit__(None, None, None)

        # Beyond one store read: streamed, the lease held until the last byte is out.
        def release() -> None:
            lease.__exit__(None, None, None)

        chunks = json_page_chunks(body, pages, budget, encode)
        return _Closing(chunks, release, media_type="application/json")

    sse_doc = {"content": {"text/event-stream": {}}, "description": "Catch-up, then live."}

    @app.get("/v1/events/stream", tags=["events"], summary="Live tail (Server-Sent Events)",
             response_class=StreamingResponse, responses={200: sse_doc})  # fmt: skip
    async def stream_events(
        request: Request,
        type_: list[str] = Param([], alias="type"),
        actor: list[str] = Param([]),
        correlation_id: list[str] = Param([]),
        stream: list[str] = Param([]),
        causation_id: list[str] = Param([]),
        after: str | None = Param(None, description="Start after this position (default: now)."),
        format_: str | None = Param(
            None, alias="format", description="event (default) or cloudevents"
        ),
    ) -> Response:
        principal = svc.authorize(request, "read")
        params = request.query_params
        query = query_from_params(params, default_limit=1000)
        if query.reverse or query.since or query.until or query.before:
            raise errors.ValidationError(
                "the live tail takes type, actor, correlation_id, stream, causation_id and after"
            )
        resume = request.headers.get("last-event-id") or params.get("after")
        try:
            if resume in (None, ""):
                start = None
            elif resume.isascii() and resume.isdigit() and int(resume) <= MAX_POSITION:
                start = int(resume)
            else:
                raise ValueError(resume)
        except ValueError:
            shown = repr(resume) if len(resume or "") <= 40 else f"{len(resume or '')} characters"
            raise errors.ValidationError(
                f"after / Last-Event-ID must be a position (0 to 2**63-1), got {shown}"
            ) from None
        if start is not None and start < 0:
            raise errors.ValidationError(f"after / Last-Event-ID must be >= 0, got {start}")
        kind = "cloudevents" if format_ == "cloudevents" else "event"
        encode = ce.to_cloudevent if kind == "cloudevents" else _plain
        release = svc.tails.admit(principal.name)  # (429 / 503 beyond the caps)
        lease = svc.holder.lease()
        store = lease.__enter__()
        m.subscribers.inc()

        def closed() -> None:  # once, however the response ends
            m.subscribers.dec()
            release()
            lease.__exit__(None, None, None)

        try:
            if start is None:  # from now: what the store's fan-out has reached
                start = (await svc.tails.hub(store, partial(svc.run, store.head))).last
        except BaseException:
            closed()
            raise
        body = sse_stream(svc.tails, store, query, start, run=svc.run, heartbeat=svc.heartbeat,
                          shutdown=svc.shutdown, kind=kind, encode=encode)  # fmt: skip
        return _Closing(
            body,
            closed,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @app.get("/v1/events/{event_id}", tags=["events"], summary="One event by id",
             responses={404: {"description": "No such event."}})  # fmt: skip
    async def get_event(request: Request, event_id: str) -> Response:
        svc.authorize(request, "read")
        if as_uuid(event_id) is None:
            raise HTTPError(404, "NotFound", f"{event_id!r} is not an event id (a UUID)")
        started = time.perf_counter()
        with svc.holder.lease() as store:
            ev = await svc.run(store.get, event_id)
        m.query_latency.observe(time.perf_counter() - started)
        if ev is None:
            raise HTTPError(404, "NotFound", f"no event {event_id}")
        if ce.STRUCTURED_TYPE in request.headers.get("accept", ""):
            return Response(_record.encode(ce.to_cloudevent(ev)), media_type=ce.STRUCTURED_TYPE)
        return json_response(ev)

    @app.get("/v1/stats", tags=["events"], summary="Counts, positions, times, size")
    async def stats(request: Request) -> Response:
        principal = svc.authorize(request, "read")
        with svc.holder.lease() as store:
            result = await svc.run(store.stats)
        if not principal.may("admin"):  # where the data lives is the operators' to know
            hidden = {k: v for k, v in result.details.items() if k not in _WHERE}
            result = msgspec.structs.replace(result, details=hidden)
        return json_response(result)

    @app.post("/v1/verify", tags=["operations"], summary="Recompute the hash chain (admin)")
    async def verify(request: Request) -> Response:
        svc.authorize(request, "admin")
        with svc.holder.lease() as store:
            result = await svc.run(store.verify)
        return json_response(result, 200 if result.ok else 409)

    @app.get("/healthz", tags=["operations"], summary="The process is up")
    async def healthz(request: Request) -> Response:
        svc.gate(request, "healthz")
        return json_response({"status": "ok"})

    @app.get("/readyz", tags=["operations"], summary="The backend answers",
             responses={503: {"description": "The backend does not answer."}})  # fmt: skip
    async def readyz(request: Request) -> Response:
        caller = svc.gate(request, "readyz")
        if svc.shutdown.is_set():
            return error_response(503, "ShuttingDown", "the service is shutting down")
        try:
            with svc.holder.lease() as store:
                with anyio.fail_after(5):
                    head = await svc.run(store.head)
        except (errors.EventVaultError, TimeoutError) as exc:
            if caller is None:  # (the reason may name hosts and paths)
                return error_response(503, "NotReady", "the backend does not answer")
            return error_response(503, "NotReady", f"{svc.holder.current.backend_name}: {exc}")
        if caller is None:  # anonymous: the status alone, no position or backend
            return json_response({"status": "ready"})
        return json_response(
            {"status": "ready", "backend": svc.holder.current.backend_name, "head": head}
        )

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics (read scope)",
             response_class=Response)  # fmt: skip
    async def metrics(request: Request) -> Response:
        svc.gate(request, "metrics")
        return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)


class _Closing(StreamingResponse):
    """A streamed response (a live tail, a large read): ``closed`` runs once it ends,
    however it ends (client gone, shutdown, error — or never started), so its cap
    slot and store lease are given back at once."""

    def __init__(self, body: AsyncIterator[bytes], closed: Callable[[], None], **kw: Any):
        super().__init__(body, **kw)
        self._closed = closed

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._closed()
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


#: ``StoreStats.details`` keys that say where the data lives (admin scope only).
_WHERE = frozenset({"path", "dsn", "uri"})


def _ndjson(
    svc: Service, query: Query, cursor: str | None, encode: Callable[[RecordedEvent], Any]
) -> Response:
    """Every matching event from the cursor on, one JSON line each, page by page (a
    page is read while the previous one is being sent)."""

    async def lines() -> AsyncIterator[bytes]:
        with svc.holder.lease() as store:
            budget = Budget(svc.max_response, store.max_event_bytes)
            async for page in read_pages(svc.run, store, query, cursor, budget, None):
                if page.events:
                    chunk = b"\n".join(_record.encode(encode(e)) for e in page.events) + b"\n"
                    budget.spent(len(chunk), len(page.events))
                    yield chunk
                if svc.shutdown.is_set():
                    return

    return StreamingResponse(lines(), media_type=NDJSON)


# -- errors, access log, schemas ----------------------------------------------------------


def _errors(app: FastAPI) -> None:
    @app.exception_handler(HTTPError)
    async def http_error(_request: Request, exc: HTTPError) -> Response:
        return error_response(exc.status, exc.kind, exc.message, exc.headers)

    @app.exception_handler(errors.EventVaultError)
    async def store_error(_request: Request, exc: errors.EventVaultError) -> Response:
        mapped = from_store_error(exc)
        if mapped.status >= 500:
            log.error("%s: %s", mapped.kind, exc)
        return error_response(mapped.status, mapped.kind, mapped.message, None, mapped.details)

    @app.exception_handler(RequestValidationError)
    async def bad_params(_request: Request, exc: RequestValidationError) -> Response:
        parts = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        ]
        return error_response(400, "ValidationError", "; ".join(parts) or "invalid request")


#: The interactive documentation and the schema: ``server.anonymous`` "docs".
_DOC_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})


class _App(FastAPI):
    """FastAPI, with a fast path for the hottest route: ``POST /v1/events`` goes
    straight to :meth:`Service.append` instead of through the framework's middleware,
    routing and dependency layers (they took a third of the time of a 100-event
    append, more of a single-event one). The FastAPI route stays, for the OpenAPI
    document; both call the same method."""

    fast_append: Any = None
    service: Any = None

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] in _DOC_PATHS and self.service is not None:
            request = Request(scope, receive)
            try:
                self.service.gate(request, "docs")
            except HTTPError as exc:
                response = error_response(exc.status, exc.kind, exc.message, exc.headers)
                await response(scope, receive, send)
                return
        if (
            self.fast_append is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == "/v1/events"
        ):
            scope["app"] = self
            await self.fast_append(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


class _Edge:
    """Plain ASGI (so streams pass through): one structured access-log line per
    request — never the token, only its name."""

    def __init__(self, app: Callable[..., Awaitable[None]], service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        target = self.app
        if scope["type"] != "http" or not self.service.config.server.access_log:
            await target(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await target(scope, receive, sending)
        finally:
            state = scope.get("state") or {}
            client = scope.get("client")
            access_log.info(
                "%s %s %d",
                scope["method"],
                scope["path"],
                status,
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                    "client": client[0] if client else None,
                    "principal": state.get("principal"),
                },
            )


def _fast_append(service: Service) -> Callable[..., Awaitable[None]]:
    async def append(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope.setdefault("state", {})
        request = Request(scope, receive)
        try:
            check_names("query parameter", request.query_params.keys(), ["expected_revision"])
        except errors.ValidationError as exc:
            response = error_response(400, "ValidationError", str(exc))
        else:
            expected = request.query_params.get("expected_revision")
            response = await service.append(request, expected)
        await response(scope, receive, send)

    return _Edge(append, service)


def _schemas(app: FastAPI) -> None:
    """The body schemas come from the msgspec structs the store itself validates with."""
    from ..model import NewEvent

    base = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = base()
        _, components = msgspec.json.schema_components(
            [NewEvent], ref_template="#/components/schemas/{name}"
        )
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(components)
        schemas["CloudEvent"] = {
            "type": "object",
            "required": ["specversion", "id", "source", "type"],
            "properties": {
                "specversion": {"type": "string", "enum": ["1.0"]},
                "id": {"type": "string", "minLength": 1},
                "source": {"type": "string", "minLength": 1},
                "type": {"type": "string", "minLength": 1},
                "subject": {"type": "string", "minLength": 1},
                "time": {"type": "string", "format": "date-time"},
                "datacontenttype": {"type": "string"},
                "data": {"type": "object"},
                "correlationid": {"type": "string"},
                "causationid": {"type": "string"},
                "actor": {"type": "string"},
            },
        }
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
