"""The store the service uses now — swappable at run time (SIGHUP) without cutting
anyone off.

Every request takes a *lease* on the current store. A reload opens the new store
first (a bad configuration keeps the old one), makes it current for every new
lease, and closes the old store once its last lease ends: appends in flight finish
on the old backend, new ones go to the new one, and a live tail keeps its lease
(on the old store) until its client goes away.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from ..config import Config
from ..store import EventStore

__all__ = ["StoreHolder"]


class StoreHolder:
    def __init__(self, store: EventStore, config: Config | None = None) -> None:
        self._lock = threading.Lock()
        self._store = store
        self.config = config
        self._leases: dict[int, int] = {id(store): 0}
        self._retired: dict[int, EventStore] = {}
        self.generation = 1

    @property
    def current(self) -> EventStore:
        return self._store

    @contextmanager
    def lease(self) -> Iterator[EventStore]:
        with self._lock:
            store = self._store
            self._leases[id(store)] = self._leases.get(id(store), 0) + 1
        try:
            yield store
        finally:
            self._release(store)

    def _release(self, store: EventStore) -> None:
        close = False
        with self._lock:
            left = self._leases[id(store)] - 1
            self._leases[id(store)] = left
            if left == 0 and id(store) in self._retired:
                del self._retired[id(store)]
                del self._leases[id(store)]
                close = True
        if close:
            store.close()

    def swap(self, store: EventStore, config: Config | None = None) -> EventStore:
        """Make ``store`` current; the old one closes when its last lease ends."""
        with self._lock:
            old = self._store
            self._store = store
            self.config = config if config is not None else self.config
            self._leases.setdefault(id(store), 0)
            self.generation += 1
            idle = self._leases.get(id(old), 0) == 0
            if idle:
                self._leases.pop(id(old), None)
            else:
                self._retired[id(old)] = old
        if idle:
            old.close()
        return old

    def close(self) -> None:
        with self._lock:
            stores = [self._store, *self._retired.values()]
            self._retired.clear()
        for store in stores:
            store.close()
