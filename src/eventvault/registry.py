"""The backend registry and :func:`open_store`.

Backends are named by configuration and imported only when chosen, so a missing
optional dependency only matters to those who pick that backend.
"""

from __future__ import annotations

import importlib
import inspect
import os
from collections.abc import Callable, Mapping
from typing import Any

from .config import Config, load_config
from .errors import ConfigError
from .store import EventStore

__all__ = ["backend_names", "open_store", "register_backend"]

#: backend name -> "module:function" building a store from a :class:`Config`.
_BACKENDS: dict[str, str] = {
    "memory": "eventvault.backends.memory:from_config",
    "file": "eventvault.backends.file:from_config",
    "postgres": "eventvault.backends.postgres:from_config",
    "eventstoredb": "eventvault.backends.eventstoredb:from_config",
    "http": "eventvault.backends.http:from_config",
}
_FACTORIES: dict[str, Callable[[Config], EventStore]] = {}


def register_backend(name: str, factory: str | Callable[[Config], EventStore]) -> None:
    """Make a backend available under ``name`` (``factory`` may be "module:function")."""
    if callable(factory):
        _FACTORIES[name] = factory
        _BACKENDS[name] = f"<callable {factory!r}>"
    else:
        _BACKENDS[name] = factory


def backend_names() -> list[str]:
    return sorted(_BACKENDS)


def _factory(name: str) -> Callable[[Config], EventStore]:
    if name in _FACTORIES:
        return _FACTORIES[name]
    target = _BACKENDS.get(name)
    if target is None:
        raise ConfigError(f"unknown backend {name!r}; choose one of {', '.join(backend_names())}")
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    factory: Callable[[Config], EventStore] = getattr(module, attr)
    _FACTORIES[name] = factory
    return factory


def open_store(
    config: str | os.PathLike[str] | Mapping[str, Any] | Config | None = None,
    *,
    create: bool = True,
) -> EventStore:
    """Open the store a configuration names (discovered when ``config`` is None).

    ``create``: make the store (file directory, PostgreSQL schema) if it does not
    exist yet. With ``create=False`` a missing store raises
    :class:`~eventvault.errors.StoreNotFoundError` and nothing is created — what
    every reader should ask for, so that a typo'd path is an error, not an empty
    store that verifies.
    """
    from .retention import resolve_policy

    cfg = load_config(config)
    factory = _factory(cfg.store.backend)
    if "create" in inspect.signature(factory).parameters:
        store = factory(cfg, create=create)  # type: ignore[call-arg]
    else:  # a third-party factory that knows nothing of creating
        store = factory(cfg)
    store.retention_policy = resolve_policy(cfg.retention)
    return store
