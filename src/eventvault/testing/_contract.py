"""The contract classes a backend's test module subclasses (see :mod:`eventvault.testing`)."""

from __future__ import annotations

from ._append import AppendContract
from ._copy import CopyOutContract, ImportContract
from ._errors import ErrorBoundaryContract
from ._frozen import FrozenPayloadContract
from ._proving import ProvingContract
from ._read import ReadContract
from ._retention import RetentionBasicsContract, RetentionContract
from ._runs import RunsContract
from ._stateful import StatefulContract
from ._subscribe import SubscribeVerifyContract

__all__ = [
    "ImportContract",
    "ProvingContract",
    "RetentionContract",
    "StatefulContract",
    "StoreContract",
]


class StoreContract(
    AppendContract,
    ReadContract,
    SubscribeVerifyContract,
    RunsContract,
    FrozenPayloadContract,
    ErrorBoundaryContract,
    CopyOutContract,
    RetentionBasicsContract,
):
    """What every backend must do: append, read, filters, cursors, concurrency,
    idempotency, subscribe, verify, bad input, the error boundary, frozen payloads,
    runs, copying out, and refusing what it cannot do (import, retention) with
    ``NotSupportedError``. Needs the ``make_store`` fixture."""
