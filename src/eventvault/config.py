"""Configuration: one TOML file, discovered, interpolated, overridden, validated.

Discovery order: an explicit path (``--config``) > ``$EVENTVAULT_CONFIG`` >
``./eventvault.toml`` > the built-in default (file backend in ``./eventvault-data``).

* ``${VAR}`` (or ``${VAR:-fallback}``) in any string value is replaced from the
  environment — the way to keep secrets out of the file. ``$$`` is a literal ``$``.
* Environment overrides (:data:`ENV_OVERRIDES`) win over the file.
* Relative paths in a file resolve against the file's directory, so a config works
  from any working directory.
* Unknown keys, wrong types and bad values fail at load with the key path, the
  value and the reason.
"""

from __future__ import annotations

import os
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import msgspec

from .errors import ConfigError
from .filemodes import check_private
from .retention.config import RetentionConfig, RetentionRule
from .strict import explain_struct_error, struct_field_names, unknown_name
from .timeutil import parse_duration

__all__ = [
    "ENV_OVERRIDES",
    "Config",
    "FileConfig",
    "PostgresConfig",
    "EventStoreDBConfig",
    "HttpConfig",
    "RetentionConfig",
    "RetentionRule",
    "ServerConfig",
    "StoreConfig",
    "discover_config_path",
    "load_config",
    "postgres_schema_problem",
]

DEFAULT_FILE_NAME = "eventvault.toml"
DEFAULT_DATA_DIR = "eventvault-data"


