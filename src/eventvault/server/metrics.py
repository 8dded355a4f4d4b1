"""Prometheus metrics of one service instance (its own registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["Metrics"]

_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events_appended = Counter(
            "eventvault_events_appended",
            "Events stored through the service (not counting idempotent retries)",
            registry=r,
        )
        self.events_retried = Counter(
            "eventvault_events_retried",
            "Events re-sent that were already stored (idempotent retries; nothing written)",
            registry=r,
        )
        self.append_requests = Counter(
            "eventvault_append_requests",
            "Append requests by outcome",
            ["outcome"],
            registry=r,
        )
        self.appends_ok = self.append_requests.labels("ok")
        self.append_latency = Histogram(
            "eventvault_append_latency_seconds",
            "Time to append a request's events (durable when it returns)",
            buckets=_LATENCY,
            registry=r,
        )
        self.query_latency = Histogram(
            "eventvault_query_latency_seconds",
            "Time to answer a read (one page, or one event by id)",
            buckets=_LATENCY,
            registry=r,
        )
        self.subscribers = Gauge(
            "eventvault_subscribers", "Live-tail (SSE) clients connected", registry=r
        )
        self.retention_runs = Counter(
            "eventvault_retention_runs",
            "Scheduled retention runs by outcome",
            ["outcome"],
            registry=r,
        )
        self.events_removed = Counter(
            "eventvault_retention_events_removed", "Events removed by retention", registry=r
        )
        self.reloads = Counter(
            "eventvault_config_reloads",
            "Configuration reloads (SIGHUP) by outcome",
            ["outcome"],
            registry=r,
        )
        self.checkpoints = Counter(
            "eventvault_checkpoints",
            "Signed checkpoints the service kept, by outcome (ok, failed)",
            ["outcome"],
            registry=r,
        )
        self.checkpoint_size = Gauge(
            "eventvault_checkpoint_tree_size",
            "Tree size of the latest checkpoint this service signed",
            registry=r,
        )
