"""The last-resort error boundary: anything that is not an ``eventvault.errors``
type becomes one before it leaves the library.

Backends translate their driver's and the OS's errors where they know what the
error means (PostgreSQL: :func:`eventvault.backends.postgres.store._db_errors`).
What still escapes them — a bug, a ``MemoryError``, an ``OSError`` from a path
nobody expected to do I/O — is translated here, with the original kept as
``__cause__`` and logged with its traceback, so a caller's ``except
EventVaultError`` is complete and a bug is still visible to whoever reads the log.
"""

from __future__ import annotations

import logging

from .errors import EventVaultError, StoreError, StoreUnavailableError

__all__ = ["translate"]

log = logging.getLogger("eventvault")


def translate(exc: BaseException, action: str) -> EventVaultError:
    """The ``eventvault.errors`` error that stands for ``exc`` (raised while doing
    ``action``). Return it for ``raise … from exc``; an EventVaultError is its own."""
    if isinstance(exc, EventVaultError):
        return exc
    if isinstance(exc, OSError):
        detail = exc.strerror or str(exc) or type(exc).__name__
        return StoreUnavailableError(f"{action}: {detail}")
    if isinstance(exc, MemoryError):
        return StoreUnavailableError(f"{action}: out of memory")
    log.error("unexpected error while %s", action, exc_info=exc)
    text = str(exc)
    return StoreError(
        f"{action}: unexpected {type(exc).__name__}{': ' + text if text else ''} "
        "(a bug in eventvault or a backend; the traceback is logged as 'eventvault')"
    )
