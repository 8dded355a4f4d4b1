"""A fault-injecting harness for stores (public: a backend's own tests use it too;
:class:`eventvault.testing.StoreContract`'s error boundary tests run on it).

:class:`FaultInjector` makes one method of a live store's backend
(``store.backend``, the :mod:`eventvault.spi` object behind the façade) raise — an
``OSError``, a bug's ``RuntimeError``, anything — on every call while a ``with``
block runs, then puts the method back. It patches the *instance*, so other stores
are untouched, and it knows the one method a backend captures at construction
(group commit's commit function).

``methods()`` lists what can be faulted: every method the backend's class defines
(the contract's and its own private ones), minus those that only run in
background threads or at construction/close.
"""

from __future__ import annotations

import contextlib
import inspect
from abc import ABC
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..store import EventStore

__all__ = ["Fault", "FaultInjector"]

#: Not faulted: construction and closing, background threads, pure helpers that
#: build SQL text, and the error translation itself.
SKIP = frozenset(
    {
        "close",
        "_check_open",
        "_configure",
        "_listen",
        "_q",
        "_safe_dsn",
        "_sync_loop",
        "translate_error",
    }
)


@dataclass
class Fault:
    """One method made to fail: how often it was called (and so raised)."""

    name: str
    calls: int = 0


class FaultInjector:
    """Makes one method of ``store.backend`` fail at a time.

    ``skip``: more method names to leave alone — a third-party backend's
    background-thread helpers or pure helpers (faulting a thread's loop kills the
    thread, and the test would blame the store). A backend class may also list them
    in a ``fault_skip`` class attribute.
    """

    def __init__(self, store: EventStore, *, skip: frozenset[str] = frozenset()) -> None:
        self.store = store
        self.backend = store.backend
        self.skip = SKIP | skip | frozenset(getattr(self.backend, "fault_skip", ()))

    def methods(self) -> list[str]:
        names: set[str] = set()
        for cls in type(self.backend).__mro__:
            if cls in (object, ABC):
                continue
            for name, value in vars(cls).items():
                if (
                    not name.startswith("__")
                    and inspect.isfunction(value)
                    and name not in self.skip
                ):
                    names.add(name)
        return sorted(names)

    @contextlib.contextmanager
    def raising(self, name: str, make: Callable[[], BaseException]) -> Iterator[Fault]:
        """While the block runs, every call of ``store.backend.<name>`` raises ``make()``."""
        store = self.backend
        fault = Fault(name)
        original = getattr(store, name)

        def fail(*args: Any, **kwargs: Any) -> Any:
            fault.calls += 1
            raise make()

        if inspect.isgeneratorfunction(original):

            def fail_gen(*args: Any, **kwargs: Any) -> Iterator[Any]:
                fault.calls += 1
                raise make()
                yield  # a generator, like the method it stands for

            replacement: Callable[..., Any] = fail_gen
        else:
            replacement = fail
        store.__dict__[name] = replacement
        group = getattr(store, "_group", None)
        captured = name == "_commit" and group is not None and hasattr(group, "_commit")
        if captured:
            saved = group._commit  # type: ignore[union-attr]
            group._commit = replacement  # type: ignore[union-attr]
        try:
            yield fault
        finally:
            del store.__dict__[name]
            if captured:
                group._commit = saved  # type: ignore[union-attr]
