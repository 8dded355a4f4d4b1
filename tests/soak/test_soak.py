"""The soak test, short (``EV_SOAK_SECONDS``, default 30 s per backend) for CI; the
30-minute runs are ``eventvault bench --soak 30m`` (figures in docs/reliability.md)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from eventvault.benchmarks.soak import leak_summary, run_soak

SECONDS = float(os.environ.get("EV_SOAK_SECONDS", "30"))


@pytest.mark.system
@pytest.mark.parametrize("backend", ["file", "postgres"])
def test_soak_accounts_for_every_acknowledged_event(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "file":
        # Small segments: the file backend only removes from sealed ones, and a busy
        # CI machine may not fill a default (64 MB) segment in 30 s.
        store_cfg = {"path": str(tmp_path / "store"), "segment_max_bytes": 4 * 1024 * 1024}
        config = {"store": {"backend": "file", "file": store_cfg}}
    else:
        dsn = str(request.getfixturevalue("postgres_dsn"))
        schema = f"t_{uuid.uuid4().hex[:12]}"
        config = {"store": {"backend": "postgres", "postgres": {"dsn": dsn, "schema": schema}}}
    try:
        report = run_soak(config, seconds=SECONDS, writers=3, sample_every=2, retention_every=3)
    finally:
        if backend == "postgres":
            from eventvault.backends.postgres.store import drop_schema

            drop_schema(config["store"]["postgres"]["dsn"], config["store"]["postgres"]["schema"])
    assert report.acknowledged_kept > 1000, report
    assert report.missing == 0, report
    assert report.found_kept == report.acknowledged_kept == report.found_distinct, report
    assert report.tail_seen == report.acknowledged_kept, report
    assert report.tail_in_order
    assert report.verify_ok
    assert report.retention_runs >= 3
    assert report.retention_removed > 0  # the debug events beyond the newest 1,000 went
    assert report.queries > 100
    leaks = leak_summary(report.samples)
    assert leaks, "too few samples to compare"
    # Descriptors stay bounded by the store's segments (one per sealed segment a
    # process reads, plus those compacted in the last minute) — not by the number
    # of retention runs, as they once did.
    segments = (
        len(list((tmp_path / "store" / "segments").glob("*.jsonl"))) if backend == "file" else 0
    )
    for usage in leaks.values():
        assert usage["fds_late"] <= usage["fds_early"] + 2 * segments + 8, (leaks, segments)


def test_latency_histograms_give_p99_within_five_percent() -> None:
    import random

    from eventvault.benchmarks.soak import _Latencies, _merged, _p99_ms

    rng = random.Random(3)
    parts = []
    samples: list[float] = []
    for _ in range(3):  # three processes, merged as the soak merges its writers
        lat = _Latencies()
        for _ in range(5000):
            x = rng.lognormvariate(-6, 1.2)  # ~2.5 ms median, a long tail
            samples.append(x)
            lat.add(x)
        assert list(lat.minutes) == [0]
        assert sum(lat.minutes[0].values()) == 5000
        assert len(lat.minutes[0]) < 400  # bounded: buckets, not samples
        parts.append(lat.minutes[0])
    exact = sorted(samples)[int(len(samples) * 0.99) - 1] * 1000
    got = _p99_ms(_merged(parts))
    assert exact <= got <= exact * 1.05 * 1.05, (exact, got)
    assert _p99_ms({}) == 0.0
