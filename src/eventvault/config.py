"""Configuration: one TOML file, discovered, interpolated, overridden, validated.

Discovery order: an explicit path (``--config``) > ``$EVENTVAULT_CONFIG`` >
``./eventvault.toml`` > the built-in default (file backend in ``./eventvault-data``).

* ``${VAR}`` (or ``${VAR:-fallback}``) in any string value is replaced from the
  environment — the way to keep secrets out of the file. ``$$`` is a literal ``$``.
* Environment overrides (:data:`CORE_ENV_OVERRIDES`, and each backend's) win over
  the file.
* Relative paths in a file resolve against the file's directory, so a config works
  from any working directory.
* Unknown keys, wrong types and bad values fail at load with the key path, the
  value and the reason.
* ``[store.<name>]`` is the options table of backend ``<name>``, validated by the
  struct it registered (:func:`eventvault.registry.register_backend`); read it with
  :meth:`StoreConfig.options`.

A leaf: this module knows no backend and no registry (they give it what it needs,
:class:`BackendOptions`), so anything may import it.
"""

from __future__ import annotations

import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar

import msgspec

from .errors import ConfigError
from .filemodes import check_private
from .retention.config import RetentionConfig, RetentionRule
from .strict import explain_struct_error, struct_field_names, unknown_name
from .timeutil import parse_duration

__all__ = [
    "CORE_ENV_OVERRIDES",
    "AuditConfig",
    "BackendOptions",
    "Config",
    "NoOptions",
    "STORE_KEYS",
    "RetentionConfig",
    "RetentionRule",
    "ServerConfig",
    "StoreConfig",
    "TokenConfig",
    "WitnessConfig",
    "discover_config_path",
    "read_config",
]

DEFAULT_FILE_NAME = "eventvault.toml"

S = TypeVar("S", bound=msgspec.Struct)


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class NoOptions(_Section):
    """The options of a backend that has none (``memory``; a backend registered
    without ``config_type``): its ``[store.<name>]`` table, if any, must be empty.

    A backend's options type is a msgspec Struct with ``forbid_unknown_fields=True``
    (so a typo is an error). Besides its fields it may declare, as class variables,
    what :func:`read_config` checks the same way for every backend:
    ``INTEGERS`` (key -> (lowest, highest)), ``DURATIONS`` (key -> the longest
    :class:`~datetime.timedelta`), ``PATHS`` (keys resolved against the config
    file's directory), and a method ``check(self) -> tuple[str, str] | None``
    returning the first problem as (key, or "" for the table; reason).
    """


class BackendOptions(NamedTuple):
    """What :func:`read_config` knows of one backend (given by the registry)."""

    config_type: type[msgspec.Struct]
    #: environment variable -> the key of ``[store.<name>]`` it overrides
    env: Mapping[str, str]


class _StoreKeys(_Section):
    """The ``[store]`` keys that are not a backend's table."""

    backend: str = "file"
    max_event_bytes: int = 1024 * 1024


#: The ``[store]`` keys that are not a backend's table (so no backend takes these names).
STORE_KEYS = frozenset(_StoreKeys.__struct_fields__)


class StoreConfig(msgspec.Struct, kw_only=True):
    """``[store]``: the backend to use, and every registered backend's options.

    Read a backend's options, validated, with :meth:`options` — typed by the
    backend's own struct::

        from eventvault.backends.file.config import FileConfig
        path = cfg.store.options(FileConfig).path
    """

    backend: str = "file"
    max_event_bytes: int = 1024 * 1024
    sections: dict[str, Any] = msgspec.field(default_factory=dict)
    """Backend name -> its validated ``[store.<name>]`` table (every registered
    backend's, defaults where the file has none). Not a TOML key."""

    def _name_of(self, kind: type[msgspec.Struct]) -> str | None:
        if type(self.sections.get(self.backend)) is kind:
            return self.backend
        return next((n for n, v in self.sections.items() if type(v) is kind), None)

    def options(self, kind: type[S]) -> S:
        """The options of type ``kind``: the chosen backend's when it has that type,
        else the backend's that has it; its defaults when none was loaded (a
        :class:`Config` built in code)."""
        name = self._name_of(kind)
        found = self.sections.get(name) if name is not None else None
        return found if isinstance(found, kind) else kind()

    def with_options(self, options: msgspec.Struct, name: str | None = None) -> StoreConfig:
        """A copy with ``options`` as the table of ``name`` (by default: the backend
        whose options have that type, else the chosen backend)."""
        name = name or self._name_of(type(options)) or self.backend
        return msgspec.structs.replace(self, sections={**self.sections, name: options})


