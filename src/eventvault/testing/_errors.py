"""One error boundary at the contract edge (issue 15): whatever a backend method
raises — an ``OSError`` from an unexpected path, a bug — no public method of a
store raises anything but an ``eventvault.errors`` type, and once the fault is
gone the store works: appends and reads succeed and the chain verifies."""

from __future__ import annotations

import contextlib
import errno
import threading
from collections.abc import Callable

import pytest

from ..backends.memory import MemoryEventStore
from ..config import RetentionConfig, RetentionRule
from ..copy import copy_store
from ..errors import EventVaultError, StoreError, StoreUnavailableError
from ..model import Import, NewEvent, Query
from ..retention import Policy, resolve_policy
from ..store import EventStore
from ._base import ContractBase, Stores
from .faults import FaultInjector

__all__ = ["ErrorBoundaryContract"]

KINDS: dict[str, Callable[[], BaseException]] = {
    "OSError": lambda: OSError(errno.EIO, "injected I/O error"),
    "RuntimeError": lambda: RuntimeError("injected bug"),
    "MemoryError": MemoryError,
}


def _policy() -> Policy:
    rules = [RetentionRule(types=["r.*"], max_count=3)]
    policy = resolve_policy(RetentionConfig(rules=rules))
    assert policy is not None
    return policy


def _workload(store: EventStore, stored: NewEvent) -> list[tuple[str, BaseException]]:
    """Every public method once; returns the calls that raised an untyped error."""
    raw: list[tuple[str, BaseException]] = []
    steps: list[tuple[str, Callable[[], object]]] = [
        ("append", lambda: store.append(NewEvent(type="r.x", data={"v": "aaaa"}))),
        ("append batch", lambda: store.append([NewEvent(type="t") for _ in range(3)])),
        ("append retry", lambda: store.append(stored)),
        ("get", lambda: store.get(stored.id)),
        ("read", lambda: store.read(Query(types=["r.*"], limit=5))),
        ("iter", lambda: list(store.iter(Query(limit=7)))),
        ("head", store.head),
        ("stats", store.stats),
        ("verify", store.verify),
        ("plan", lambda: store.plan_retention(_policy())),
        ("apply", lambda: store.apply_retention(policy=_policy())),
        ("subscribe", lambda: _first_of_subscribe(store)),
        ("wait", lambda: store.wait_for_head(store.head(), 0.01)),
        # what copy and import do: records already stored, so nothing is written
        ("import", lambda: store.import_records(Import(store.read(Query(limit=2)).events))),
        ("copy out", lambda: copy_store(store, MemoryEventStore())),
    ]
    for label, step in steps:
        try:
            step()
        except EventVaultError:
            pass
        except Exception as exc:
            raw.append((label, exc))
    return raw


def _first_of_subscribe(store: EventStore) -> object:
    stop = threading.Event()
    it = store.subscribe(after=max(store.head() - 1, 0), poll_interval=0.01, stop=stop)
    threading.Timer(0.2, stop.set).start()
    try:
        return next(it, None)
    finally:
        stop.set()
        it.close()  # type: ignore[attr-defined]


class ErrorBoundaryContract(ContractBase):
    @pytest.mark.parametrize("kind", sorted(KINDS))
    def test_only_typed_errors_surface_and_the_store_stays_usable(
        self, stores: Stores, kind: str
    ) -> None:
        store = stores.new()
        stored = NewEvent(type="t", data={"v": "aaaa"})
        store.append(stored)
        for i in range(0, 60, 6):  # several segments on the file backend, and old r.* events
            store.append(
                [
                    NewEvent(type="r.x", data={"v": "aaaa", "pad": "x" * 300, "i": i + k})
                    for k in range(6)
                ]
            )
        injector = FaultInjector(store)
        problems: list[str] = []
        hit = 0
        for name in injector.methods():
            with injector.raising(name, KINDS[kind]) as fault:
                raw = _workload(store, stored)
            hit += fault.calls > 0
            problems += [
                f"{name}: {label} raised {type(exc).__name__}: {exc}" for label, exc in raw
            ]
            # The fault is gone: the store must work as before.
            try:
                before = store.head()
                res = store.append(NewEvent(type="after", data={"fault": name}))
                assert res.events[0].position > before
                assert store.get(res.events[0].id) == res.events[0]
                assert store.read(Query(after=before)).events[-1] == res.events[0]
                result = store.verify()
                assert result.ok, result
            except Exception as exc:
                problems.append(
                    f"{name}: store unusable after the fault: {type(exc).__name__}: {exc}"
                )
                break
        assert not problems, "\n".join(problems)
        assert hit >= 5, "the workload hardly reached the faulted methods"

    def test_the_original_is_the_cause_and_io_is_unavailable(self, stores: Stores) -> None:
        store = stores.new()
        store.append(NewEvent(type="t"))
        injector = FaultInjector(store)
        with injector.raising("read", KINDS["OSError"]) as probe, contextlib.suppress(Exception):
            store.read()
        if probe.calls == 0:  # e.g. the http client, which asks its server instead
            pytest.skip(f"{type(store).__name__}.read does not go through its backend's `read`")
        with (
            injector.raising("read", KINDS["OSError"]),
            pytest.raises(StoreUnavailableError, match="injected I/O error") as info,
        ):
            store.read()
        assert isinstance(info.value.__cause__, OSError)
        with (
            injector.raising("read", KINDS["RuntimeError"]),
            pytest.raises(StoreError, match="unexpected RuntimeError: injected bug") as bug,
        ):
            list(store.iter())
        assert isinstance(bug.value.__cause__, RuntimeError)
        with injector.raising("read", KINDS["RuntimeError"]), pytest.raises(StoreError):
            next(iter(store.subscribe(poll_interval=0.01)))
