"""Every endpoint and its errors, in-process (httpx's ASGI transport, a real file store)."""

from __future__ import annotations

import json
import uuid

import pytest

from .conftest import ClientMaker

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}


def ev(type: str = "task.done", **kw: object) -> dict[str, object]:
    return {"type": type, "data": {"v": 1}, **kw}


async def test_append_one_and_a_batch(make_client: ClientMaker) -> None:
    async with make_client() as c:
        r = await c.post("/v1/events", json=ev(stream="s1", actor="agent:1"))
        assert r.status_code == 201
        body = r.json()
        assert body["first_position"] == body["last_position"] == 1
        (one,) = body["events"]
        assert one["stream"] == "s1"
        assert one["stream_revision"] == 0
        assert len(one["hash"]) == 64
        r = await c.post("/v1/events", json=[ev(stream="s1"), ev("task.started", stream="s2")])
        assert r.status_code == 201
        assert [e["position"] for e in r.json()["events"]] == [2, 3]
        assert [e["stream_revision"] for e in r.json()["events"]] == [1, 0]


async def test_a_bad_event_in_a_batch_stores_nothing(make_client: ClientMaker) -> None:
    async with make_client() as c:
        r = await c.post("/v1/events", json=[ev(), ev("not a type"), ev()])
        assert r.status_code == 400
        err = r.json()["error"]
        assert err["type"] == "ValidationError"
        assert "$[1]" in err["message"]
        assert "not a type" in err["message"]
        stats = (await c.get("/v1/stats")).json()
        assert stats["events"] == 0


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"", "empty"),
        (b"{not json", "not valid JSON"),
        (b"[]", "empty"),
        (b"42", "invalid event"),
        (b'{"type": "a.b", "data": [1]}', "$.data"),
        (b'{"type": "a.b", "data": {"x": NaN}}', ""),
        (b'{"type": "a.b", "occurred_at": "yesterday"}', "occurred_at"),
        (b'{"type": "a.b", "id": "not-a-uuid"}', "id"),
        (b'{"type": "a.b", "stream": ""}', "stream"),
    ],
)
async def test_bad_bodies_get_400_with_a_reason(
    make_client: ClientMaker, body: bytes, fragment: str
) -> None:
    async with make_client() as c:
        r = await c.post("/v1/events", content=body, headers=JSON)
        assert r.status_code == 400, r.text
        assert fragment in r.json()["error"]["message"]


async def test_expected_revision_and_idempotent_retries(make_client: ClientMaker) -> None:
    async with make_client() as c:
        r = await c.post("/v1/events?expected_revision=no_stream", json=ev(stream="s"))
        assert r.status_code == 201
        r = await c.post("/v1/events?expected_revision=no_stream", json=ev(stream="s"))
        assert r.status_code == 409
        assert r.json()["error"]["type"] == "WrongExpectedRevisionError"
        r = await c.post("/v1/events?expected_revision=7", json=ev(stream="s"))
        assert r.status_code == 409
        r = await c.post("/v1/events?expected_revision=0", json=ev(stream="s"))
        assert r.status_code == 201
        r = await c.post("/v1/events?expected_revision=zero", json=ev(stream="s"))
        assert r.status_code == 400
        # A retry with the same id is the same event; other content under it is a conflict.
        event_id = str(uuid.uuid4())
        first = await c.post("/v1/events", json=ev(id=event_id))
        again = await c.post("/v1/events", json=ev(id=event_id))
        assert first.json()["events"] == again.json()["events"]
        other = await c.post("/v1/events", json=ev(id=event_id, data={"v": 2}))
        assert other.status_code == 409
        assert other.json()["error"]["type"] == "DuplicateEventError"


async def test_body_limit_and_media_types(make_client: ClientMaker) -> None:
    async with make_client(max_body_bytes=2048) as c:
        big = ev(data={"blob": "x" * 4000})
        r = await c.post("/v1/events", json=big)
        assert r.status_code == 413
        assert "max_body_bytes" in r.json()["error"]["message"]
        r = await c.post("/v1/events", content=b"type=a", headers={"content-type": "text/plain"})
        assert r.status_code == 415
        assert (await c.get("/v1/stats")).json()["events"] == 0


