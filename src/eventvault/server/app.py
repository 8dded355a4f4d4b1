"""The HTTP service: an ASGI app (FastAPI) over any store.

Every storage call runs in a worker thread (a thread pool) — the event loop
never waits on a disk or a database — and many concurrent appends meet in the
backend's group commit, so they share fsyncs and transactions.

Here: :func:`create_app` and the read, tail and operations routes. What the routes
share is :class:`~.service.Service`; ``POST /v1/events`` is :mod:`.appending` (a
plain route, first in the router); the app's own middleware is :mod:`.edge`.
Every route runs inside the middleware stack, so one a user adds sees them all.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

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
from ..store import EventStore, as_uuid
from ..strict import check_names
from .appending import append_route, describe_append
from .auth import TokenBook
from .cloudevents import BATCH_TYPE, STRUCTURED_TYPE, to_cloudevent
from .console import add_console
from .edge import AccessLog, DocsGate
from .holder import StoreHolder
from .log_api import add_log_routes
from .reads import Budget, json_page_chunks, read_pages
from .remote import remote_routes
from .requests import (
    HTTPError,
    error_response,
    from_store_error,
    json_response,
    query_from_params,
)
from .runs_api import add_runs_routes
from .service import Service
from .sse import sse_stream

__all__ = ["Service", "create_app"]

log = logging.getLogger("eventvault.server")

NDJSON = "application/x-ndjson"
_record = msgspec.json.Encoder()


def _plain(ev: RecordedEvent) -> RecordedEvent:
    return ev


def create_app(
    store: EventStore,
    config: Config | None = None,
    *,
    tokens: TokenBook | None = None,
    retention: bool = True,
    checkpoints: bool = True,
    close_store: bool = True,
    host: str | None = None,
) -> FastAPI:
    """The ASGI app serving ``store``. ``config`` supplies ``[server]`` and ``[retention]``
    (default: the built-in defaults); ``tokens`` defaults to ``config.server.tokens``.
    ``host``: the interface the server listens on (default ``server.host``); a reload
    that could not serve there is refused.
    ``retention``: run the configured policy on its schedule in this process.
    ``checkpoints``: sign checkpoints as ``[audit]`` says, if it names a key (a key
    that cannot sign raises :class:`~eventvault.errors.ConfigError` here).
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
        svc.open_executor()
        if retention:
            svc.start_retention()
        if checkpoints:
            svc.start_checkpoints()
        try:
            yield
        finally:
            svc.shutdown.set()
            svc.stop_retention()
            await to_thread.run_sync(svc.stop_checkpoints)  # (a signing in progress ends)
            # The worker threads go first (what they run finishes), then the store.
            await to_thread.run_sync(svc.close_executor)
            if close_store:
                await to_thread.run_sync(svc.holder.close)

    app = FastAPI(
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
            {"name": "log", "description": "The Merkle tree: checkpoints and proofs."},
            {"name": "operations", "description": "Health, readiness, metrics."},
        ],
    )
    app.state.service = svc
    app.service = svc  # type: ignore[attr-defined]  # (the old spelling, kept for callers)
    # First of all routes: the hottest one is matched at once (appending.py).
    app.router.routes.insert(0, append_route(svc))
    _routes(app, svc)
    add_runs_routes(app, svc)
    add_log_routes(app, svc)
    add_console(app, svc)
    remote_routes(app, svc)
    _errors(app)
    app.add_middleware(DocsGate, service=svc)
    app.add_middleware(AccessLog, service=svc)  # (outermost of ours: logs every answer)
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


def _routes(app: FastAPI, svc: Service) -> None:
    m = svc.metrics

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
        encode: Callable[[RecordedEvent], Any] = to_cloudevent if BATCH_TYPE in accept else _plain
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
                return Response(b"[" + joined + b"]", media_type=BATCH_TYPE,
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
        encode = to_cloudevent if kind == "cloudevents" else _plain
        release = svc.tails.admit(principal.name)  # (429 / 503 beyond the caps)
        try:
            if start is None:  # from now: what the store's fan-out has reached
                with svc.holder.lease() as store:
                    start = (await svc.tails.hub(store, partial(svc.run, store.head))).last
                first = store
            else:
                first = None
        except BaseException:
            release()
            raise
        body = _tail(svc, query, start, first, kind, encode, release)
        return _Closing(
            body,
            release,
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
        if STRUCTURED_TYPE in request.headers.get("accept", ""):
            return Response(_record.encode(to_cloudevent(ev)), media_type=STRUCTURED_TYPE)
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


async def _tail(
    svc: Service,
    query: Query,
    start: int,
    first: EventStore | None,
    kind: str,
    encode: Callable[[RecordedEvent], Any],
    release: Callable[[], None],
) -> AsyncIterator[bytes]:
    """One live tail's frames. Its store lease is taken here, inside the stream, and
    given back when the stream ends: a response that never ran (cancelled before its
    first step) holds none, and so cannot keep a store a reload retired open."""
    try:
        with svc.holder.lease() as store:
            if first is not None and store is not first:
                # A reload came between the route and the stream: "from now" is the
                # new store's now (a position of the old one means nothing here).
                start = (await svc.tails.hub(store, partial(svc.run, store.head))).last
            svc.metrics.subscribers.inc()
            try:
                frames = sse_stream(svc.tails, store, query, start, run=svc.run,
                                    heartbeat=svc.heartbeat, shutdown=svc.shutdown, kind=kind,
                                    encode=encode)  # fmt: skip
                try:
                    async for chunk in frames:
                        yield chunk
                finally:
                    await frames.aclose()
            finally:
                svc.metrics.subscribers.dec()
    finally:
        release()


class _Closing(StreamingResponse):
    """A streamed response (a live tail, a large read): ``closed`` runs once it ends,
    however it ends (client gone, shutdown, error) — or, if it never ran at all (its
    task cancelled before the first step), once it is dropped — so its cap slot and
    store lease are given back. (``closed`` must be safe to call more than once.)"""

    def __init__(self, body: AsyncIterator[bytes], closed: Callable[[], None], **kw: Any):
        super().__init__(body, **kw)
        self._closed = weakref.finalize(self, closed)

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
        describe_append(doc)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
