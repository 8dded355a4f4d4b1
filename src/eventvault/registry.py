"""The backend registry, :func:`load_config` and :func:`open_store`.

Backends are named by configuration and imported only when chosen, so a missing
optional dependency only matters to those who pick that backend. Every backend —
the built-in ones too, below — is registered with :func:`register_backend`: a
factory, the type of its ``[store.<name>]`` table and the environment variables
that override keys of it. Both may be "module:attribute" strings, imported when
first needed (a config type when a configuration loads, a factory when a store of
that backend opens), so importing eventvault never imports a backend's driver.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from .config import CORE_ENV_OVERRIDES, STORE_KEYS, BackendOptions, Config, NoOptions, read_config
from .errors import ConfigError
from .retention.policy import resolve_policy

if TYPE_CHECKING:
    from .store import EventStore

__all__ = ["backend_names", "env_overrides", "load_config", "open_store", "register_backend"]

#: A factory: ``factory(config)`` returning a store; it is also passed ``create=`` and
#: ``options=`` (its validated ``[store.<name>]`` table) when it takes them.
Factory = Callable[..., "EventStore"]


@dataclass(slots=True)
class _Backend:
    factory: str | Factory
    config_type: str | type[msgspec.Struct]
    env: dict[str, str] = field(default_factory=dict)


_REGISTRY: dict[str, _Backend] = {}


def register_backend(
    name: str,
    factory: str | Factory,
    config_type: str | type[msgspec.Struct] | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> None:
    """Make a backend available as ``backend = "<name>"``.

    ``factory``: a callable or "module:function" that builds the store from the
    loaded :class:`~eventvault.config.Config`; it is passed ``create=`` (make the
    store if missing) and ``options=`` (the validated ``[store.<name>]`` table) when
    its signature has them. ``config_type``: a msgspec Struct (or "module:Class")
    with ``forbid_unknown_fields=True`` that ``[store.<name>]`` is validated by —
    unknown keys (with a did-you-mean), wrong types and bad values fail at load with
    the same messages as the built-in backends', naming ``store.<name>.<key>`` and
    the file (see :class:`~eventvault.config.NoOptions` for the optional checks it
    may declare). None: the backend takes no options. ``env``: environment variable
    -> key of the table it overrides (``{"MINE_URL": "url"}``).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in STORE_KEYS:
        raise ConfigError(
            f"cannot register a backend named {name!r}: a name is lower-case letters, "
            f"digits and _, starting with a letter, and not one of the [store] keys "
            f"({', '.join(sorted(STORE_KEYS))})"
        )
    if config_type is not None and not isinstance(config_type, str):
        _check_config_type(name, config_type)
    _REGISTRY[name] = _Backend(factory, config_type or NoOptions, dict(env or {}))


_NAME = re.compile(r"[a-z][a-z0-9_]*")


def _check_config_type(name: str, config_type: object) -> type[msgspec.Struct]:
    """A backend's options type must make every configuration loadable — and its
    typos errors: a msgspec Struct that forbids unknown fields and has a default for
    every field (a table may be absent: every registered type is read on every load)."""
    where = f"the options type of backend {name!r}"
    if not (isinstance(config_type, type) and issubclass(config_type, msgspec.Struct)):
        raise ConfigError(f"{where} must be a msgspec.Struct subclass, not {config_type!r}")
    if not config_type.__struct_config__.forbid_unknown_fields:
        raise ConfigError(
            f"{where} ({config_type.__name__}) must forbid unknown fields "
            "(class ...(msgspec.Struct, forbid_unknown_fields=True)), or a typo'd key "
            "would be silently ignored"
        )
    try:
        config_type()
    except (TypeError, msgspec.ValidationError) as exc:
        raise ConfigError(
            f"{where} ({config_type.__name__}) needs a default for every field: {exc}"
        ) from None
    return config_type


#: The entry-point group a package declares its backends in (see _load_plugins).
PLUGIN_GROUP = "eventvault.backends"
_plugins_loaded = False


