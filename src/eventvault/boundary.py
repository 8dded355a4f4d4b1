"""The error boundary: anything that is not an ``eventvault.errors`` type becomes
one before it leaves the library — every public method of every store is wrapped
(:func:`guard_public_methods`), and :func:`translate` is the last resort.

Backends translate their driver's and the OS's errors where they know what the
error means (PostgreSQL: :func:`eventvault.backends.postgres.store._db_errors`).
What still escapes them — a bug, a ``MemoryError``, an ``OSError`` from a path
nobody expected to do I/O — is translated here, with the original kept as
``__cause__`` and logged with its traceback, so a caller's ``except
EventVaultError`` is complete and a bug is still visible to whoever reads the log.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from .errors import EventVaultError, StoreError, StoreUnavailableError

__all__ = ["guard_public_methods", "translate", "typed"]

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


_F = TypeVar("_F", bound=Callable[..., Any])


def typed(store: Any, exc: Exception, action: str) -> EventVaultError:
    """``exc`` as the eventvault error it stands for: the store's backend knows its
    driver's errors best (``translate_error``); then the last resort."""
    if isinstance(exc, EventVaultError):
        return exc
    own = store.backend.translate_error(exc, action)
    return own if own is not None else translate(exc, action)


def _boundary(fn: _F) -> _F:
    """Wrap public method ``fn`` so it raises only ``eventvault.errors`` types."""
    if getattr(fn, "__eventvault_boundary__", False):
        return fn
    action = f"{fn.__name__.replace('_', ' ')}"

    def _typed(store: Any, exc: Exception) -> EventVaultError:
        return typed(store, exc, action)

    wrapper: Callable[..., Any]
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def gen_wrapper(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(self, *args, **kwargs)
            except EventVaultError:
                raise
            except Exception as exc:
                raise _typed(self, exc) from exc

        wrapper = gen_wrapper
    else:

        @functools.wraps(fn)
        def call_wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                return fn(self, *args, **kwargs)
            except EventVaultError:
                raise
            except Exception as exc:
                raise _typed(self, exc) from exc

        wrapper = call_wrapper
    setattr(wrapper, "__eventvault_boundary__", True)  # noqa: B010 - a marker on a function
    return wrapper  # type: ignore[return-value]


def guard_public_methods(cls: type) -> None:
    """Wrap every public method ``cls`` defines (EventStore and each subclass, from
    ``__init_subclass__``) so that it raises only ``eventvault.errors`` types."""
    for name, value in list(vars(cls).items()):
        if name.startswith("_") or not inspect.isfunction(value):
            continue
        if getattr(value, "__isabstractmethod__", False):
            continue
        setattr(cls, name, _boundary(value))
