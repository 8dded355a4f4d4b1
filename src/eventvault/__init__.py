"""eventvault: a durable, append-only event store for automated development loops.

>>> from eventvault import open_store, NewEvent, Query
>>> with open_store({"store": {"backend": "memory"}}) as store:
...     res = store.append([NewEvent(type="task.completed", data={"task": "T1"})])
...     [e.type for e in store.read(Query(types=["task.*"])).events]
['task.completed']
"""

from __future__ import annotations

from . import errors
from .backends.memory import MemoryEventStore
from .config import Config
from .copy import Comparison, CopyError, CopyProgress, CopyReport, compare_stores, copy_store
from .errors import (
    AccessError,
    AuthenticationError,
    BufferFullError,
    ConfigError,
    ConflictError,
    CorruptionError,
    DuplicateEventError,
    EventNotFoundError,
    EventVaultError,
    MissingExtraError,
    NotSupportedError,
    PermissionDeniedError,
    ReadOnlyStoreError,
    RunNotFoundError,
    StoreClosedError,
    StoreError,
    StoreNotFoundError,
    StoreUnavailableError,
    ValidationError,
    WrongExpectedRevisionError,
    _deprecated_alias,
)
from .model import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    ExpectedRevision,
    NewEvent,
    Page,
    Query,
    RecordedEvent,
    StoreStats,
    VerifyResult,
)
from .registry import backend_names, load_config, open_store, register_backend
from .retention import RECEIPT_TYPE, Policy, resolve_policy
from .retention.plan import GroupPlan, RetentionPlan, RetentionReport
from .store import EventStore

__version__ = "0.1.0"

#: Every public name: constants first, then the rest in code-point order (tests/
#: test_public_api.py holds it complete and sorted). The
#: deprecated ``WrongExpectedRevision`` is not here: see :func:`__getattr__`.
__all__ = [
    "ANY",
    "NO_STREAM",
    "RECEIPT_TYPE",
    "STREAM_EXISTS",
    "AccessError",
    "AppendResult",
    "AuthenticationError",
    "BufferFullError",
    "Comparison",
    "Config",
    "ConfigError",
    "ConflictError",
    "CopyError",
    "CopyProgress",
    "CopyReport",
    "CorruptionError",
    "DuplicateEventError",
    "EventNotFoundError",
    "EventStore",
    "EventVaultError",
    "ExpectedRevision",
    "GroupPlan",
    "MemoryEventStore",
    "MissingExtraError",
    "NewEvent",
    "NotSupportedError",
    "Page",
    "PermissionDeniedError",
    "Policy",
    "Query",
    "ReadOnlyStoreError",
    "RecordedEvent",
    "RetentionPlan",
    "RetentionReport",
    "RunNotFoundError",
    "StoreClosedError",
    "StoreError",
    "StoreNotFoundError",
    "StoreStats",
    "StoreUnavailableError",
    "ValidationError",
    "VerifyResult",
    "WrongExpectedRevisionError",
    "__version__",
    "backend_names",
    "compare_stores",
    "copy_store",
    "errors",
    "load_config",
    "open_store",
    "register_backend",
    "resolve_policy",
]


def __getattr__(name: str) -> type[WrongExpectedRevisionError]:
    """``eventvault.WrongExpectedRevision``: a deprecated alias of
    :class:`WrongExpectedRevisionError` (warns; see :mod:`eventvault.errors`)."""
    return _deprecated_alias(name, __name__)