class _Section(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class FileConfig(_Section):
    path: str = DEFAULT_DATA_DIR
    fsync: Literal["always", "interval", "never"] = "always"
    fsync_interval: str = "200ms"
    segment_max_bytes: int = 64 * 1024 * 1024
    file_mode: int = 0o600
    dir_mode: int = 0o700
    read_only: bool = False  # true: never write (false: still read-only if unwritable)


class PostgresConfig(_Section):
    dsn: str | None = None  # required with backend = "postgres" (no silent default)
    schema: str = "eventvault"
    pool_min: int = 1
    pool_max: int = 10
    connect_timeout: str = "10s"
    statement_timeout: str = "30s"
    create_schema: bool = True


class EventStoreDBConfig(_Section):
    uri: str = "kurrentdb://127.0.0.1:2113?tls=false"
    timeout: str = "10s"
    log_stream: str = "eventvault"
    use_correlation_projection: bool = False


class MemoryConfig(_Section):
    pass


class HttpConfig(_Section):
    """A store behind ``eventvault serve`` (``backend = "http"``)."""

    url: str | None = None  # required with backend = "http", e.g. https://ev.example:8730
    token: str | None = None  # a bearer token; keep it out of the file: "${EVENTVAULT_TOKEN}"
    timeout: str = "30s"  # connect / read / write, each
    retries: int = 3  # extra attempts, only where safe (see eventvault.backends.http)
    ca_file: str | None = None  # a PEM bundle to trust instead of the system's
    verify_tls: bool = True


class StoreConfig(_Section):
    backend: str = "file"
    max_event_bytes: int = 1024 * 1024
    file: FileConfig = msgspec.field(default_factory=FileConfig)
    postgres: PostgresConfig = msgspec.field(default_factory=PostgresConfig)
    eventstoredb: EventStoreDBConfig = msgspec.field(default_factory=EventStoreDBConfig)
    memory: MemoryConfig = msgspec.field(default_factory=MemoryConfig)
    http: HttpConfig = msgspec.field(default_factory=HttpConfig)


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


class Config(_Section):
    store: StoreConfig = msgspec.field(default_factory=StoreConfig)
    retention: RetentionConfig | None = None
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    source: str = "built-in default"
    """Where this configuration came from (not a TOML key)."""

    @property
    def backend(self) -> str:
        return self.store.backend


#: Environment variable -> key path it overrides.
ENV_OVERRIDES: dict[str, tuple[str, ...]] = {
    "EVENTVAULT_BACKEND": ("store", "backend"),
    "EVENTVAULT_FILE_PATH": ("store", "file", "path"),
    "EVENTVAULT_FSYNC": ("store", "file", "fsync"),
    "EVENTVAULT_POSTGRES_DSN": ("store", "postgres", "dsn"),
    "EVENTVAULT_POSTGRES_SCHEMA": ("store", "postgres", "schema"),
    "EVENTVAULT_EVENTSTOREDB_URI": ("store", "eventstoredb", "uri"),
    "EVENTVAULT_URL": ("store", "http", "url"),
    "EVENTVAULT_TOKEN": ("store", "http", "token"),
}

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PATH_IN_MSG = re.compile(r" - at `\$((?:\.[^`\[]+|\[\d+\])*)`$")


def postgres_schema_problem(name: str) -> str | None:
    """Why ``name`` cannot be a PostgreSQL schema of eventvault's, or None.

    Exactly the names that work everywhere the backend uses them: quoted (so the
    case is kept) in every statement, looked up as the same quoted name, and at most
    63 bytes — PostgreSQL silently truncates longer identifiers, so two configured
    names could meet in one schema. (The NOTIFY channel derived from the name is
    kept within 63 bytes by the backend itself.) ``pg_`` names are the system's.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        return (
            f"{name!r} is not a plain name: use letters, digits and _ (ASCII), not "
            "starting with a digit, e.g. 'eventvault'"
        )
    if len(name) > 63:
        return f"{name!r} is {len(name)} characters; PostgreSQL names hold at most 63"
    if name.startswith("pg_"):
        return f"{name!r}: names starting with pg_ are reserved for PostgreSQL's own schemas"
    return None


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


def _section_at(where: str) -> type[msgspec.Struct]:
    """The section struct at a key path such as ``store.file`` or ``server.tokens[0]``."""
    node: type[msgspec.Struct] = Config
    for part in filter(None, re.sub(r"\[\d+\]", "", where).split(".")):
        hint = typing.get_type_hints(node)[part]
        candidates = [hint, *typing.get_args(hint)]
        candidates += [a for c in candidates for a in typing.get_args(c)]
        node = next(c for c in candidates if isinstance(c, type) and issubclass(c, msgspec.Struct))
    return node


def _choices(where: str) -> list[str] | None:
    """The values a Literal-typed key accepts (``store.file.fsync`` -> always, …)."""
    node: Any = Config
    for part in re.sub(r"\[\d+\]", "", where).split("."):
        if not (isinstance(node, type) and issubclass(node, msgspec.Struct)):
            return None
        node = typing.get_type_hints(node).get(part)
        while typing.get_origin(node) in (list, typing.Union, types.UnionType):
            node = next(a for a in typing.get_args(node) if a is not type(None))
    if typing.get_origin(node) is Literal:
        return [str(a) for a in typing.get_args(node)]
    return None


def _convert(raw: dict[str, Any], origin: str, overridden: Mapping[str, str]) -> Config:
    try:
        return msgspec.convert(raw, Config, strict=True)
    except UnicodeError:
        raise ConfigError(f"{origin}: holds text that is not valid Unicode") from None
    except msgspec.ValidationError as exc:
        message = str(exc)
        m = _PATH_IN_MSG.search(message)
        where = m.group(1).lstrip(".") if m else ""
        reason = message[: m.start()] if m else message
        unknown = re.match(r"Object contains unknown field `([^`]+)`", reason)
        if unknown:
            name = unknown.group(1)
            key = f"{where}.{name}" if where else name
            known = [k for k in struct_field_names(_section_at(where)) if k != "source"]
            message = unknown_name("key", name, known).replace(repr(name), repr(key), 1)
            raise ConfigError(f"{origin}: {message}") from None
        value = _lookup(raw, m.group(1)) if m else None
        shown = f" (got {value!r})" if value is not None else ""
        if reason.startswith("Invalid enum value"):
            choices = _choices(where)
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
    from .registry import backend_names

    if cfg.store.backend not in backend_names():
        raise ConfigError(
            f"{_origin_of('store.backend', origin, overridden)}: store.backend: unknown "
            f"backend {cfg.store.backend!r}; "
            f"choose one of {', '.join(backend_names())}"
        )
    _check_numbers(cfg, origin)
    pg = cfg.store.postgres
    if not 1 <= pg.pool_min <= pg.pool_max:
        raise ConfigError(f"{origin}: store.postgres: need 1 <= pool_min <= pool_max")
    problem = postgres_schema_problem(pg.schema)
    if problem:
        raise ConfigError(
            f"{_origin_of('store.postgres.schema', origin, overridden)}: "
            f"store.postgres.schema: {problem}"
        )
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
    from .retention import resolve_policy

    try:
        resolve_policy(cfg.retention)
    except ConfigError as exc:
        raise ConfigError(f"{origin}: {exc}") from None


_DAY = timedelta(days=1)
#: Every integer key: (lowest, highest). Beyond these no backend or OS call copes.
_INTEGERS: dict[str, tuple[int, int]] = {
    "store.max_event_bytes": (1024, 2**31 - 1),
    "store.file.segment_max_bytes": (4096, 2**40),
    "store.file.file_mode": (0, 0o7777),
    "store.file.dir_mode": (0, 0o7777),
    "store.postgres.pool_min": (1, 10_000),
    "store.postgres.pool_max": (1, 10_000),
    "store.http.retries": (0, 100),
    "server.port": (1, 65_535),
    "server.max_body_bytes": (1024, 2**40),
    "server.max_head_bytes": (1024, 2**31 - 1),
    "server.max_headers": (8, 1_000_000),
    "server.max_subscribers": (1, 1_000_000),
    "server.max_subscribers_per_token": (1, 1_000_000),
    "server.max_response_bytes": (64 * 1024, 2**40),
}
#: Every duration key but retention's (checked with the policy): the longest allowed.
#: (Timeouts go to socket and lock calls, which refuse huge values; PostgreSQL's
#: statement_timeout is an int of milliseconds.)
_DURATIONS: dict[str, timedelta] = {
    "store.file.fsync_interval": _DAY,
    "store.postgres.connect_timeout": _DAY,
    "store.postgres.statement_timeout": timedelta(milliseconds=2**31 - 1),
    "store.eventstoredb.timeout": _DAY,
    "store.http.timeout": _DAY,
    "server.heartbeat": _DAY,
    "server.header_timeout": _DAY,
    "server.body_timeout": _DAY,
    "server.graceful_timeout": _DAY,
}


def _value_at(cfg: Config, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def _check_numbers(cfg: Config, origin: str) -> None:
    """Every integer and duration within what the code that uses it can take."""
    for key, (lo, hi) in _INTEGERS.items():
        value = _value_at(cfg, key)
        if not lo <= value <= hi:
            shown = f"{value:,}" if abs(value) < 10**30 else "a number that large"
            raise ConfigError(f"{origin}: {key} must be >= {lo} and <= {hi:,} (got {shown})")
    for key, longest in _DURATIONS.items():
        text = _value_at(cfg, key)
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


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | Config | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Load, interpolate, override and validate a configuration.

    ``source`` is a path, a dict of the TOML file's shape, a ready :class:`Config`,
    or None to discover one.
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
    overridden: dict[str, str] = {}
    for var, keys in ENV_OVERRIDES.items():
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
    cfg = _convert(raw, origin, overridden)
    if cfg.server.tokens_file:
        cfg = _with_tokens_file(cfg, base, env, origin)
    _check(cfg, origin, overridden)
    data_path = Path(cfg.store.file.path).expanduser()
    if not data_path.is_absolute():
        data_path = base / data_path
    file_cfg = msgspec.structs.replace(cfg.store.file, path=str(data_path))
    http_cfg = cfg.store.http
    if http_cfg.ca_file:  # (relative to the file, like store.file.path)
        ca_path = Path(http_cfg.ca_file).expanduser()
        ca_path = ca_path if ca_path.is_absolute() else base / ca_path
        http_cfg = msgspec.structs.replace(http_cfg, ca_file=str(ca_path))
    store = msgspec.structs.replace(cfg.store, file=file_cfg, http=http_cfg)
    return msgspec.structs.replace(cfg, store=store, source=origin)
