"""A store written by an earlier eventvault must still open, read and verify.

tests/data/file_store_v1/ (hash-chained events, before the Merkle tree) and
file_store_v2/ (leaf hashes and the tree) were written by scripts/make_golden_store.py
with the file backend of their commits (12 events, 4 streams, one sealed segment
with its index, one active segment); tests/data/file_store_v<N>.json lists what each
holds. Whatever the format becomes, these stores must keep working — read as they
are, or upgraded in place — and keep verifying. Never regenerate one to make this
test pass.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from eventvault import NewEvent, open_store

DATA = Path(__file__).resolve().parent.parent / "data"
VERSIONS = (1, 2)
MANIFESTS: dict[int, Any] = {
    v: json.loads((DATA / f"file_store_v{v}.json").read_text("utf-8")) for v in VERSIONS
}


@pytest.fixture(params=VERSIONS, ids=[f"v{v}" for v in VERSIONS])
def version(request: pytest.FixtureRequest) -> int:
    return int(request.param)


@pytest.fixture
def manifest(version: int) -> Any:
    return MANIFESTS[version]


@pytest.fixture
def copy(tmp_path: Path, version: int) -> Path:
    # Opening takes the writer lock and may upgrade: never touch the checked-in files.
    dst = tmp_path / "store"
    shutil.copytree(DATA / f"file_store_v{version}", dst)
    for p in [dst, *dst.rglob("*")]:
        os.chmod(p, 0o700 if p.is_dir() else 0o600)  # git checks files out 0644
    return dst


def _config(path: Path) -> dict[str, Any]:
    return {"store": {"backend": "file", "file": {"path": str(path)}}}


def test_the_golden_store_has_what_it_should(version: int, manifest: Any) -> None:
    segments = sorted((DATA / f"file_store_v{version}" / "segments").iterdir())
    assert len(segments) >= 2, "one sealed segment and the active one"
    assert len(manifest["events"]) == 12
    assert len({e["stream"] for e in manifest["events"]}) == 4
    meta = json.loads((DATA / f"file_store_v{version}" / "eventvault.json").read_text())
    assert meta["version"] == version


def test_it_opens_reads_and_verifies(copy: Path, version: int, manifest: Any) -> None:
    with open_store(_config(copy)) as store:
        assert store.hash_format == version  # (the store version is the hash format)
        result = store.verify()
        assert result.ok, result.reason
        assert result.checked == 12
        assert result.head_hash == manifest["head_hash"]
        assert [e.to_dict() for e in store.iter()] == manifest["events"]
        stats = store.stats()
        assert stats.events == 12


def test_it_takes_new_events_and_still_verifies(copy: Path, manifest: Any) -> None:
    with open_store(_config(copy)) as store:
        store.append([NewEvent(type="task.started", stream="run-1", data={"after": "upgrade"})])
    with open_store(_config(copy)) as store:
        result = store.verify()
        assert result.ok, result.reason
        assert result.checked == 13
        events = list(store.iter())
        assert [e.to_dict() for e in events[:12]] == manifest["events"]
        assert events[12].stream_revision == 3  # run-1 had 3 events


def test_the_cli_verifies_it(copy: Path) -> None:
    env = {**os.environ, "EVENTVAULT_BACKEND": "file", "EVENTVAULT_FILE_PATH": str(copy)}
    env.pop("EVENTVAULT_CONFIG", None)
    run = subprocess.run(
        [sys.executable, "-m", "eventvault.cli", "verify", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=copy.parent,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["ok"] is True
    assert out["checked"] == 12


def test_a_changed_byte_in_it_is_still_found(copy: Path) -> None:
    # Future readers must keep *detecting* tampering in old stores, not just read them.
    seg = sorted((copy / "segments").iterdir())[0]
    seg.write_bytes(seg.read_bytes().replace(b'"i":2,', b'"i":3,', 1))
    with open_store(_config(copy)) as store:
        result = store.verify()
        assert not result.ok
        assert result.first_bad_position == 3