class TokenConfig(_Section):
    name: str
    token: str | None = None
    token_sha256: str | None = None
    scopes: list[Literal["append", "read", "admin"]] = msgspec.field(default_factory=list)


class ServerConfig(_Section):
    host: str = "127.0.0.1"
    port: int = 8730
    tokens: list[TokenConfig] = msgspec.field(default_factory=list)
    tokens_file: str | None = None  # TOML with [[tokens]] tables, like server.tokens
    max_body_bytes: int = 8 * 1024 * 1024
    heartbeat: str = "15s"  # SSE comment line when idle
    header_timeout: str = "10s"  # a client must send its request head within this
    body_timeout: str = "30s"  # ...and its body within this
    graceful_timeout: str = "30s"  # on shutdown, in-flight requests get this long
    access_log: bool = True
    #: Endpoints that answer without a token when tokens are configured:
    #: "healthz", "readyz" (status only), "docs" (/docs, /redoc, /openapi.json), "metrics".
    anonymous: list[Literal["healthz", "readyz", "docs", "metrics"]] = msgspec.field(
        default_factory=lambda: ["healthz", "readyz"]
    )
    max_head_bytes: int = 64 * 1024  # request line + headers; beyond it: 431
    max_headers: int = 100  # header fields per request; beyond it: 431
    max_subscribers: int = 1000  # live tails (SSE) per process; beyond it: 503
    max_subscribers_per_token: int = 100  # per token name; beyond it: 429
    max_response_bytes: int = 64 * 1024 * 1024  # a read's page beyond it is streamed


class WitnessConfig(_Section):
    """``[[audit.witnesses]]``: a witness ``eventvault serve`` asks to co-sign each
    checkpoint (C2SP tlog-witness; ``eventvault witness serve`` is one)."""

    #: The witness's submission prefix (``POST <url>/add-checkpoint``).
    url: str
    #: The witness's verifier key, ``<name>+<id>+<base64(0x04 ‖ key)>``.
    key: str
    timeout: str = "10s"


class AuditConfig(_Section):
    """``[audit]``: signed checkpoints of the store's Merkle tree (docs/audit.md).

    The signing key belongs to the service, not to whoever administers the files or
    the database: keep ``signing_key`` readable by the service's user only
    (``eventvault keygen`` writes it 0600)."""

    #: The Ed25519 signing key file (``eventvault keygen``; relative to the
    #: configuration file); None: no checkpoints.
    signing_key: str | None = None
    #: ``eventvault serve`` signs and keeps a checkpoint once this many events were
    #: appended since the last one ...
    checkpoint_events: int = 1000
    #: ... or this long after the last one if any event was appended meanwhile.
    checkpoint_interval: str = "60s"
    #: Witnesses asked to co-sign every checkpoint; one that refuses or does not
    #: answer is logged and the checkpoint is kept without its cosignature.
    witnesses: list[WitnessConfig] = msgspec.field(default_factory=list)


class _Document(_Section):
    """The file's shape, as converted (the backends' tables apart)."""

    store: _StoreKeys = msgspec.field(default_factory=_StoreKeys)
    retention: RetentionConfig | None = None
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    audit: AuditConfig = msgspec.field(default_factory=AuditConfig)


class Config(_Section):
    store: StoreConfig = msgspec.field(default_factory=StoreConfig)
    retention: RetentionConfig | None = None
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    audit: AuditConfig = msgspec.field(default_factory=AuditConfig)
    source: str = "built-in default"
    """Where this configuration came from (not a TOML key)."""

    @property
    def backend(self) -> str:
        return self.store.backend


#: Environment variable -> key path it overrides (the backends' own: their
#: registration's ``env``, see :func:`eventvault.registry.env_overrides`).
CORE_ENV_OVERRIDES: dict[str, tuple[str, ...]] = {"EVENTVAULT_BACKEND": ("store", "backend")}

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PATH_IN_MSG = re.compile(r" - at `\$((?:\.[^`\[]+|\[\d+\])*)`$")


