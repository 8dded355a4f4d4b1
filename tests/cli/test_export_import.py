"""``eventvault export`` / ``import`` round-trip a store exactly; ``verify --against``
shows times as ISO 8601 (issue 17 item 7)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from eventvault import NewEvent, open_store
from eventvault.export import check_export, import_store

from .helpers import ev


def _cfg(tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(f'[store.file]\npath = "./{name}"\n')
    return path


@pytest.fixture
def source(tmp_path: Path) -> Path:
    cfg = _cfg(tmp_path, "src")
    with open_store(cfg) as store:
        for i in range(30):
            store.append(
                [
                    NewEvent(
                        type=f"t.{i % 3}",
                        stream=f"s{i % 4}",
                        actor="agent:x" if i % 2 else None,
                        correlation_id=f"run-{i % 5}",
                        data={"i": i, "text": "é\u2028<b>[red]x[/red]"},
                        metadata={"m": [1, 2.5, None]},
                    )
                    for _ in range(10)
                ]
            )
    return cfg


def test_export_then_import_rebuilds_the_same_store(tmp_path: Path, source: Path) -> None:
    r = ev(tmp_path, "--config", "src.toml", "export", "--file", "backup.jsonl")
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "backup.jsonl.partial").exists()
    lines = (tmp_path / "backup.jsonl").read_text().split("\n")[:-1]
    assert len(lines) == 302  # header, 300 events, end line
    _cfg(tmp_path, "dst")
    r = ev(tmp_path, "--config", "dst.toml", "import", "--file", "backup.jsonl")
    assert r.returncode == 0, r.stderr
    assert "imported 300 events" in r.stdout
    assert "verified" in r.stdout
    r = ev(tmp_path, "--config", "src.toml", "verify", "--against", "dst.toml")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("identical: 300 events")
    with open_store(source) as a, open_store(tmp_path / "dst.toml") as b:
        assert list(a.iter()) == list(b.iter())  # every field, positions included
    # Re-running the import finds everything there and stores nothing twice.
    r = ev(tmp_path, "--config", "dst.toml", "import", "--file", "backup.jsonl")
    assert r.returncode == 0, r.stderr
    assert "imported 0 events (300 were already imported)" in r.stdout


def test_export_to_stdout_and_import_from_stdin(tmp_path: Path, source: Path) -> None:
    r = ev(tmp_path, "--config", "src.toml", "export")
    assert r.returncode == 0
    _cfg(tmp_path, "dst")
    r = ev(tmp_path, "--config", "dst.toml", "import", "--file", "-", input=r.stdout)
    assert r.returncode == 0, r.stderr
    assert ev(tmp_path, "--config", "src.toml", "verify", "--against", "dst.toml").returncode == 0


def _export(tmp_path: Path) -> list[str]:
    assert ev(tmp_path, "--config", "src.toml", "export", "--file", "b.jsonl").returncode == 0
    return (tmp_path / "b.jsonl").read_text().split("\n")[:-1]


@pytest.mark.parametrize(
    ("damage", "code", "message"),
    [
        (lambda ls: ls[:-1], 2, "cut short"),
        (lambda ls: ls[:100] + ls[-1:], 2, "the end line says 300 events"),
        (lambda ls: ls[1:], 2, "not an eventvault export"),
        (lambda ls: [*ls[:50], re.sub('"i":[0-9]+', '"i":999', ls[50]), *ls[51:]], 6, "altered"),
        (lambda ls: [*ls[:50], ls[50].replace('"type":"t.', '"type":"bad type '), *ls[51:]],
         2, "line 51"),
    ],
)  # fmt: skip
def test_a_damaged_export_writes_nothing(
    tmp_path: Path, source: Path, damage: object, code: int, message: str
) -> None:
    lines = _export(tmp_path)
    (tmp_path / "bad.jsonl").write_text("\n".join(damage(lines)) + "\n")  # type: ignore[operator]
    _cfg(tmp_path, "dst")
    r = ev(tmp_path, "--config", "dst.toml", "import", "--file", "bad.jsonl")
    assert r.returncode == code, r.stderr
    assert message in r.stderr
    assert not (tmp_path / "dst").exists()  # not even an empty store


def test_an_interrupted_import_continues_where_it_stopped(tmp_path: Path, source: Path) -> None:
    _export(tmp_path)
    dst = _cfg(tmp_path, "dst")
    calls = 0

    def stop_after_one_batch(done: int, total: int | None) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KeyboardInterrupt

    with open_store(dst) as store, open(tmp_path / "b.jsonl", "rb") as f:
        with pytest.raises(KeyboardInterrupt):
            import_store(store, f, batch=120, progress=stop_after_one_batch)
        assert store.stats().events == 120
    r = ev(tmp_path, "--config", "dst.toml", "import", "--file", "b.jsonl", "--format", "json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert (report["imported"], report["already_stored"], report["ok"]) == (180, 120, True)
    assert ev(tmp_path, "--config", "src.toml", "verify", "--against", "dst.toml").returncode == 0


def test_import_refuses_a_store_holding_other_events(tmp_path: Path, source: Path) -> None:
    _export(tmp_path)
    _cfg(tmp_path, "dst")
    assert ev(tmp_path, "--config", "dst.toml", "append", "--type", "other.x").returncode == 0
    r = ev(tmp_path, "--config", "dst.toml", "import", "--file", "b.jsonl")
    assert r.returncode == 4, r.stderr
    assert "import into an empty store" in r.stderr
    with open(tmp_path / "b.jsonl", "rb") as f, open_store(tmp_path / "dst.toml") as store:
        assert store.stats().events == 1
        with pytest.raises(Exception, match="empty store"):
            check_export(f, "b.jsonl", store)


def test_a_filtered_export_is_rechained_on_import(tmp_path: Path, source: Path) -> None:
    r = ev(tmp_path, "--config", "src.toml", "export", "--type", "t.1", "--file", "s.jsonl")
    assert r.returncode == 0, r.stderr
    _cfg(tmp_path, "dst")
    r = ev(tmp_path, "--config", "dst.toml", "import", "--file", "s.jsonl")
    assert r.returncode == 0, r.stderr
    assert "imported 100 events" in r.stdout
    assert ev(tmp_path, "--config", "dst.toml", "verify").returncode == 0


def test_query_help_no_longer_calls_jsonl_a_backup(tmp_path: Path) -> None:
    r = ev(tmp_path, "query", "--help")
    assert "> backup.jsonl" not in r.stdout
    assert "eventvault export" in r.stdout


def test_verify_against_prints_times_as_iso_8601(tmp_path: Path) -> None:
    for name, when in (("a", "2026-01-01T10:00:00Z"), ("b", "2026-01-02T10:00:00Z")):
        _cfg(tmp_path, name)
        r = ev(
            tmp_path,
            "--config",
            f"{name}.toml",
            "append",
            "--type",
            "x.y",
            "--id",
            "0190d2a4-0000-7000-8000-000000000001",
            "--occurred-at",
            when,
        )
        assert r.returncode == 0, r.stderr
    r = ev(tmp_path, "--config", "a.toml", "verify", "--against", "b.toml")
    assert r.returncode == 6
    assert "datetime(" not in r.stdout
    # (recorded_at differs first: the stores' clocks)
    assert re.search(r"recorded_at: \d{4}-\d\d-\d\dT[\d:.]+Z vs \d{4}-\d\d-\d\dT", r.stdout)


def test_an_export_imports_into_postgres_with_the_same_chain(
    tmp_path: Path, source: Path, postgres_dsn: str
) -> None:
    import uuid

    from eventvault.backends.postgres.store import drop_schema

    schema = f"t_{uuid.uuid4().hex[:12]}"
    (tmp_path / "pg.toml").write_text(
        f'[store]\nbackend = "postgres"\n[store.postgres]\ndsn = "{postgres_dsn}"\n'
        f'schema = "{schema}"\n'
    )
    _export(tmp_path)
    try:
        r = ev(tmp_path, "--config", "pg.toml", "import", "--file", "b.jsonl")
        assert r.returncode == 0, r.stderr
        r = ev(tmp_path, "--config", "src.toml", "verify", "--against", "pg.toml")
        assert r.returncode == 0, r.stdout + r.stderr
        assert r.stdout.startswith("identical: 300 events")
    finally:
        drop_schema(postgres_dsn, schema)
