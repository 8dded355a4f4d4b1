"""Issue 18.6: the append route inside the app's middleware stack and in its OpenAPI
document; the live tail's store lease taken inside its stream; the worker threads
stopped with the app."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from starlette.requests import Request
from starlette.responses import Response

from eventvault.backends.memory import MemoryEventStore
from eventvault.server import create_app

from .conftest import running

pytestmark = pytest.mark.anyio


async def test_a_middleware_the_user_adds_sees_the_append_route() -> None:
    app = create_app(MemoryEventStore())
    seen: list[tuple[str, str, int]] = []
    pure: list[str] = []

    @app.middleware("http")
    async def record(request: Request, call_next: Callable[..., Awaitable[Response]]) -> Any:
        response = await call_next(request)
        seen.append((request.method, request.url.path, response.status_code))
        response.headers["x-seen"] = "yes"
        return response

    class Pure:  # a plain ASGI middleware, as CORS or tracing would be
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                pure.append(f"{scope['method']} {scope['path']}")
            await self.inner(scope, receive, send)

    app.add_middleware(Pure)
    async with running(app) as c:
        one = await c.post("/v1/events", json={"type": "t.x"})
        bad = await c.post("/v1/events?expected_revison=1", json={"type": "t.x"})
        batch = await c.post("/v1/events", json=[{"type": "t.x"}, {"type": "t.y"}])
    assert one.status_code == 201
    assert one.headers["x-seen"] == "yes"
    assert bad.status_code == 400
    assert "expected_revison" in bad.json()["error"]["message"]
    assert batch.status_code == 201
    assert batch.json()["last_position"] == 3
    assert seen == [
        ("POST", "/v1/events", 201),
        ("POST", "/v1/events", 400),
        ("POST", "/v1/events", 201),
    ]
    assert pure == ["POST /v1/events"] * 3


async def test_cors_answers_on_the_append_route() -> None:
    from starlette.middleware.cors import CORSMiddleware

    app = create_app(MemoryEventStore())
    app.add_middleware(CORSMiddleware, allow_origins=["https://ui.example"], allow_methods=["*"])
    async with running(app) as c:
        r = await c.post(
            "/v1/events", json={"type": "t.x"}, headers={"origin": "https://ui.example"}
        )
    assert r.status_code == 201
    assert r.headers["access-control-allow-origin"] == "https://ui.example"


async def test_one_append_route_and_the_openapi_document_describes_it() -> None:
    app = create_app(MemoryEventStore())
    posts = [
        r for r in app.routes if getattr(r, "path", None) == "/v1/events" and "POST" in r.methods
    ]
    assert len(posts) == 1
    assert app.routes[0] is posts[0]
    async with running(app) as c:
        doc = (await c.get("/openapi.json")).json()
        other = await c.put("/v1/events", json={})
    assert other.status_code == 405
    op = doc["paths"]["/v1/events"]["post"]
    assert "get" in doc["paths"]["/v1/events"]
    assert op["tags"] == ["events"]
    assert op["operationId"] == "append_v1_events_post"
    body = op["requestBody"]
    assert body["required"] is True
    assert set(body["content"]) == {
        "application/json",
        "application/cloudevents+json",
        "application/cloudevents-batch+json",
    }
    assert {"$ref": "#/components/schemas/NewEvent"} in body["content"]["application/json"][
        "schema"
    ]["oneOf"]
    assert [p["name"] for p in op["parameters"] if p["in"] == "query"] == ["expected_revision"]
    assert {"201", "400", "401", "403", "409", "413", "415"} <= set(op["responses"])
    created = op["responses"]["201"]["content"]["application/json"]["schema"]
    assert created == {"$ref": "#/components/schemas/Appended"}
    schemas = doc["components"]["schemas"]
    for name in ("NewEvent", "CloudEvent", "Appended", "Written", "Problem"):
        assert name in schemas, name


async def test_the_worker_threads_stop_when_the_app_does() -> None:
    app = create_app(MemoryEventStore(), close_store=False)
    svc = app.state.service
    async with running(app) as c:
        assert (await c.post("/v1/events", json={"type": "t.x"})).status_code == 201
        pool = svc.executor
        threads = list(pool._threads)
        assert threads
        assert all(t.is_alive() for t in threads)
    assert pool._shutdown
    assert not any(t.is_alive() for t in threads)
    # The same app started again gets fresh threads.
    async with running(app) as c:
        assert (await c.post("/v1/events", json={"type": "t.y"})).status_code == 201
        assert svc.executor is not pool
    assert svc.executor._shutdown


async def test_a_request_after_the_worker_threads_stopped_gets_a_json_503() -> None:
    """Found in review: a request that arrived as the service stopped hit the shut
    executor's RuntimeError and got a plain-text 500."""
    import httpx

    app = create_app(MemoryEventStore(), close_store=False)
    async with running(app):
        pass  # the lifespan ran and ended: the executor is shut down
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        r = await c.post("/v1/events", json={"type": "t.late"})
        assert r.status_code == 503, r.text
        assert "shutting down" in r.text, r.text
        assert r.headers["content-type"].startswith("application/problem+json") or r.json()
        r = await c.get("/v1/events")
        assert r.status_code == 503, r.text


async def test_a_live_tail_cancelled_before_it_starts_holds_no_lease() -> None:
    """A tail's response cancelled before it ever ran (its task cancelled before the
    first step: neither the response's nor the stream's code ran) must not hold the
    store: the lease used to be taken in the route, before the response existed, so
    a reload then never closed the retired store."""
    old = MemoryEventStore()
    app = create_app(old)
    svc = app.state.service
    route = next(r for r in app.routes if getattr(r, "path", None) == "/v1/events/stream")
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/events/stream",
        "query_string": b"after=0",
        "headers": [],
    }

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}  # pragma: no cover

    async def send(message: dict[str, Any]) -> None:  # pragma: no cover - never runs
        raise AssertionError(message)

    async def tail(after: str | None) -> Any:
        scope["query_string"] = b"" if after is None else f"after={after}".encode()
        return await route.endpoint(
            Request(scope, receive), type_=[], actor=[], correlation_id=[], stream=[],
            causation_id=[], after=after, format_=None,
        )  # fmt: skip

    async with running(app):
        for after in ("0", None):  # a resume position, and "from now"
            # Its coroutine closed before the first step: nothing of it ran.
            response = await tail(after)
            response(scope, receive, send).close()
            del response
            gc.collect()
            assert svc.tails.open == 0  # the cap slot is back
            # Its task cancelled before the first step.
            task = asyncio.ensure_future((await tail(after))(scope, receive, send))
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            del task
        svc.holder.swap(MemoryEventStore())
        assert old.closed  # no lease held it open
