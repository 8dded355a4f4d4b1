"""Configuration: discovery order, interpolation, overrides, errors naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventvault import ConfigError, MemoryEventStore, load_config, open_store
from eventvault.backends.file import FileEventStore
from eventvault.backends.file.config import FileConfig
from eventvault.backends.postgres.config import PostgresConfig
from eventvault.timeutil import parse_duration, parse_time


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_built_in_default_is_the_file_backend(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVENTVAULT_CONFIG", raising=False)
    cfg = load_config(env={})
    assert cfg.backend == "file"
    assert cfg.store.options(FileConfig).path == str(tmp_path / "eventvault-data")
    assert cfg.source == "built-in default"


def test_discovery_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    local = write(tmp_path / "eventvault.toml", '[store]\nbackend = "memory"\n')
    env_file = write(tmp_path / "env.toml", '[store.file]\npath = "from-env"\n')
    explicit = write(tmp_path / "explicit.toml", '[store.file]\npath = "explicit"\n')
    assert load_config(env={}).source == local.name
    monkeypatch.setenv("EVENTVAULT_CONFIG", str(env_file))
    assert load_config().store.options(FileConfig).path == str(tmp_path / "from-env")
    assert load_config(explicit).store.options(FileConfig).path == str(tmp_path / "explicit")


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    cfg = load_config(write(sub / "c.toml", '[store.file]\npath = "data"\n'), env={})
    assert cfg.store.options(FileConfig).path == str(sub / "data")


def test_environment_interpolation(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.toml",
        '[store.postgres]\ndsn = "postgresql://u:${PW}@h/db"\n'
        'schema = "${SCHEMA:-ev}"\n[store.file]\npath = "/a/$$literal"\n',
    )
    cfg = load_config(path, env={"PW": "s3cret"})
    assert cfg.store.options(PostgresConfig).dsn == "postgresql://u:s3cret@h/db"
    assert cfg.store.options(PostgresConfig).schema == "ev"
    assert cfg.store.options(FileConfig).path == "/a/$literal"
    with pytest.raises(ConfigError, match=r"store\.postgres\.dsn.*PW is not set"):
        load_config(path, env={})


def test_environment_overrides_win(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", '[store]\nbackend = "file"\n')
    cfg = load_config(
        path, env={"EVENTVAULT_BACKEND": "memory", "EVENTVAULT_POSTGRES_DSN": "postgresql://x/y"}
    )
    assert cfg.backend == "memory"
    assert cfg.store.options(PostgresConfig).dsn == "postgresql://x/y"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[store]\nbakend = "file"\n', r"unknown key 'store\.bakend'"),
        ('[store.file]\nfsync = "sometimes"\n', r"store\.file\.fsync.*'sometimes'"),
        ('[store.file]\nsegment_max_bytes = "big"\n', r"store\.file\.segment_max_bytes.*'big'"),
        ('[store]\nbackend = "oracle"\n', r"unknown backend 'oracle'"),
        ("[store.file]\nsegment_max_bytes = 10\n", r"segment_max_bytes must be >= 4096"),
        ('[store.file]\nfsync_interval = "soon"\n', r"fsync_interval.*not a duration"),
        ('[store.postgres]\nschema = "x; drop"\n', r"schema.*not a plain name"),
        ("[server]\nport = 70000\n", r"server\.port"),
        ("[store\n", r"not valid TOML"),
        ('[[server.tokens]]\nname = "a"\nscopes = ["root"]\n', r"server\.tokens\[0\]\.scopes"),
        ('source = "x"\n', r"unknown key 'source'"),
        ("[store.postgres]\npool_min = 5\npool_max = 2\n", r"pool_min <= pool_max"),
        ("[store]\nmax_event_bytes = 5\n", r"max_event_bytes"),
    ],
)
def test_invalid_config_names_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path / "c.toml", text), env={})


def test_missing_config_files_are_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    monkeypatch.setenv("EVENTVAULT_CONFIG", str(tmp_path / "gone.toml"))
    with pytest.raises(ConfigError, match="EVENTVAULT_CONFIG"):
        load_config()


def test_open_store_picks_the_backend_from_configuration(tmp_path: Path) -> None:
    with open_store({"store": {"backend": "memory"}}) as store:
        assert isinstance(store, MemoryEventStore)
    with open_store({"store": {"file": {"path": str(tmp_path / "d")}}}) as store:
        assert isinstance(store, FileEventStore)


def test_the_design_example_config_loads(tmp_path: Path) -> None:
    text = """
[store]
backend = "file"
[store.file]
path = "./eventvault-data"
fsync = "always"
segment_max_bytes = 67_108_864
[store.postgres]
dsn = "${EVENTVAULT_POSTGRES_DSN}"
schema = "eventvault"
pool_max = 10
[store.eventstoredb]
uri = "kurrentdb://127.0.0.1:2113?tls=false"
[retention]
max_age = "90d"
max_count = 50_000_000
check_interval = "1h"
[[retention.rules]]
types = ["debug.*"]
max_age = "7d"
[server]
host = "127.0.0.1"
port = 8730
[[server.tokens]]
name = "ci-runner"
token = "${EVENTVAULT_TOKEN_CI}"
scopes = ["append", "read"]
"""
    cfg = load_config(
        write(tmp_path / "c.toml", text),
        env={"EVENTVAULT_POSTGRES_DSN": "postgresql://db/x", "EVENTVAULT_TOKEN_CI": "t0k"},
    )
    assert cfg.retention is not None
    assert cfg.retention.rules[0].types == ["debug.*"]
    assert cfg.server.tokens[0].token == "t0k"


def test_registering_a_backend(tmp_path: Path) -> None:
    from eventvault import register_backend
    from eventvault.registry import _REGISTRY

    register_backend("custom", lambda cfg: MemoryEventStore())
    try:
        with open_store({"store": {"backend": "custom"}}) as store:
            assert isinstance(store, MemoryEventStore)
    finally:
        _REGISTRY.pop("custom")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90d", 7776000),
        ("12h", 43200),
        ("30m", 1800),
        ("200ms", 0.2),
        ("1.5s", 1.5),
        ("2w", 1209600),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text).total_seconds() == seconds


@pytest.mark.parametrize("text", ["", "5", "d", "5 years", "-3h", "3x"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_times() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    assert parse_time("2h", now=now) == now - timedelta(hours=2)
    assert parse_time("now", now=now) == now
    assert parse_time("2026-11-26T10:00:00Z") == datetime(2026, 11, 26, 10, tzinfo=UTC)
    assert parse_time("2026-11-26") == datetime(2026, 11, 26, tzinfo=UTC)
    assert parse_time("2026-11-26T12:00:00+02:00") == datetime(2026, 11, 26, 10, tzinfo=UTC)
    with pytest.raises(ValueError, match="not a time"):
        parse_time("yesterdayish")