def discover_config_path(
    explicit: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Path | None:
    """The config file to use, or None for the built-in default."""
    env = os.environ if env is None else env
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist or is not a file")
        return path
    named = env.get("EVENTVAULT_CONFIG")
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigError(f"EVENTVAULT_CONFIG={named!r}: no such file")
        return path
    local = Path(DEFAULT_FILE_NAME)
    return local if local.is_file() else None


def _interpolate(value: Any, path: str, env: Mapping[str, str]) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            if m.group(0) == "$$":
                return "$"
            name, fallback = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if fallback is not None:
                return fallback
            raise ConfigError(
                f"{path}: environment variable {name} is not set (used as ${{{name}}})"
            )

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _interpolate(v, f"{path}.{k}" if path else k, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{path}[{i}]", env) for i, v in enumerate(value)]
    return value


def _lookup(raw: Any, dotted: str) -> Any:
    node = raw
    for part in re.findall(r"\.([^.\[]+)|\[(\d+)\]", dotted):
        key, index = part
        try:
            node = node[int(index)] if index else node[key]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _section_at(root: type[msgspec.Struct], where: str) -> type[msgspec.Struct]:
    """The struct at a key path below ``root``, such as ``server.tokens[0]``."""
    node = root
    for part in filter(None, re.sub(r"\[\d+\]", "", where).split(".")):
        hint = typing.get_type_hints(node)[part]
        candidates = [hint, *typing.get_args(hint)]
        candidates += [a for c in candidates for a in typing.get_args(c)]
        node = next(c for c in candidates if isinstance(c, type) and issubclass(c, msgspec.Struct))
    return node


def _choices(root: type[msgspec.Struct], where: str) -> list[str] | None:
    """The values a Literal-typed key accepts (``fsync`` of the file backend -> always, …)."""
    node: Any = root
    for part in re.sub(r"\[\d+\]", "", where).split("."):
        if not (isinstance(node, type) and issubclass(node, msgspec.Struct)):
            return None
        node = typing.get_type_hints(node).get(part)
        while typing.get_origin(node) in (list, typing.Union, types.UnionType):
            node = next(a for a in typing.get_args(node) if a is not type(None))
    if typing.get_origin(node) is Literal:
        return [str(a) for a in typing.get_args(node)]
    return None


def _convert(
    raw: Any,
    kind: type[S],
    prefix: str,
    origin: str,
    overridden: Mapping[str, str],
    extra_keys: Sequence[str] = (),
) -> S:
    """``raw`` (the table at key path ``prefix``) as ``kind``, or a ConfigError naming
    the key. ``extra_keys``: the backends' tables, known keys of ``[store]`` too."""
    try:
        return msgspec.convert(raw, kind, strict=True)
    except UnicodeError:
        raise ConfigError(f"{origin}: holds text that is not valid Unicode") from None
    except msgspec.ValidationError as exc:
        message = str(exc)
        m = _PATH_IN_MSG.search(message)
        inner = m.group(1).lstrip(".") if m else ""
        where = ".".join(filter(None, [prefix, inner]))
        reason = message[: m.start()] if m else message
        unknown = re.match(r"Object contains unknown field `([^`]+)`", reason)
        if unknown:
            name = unknown.group(1)
            key = f"{where}.{name}" if where else name
            known = struct_field_names(_section_at(kind, inner))
            if where == "store":
                known += extra_keys
            message = unknown_name("key", name, known).replace(repr(name), repr(key), 1)
            raise ConfigError(f"{origin}: {message}") from None
        value = _lookup(raw, m.group(1)) if m else (raw if prefix else None)
        shown = f" (got {value!r})" if value is not None else ""
        if reason.startswith("Invalid enum value"):
            choices = _choices(kind, inner)
            if choices:
                reason = f"{reason.split(' (')[0]}; choose one of {', '.join(choices)}"
                shown = ""
        source = _origin_of(where, origin, overridden)
        raise ConfigError(f"{source}: {where or 'config'}: {reason}{shown}") from None


def _origin_of(key: str, origin: str, overridden: Mapping[str, str]) -> str:
    """Where the value at ``key`` came from: the environment variable that set it, or
    the file (or built-in default)."""
    var = overridden.get(key)
    return f"{var} (environment)" if var else origin


def _check(cfg: Config, origin: str, overridden: Mapping[str, str]) -> None:
    names = sorted(cfg.store.sections)
    if cfg.store.backend not in names:
        raise ConfigError(
            f"{_origin_of('store.backend', origin, overridden)}: store.backend: unknown "
            f"backend {cfg.store.backend!r}; "
            f"choose one of {', '.join(names)}"
        )
    _check_numbers(cfg, origin)
    for name, options in cfg.store.sections.items():
        check = getattr(options, "check", None)
        problem = check() if callable(check) else None
        if problem:
            key, reason = problem
            where = f"store.{name}.{key}" if key else f"store.{name}"
            raise ConfigError(f"{_origin_of(where, origin, overridden)}: {where}: {reason}")
    if not 0 < cfg.server.port < 65536:
        raise ConfigError(f"{origin}: server.port: {cfg.server.port} is not a TCP port")
    srv = cfg.server
    for k, tok in enumerate(srv.tokens):
        if (tok.token is None) == (tok.token_sha256 is None):
            raise ConfigError(
                f"{origin}: server.tokens[{k}] ({tok.name}): give exactly one of token, "
                "token_sha256"
            )
        if not tok.scopes:
            raise ConfigError(f"{origin}: server.tokens[{k}] ({tok.name}): no scopes")


_DAY = timedelta(days=1)
#: Every integer key outside the backends' tables: (lowest, highest). Beyond these no
#: backend or OS call copes. (A backend's own: its options' ``INTEGERS``.)
_INTEGERS: dict[str, tuple[int, int]] = {
    "server.port": (1, 65_535),
    "server.max_body_bytes": (1024, 2**40),
    "server.max_head_bytes": (1024, 2**31 - 1),
    "server.max_headers": (8, 1_000_000),
    "server.max_subscribers": (1, 1_000_000),
    "server.max_subscribers_per_token": (1, 1_000_000),
    "server.max_response_bytes": (64 * 1024, 2**40),
    "audit.checkpoint_events": (1, 2**40),
}
#: Every duration key but retention's (checked with the policy) and the backends'
#: (their options' ``DURATIONS``): the longest allowed. (Timeouts go to socket and
#: lock calls, which refuse huge values.)
_DURATIONS: dict[str, timedelta] = {
    "server.heartbeat": _DAY,
    "server.header_timeout": _DAY,
    "server.body_timeout": _DAY,
    "server.graceful_timeout": _DAY,
    "audit.checkpoint_interval": _DAY,
}
_MAX_EVENT_BYTES = (1024, 2**31 - 1)


def _value_at(cfg: Config, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _check_numbers(cfg: Config, origin: str) -> None:
    """Every integer and duration within what the code that uses it can take (in
    the order: integers, then durations; ``[store]`` and the backends first)."""
    integers: list[tuple[str, Any, tuple[int, int]]] = [
        ("store.max_event_bytes", cfg.store.max_event_bytes, _MAX_EVENT_BYTES)
    ]
    durations: list[tuple[str, Any, timedelta]] = []
    for name, options in cfg.store.sections.items():
        for key, bounds in getattr(options, "INTEGERS", {}).items():
            integers.append((f"store.{name}.{key}", getattr(options, key), bounds))
        for key, longest in getattr(options, "DURATIONS", {}).items():
            durations.append((f"store.{name}.{key}", getattr(options, key), longest))
    integers += [(key, _value_at(cfg, key), bounds) for key, bounds in _INTEGERS.items()]
    durations += [(key, _value_at(cfg, key), longest) for key, longest in _DURATIONS.items()]
    for key, value, (lo, hi) in integers:
        if not lo <= value <= hi:
            shown = f"{value:,}" if abs(value) < 10**30 else "a number that large"
            raise ConfigError(f"{origin}: {key} must be >= {lo} and <= {hi:,} (got {shown})")
    for key, text, longest in durations:
        try:
            value = parse_duration(text)
        except ValueError as exc:
            raise ConfigError(f"{origin}: {key}: {exc}") from None
        if value > longest:
            raise ConfigError(
                f"{origin}: {key}: {text!r} is longer than the most it can be "
                f"({longest.total_seconds():g}s)"
            )


def _with_tokens_file(cfg: Config, base: Path, env: Mapping[str, str], origin: str) -> Config:
    """Add the tokens of ``server.tokens_file`` (``[[tokens]]`` tables, like
    ``server.tokens``; keep it readable by the service only)."""
    assert cfg.server.tokens_file is not None
    path = Path(cfg.server.tokens_file).expanduser()
    path = path if path.is_absolute() else base / path
    where = f"{origin}: server.tokens_file {path}"
    check_private(path, f"{origin}: server.tokens_file")
    try:
        raw = _interpolate(tomllib.loads(path.read_text(encoding="utf-8")), "", env)
        for key in raw:  # a typo'd [[token]] must not leave the service without tokens
            if key != "tokens":
                raise ConfigError(f"{where}: {unknown_name('key', key, ['tokens'])}")
        extra = msgspec.convert(raw.get("tokens", []), list[TokenConfig])
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: cannot read: {exc}") from None
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {explain_struct_error(exc, TokenConfig, 'key')}") from None
    server = msgspec.structs.replace(cfg.server, tokens=[*cfg.server.tokens, *extra])
    return msgspec.structs.replace(cfg, server=server)


def read_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | Config | None = None,
    *,
    env: Mapping[str, str] | None = None,
    backends: Mapping[str, BackendOptions],
) -> Config:
    """Read, interpolate, override and validate a configuration, with the options
    of each of ``backends`` (name -> its options type and environment overrides).

    ``source`` is a path, a dict of the TOML file's shape, a ready :class:`Config`,
    or None to discover one. This is the parser: use
    :func:`eventvault.registry.load_config`, which passes the registered backends
    and also validates the retention policy.
    """
    if isinstance(source, Config):
        return source
    env = os.environ if env is None else env
    base = Path.cwd()
    if isinstance(source, Mapping):
        raw: dict[str, Any] = dict(source)
        origin = "config"
    else:
        path = discover_config_path(source, env)
        if path is None:
            raw, origin = {}, "built-in default"
        else:
            origin = str(path)
            try:
                raw = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(f"{origin}: not valid TOML: {exc}") from None
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{origin}: cannot read: {exc}") from None
            base = path.resolve().parent
            server = raw.get("server")
            if isinstance(server, dict) and server.get("tokens"):
                check_private(path, "config file (it holds server.tokens)")
    if "source" in raw:
        raise ConfigError(f"{origin}: unknown key 'source'")
    raw = _interpolate(raw, "", env)
    overrides = dict(CORE_ENV_OVERRIDES)
    for name, spec in backends.items():
        overrides.update({var: ("store", name, key) for var, key in spec.env.items()})
    overridden: dict[str, str] = {}
    for var, keys in overrides.items():
        if env.get(var):
            overridden[".".join(keys)] = var
            node = raw
            for key in keys[:-1]:
                child = node.get(key)
                if not isinstance(child, dict):
                    child = {}
                    node[key] = child
                node = child
            node[keys[-1]] = env[var]
    tables: dict[str, Any] = {}
    if isinstance(raw.get("store"), dict):  # each backend's table, by its own type
        store_raw = dict(raw["store"])
        tables = {name: store_raw.pop(name) for name in list(store_raw) if name in backends}
        raw = {**raw, "store": store_raw}
    doc = _convert(raw, _Document, "", origin, overridden, extra_keys=list(backends))
    sections: dict[str, Any] = {
        name: _convert(tables.get(name, {}), spec.config_type, f"store.{name}", origin, overridden)
        for name, spec in backends.items()
    }
    store = StoreConfig(
        backend=doc.store.backend, max_event_bytes=doc.store.max_event_bytes, sections=sections
    )
    cfg = Config(store=store, retention=doc.retention, server=doc.server, audit=doc.audit)
    if cfg.server.tokens_file:
        cfg = _with_tokens_file(cfg, base, env, origin)
    _check(cfg, origin, overridden)
    resolved = dict(sections)
    for name, options in sections.items():  # (relative to the file, like server.tokens_file)
        for key in getattr(options, "PATHS", ()):
            value = getattr(resolved[name], key)
            if value:
                where = Path(value).expanduser()
                where = where if where.is_absolute() else base / where
                resolved[name] = msgspec.structs.replace(resolved[name], **{key: str(where)})
    store = msgspec.structs.replace(cfg.store, sections=resolved)
    audit = cfg.audit
    if audit.signing_key:  # (relative to the file too: a service's cwd is often /)
        signing = Path(audit.signing_key).expanduser()
        signing = signing if signing.is_absolute() else base / signing
        audit = msgspec.structs.replace(audit, signing_key=str(signing))
    return msgspec.structs.replace(cfg, store=store, audit=audit, source=origin)
