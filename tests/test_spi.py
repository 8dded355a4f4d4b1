"""The backend contract (:mod:`eventvault.spi`): required methods are enforced by
type, capabilities are types, and a store over a backend without one says so."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID

import pytest

from eventvault import EventStore, MemoryEventStore, NewEvent, Query
from eventvault.backends.memory import MemoryBackend
from eventvault.config import RetentionConfig
from eventvault.copy import copy_store
from eventvault.errors import NotSupportedError, ValidationError
from eventvault.model import ExpectedRevision, RecordedEvent, StoreStats
from eventvault.retention import resolve_policy
from eventvault.spi import Backend, Importing, Retaining, lacking


class Core(Backend):
    """The memory backend's required methods only: neither Importing nor Retaining."""

    name = "core"

    def __init__(self) -> None:
        # No tree here, so the chain: leaf hashes alone do not fix the order.
        self.inner = MemoryBackend(hash_format=1)
        self.closed = 0

    @property
    def store_id(self) -> str:
        return self.inner.store_id

    def commit(
        self, batch: list[NewEvent], expected: int | ExpectedRevision
    ) -> list[RecordedEvent]:
        return self.inner.commit(batch, expected)

    def read(self, query: Query, limit: int) -> list[RecordedEvent]:
        return self.inner.read(query, limit)

    def get(self, event_id: UUID) -> RecordedEvent | None:
        return self.inner.get(event_id)

    def head(self) -> int:
        return self.inner.head()

    def stats(self) -> StoreStats:
        return self.inner.stats()

    def wait(self, head: int, timeout: float) -> None:
        self.inner.wait(head, timeout)

    def close(self) -> None:
        self.closed += 1
        self.inner.close()


def test_a_backend_missing_a_required_method_cannot_be_made() -> None:
    class NoWait(Backend):  # everything but wait()
        name = "nowait"
        store_id = "x"  # type: ignore[assignment]
        commit = read = get = head = stats = Core.commit  # type: ignore[assignment]

    with pytest.raises(TypeError, match="wait"):
        NoWait()  # type: ignore[abstract]


def test_a_retaining_backend_must_remove() -> None:
    class Half(Core, Retaining):  # Retaining, but without remove_runs()
        pass

    with pytest.raises(TypeError, match="remove_runs"):
        Half()  # type: ignore[abstract]


def test_the_facade_needs_a_backend() -> None:
    with pytest.raises(TypeError, match="Backend"):
        EventStore(object())  # type: ignore[arg-type]


def test_a_store_over_the_core_is_a_whole_store() -> None:
    backend = Core()
    store = EventStore(backend)
    assert store.backend is backend
    assert store.backend_name == "core"
    assert store.contiguous_positions
    first = store.append([NewEvent(type="a"), NewEvent(type="b")])
    assert first.written == 2
    assert store.get(first.events[0].id) == first.events[0]
    page = store.read(Query(limit=1))
    assert [e.type for e in page.events] == ["a"]
    assert page.next_cursor is not None
    assert [e.type for e in store.read(Query(limit=1), cursor=page.next_cursor).events] == ["b"]
    assert store.head() == 2
    assert store.stats().events == 2
    assert store.verify().ok
    with pytest.raises(ValidationError):
        store.append([])  # the façade validates before the backend sees anything
    store.close()
    store.close()
    assert backend.closed == 1  # the façade closes its backend once


def test_capabilities_are_types() -> None:
    memory = MemoryEventStore()
    assert isinstance(memory.backend, Importing)
    assert isinstance(memory.backend, Retaining)
    assert not isinstance(Core(), Importing | Retaining)
    assert lacking(memory.backend, Importing) is None
    assert lacking(Core(), Importing) == "the core backend cannot take copied events"


def test_copy_into_a_backend_that_is_not_importing_says_so() -> None:
    src = MemoryEventStore()
    src.append([NewEvent(type="t") for _ in range(3)])
    dst = EventStore(Core())
    with pytest.raises(NotSupportedError, match=r"^the core backend cannot take copied events$"):
        copy_store(src, dst)
    assert dst.head() == 0


def test_retention_on_a_backend_that_is_not_retaining_says_so() -> None:
    policy = resolve_policy(RetentionConfig(max_count=1))
    store = EventStore(Core())
    store.append(NewEvent(type="t"))
    message = r"^retention is not available on the core backend yet$"
    with pytest.raises(NotSupportedError, match=message):
        store.plan_retention(policy)
    with pytest.raises(NotSupportedError, match=message):
        store.apply_retention(policy=policy)


