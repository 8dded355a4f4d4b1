"""``/v1/runs``: runs (the events sharing a correlation id) over HTTP — the listing,
one run's causal tree, and the diff of two runs (read scope).

The bodies are the JSON forms of :mod:`eventvault.runs` (``RunPage``, ``RunTrace``,
``RunDiff``): what ``eventvault runs/trace/diff --format json`` print.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi import Query as Param
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from .. import errors
from ..runs import DEFAULT_MAX_EVENTS, MAX_RUNS_PAGE, RunTrace
from ..runs.loading import MAX_MAX_EVENTS
from ..timeutil import from_us, parse_duration, parse_time, to_us
from .requests import HTTPError, json_response, query_from_params

if TYPE_CHECKING:
    from .service import Service

__all__ = ["add_runs_routes"]

_JSON = "application/json"
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No event has this correlation id."}
}

#: The listing's filters (the events that make a run listed); the rest of
#: ``GET /v1/events``'s parameters (order, after, before) mean nothing for runs.
_FILTERS = ("type", "actor", "stream", "correlation_id", "causation_id", "since", "until")


def _int_param(value: str | None, name: str, default: int, top: int) -> int:
    if value is None or value == "":
        return default
    if not (value.isascii() and value.isdigit()) or not 1 <= int(value) <= top:
        shown = repr(value) if len(value) <= 40 else f"{len(value)} characters"
        raise errors.ValidationError(f"{name} must be an integer 1–{top:,}, got {shown}")
    return int(value)


def _split_cursor(cursor: str | None) -> tuple[str | None, datetime | None]:
    """An HTTP runs cursor is the library's, plus — when ``since``/``until`` were given —
    ``.<microseconds>``: the instant relative times (``since=2h``) were resolved at,
    so every page names the same listing."""
    if not cursor:
        return None, None
    inner, dot, at = cursor.rpartition(".")
    if not dot:
        return cursor, None
    if not (at.isascii() and at.isdigit() and len(at) <= 20):
        raise errors.ValidationError("runs cursor is malformed (use next_cursor as given)")
    return inner, from_us(int(at))


def _not_found(correlation_id: str) -> HTTPError:
    return HTTPError(404, "NotFound", str(errors.RunNotFoundError(correlation_id)))


def _trace_body(trace: RunTrace) -> Response:
    headers = {"X-Run-Truncated": "true"} if trace.truncated else None
    return Response(trace.to_json(), 200, headers, media_type=_JSON)


def add_runs_routes(app: FastAPI, svc: Service) -> None:
    """Register ``GET /v1/runs``, ``/v1/runs/{correlation_id}`` and the diff."""

    @app.get("/v1/runs", tags=["runs"], summary="List runs, newest first: filters, cursor")
    async def list_runs(
        request: Request,
        type_: list[str] = Param(
            [], alias="type", description="A run is listed when one of its events matches."
        ),
        actor: list[str] = Param([], description="Actor (OR)."),
        stream: list[str] = Param([], description="Stream (OR)."),
        correlation_id: list[str] = Param([], description="Correlation id (OR)."),
        causation_id: list[str] = Param([], description="Causation id (OR)."),
        since: str | None = Param(None, description="An event recorded at or after this."),
        until: str | None = Param(None, description="An event recorded before this."),
        limit: str | None = Param(None, description=f"Runs per page, 1-{MAX_RUNS_PAGE} (50)."),
        cursor: str | None = Param(None, description="next_cursor of the previous page."),
    ) -> Response:
        svc.authorize(request, "read")
        runs_limit = _int_param(limit, "limit", 50, MAX_RUNS_PAGE)
        inner, resolved = _split_cursor(cursor)
        params: list[tuple[str, str]] = [
            (k, v) for k, v in request.query_params.multi_items() if k in _FILTERS
        ]
        timed = bool(since or until)
        at = resolved or datetime.now(UTC)
        query = query_from_params(_Resolved(params, at) if timed else QueryParams(params))
        with svc.holder.lease() as store:
            page = await svc.run(lambda: store.runs(query, limit=runs_limit, cursor=inner))
        body: dict[str, Any] = page.to_builtins()
        if page.next_cursor is not None and timed:
            body["next_cursor"] = f"{page.next_cursor}.{to_us(at)}"
        return json_response(body)

    # (Ids may hold "/": the paths take the rest of the URL, and the diff is matched
    # first, so only a run whose id holds "/diff/" needs the other spelling.)
    @app.get("/v1/runs/{a:path}/diff/{b:path}", tags=["runs"], responses=_NOT_FOUND,
             summary="How run b differs from run a, aligned by (actor, type)")  # fmt: skip
    async def diff_runs(
        request: Request,
        a: str,
        b: str,
        timing_threshold: str | None = Param(
            None, description="Flag steps whose time differs by more than this (1s)."
        ),
        max_events: str | None = Param(None, description="Per run (default 10,000)."),
    ) -> Response:
        svc.authorize(request, "read")
        bound = _int_param(max_events, "max_events", DEFAULT_MAX_EVENTS, MAX_MAX_EVENTS)
        try:
            threshold = parse_duration(timing_threshold or "1s")
        except ValueError as exc:
            raise errors.ValidationError(f"timing_threshold: {exc}") from None
        with svc.holder.lease() as store:
            try:
                result = await svc.run(
                    lambda: store.diff(a, b, timing_threshold=threshold, max_events=bound)
                )
            except errors.RunNotFoundError as exc:
                raise _not_found(exc.correlation_id) from None
        return Response(result.to_json(), media_type=_JSON)

    @app.get("/v1/runs/{correlation_id:path}", tags=["runs"], responses=_NOT_FOUND,
             summary="One run: its events, causal tree, actor lanes and problems")  # fmt: skip
    async def get_run(
        request: Request,
        correlation_id: str,
        max_events: str | None = Param(
            None,
            description=f"Read at most this many events, 1-{MAX_MAX_EVENTS:,} (default "
            f"{DEFAULT_MAX_EVENTS:,}); a longer run answers truncated: true.",
        ),
    ) -> Response:
        svc.authorize(request, "read")
        bound = _int_param(max_events, "max_events", DEFAULT_MAX_EVENTS, MAX_MAX_EVENTS)
        with svc.holder.lease() as store:
            trace = await svc.run(lambda: store.run(correlation_id, max_events=bound))
        if trace is None:
            raise _not_found(correlation_id)
        return _trace_body(trace)


class _Resolved(QueryParams):
    """Query parameters whose relative times resolve at a given instant (the first
    page's), however late the next page is asked for."""

    def __init__(self, items: list[tuple[str, str]], at: datetime) -> None:
        super().__init__(items)
        self.at = at

    def get(self, key: Any, default: Any = None) -> Any:
        value = super().get(key, default)
        if key in ("since", "until") and value:
            try:
                return parse_time(value, now=self.at).isoformat()
            except ValueError as exc:
                raise errors.ValidationError(f"{key}: {exc}") from None
        return value
