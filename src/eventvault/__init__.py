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
from .errors import (
    ConfigError,
    CorruptionError,
    DuplicateEventError,
    EventVaultError,
    NotSupportedError,
    ReadOnlyStoreError,
    StoreClosedError,
    StoreUnavailableError,
    ValidationError,
    WrongExpectedRevision,
    WrongExpectedRevisionError,
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

__all__ = [
    "ANY",
    "NO_STREAM",
    "RECEIPT_TYPE",
    "STREAM_EXISTS",
    "AppendResult",
    "Config",
    "ConfigError",
    "CorruptionError",
    "DuplicateEventError",
    "EventStore",
    "EventVaultError",
    "ExpectedRevision",
    "GroupPlan",
    "MemoryEventStore",
    "NewEvent",
    "NotSupportedError",
    "Page",
    "Policy",
    "Query",
    "ReadOnlyStoreError",
    "RecordedEvent",
    "RetentionPlan",
    "RetentionReport",
    "StoreClosedError",
    "StoreStats",
    "StoreUnavailableError",
    "ValidationError",
    "VerifyResult",
    "WrongExpectedRevision",
    "WrongExpectedRevisionError",
    "__version__",
    "backend_names",
    "errors",
    "load_config",
    "open_store",
    "register_backend",
    "resolve_policy",
]