def _load_plugins() -> bool:
    """Import every installed backend plugin once; whether any backend was added.

    A package that provides a backend declares it in its ``pyproject.toml``::

        [project.entry-points."eventvault.backends"]
        sqlite = "eventvault_sqlite"          # a module that calls register_backend

    The entry point is loaded (a module registers at import; a callable is called
    with no arguments). So ``backend = "sqlite"`` works in every configuration,
    from the CLI and ``eventvault serve`` too, without any import in user code.
    """
    global _plugins_loaded
    if _plugins_loaded:
        return False
    _plugins_loaded = True
    from importlib.metadata import entry_points

    before = set(_REGISTRY)
    for ep in entry_points(group=PLUGIN_GROUP):
        try:
            loaded = ep.load()
            if callable(loaded) and not isinstance(loaded, type):
                loaded()
        except Exception as exc:
            raise ConfigError(
                f"the eventvault backend plugin {ep.name!r} ({ep.value}) failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
    return set(_REGISTRY) != before


def backend_names() -> list[str]:
    return sorted(_REGISTRY)


def env_overrides() -> dict[str, tuple[str, ...]]:
    """Every environment variable that overrides a key, and the key path it sets."""
    out = dict(CORE_ENV_OVERRIDES)
    for name, backend in _REGISTRY.items():
        out.update({var: ("store", name, key) for var, key in backend.env.items()})
    return out


def _resolve(target: str, name: str) -> Any:
    module_name, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        if isinstance(exc, ImportError) and exc.name and exc.name != module_name:
            raise  # the module is there, a dependency of it is not (MissingExtraError)
        raise ConfigError(f"backend {name!r} is registered as {target!r}: {exc}") from None


def _options() -> dict[str, BackendOptions]:
    out = {}
    for name, backend in _REGISTRY.items():
        if isinstance(backend.config_type, str):
            backend.config_type = _check_config_type(name, _resolve(backend.config_type, name))
        assert not isinstance(backend.config_type, str)
        out[name] = BackendOptions(backend.config_type, backend.env)
    return out


def _factory(name: str) -> Factory:
    backend = _REGISTRY.get(name)
    if backend is None:
        raise ConfigError(f"unknown backend {name!r}; choose one of {', '.join(backend_names())}")
    if isinstance(backend.factory, str):
        backend.factory = _resolve(backend.factory, name)
    assert not isinstance(backend.factory, str)
    return backend.factory


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | Config | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Load, interpolate, override and validate a configuration: the registered
    backends' tables and the retention policy too.

    ``source`` is a path, a dict of the TOML file's shape, a ready :class:`Config`,
    or None to discover one (see :mod:`eventvault.config`).
    """
    if isinstance(source, Config):
        return source
    try:
        cfg = read_config(source, env=env, backends=_options())
    except ConfigError:
        # Perhaps it names a backend an installed plugin provides: load the plugins
        # (only now — scanning installed packages costs ~100 ms) and read it again.
        if not _load_plugins():
            raise
        cfg = read_config(source, env=env, backends=_options())
    try:
        resolve_policy(cfg.retention)
    except ConfigError as exc:
        raise ConfigError(f"{cfg.source}: {exc}") from None
    return cfg


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
    cfg = load_config(config)
    factory = _factory(cfg.store.backend)
    params = inspect.signature(factory).parameters
    kwargs: dict[str, Any] = {}
    if "create" in params:  # (a third-party factory may know nothing of creating)
        kwargs["create"] = create
    if "options" in params:
        kwargs["options"] = cfg.store.sections.get(cfg.store.backend)
    store = factory(cfg, **kwargs)
    store.retention_policy = resolve_policy(cfg.retention)
    return store


# The built-in backends, registered as any other (in the order their tables are
# listed in messages).
register_backend(
    "file",
    "eventvault.backends.file:from_config",
    "eventvault.backends.file.config:FileConfig",
    env={"EVENTVAULT_FILE_PATH": "path", "EVENTVAULT_FSYNC": "fsync"},
)
register_backend(
    "postgres",
    "eventvault.backends.postgres:from_config",
    "eventvault.backends.postgres.config:PostgresConfig",
    env={"EVENTVAULT_POSTGRES_DSN": "dsn", "EVENTVAULT_POSTGRES_SCHEMA": "schema"},
)
register_backend(
    "eventstoredb",
    "eventvault.backends.eventstoredb:from_config",
    "eventvault.backends.eventstoredb.config:EventStoreDBConfig",
    env={"EVENTVAULT_EVENTSTOREDB_URI": "uri"},
)
register_backend("memory", "eventvault.backends.memory:from_config")
register_backend(
    "http",
    "eventvault.backends.http:from_config",
    "eventvault.backends.http.config:HttpConfig",
    env={"EVENTVAULT_URL": "url", "EVENTVAULT_TOKEN": "token"},
)
