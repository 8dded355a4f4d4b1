"""Issue 17.4: eventvault_events_appended_total counts stored events; idempotent
retries (re-POSTs of stored ids) count in eventvault_events_retried_total instead."""

from __future__ import annotations

import re
import uuid

import pytest

from .conftest import ClientMaker

pytestmark = pytest.mark.anyio


def metric(text: str, name: str) -> float:
    m = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


async def test_retries_are_counted_apart_from_appends(make_client: ClientMaker) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    async with make_client() as c:
        for _ in range(3):  # the same event, re-sent twice
            r = await c.post("/v1/events", json={"id": a, "type": "t.x"})
            assert r.status_code == 201
        r = await c.post("/v1/events", json=[{"id": a, "type": "t.x"}, {"id": b, "type": "t.y"}])
        assert r.status_code == 201
        text = (await c.get("/metrics")).text
        stats = (await c.get("/v1/stats")).json()
    assert stats["events"] == 2
    assert metric(text, "eventvault_events_appended_total") == 2.0  # what is stored
    assert metric(text, "eventvault_events_retried_total") == 3.0  # 2 re-sends + 1 in a batch
    assert 'eventvault_append_requests_total{outcome="ok"} 4.0' in text
