"""Every error eventvault raises on purpose.

One ``except EventVaultError`` catches them all; catch a narrower class to react
to one condition. The hierarchy::

    EventVaultError
    ├── ConfigError                  invalid or unreadable configuration (names the key)
    ├── ValidationError              bad input: an event, a query, a cursor (also ValueError)
    ├── ConflictError                the store's state contradicts the request
    │   ├── WrongExpectedRevisionError   optimistic-concurrency check failed
    │   └── DuplicateEventError          an id already stored with different content
    ├── RunNotFoundError             no event carries this correlation id (also LookupError)
    ├── EventNotFoundError           no event has this id (proofs; also LookupError)
    ├── NotSupportedError            the backend cannot do this
    ├── AccessError                  a server refused the caller (the http backend)
    │   ├── AuthenticationError          no token, or a token it does not know (401)
    │   └── PermissionDeniedError        the token lacks a scope (403; names it)
    ├── MissingExtraError            an optional dependency is not installed (also ImportError)
    └── StoreError                   the store itself
        ├── StoreUnavailableError    I/O failure, disk full, server unreachable
        │   ├── ReadOnlyStoreError   a write to a store opened read-only
        │   └── BufferFullError      a producer's buffer is full (the server is not taking events)
        ├── StoreNotFoundError       no store where the configuration points (reading)
        ├── CorruptionError          stored data fails its checks (names file/position)
        └── StoreClosedError         the store was used after close()

Every error leaves the store as it was: a failed append writes nothing.

``WrongExpectedRevision`` (the design contract's name) is a deprecated alias of
:class:`WrongExpectedRevisionError`: it still works, with a DeprecationWarning, and
will be removed in a later release.
"""

from __future__ import annotations

__all__ = [
    "AccessError",
    "AuthenticationError",
    "BufferFullError",
    "ConfigError",
    "ConflictError",
    "CorruptionError",
    "DuplicateEventError",
    "EventNotFoundError",
    "EventVaultError",
    "MissingExtraError",
    "NotSupportedError",
    "PermissionDeniedError",
    "ReadOnlyStoreError",
    "RunNotFoundError",
    "StoreClosedError",
    "StoreError",
    "StoreNotFoundError",
    "StoreUnavailableError",
    "ValidationError",
    "WrongExpectedRevisionError",
]


class EventVaultError(Exception):
    """Base class of every error eventvault raises on purpose."""


class ConfigError(EventVaultError):
    """The configuration is invalid; the message names the key path and the value."""


class ValidationError(EventVaultError, ValueError):
    """Bad input (event, query, cursor, argument); nothing was written."""


class ConflictError(EventVaultError):
    """The request contradicts what the store already holds; nothing was written."""


class WrongExpectedRevisionError(ConflictError):
    """The stream's current revision is not the one the append expected."""

    def __init__(self, stream: str, expected: object, actual: int | None) -> None:
        self.stream = stream
        self.expected = expected
        self.actual = actual
        shown = "no stream" if actual is None else f"revision {actual}"
        super().__init__(
            f"stream {stream!r}: expected revision {expected}, but the stream is at {shown}"
        )


class DuplicateEventError(ConflictError):
    """An event with this id is already stored, with different content."""

    def __init__(self, event_id: object, position: int) -> None:
        self.event_id = event_id
        self.position = position
        super().__init__(
            f"event id {event_id} is already stored at position {position} with different "
            "content; ids must be unique per event (re-sending the same event is fine)"
        )


class RunNotFoundError(EventVaultError, LookupError):
    """No event carries this correlation id, so there is no run to compare
    (``store.run`` answers None instead, like ``store.get``)."""

    def __init__(self, correlation_id: str) -> None:
        shown = correlation_id if len(correlation_id) <= 200 else correlation_id[:200] + "…"
        super().__init__(f"no run {shown!r}: no event has this correlation id")
        self.correlation_id = correlation_id


class EventNotFoundError(EventVaultError, LookupError):
    """No event has this id (asked for a proof of it; ``store.get`` answers None)."""


class NotSupportedError(EventVaultError):
    """The backend cannot perform this operation."""


class AccessError(EventVaultError):
    """A server refused the caller: see the two subclasses. Nothing was written."""


class AuthenticationError(AccessError):
    """The server does not know the caller: no token was sent, or a wrong one (401)."""


class PermissionDeniedError(AccessError):
    """The caller's token lacks the scope this needs (403); the message names it."""


class MissingExtraError(EventVaultError, ImportError):
    """An optional dependency is missing; the message says which pip install fixes it."""

    def __init__(self, extra: str, module: str) -> None:
        self.extra = extra
        super().__init__(
            f"this feature needs the optional dependency {module!r}: "
            f"pip install 'eventvault[{extra}]'"
        )


class StoreError(EventVaultError):
    """A problem with the store itself."""


class StoreUnavailableError(StoreError):
    """The store cannot be reached or written (I/O error, disk full, server down)."""


class StoreNotFoundError(StoreError):
    """There is no store where the configuration points, and the caller only reads.

    Only writing entry points (``open_store(create=True)``, the default of the
    library; the CLI's ``init``, ``append``, ``import``, ``serve``, a copy's
    destination) create a store; a reader on a typo'd path must not report an
    empty store as a healthy one."""


class ReadOnlyStoreError(StoreUnavailableError):
    """The store was opened read-only (asked for, or its files cannot be written: a
    backup, a read-only mount, another user's store); nothing was written."""


class BufferFullError(StoreUnavailableError):
    """A producer's buffer holds as many events as it may (its ``max_buffer``) because
    the server has not taken them for a while; this event was not accepted."""


class CorruptionError(StoreError):
    """Stored data fails its integrity checks."""


class StoreClosedError(StoreError):
    """The store was used after close()."""

    def __init__(self) -> None:
        super().__init__("the store is closed")


for _cls in (
    AccessError,
    AuthenticationError,
    BufferFullError,
    PermissionDeniedError,
    ConfigError,
    ConflictError,
    CorruptionError,
    DuplicateEventError,
    EventVaultError,
    MissingExtraError,
    NotSupportedError,
    ReadOnlyStoreError,
    StoreClosedError,
    StoreError,
    StoreNotFoundError,
    StoreUnavailableError,
    ValidationError,
    WrongExpectedRevisionError,
):
    _cls.__module__ = "eventvault.errors"


def __getattr__(name: str) -> type[WrongExpectedRevisionError]:
    """The deprecated alias, resolved on use so that it warns (and is not a second
    name in ``__all__``)."""
    return _deprecated_alias(name, __name__)


def _deprecated_alias(name: str, module: str) -> type[WrongExpectedRevisionError]:
    """``WrongExpectedRevision``, with a DeprecationWarning (``eventvault`` and
    ``eventvault.errors`` both answer it)."""
    if name == "WrongExpectedRevision":
        import warnings

        warnings.warn(
            "WrongExpectedRevision is deprecated; use WrongExpectedRevisionError",
            DeprecationWarning,
            stacklevel=3,
        )
        return WrongExpectedRevisionError
    raise AttributeError(f"module {module!r} has no attribute {name!r}")
