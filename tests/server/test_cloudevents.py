"""CloudEvents over HTTP in all three modes — posted with the official SDK as the client."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from cloudevents.core.bindings.http import to_binary_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent

from .conftest import ClientMaker

pytestmark = pytest.mark.anyio

CE_BATCH = "application/cloudevents-batch+json"


def sdk_event(**extra: object) -> CloudEvent:
    attributes = {
        "type": "ci.build.finished",
        "source": "https://ci.example/pipelines/7",
        "subject": "pipeline-7",
        "correlationid": "run-42",
        "causationid": "step-3",
        "actor": "ci-runner",
        "time": datetime(2026, 11, 27, 10, 0, 0, 123456, tzinfo=UTC),
        "specversion": "1.0",
        "datacontenttype": "application/json",
        **extra,
    }
    return CloudEvent(attributes, {"status": "green", "tests": 461})


def to_structured(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    message = to_structured_event(event)
    return dict(message.headers), message.body


def to_binary(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    message = to_binary_event(event)
    return dict(message.headers), message.body


async def test_structured_mode_from_the_sdk_maps_every_attribute(make_client: ClientMaker) -> None:
    event = sdk_event(id="build-7-finished", dataschema="https://schemas.example/build/v1")
    headers, body = to_structured(event)
    async with make_client() as c:
        r = await c.post("/v1/events", content=body, headers=headers)
        assert r.status_code == 201, r.text
        (written,) = r.json()["events"]
        stored = (await c.get(f"/v1/events/{written['id']}")).json()
        assert stored["type"] == "ci.build.finished"
        assert stored["source"] == "https://ci.example/pipelines/7"
        assert stored["stream"] == "pipeline-7"
        assert stored["correlation_id"] == "run-42"
        assert stored["causation_id"] == "step-3"
        assert stored["actor"] == "ci-runner"
        assert stored["occurred_at"] == "2026-11-27T10:00:00.123456Z"
        assert stored["data"] == {"status": "green", "tests": 461}
        assert stored["metadata"]["cloudevents"]["id"] == "build-7-finished"
        assert stored["metadata"]["cloudevents"]["dataschema"] == "https://schemas.example/build/v1"
        # A non-UUID id maps to the same UUID every time: a retry is idempotent.
        again = await c.post("/v1/events", content=body, headers=headers)
        assert again.json()["events"][0]["position"] == written["position"]
        # ...and the way back gives the original CloudEvent.
        back = (
            await c.get(
                f"/v1/events/{written['id']}", headers={"accept": "application/cloudevents+json"}
            )
        ).json()
        assert back["id"] == "build-7-finished"
        assert back["specversion"] == "1.0"
        assert back["subject"] == "pipeline-7"
        assert back["correlationid"] == "run-42"
        assert back["dataschema"] == "https://schemas.example/build/v1"
        assert back["time"] == "2026-11-27T10:00:00.123456Z"
        assert back["position"] == written["position"]


async def test_binary_mode_from_the_sdk(make_client: ClientMaker) -> None:
    event_id = str(uuid.uuid4())
    headers, body = to_binary(sdk_event(id=event_id))
    async with make_client() as c:
        r = await c.post("/v1/events", content=body, headers=headers)
        assert r.status_code == 201, r.text
        (written,) = r.json()["events"]
        assert written["id"] == event_id  # a UUID id is the event id itself
        stored = (await c.get(f"/v1/events/{event_id}")).json()
        assert stored["data"] == {"status": "green", "tests": 461}
        assert stored["actor"] == "ci-runner"
        assert stored["stream"] == "pipeline-7"


async def test_batch_mode_is_atomic(make_client: ClientMaker) -> None:
    import json

    good = [
        {"specversion": "1.0", "id": f"e{k}", "source": "agent", "type": "agent.step",
         "subject": "loop-1", "data": {"k": k}}
        for k in range(5)
    ]  # fmt: skip
    async with make_client() as c:
        r = await c.post("/v1/events", content=json.dumps(good), headers={"content-type": CE_BATCH})
        assert r.status_code == 201
        assert [e["stream_revision"] for e in r.json()["events"]] == [0, 1, 2, 3, 4]
        bad = [*good[:2], {"specversion": "0.3", "id": "x", "source": "s", "type": "t.t"}]
        bad = [dict(e, id=e["id"] + "b") for e in bad]
        r = await c.post("/v1/events", content=json.dumps(bad), headers={"content-type": CE_BATCH})
        assert r.status_code == 400
        assert "batch item 2" in r.json()["error"]["message"]
        assert "specversion" in r.json()["error"]["message"]
        assert (await c.get("/v1/stats")).json()["events"] == 5
        out = await c.get("/v1/events", headers={"accept": CE_BATCH})
        assert out.headers["content-type"].startswith(CE_BATCH)
        assert [e["id"] for e in out.json()] == [f"e{k}" for k in range(5)]


BASE = {"specversion": "1.0", "id": "1", "source": "s", "type": "t.t"}


@pytest.mark.parametrize(
    ("attributes", "data", "fragment"),
    [
        ({"specversion": "1.0", "source": "s", "type": "t.t"}, {}, "'id' is required"),
        ({"specversion": "1.0", "id": "1", "type": "t.t"}, {}, "'source' is required"),
        ({"specversion": "1.0", "id": "1", "source": "s", "type": "t.t"}, [1, 2], "JSON object"),
        ({**BASE, "time": "noon"}, {}, "RFC 3339"),
        ({**BASE, "type": "bad type"}, {}, "invalid"),
        ({**BASE, "datacontenttype": "text/plain"}, {}, "JSON"),
        ({**BASE, "Bad_Name": "x"}, {}, "lowercase"),
        ({**BASE, "ext": [1]}, {}, "string, a 32-bit integer"),
    ],
)  # fmt: skip
async def test_bad_cloudevents_get_400(
    make_client: ClientMaker, attributes: dict[str, object], data: object, fragment: str
) -> None:
    import json

    body = json.dumps({**attributes, "data": data})
    async with make_client() as c:
        r = await c.post(
            "/v1/events", content=body, headers={"content-type": "application/cloudevents+json"}
        )
        assert r.status_code == 400, r.text
        assert fragment in r.json()["error"]["message"]
        assert (await c.get("/v1/stats")).json()["events"] == 0
