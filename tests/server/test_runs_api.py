"""``/v1/runs``, the console's files and ``/docs``, in-process (httpx's ASGI
transport, a real file store)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from eventvault import load_config
from eventvault.backends.file import FileEventStore
from eventvault.server import create_app

from .conftest import ClientMaker, running

pytestmark = pytest.mark.anyio

READER = "reader-token-0123456789abcdef"
WRITER = "writer-token-0123456789abcdef"


def chain(cid: str, types: list[str], actor: str = "agent:1") -> list[dict[str, Any]]:
    ids = [str(uuid.uuid4()) for _ in types]
    return [
        {"type": t, "id": i, "correlation_id": cid, "actor": actor, "data": {"n": n}}
        | ({"causation_id": ids[n - 1]} if n else {})
        for n, (t, i) in enumerate(zip(types, ids, strict=True))
    ]


async def fill(c: Any) -> None:
    for n in range(4):
        outcome = "job.succeeded" if n % 2 else "job.failed"
        r = await c.post("/v1/events", json=chain(f"run-{n}", ["job.started", outcome]))
        assert r.status_code == 201


async def test_runs_are_listed_newest_first_with_a_cursor(make_client: ClientMaker) -> None:
    async with make_client() as c:
        await fill(c)
        r = await c.get("/v1/runs", params={"limit": "3"})
        assert r.status_code == 200
        page = r.json()
        assert [x["correlation_id"] for x in page["runs"]] == ["run-3", "run-2", "run-1"]
        assert page["runs"][0]["outcome"] == "succeeded"
        r = await c.get("/v1/runs", params={"limit": "3", "cursor": page["next_cursor"]})
        assert [x["correlation_id"] for x in r.json()["runs"]] == ["run-0"]
        assert r.json()["next_cursor"] is None
        r = await c.get("/v1/runs", params={"type": "job.failed"})
        assert [x["correlation_id"] for x in r.json()["runs"]] == ["run-2", "run-0"]


async def test_relative_times_name_the_same_listing_on_every_page(
    make_client: ClientMaker,
) -> None:
    async with make_client() as c:
        await fill(c)
        r = await c.get("/v1/runs", params={"limit": "1", "since": "1h"})
        first = r.json()
        assert len(first["runs"]) == 1
        seen = [first["runs"][0]["correlation_id"]]
        cursor = first["next_cursor"]
        while cursor:
            r = await c.get("/v1/runs", params={"limit": "1", "since": "1h", "cursor": cursor})
            assert r.status_code == 200, r.text
            seen += [x["correlation_id"] for x in r.json()["runs"]]
            cursor = r.json()["next_cursor"]
        assert seen == ["run-3", "run-2", "run-1", "run-0"]
        r = await c.get("/v1/runs", params={"since": "1h", "cursor": "abc.x1"})
        assert r.status_code == 400


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"limit": "0"}, "limit must be an integer 1"),
        ({"limit": "x"}, "limit must be an integer 1"),
        ({"cursor": "nonsense"}, "cursor"),
        ({"typ": "job.failed"}, "typ"),  # a typo is refused, never ignored
        ({"order": "desc"}, "order"),
        ({"since": "someday"}, "since"),
    ],
)
async def test_bad_listing_parameters_are_refused(
    make_client: ClientMaker, params: dict[str, str], fragment: str
) -> None:
    async with make_client() as c:
        await fill(c)
        r = await c.get("/v1/runs", params=params)
        assert r.status_code == 400
        assert r.json()["error"]["type"] == "ValidationError"
        assert fragment in r.json()["error"]["message"]


async def test_a_run_is_its_tree_and_an_unknown_one_is_404(make_client: ClientMaker) -> None:
    async with make_client() as c:
        events = chain("r/1", ["a.started", "a.step", "a.done"])
        await c.post("/v1/events", json=events)
        r = await c.get("/v1/runs/r%2F1")  # ids may hold "/"
        assert r.status_code == 200
        trace = r.json()
        assert trace["correlation_id"] == "r/1"
        assert [n["label"] for n in trace["nodes"]] == ["a.started", "a.step", "a.done"]
        assert [n["depth"] for n in trace["nodes"]] == [0, 1, 2]
        assert trace["lanes"][0]["actor"] == "agent:1"
        assert trace["truncated"] is False
        r = await c.get("/v1/runs/no-such-run")
        assert r.status_code == 404
        assert r.json()["error"] == {
            "type": "NotFound",
            "message": "no run 'no-such-run': no event has this correlation id",
        }
        r = await c.get("/v1/runs/r%2F1", params={"max_events": "0"})
        assert r.status_code == 400
        r = await c.get("/v1/runs/r%2F1", params={"depth": "2"})
        assert r.status_code == 400


async def test_a_long_run_is_truncated_with_a_marker(make_client: ClientMaker) -> None:
    async with make_client() as c:
        await c.post("/v1/events", json=chain("long", [f"s.step{i}" for i in range(30)]))
        r = await c.get("/v1/runs/long", params={"max_events": "10"})
        assert r.status_code == 200
        assert r.headers["x-run-truncated"] == "true"
        assert r.json()["truncated"] is True
        assert len(r.json()["events"]) == 10


async def test_causation_cycles_are_reported(make_client: ClientMaker) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    async with make_client() as c:
        await c.post(
            "/v1/events",
            json=[
                {"type": "c.one", "id": a, "correlation_id": "cyc", "causation_id": b},
                {"type": "c.two", "id": b, "correlation_id": "cyc", "causation_id": a},
            ],
        )
        trace = (await c.get("/v1/runs/cyc")).json()
        assert [p["kind"] for p in trace["problems"]] == ["cycle"]
        assert len(trace["nodes"]) == 2


async def test_two_runs_diff(make_client: ClientMaker) -> None:
    async with make_client() as c:
        await c.post("/v1/events", json=chain("good", ["t.started", "t.built", "t.succeeded"]))
        await c.post("/v1/events", json=chain("bad", ["t.started", "t.failed"]))
        r = await c.get("/v1/runs/good/diff/bad", params={"timing_threshold": "200ms"})
        assert r.status_code == 200
        d = r.json()
        assert (d["a"], d["b"], d["same"], d["only_a"], d["only_b"]) == ("good", "bad", 1, 2, 1)
        assert d["timing_threshold_us"] == 200_000
        r = await c.get("/v1/runs/good/diff/nope")
        assert r.status_code == 404
        assert "no run 'nope'" in r.json()["error"]["message"]
        r = await c.get("/v1/runs/good/diff/bad", params={"timing_threshold": "soon"})
        assert r.status_code == 400
        assert "timing_threshold" in r.json()["error"]["message"]


def _with_tokens(tmp_path: Path) -> Any:
    config = load_config(
        {
            "server": {
                "tokens": [
                    {"name": "reader", "token": READER, "scopes": ["read"]},
                    {"name": "writer", "token": WRITER, "scopes": ["append"]},
                ]
            }
        }
    )
    return running(create_app(FileEventStore(tmp_path / "store"), config))


async def test_runs_need_the_read_scope(tmp_path: Path) -> None:
    async with _with_tokens(tmp_path) as c:
        for path in ("/v1/runs", "/v1/runs/x", "/v1/runs/x/diff/y"):
            assert (await c.get(path)).status_code == 401
            r = await c.get(path, headers={"Authorization": f"Bearer {WRITER}"})
            assert r.status_code == 403
            assert "lacks the 'read' scope" in r.json()["error"]["message"]
        r = await c.get("/v1/runs", headers={"Authorization": f"Bearer {READER}"})
        assert r.status_code == 200


async def test_the_runs_endpoints_are_in_the_openapi_document(make_client: ClientMaker) -> None:
    async with make_client() as c:
        doc = (await c.get("/openapi.json")).json()
        assert {"/v1/runs", "/v1/runs/{correlation_id}", "/v1/runs/{a}/diff/{b}"} <= set(
            doc["paths"]
        )
        listing = doc["paths"]["/v1/runs"]["get"]
        assert {p["name"] for p in listing["parameters"]} >= {"type", "actor", "cursor", "limit"}
        assert "404" in doc["paths"]["/v1/runs/{correlation_id}"]["get"]["responses"]
        assert not any(p.startswith("/ui") or p.startswith("/docs") for p in doc["paths"])


async def test_the_console_is_served_from_the_package_with_a_strict_policy(
    tmp_path: Path,
) -> None:
    async with _with_tokens(tmp_path) as c:  # the shell holds no data: no token needed
        r = await c.get("/ui")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert "unsafe-eval" not in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "<script" in r.text
        assert "http" not in r.text.replace("https://", "").split("<body>")[0]  # no CDN
        js = await c.get("/ui/app.js")
        assert js.status_code == 200
        assert js.headers["content-type"].startswith("text/javascript")
        assert "content-security-policy" in js.headers
        assert (await c.get("/ui/../store/x")).status_code == 404
        assert (await c.get("/ui/nothing.js")).status_code == 404
        assert (await c.get("/ui", params={"token": "x"})).status_code == 400


async def test_the_console_never_builds_markup_from_strings() -> None:
    """Everything from events goes in as text: no innerHTML, outerHTML,
    insertAdjacentHTML, document.write or eval in the console's scripts."""
    ui = Path(__file__).parents[2] / "src" / "eventvault" / "server" / "ui"
    scripts = sorted(ui.glob("*.js"))
    assert len(scripts) >= 8
    for script in scripts:
        text = script.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in text, f"{script.name} uses {sink}"
        assert "new Function" not in text


async def test_the_docs_come_from_packaged_files(make_client: ClientMaker) -> None:
    async with make_client() as c:
        r = await c.get("/docs")
        assert r.status_code == 200
        assert "/docs/assets/swagger-ui-bundle.js" in r.text
        assert "cdn" not in r.text.lower()
        bundle = await c.get("/docs/assets/swagger-ui-bundle.js")
        assert bundle.status_code == 200
        assert len(bundle.content) > 100_000
        assert (await c.get("/docs/assets/swagger-ui.css")).status_code == 200
        r = await c.get("/redoc")
        assert r.status_code == 200
        assert "/docs/assets/redoc.standalone.js" in r.text
