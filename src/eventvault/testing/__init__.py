"""The conformance kit: pytest base classes a backend's tests subclass.

``pip install 'eventvault[testing]'`` (pytest and Hypothesis). A backend — built in
or third party — runs the contract by subclassing and giving one fixture,
``make_store``: a zero-argument callable that opens a fresh, empty store (a new
one on each call)::

    import itertools
    import pytest
    import eventvault.testing

    class TestMine(eventvault.testing.StoreContract):
        @pytest.fixture
        def make_store(self, tmp_path):
            n = itertools.count()
            return lambda: MyStore(tmp_path / f"store-{next(n)}")

then plain ``pytest``. The classes:

- :class:`StoreContract` — what every backend must do: append, read, filters,
  cursors, concurrency, idempotency, subscribe, verify, bad input, the error
  boundary, frozen payloads, runs, copying *out of* the store;
- :class:`ImportContract` — for a backend that takes copied records (``copy``);
- :class:`RetentionContract` — for a backend that applies retention;
- :class:`ProvingContract` — for a backend that keeps the Merkle tree (roots and
  proofs compared with a literal transcription of RFC 9162, checkpoints, the tree
  across reopening, copying and retention);
- :class:`StatefulContract` — a Hypothesis state machine comparing the backend
  with the memory reference on random operation sequences. It compares positions
  as values, so it is for backends that number 1, 2, 3… (``contiguous_positions``,
  as every built-in one but EventStoreDB does).

Optional fixtures, overridden on the class (each has a documented default):

- ``tamper`` — ``(store, position) -> store``: alter the stored event at
  ``position`` in place, behind the store's back, and return the store to use
  (the same object, or a reopened one). Default None: the tamper-evidence tests
  skip, saying so.
- ``reopen_store`` — ``store -> store``: close ``store`` and open the *same* store
  again (the crash tests check what survives). Default: the same object, for a
  store that lives only in its process.

:mod:`eventvault.testing.faults` is the fault-injecting wrapper the error
boundary tests use, public for a backend's own tests.

The base classes are named without a ``Test`` prefix, so pytest collects them only
where a ``Test…`` class subclasses them.
"""

from __future__ import annotations

from ..errors import MissingExtraError

try:
    import hypothesis  # noqa: F401
    import pytest
except ImportError as exc:
    raise MissingExtraError("testing", exc.name or "pytest") from None

# Before the submodules are imported: their asserts then explain themselves in a
# failing run as a test module's would.
pytest.register_assert_rewrite(
    "eventvault.testing._append",
    "eventvault.testing._base",
    "eventvault.testing._copy",
    "eventvault.testing._errors",
    "eventvault.testing._frozen",
    "eventvault.testing._proving",
    "eventvault.testing._read",
    "eventvault.testing._retention",
    "eventvault.testing._runs",
    "eventvault.testing._stateful",
    "eventvault.testing._subscribe",
)

from ._base import Reopen, StoreFactory, Stores, Tamper  # noqa: E402
from ._contract import (  # noqa: E402
    ImportContract,
    ProvingContract,
    RetentionContract,
    StatefulContract,
    StoreContract,
)

__all__ = [
    "ImportContract",
    "ProvingContract",
    "Reopen",
    "RetentionContract",
    "StatefulContract",
    "StoreContract",
    "StoreFactory",
    "Stores",
    "Tamper",
]