async def test_read_filters_cursor_order_and_ndjson(make_client: ClientMaker) -> None:
    async with make_client() as c:
        batch = [
            ev(["task.done", "task.started", "build.ok"][i % 3], actor=f"a{i % 2}",
               correlation_id=f"run-{i % 4}", stream=f"s{i % 5}", data={"i": i})
            for i in range(60)
        ]  # fmt: skip
        assert (await c.post("/v1/events", json=batch)).status_code == 201
        r = await c.get("/v1/events", params={"type": "task.*", "actor": "a0", "limit": 5})
        page = r.json()
        assert len(page["events"]) == 5
        assert all(e["type"].startswith("task.") and e["actor"] == "a0" for e in page["events"])
        seen = [e["position"] for e in page["events"]]
        cursor = page["next_cursor"]
        while cursor:
            params = {"type": "task.*", "actor": "a0", "limit": 5, "cursor": cursor}
            page = (await c.get("/v1/events", params=params)).json()
            seen += [e["position"] for e in page["events"]]
            cursor = page["next_cursor"]
        expected = [
            i + 1 for i, e in enumerate(batch) if e["type"] != "build.ok" and e["actor"] == "a0"
        ]
        assert seen == expected
        desc = (await c.get("/v1/events", params={"order": "desc", "limit": 3})).json()
        assert [e["position"] for e in desc["events"]] == [60, 59, 58]
        both = (await c.get("/v1/events?type=build.ok,task.done&correlation_id=run-1")).json()
        assert {e["type"] for e in both["events"]} == {"build.ok", "task.done"}
        assert {e["correlation_id"] for e in both["events"]} == {"run-1"}
        window = (await c.get("/v1/events", params={"after": 10, "before": 14})).json()
        assert [e["position"] for e in window["events"]] == [11, 12, 13]
        r = await c.get("/v1/events", params={"stream": "s3", "limit": 2},
                        headers={"accept": "application/x-ndjson"})  # fmt: skip
        assert r.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in r.text.splitlines()]
        assert [e["data"]["i"] for e in lines] == [i for i in range(60) if i % 5 == 3]


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=abc", "order=up", "after=-1", "since=tomorrowish", "type=a*b", "cursor=zzz"],
)
async def test_bad_queries_get_400(make_client: ClientMaker, query: str) -> None:
    async with make_client() as c:
        await c.post("/v1/events", json=ev())
        r = await c.get(f"/v1/events?{query}")
        assert r.status_code == 400, r.text
        assert r.json()["error"]["type"] == "ValidationError"


async def test_get_one_stats_health_ready_metrics(make_client: ClientMaker) -> None:
    async with make_client() as c:
        written = (await c.post("/v1/events", json=ev(stream="x"))).json()["events"][0]
        one = await c.get(f"/v1/events/{written['id']}")
        assert one.status_code == 200
        assert one.json()["hash"] == written["hash"]
        assert (await c.get(f"/v1/events/{uuid.uuid4()}")).status_code == 404
        assert (await c.get("/v1/events/not-an-id")).status_code == 404
        stats = (await c.get("/v1/stats")).json()
        assert stats["events"] == 1
        assert (await c.get("/healthz")).json() == {"status": "ok"}
        ready = (await c.get("/readyz")).json()
        assert ready["status"] == "ready"
        assert ready["backend"] == "file"
        metrics = (await c.get("/metrics")).text
        assert "eventvault_events_appended_total 1.0" in metrics
        assert "eventvault_append_latency_seconds_bucket" in metrics
        assert "eventvault_query_latency_seconds_count" in metrics
        assert "eventvault_subscribers 0.0" in metrics
        verify = (await c.post("/v1/verify")).json()
        assert verify["ok"]
        assert verify["checked"] == 1
        doc = (await c.get("/openapi.json")).json()
        assert {"/v1/events", "/v1/events/{event_id}", "/v1/events/stream", "/metrics"} <= set(
            doc["paths"]
        )
        assert "NewEvent" in doc["components"]["schemas"]


TOKENS = {
    "tokens": [
        {"name": "ci", "token": "ci-token-0123456789", "scopes": ["append"]},
        {"name": "dash", "token": "dash-token-0123456789", "scopes": ["read"]},
        {
            "name": "ops",
            # sha256("ops-token-0123456789"): the file need not hold the token itself
            "token_sha256": "8a5e3f3e2b3b1b8a77dbbb0c4a1d1fd1ab6d5e8f3c0c2b1dd9c6c3aa0d0f1e77",
            "scopes": ["admin"],
        },
    ]
}


async def test_tokens_and_scopes(
    make_client: ClientMaker, caplog: pytest.LogCaptureFixture
) -> None:
    import hashlib

    TOKENS["tokens"][2]["token_sha256"] = hashlib.sha256(b"ops-token-0123456789").hexdigest()

    def bearer(token: str) -> dict[str, str]:
        return {"authorization": f"Bearer {token}"}

    caplog.set_level("INFO")
    async with make_client(**TOKENS) as c:
        assert (await c.post("/v1/events", json=ev())).status_code == 401
        assert (await c.get("/v1/events")).status_code == 401
        wrong = await c.get("/v1/events", headers=bearer("nope-nope-nope-nope"))
        assert wrong.status_code == 401
        assert wrong.headers["www-authenticate"].startswith("Bearer")
        assert (
            await c.post("/v1/events", json=ev(), headers=bearer("ci-token-0123456789"))
        ).status_code == 201
        assert (await c.get("/v1/events", headers=bearer("ci-token-0123456789"))).status_code == 403
        assert (
            await c.get("/v1/events", headers=bearer("dash-token-0123456789"))
        ).status_code == 200
        denied = await c.post("/v1/events", json=ev(), headers=bearer("dash-token-0123456789"))
        assert denied.status_code == 403
        assert "'append' scope" in denied.json()["error"]["message"]
        assert (
            await c.post("/v1/verify", headers=bearer("dash-token-0123456789"))
        ).status_code == 403
        assert (
            await c.post("/v1/verify", headers=bearer("ops-token-0123456789"))
        ).status_code == 200
        assert (await c.get("/metrics")).status_code == 401
        assert (await c.get("/healthz")).status_code == 200
    assert "token-0123456789" not in caplog.text
    principals = {getattr(r, "principal", None) for r in caplog.records}
    assert {"ci", "dash", "ops"} <= principals