def test_a_backend_says_why_it_lacks_a_capability() -> None:
    class Explained(Core):
        lacks: ClassVar[Mapping[type, str]] = {
            Retaining: "because it is a test",
            Importing: "(it is a test)",
        }

    store = EventStore(Explained())
    with pytest.raises(NotSupportedError, match=r"core backend because it is a test$"):
        store.plan_retention(resolve_policy(RetentionConfig(max_count=1)))
    assert lacking(store.backend, Importing) == (
        "the core backend cannot take copied events (it is a test)"
    )


def test_the_built_in_stores_are_facades_over_their_backends(tmp_path: Path) -> None:
    from eventvault.backends.file import FileEventStore
    from eventvault.backends.file.store import FileBackend

    with FileEventStore(tmp_path / "s", fsync="never") as store:
        assert type(store.backend) is FileBackend
        assert isinstance(store.backend, Importing)
        assert isinstance(store.backend, Retaining)
        assert store.backend_name == store.backend.name == "file"
        assert (store.path, store.read_only, store.fsync) == (tmp_path / "s", False, "never")
        assert store.store_id == store.backend.store_id
        assert store.reindex() == 0
    assert type(MemoryEventStore(max_event_bytes=2048).backend) is MemoryBackend
    assert MemoryEventStore(max_event_bytes=2048).max_event_bytes == 2048


def test_a_backend_with_a_run_index_is_used_for_listing_runs() -> None:
    from eventvault.runs import ScanRunIndex, list_runs

    class Indexed(Core):  # an index of runs on the backend, not on a store subclass
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[str] = []
            self.scan: ScanRunIndex | None = None

        def newest_runs(self, query: Query, **kw: Any) -> Any:
            self.calls.append("newest_runs")
            assert self.scan is not None
            return self.scan.newest_runs(query, **kw)

        def run_summaries(self, ids: Any, **kw: Any) -> Any:
            self.calls.append("run_summaries")
            assert self.scan is not None
            return self.scan.run_summaries(ids, **kw)

    backend = Indexed()
    store = EventStore(backend)
    backend.scan = ScanRunIndex(store)
    store.append([NewEvent(type="t", correlation_id="run-1") for _ in range(2)])
    assert [r.correlation_id for r in list_runs(store).runs] == ["run-1"]
    assert backend.calls == ["newest_runs", "run_summaries"]


def test_copy_and_import_keep_the_error_promise() -> None:
    """copy_store and import used to call the backend directly: a backend's OSError
    escaped them untranslated (found in review). They go through the façade now."""
    import errno

    from eventvault import MemoryEventStore, NewEvent, StoreUnavailableError
    from eventvault.copy import copy_store
    from eventvault.testing.faults import FaultInjector

    src = MemoryEventStore()
    src.append([NewEvent(type="t") for _ in range(3)])
    dst = MemoryEventStore()
    injector = FaultInjector(dst)
    with (
        injector.raising("import_records", lambda: OSError(errno.EIO, "injected")),
        pytest.raises(StoreUnavailableError, match="injected") as info,
    ):
        copy_store(src, dst)
    assert isinstance(info.value.__cause__, OSError)
    with (
        injector.raising("wait", lambda: OSError(errno.EIO, "injected")),
        pytest.raises(StoreUnavailableError),
    ):
        dst.wait_for_head(0, 0.01)


def test_proofs_on_a_backend_that_keeps_no_tree_say_so() -> None:
    from eventvault.backends.eventstoredb.store import EventStoreDBBackend
    from eventvault.backends.http.store import HttpBackend
    from eventvault.spi import Proving

    store = EventStore(Core())
    store.append(NewEvent(type="t"))
    message = r"^the core backend keeps no Merkle tree, so it has no proofs$"
    with pytest.raises(NotSupportedError, match=message):
        store.log.root()
    with pytest.raises(NotSupportedError, match=message):
        store.log.inclusion_proof(store.read().events[0].id)
    # Plain verify still works (the chain); verify against checkpoints cannot.
    assert store.verify().ok
    assert store.verify().tree_size is None
    from eventvault.tlog import Checkpoint

    with pytest.raises(NotSupportedError, match=message):
        store.verify(checkpoints=[Checkpoint("o", 1, bytes(32))])
    # The built-in backends without a tree say why, and what to do instead.
    assert "commit offsets" in EventStoreDBBackend.lacks[Proving]
    assert "GET /v1/log/checkpoint" in HttpBackend.lacks[Proving]
