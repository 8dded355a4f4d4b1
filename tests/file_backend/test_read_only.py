"""Issue 17.3: audits of a read-only copy (a backup, a read-only mount, another user's
store). Readers open it read-only — automatically, or with ``--read-only`` /
``read_only = true`` — write nothing, and say when a recovery could not be written;
writes raise :class:`ReadOnlyStoreError`.

Root ignores permission bits, so the readers run with CAP_DAC_OVERRIDE dropped
(``setpriv``) when the tests run as root: the permission bits then bind them as
they bind any user. The read-only *mount* case uses a private mount namespace
(``unshare``) with a read-only bind mount (EROFS).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventvault import NewEvent, Query
from eventvault.backends.file import FileEventStore
from eventvault.errors import ReadOnlyStoreError

EXE = [sys.executable, "-m", "eventvault.cli"]
TORN = b'{"position":99,"stream_revision":3,"recorded_at":"2026-'


def _unprivileged() -> list[str]:
    """A command prefix under which permission bits bind (root: drop DAC override)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permission bits cannot bind a reader")
    caps = "-dac_override,-dac_read_search,-fowner"
    return ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]


def run(cwd: Path, *args: str, prefix: list[str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTVAULT_")}
    env["EVENTVAULT_FILE_PATH"] = str(cwd / "store")
    return subprocess.run(
        [*(prefix or []), *EXE, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def fill(path: Path, *, torn: bool = False) -> None:
    with FileEventStore(path, segment_max_bytes=4096) as s:
        for b in range(6):  # several segments: sealed ones and the active one
            s.append([NewEvent(type="t.x", stream="s", data={"b": b, "v": "a" * 200})] * 1)
            s.append([NewEvent(type="t.y", data={"b": b}) for _ in range(3)])
    if torn:
        active = sorted((path / "segments").glob("*.jsonl"))[-1]
        with active.open("ab") as fh:
            fh.write(TORN)


def snapshot(path: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(path.rglob("*"))
    }


def make_read_only(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        mode = p.stat().st_mode
        p.chmod(stat.S_IMODE(mode) & ~0o222)


@pytest.fixture
def restore_modes(tmp_path: Path) -> Iterator[None]:
    yield
    for p in [tmp_path, *tmp_path.rglob("*")]:
        if p.is_dir():
            p.chmod(0o755)


READERS = [
    ["query", "--format", "json", "--limit", "1000"],
    ["verify"],
    ["tail", "-n", "3"],
    ["stats", "--format", "json"],
]


@pytest.mark.usefixtures("restore_modes")
@pytest.mark.parametrize("argv", READERS, ids=lambda a: a[0])
def test_readers_work_on_a_store_they_cannot_write(tmp_path: Path, argv: list[str]) -> None:
    fill(tmp_path / "store")
    make_read_only(tmp_path / "store")
    before = snapshot(tmp_path / "store")
    r = run(tmp_path, *argv, prefix=_unprivileged())
    assert r.returncode == 0, r.stderr
    assert "read-only" in r.stderr  # it says how it opened the store
    assert snapshot(tmp_path / "store") == before  # nothing written, not even a lock file
    if argv[0] == "query":
        assert len(json.loads(r.stdout)) == 24
    if argv[0] == "verify":
        assert "ok: 24 events verified" in r.stdout


@pytest.mark.usefixtures("restore_modes")
def test_a_needed_recovery_that_cannot_be_written_is_reported(tmp_path: Path) -> None:
    fill(tmp_path / "store", torn=True)
    make_read_only(tmp_path / "store")
    before = snapshot(tmp_path / "store")
    r = run(tmp_path, "verify", prefix=_unprivileged())
    assert r.returncode == 0, r.stderr
    assert "ok: 24 events verified" in r.stdout
    assert f"{len(TORN)} bytes of an uncommitted (torn) write" in r.stderr
    assert "not cut" in r.stderr
    assert snapshot(tmp_path / "store") == before
    r = run(tmp_path, "stats", "--format", "json", prefix=_unprivileged())
    details = json.loads(r.stdout)["details"]
    assert details["read_only"] is True
    assert details["unrecovered"]["torn_bytes"] == len(TORN)


@pytest.mark.usefixtures("restore_modes")
def test_append_to_a_store_it_cannot_write_is_a_typed_error(tmp_path: Path) -> None:
    fill(tmp_path / "store")
    make_read_only(tmp_path / "store")
    r = run(tmp_path, "append", "--type", "t.z", prefix=_unprivileged())
    assert r.returncode == 5, r.stderr
    assert "read-only" in r.stderr
    assert "internal error" not in r.stderr


def test_read_only_flag_writes_nothing_on_a_writable_store(tmp_path: Path) -> None:
    store = tmp_path / "store"
    fill(store, torn=True)
    (store / "lock").unlink()
    before = snapshot(store)
    for argv in READERS:
        r = run(tmp_path, *argv, "--read-only")
        assert r.returncode == 0, (argv, r.stderr)
    assert snapshot(store) == before  # the torn tail is still there; no lock file made
    r = run(tmp_path, "verify", "--read-only")
    assert "not cut" in r.stderr
    # without the flag, the reader recovers the store as before
    assert run(tmp_path, "verify").returncode == 0
    assert snapshot(store) != before


def test_library_read_only_store_refuses_every_write(tmp_path: Path) -> None:
    fill(tmp_path / "store")
    with FileEventStore(tmp_path / "store", read_only=True) as s:
        assert s.read_only
        assert len(list(s.iter(Query(limit=5)))) == 24
        with pytest.raises(ReadOnlyStoreError, match="read-only"):
            s.append(NewEvent(type="t.z"))
        with pytest.raises(ReadOnlyStoreError):
            s.reindex()
        assert s.head() == 24
    with pytest.raises(ReadOnlyStoreError, match="no store"):
        FileEventStore(tmp_path / "nothing-here", read_only=True)
    assert not (tmp_path / "nothing-here").exists()


def test_config_read_only(tmp_path: Path) -> None:
    from eventvault import open_store

    fill(tmp_path / "store")
    cfg = {"store": {"file": {"path": str(tmp_path / "store"), "read_only": True}}}
    with open_store(cfg) as s:
        assert isinstance(s, FileEventStore)
        assert s.read_only
        with pytest.raises(ReadOnlyStoreError):
            s.append(NewEvent(type="t.z"))


def test_readers_work_on_a_read_only_mount(tmp_path: Path) -> None:
    """EROFS, as on a read-only mount: a private mount namespace, a read-only bind."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    probe = subprocess.run(["unshare", "-rm", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"no user/mount namespaces here: {probe.stderr!r}")
    store = tmp_path / "store"
    fill(store, torn=True)
    before = snapshot(store)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTVAULT_")}
    env["EVENTVAULT_FILE_PATH"] = str(store)
    cli = " ".join(EXE)
    script = (
        f"mount --bind {store} {store} && mount -o remount,bind,ro {store} && "
        f"{cli} verify && {cli} query --format jsonl --limit 1000 | wc -l && "
        f"{{ {cli} append --type t.z; echo append-exit=$?; }}"
    )
    r = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "ok: 24 events verified" in r.stdout
    assert "\n24\n" in r.stdout
    assert "append-exit=5" in r.stdout
    assert "not cut" in r.stderr
    assert snapshot(store) == before


# -- read-only on the segment-set design (issue 15): creation, torn batches, other
# processes' rolls and retention ---------------------------------------------------


def test_read_only_never_makes_a_store_nor_takes_the_creation_lock(tmp_path: Path) -> None:
    """Creation holds a flock on the directory; a read-only open must not wait for
    it (nor take it): a directory without eventvault.json is simply no store."""
    import threading

    from eventvault.backends.file.fsio import dir_lock

    half_made = tmp_path / "half"
    (half_made / "segments").mkdir(parents=True)  # a creation that died half-way
    before = snapshot(half_made)
    outcome: list[BaseException | None] = []

    def open_read_only() -> None:
        try:
            FileEventStore(half_made, read_only=True).close()
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    with dir_lock(half_made):  # a creator is at work (a separate descriptor: it binds us)
        opener = threading.Thread(target=open_read_only, daemon=True)
        opener.start()
        opener.join(timeout=10)
        assert not opener.is_alive(), "the read-only open waited for the creation lock"
    (exc,) = outcome
    assert isinstance(exc, ReadOnlyStoreError)
    assert "none is made" in str(exc)
    assert snapshot(half_made) == before  # no eventvault.json, index/ or lock made


def test_a_torn_checksummed_batch_is_reported_not_cut(tmp_path: Path) -> None:
    """A torn batch of the checksummed format (its marker on disk, zeros inside)
    is what a writer cuts; read-only, it is reported and left alone."""
    store = tmp_path / "store"
    fill(store)
    active = sorted((store / "segments").glob("*.jsonl"))[-1]
    data = bytearray(active.read_bytes())
    lines = data.split(b"\n")[:-1]
    start = len(data) - sum(len(line) + 1 for line in lines[-3:])  # the last batch (3 events)
    data[start + 10 : start + 40] = b"\0" * 30
    active.write_bytes(bytes(data))
    before = snapshot(store)
    with FileEventStore(store, read_only=True) as s:
        assert s.head() == 21  # the torn batch is not indexed
        assert s.stats().details["unrecovered"] == {
            "segment": active.name,
            "torn_bytes": len(data) - start,
            "at_offset": start,
        }
        assert any("not cut" in n and "after position 21" in n for n in s.notices)
        assert s.verify().ok
    assert snapshot(store) == before
    with FileEventStore(store) as s:  # a writer cuts it, as before
        (cut,) = s.stats().details["recovered"]
        assert cut["torn_batches"] == 1
        assert "read_only" not in s.stats().details
    assert active.stat().st_size == start


def test_a_tail_being_written_while_a_writer_holds_the_lock_is_not_reported(
    tmp_path: Path,
) -> None:
    from eventvault.backends.file.fsio import WriterLock

    store = tmp_path / "store"
    fill(store, torn=True)
    lock = WriterLock(store / "lock", 0o600)
    # A live writer holds the lock: the bytes past the last commit are its write.
    with lock.held(), FileEventStore(store, read_only=True) as s:
        assert s.notices == [f"{store}: opened read-only (as asked)"]
        assert s.stats().details["unrecovered"] is None
    lock.close()
    with FileEventStore(store, read_only=True) as s:  # nobody writing: torn, reported
        assert s.stats().details["unrecovered"]["torn_bytes"] == len(TORN)


def test_a_missing_index_is_rebuilt_in_memory_only(tmp_path: Path) -> None:
    store = tmp_path / "store"
    fill(store)
    for idx in (store / "index").glob("*.idx"):
        idx.unlink()
    before = snapshot(store)
    with FileEventStore(store, read_only=True) as s:
        assert len(list(s.iter(Query(limit=5)))) == 24
        assert len(list(s.iter(Query(types=["t.x"], reverse=True)))) == 6
        assert s.verify().ok
    assert snapshot(store) == before


def test_a_store_without_segment_directories_opens_read_only_as_empty(tmp_path: Path) -> None:
    store = tmp_path / "store"
    FileEventStore(store).close()
    (store / "segments").rmdir()
    (store / "index").rmdir()
    (store / "lock").unlink()
    before = snapshot(store)
    with FileEventStore(store, read_only=True) as s:
        assert s.head() == 0
        assert s.stats().events == 0
        assert s.read(Query(limit=5)).events == []
    assert snapshot(store) == before


def test_a_read_only_reader_follows_a_writer_through_rolls_and_retention(
    tmp_path: Path,
) -> None:
    from datetime import timedelta

    from eventvault.config import RetentionConfig, RetentionRule
    from eventvault.retention import RECEIPT_TYPE, resolve_policy

    store = tmp_path / "store"
    policy = resolve_policy(RetentionConfig(rules=[RetentionRule(types=["debug.*"], max_age="1h")]))
    assert policy is not None
    with FileEventStore(store, segment_max_bytes=4096) as writer:
        writer.append(NewEvent(type="task.done"))
        with FileEventStore(store, read_only=True) as reader:
            assert reader.head() == 1
            for i in range(30):  # several rolls while the reader holds its view
                kinds = ["debug.x", "debug.x", "task.done"]
                writer.append([NewEvent(type=kinds[k % 3], data={"i": i, "pad": "p" * 60})
                               for k in range(6)])  # fmt: skip
            assert len(list((store / "segments").glob("*.jsonl"))) > 3
            assert reader.head() == writer.head() == 181
            assert list(reader.iter(Query(limit=50))) == list(writer.iter(Query(limit=50)))
            newest = writer.read(Query(reverse=True, limit=1)).events[0].recorded_at
            writer.apply_retention(policy=policy, now=newest + timedelta(hours=2))
            kept = [e for e in writer.iter(Query(limit=500)) if e.type != RECEIPT_TYPE]
            assert [e for e in reader.iter(Query(limit=500)) if e.type != RECEIPT_TYPE] == kept
            assert reader.verify().ok
            with pytest.raises(ReadOnlyStoreError, match="apply retention"):
                reader.apply_retention(policy=policy, now=newest + timedelta(hours=2))
            assert reader.head() == writer.head()  # no receipt was appended
