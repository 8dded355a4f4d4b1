"""Reading commands never create a store (issue 17 item 2)."""

from __future__ import annotations

import uuid
from pathlib import Path

import psycopg
import pytest

from .helpers import clean_env, ev

EXIT_NO_STORE = 7


@pytest.mark.parametrize(
    "args",
    [
        ["verify"],
        ["query"],
        ["query", "--all", "--format", "jsonl"],
        ["stats"],
        ["tail"],
        ["retention", "plan"],
        ["reindex"],
        ["get", "0190d2a4-0000-7000-8000-000000000000"],
        ["export", "--file", "out.jsonl"],
    ],
)
def test_reading_a_missing_file_store_fails_and_creates_nothing(
    tmp_path: Path, args: list[str]
) -> None:
    r = ev(tmp_path, *args)
    assert r.returncode == EXIT_NO_STORE, (r.returncode, r.stdout, r.stderr)
    assert "no store at" in r.stderr
    assert str(tmp_path / "eventvault-data") in r.stderr
    assert "eventvault init" in r.stderr  # says how to make one
    assert not (tmp_path / "eventvault-data").exists()
    assert r.stdout == ""


def test_typoed_path_in_config_does_not_pass_an_audit(tmp_path: Path) -> None:
    assert ev(tmp_path, "append", "--type", "a.b").returncode == 0
    (tmp_path / "typo.toml").write_text('[store.file]\npath = "./eventvault-dta"\n')
    r = ev(tmp_path, "--config", "typo.toml", "verify")
    assert r.returncode == EXIT_NO_STORE
    assert "ok:" not in r.stdout
    assert not (tmp_path / "eventvault-dta").exists()


@pytest.mark.parametrize("args", [["init"], ["append", "--type", "a.b"]])
def test_writing_commands_create_the_store(tmp_path: Path, args: list[str]) -> None:
    assert ev(tmp_path, *args).returncode == 0
    assert (tmp_path / "eventvault-data" / "eventvault.json").is_file()
    r = ev(tmp_path, "verify")
    assert r.returncode == 0, r.stderr


def test_verify_against_a_missing_store_fails(tmp_path: Path) -> None:
    assert ev(tmp_path, "init").returncode == 0
    (tmp_path / "other.toml").write_text('[store.file]\npath = "./nothing-here"\n')
    r = ev(tmp_path, "verify", "--against", "other.toml")
    assert r.returncode == EXIT_NO_STORE, r.stderr
    assert not (tmp_path / "nothing-here").exists()


def test_copy_source_must_exist_destination_may_be_created(tmp_path: Path) -> None:
    (tmp_path / "src.toml").write_text('[store.file]\npath = "./src"\n')
    (tmp_path / "dst.toml").write_text('[store.file]\npath = "./dst"\n')
    r = ev(tmp_path, "copy", "--from", "src.toml", "--to", "dst.toml")
    assert r.returncode == EXIT_NO_STORE, r.stderr
    assert not (tmp_path / "src").exists()
    assert ev(tmp_path, "--config", "src.toml", "append", "--type", "a.b").returncode == 0
    r = ev(tmp_path, "copy", "--from", "src.toml", "--to", "dst.toml")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "dst" / "eventvault.json").is_file()


def _schema_exists(dsn: str, schema: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (schema,)
        ).fetchone()
    return row is not None


def test_reading_postgres_does_not_create_the_schema(tmp_path: Path, postgres_dsn: str) -> None:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    env = clean_env(
        EVENTVAULT_BACKEND="postgres",
        EVENTVAULT_POSTGRES_DSN=postgres_dsn,
        EVENTVAULT_POSTGRES_SCHEMA=schema,
    )
    try:
        for args in (["stats"], ["verify"], ["query"]):
            r = ev(tmp_path, *args, env=env)
            assert r.returncode == EXIT_NO_STORE, (args, r.stderr)
            assert f"no store at PostgreSQL schema {schema!r}" in r.stderr
            assert not _schema_exists(postgres_dsn, schema)
        assert ev(tmp_path, "init", env=env).returncode == 0
        assert _schema_exists(postgres_dsn, schema)
        r = ev(tmp_path, "stats", env=env)
        assert r.returncode == 0, r.stderr
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_postgres_without_a_dsn_is_a_config_error(tmp_path: Path) -> None:
    r = ev(tmp_path, "stats", env=clean_env(EVENTVAULT_BACKEND="postgres"))
    assert r.returncode == 3, r.stderr
    assert "store.postgres.dsn" in r.stderr
    assert "EVENTVAULT_POSTGRES_DSN" in r.stderr


def test_postgres_with_an_invalid_dsn_is_a_config_error(tmp_path: Path) -> None:
    env = clean_env(EVENTVAULT_BACKEND="postgres", EVENTVAULT_POSTGRES_DSN="host=x port=")
    env["EVENTVAULT_POSTGRES_DSN"] = "not a dsn = = ="
    r = ev(tmp_path, "stats", env=env)
    assert r.returncode == 3, r.stderr
    assert "store.postgres.dsn" in r.stderr
