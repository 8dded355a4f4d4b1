"""The file store's Merkle tree on a real file system, with real processes: writers
appending at once, a writer killed mid-stream, a deleted or damaged tree file,
stores made before the tree (the golden store), retention."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from eventvault import NewEvent, Query
from eventvault.backends.file import FileEventStore
from eventvault.config import RetentionConfig, RetentionRule
from eventvault.errors import ValidationError
from eventvault.integrity.chain import event_leaf_hash
from eventvault.retention import resolve_policy
from eventvault.testing._rfc9162 import mth, path
from eventvault.tlog import MemoryHashStore, MerkleTree, stored_hash_count

WRITER = [sys.executable, str(Path(__file__).with_name("writer.py"))]
DATA = Path(__file__).resolve().parent.parent / "data"


def leaves_of(store: FileEventStore) -> list[bytes]:
    return [event_leaf_hash(e) for e in store.iter(Query(limit=5000))]


def assert_tree_whole(store: FileEventStore) -> None:
    """The tree covers every event, its root is the RFC root of them, verify agrees."""
    leaves = leaves_of(store)
    state = store.log.state()
    assert state.base == 0
    assert state.size == len(leaves) == store.head()
    assert store.log.root() == mth(leaves)
    result = store.verify()
    assert result.ok, result.reason
    assert result.tree_size == len(leaves)


def test_two_writer_processes_build_one_tree(tmp_path: Path) -> None:
    store = tmp_path / "store"
    FileEventStore(store).close()
    procs = [
        subprocess.Popen([*WRITER, str(store), str(tmp_path / f"ack{i}"), "300", str(i)])
        for i in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    with FileEventStore(store, segment_max_bytes=16384) as s:
        assert s.head() >= 600
        assert_tree_whole(s)
        assert len(list((store / "segments").iterdir())) > 1  # rolls happened meanwhile


def test_a_reader_process_follows_the_tree(tmp_path: Path) -> None:
    path_ = tmp_path / "store"
    with FileEventStore(path_) as reader:
        assert reader.log.state().size == 0
        subprocess.run(
            [*WRITER, str(path_), str(tmp_path / "ack"), "50", "3"], check=True, timeout=120
        )
        assert reader.log.state().size == reader.head() >= 50
        assert reader.log.root() == mth(leaves_of(reader))


def test_a_writer_killed_mid_stream_leaves_a_tree_that_catches_up(tmp_path: Path) -> None:
    store = tmp_path / "store"
    FileEventStore(store).close()
    proc = subprocess.Popen([*WRITER, str(store), str(tmp_path / "ack"), "-1", "7"])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.2)
            with FileEventStore(store, read_only=True) as r:
                if r.head() >= 300:
                    break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    # Simulate the lost page cache of an unsynced tree too: cut its last leaves.
    tree_file = store / "tree.hashes"
    with FileEventStore(store, read_only=True) as r:
        head = r.head()
    os.truncate(tree_file, stored_hash_count(head - 37) * 32 + 5)  # (and a torn record)
    with FileEventStore(store, segment_max_bytes=16384) as s:
        assert_tree_whole(s)
        s.append(NewEvent(type="after.crash"))
        assert_tree_whole(s)


def test_a_deleted_tree_file_is_rebuilt_on_open(tmp_path: Path) -> None:
    with FileEventStore(tmp_path / "s", segment_max_bytes=4096) as s:
        for i in range(40):
            s.append([NewEvent(type="t", data={"i": i, "k": k}) for k in range(i % 4 + 1)])
        root, size = s.log.root(), s.log.state().size
    (tmp_path / "s" / "tree.hashes").unlink()
    with FileEventStore(tmp_path / "s", read_only=True) as r:
        assert r.log.state().size == 0  # read-only: nothing rebuilt, nothing written
    assert not (tmp_path / "s" / "tree.hashes").exists()
    with FileEventStore(tmp_path / "s") as s:
        assert (s.log.state().size, s.log.root()) == (size, root)
        assert_tree_whole(s)
        assert s.stats().details["tree"] == {"size": size, "base": 0, "behind": 0}


def test_a_garbage_tail_is_rebuilt_on_open(tmp_path: Path) -> None:
    with FileEventStore(tmp_path / "s") as s:
        s.append([NewEvent(type="t", data={"i": i}) for i in range(20)])
        root = s.log.root()
    tree_file = tmp_path / "s" / "tree.hashes"
    data = bytearray(tree_file.read_bytes())
    data[-3 * 32 :] = bytes(3 * 32)  # an unsynced tail that came back as zeros
    tree_file.write_bytes(bytes(data))
    with FileEventStore(tmp_path / "s") as s:
        assert s.log.root() == root
        assert not s.notices
        assert_tree_whole(s)


def test_an_append_reaches_the_tree_of_another_store_object(tmp_path: Path) -> None:
    a = FileEventStore(tmp_path / "s")
    b = FileEventStore(tmp_path / "s")
    try:
        a.append(NewEvent(type="a"))
        b.append(NewEvent(type="b"))
        a.append(NewEvent(type="c"))
        for s in (a, b):
            assert s.log.state().size == 3
            assert s.log.root() == mth(leaves_of(s))
    finally:
        a.close()
        b.close()


def test_the_tree_ahead_is_cut_only_without_fsync_always(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """fsync="never": a crash can lose events whose leaves' page reached the disk."""
    with FileEventStore(tmp_path / "s", fsync="never") as s:
        for i in range(5):
            s.append(NewEvent(type="t", data={"i": i}))
    seg = next((tmp_path / "s" / "segments").iterdir())
    lines = seg.read_bytes().splitlines(keepends=True)
    seg.write_bytes(b"".join(lines[:-2]))  # the OS lost the last two batches
    with caplog.at_level(logging.WARNING), FileEventStore(tmp_path / "s", fsync="never") as s:
        assert s.log.state().size == 3 == s.head()
        assert any("cut back to 3 leaves" in n for n in s.notices)
        assert (tmp_path / "s" / "tree.cut-5.hashes").stat().st_size > 0
        s.append(NewEvent(type="t"))
        assert_tree_whole(s)
    assert "cut back" in caplog.text


def test_checkpoints_are_kept_largest_last(tmp_path: Path) -> None:
    from eventvault.tlog import NoteSigner

    signer = NoteSigner.generate("eventvault.test/file")
    with FileEventStore(tmp_path / "s") as s:
        s.append([NewEvent(type="t") for _ in range(3)])
        small = s.log.checkpoint(signer, save=True)
        s.append(NewEvent(type="t"))
        big = s.log.checkpoint(signer, save=True)
        s.backend.save_checkpoint(2, small)  # smaller than the latest: not kept
        assert s.log.latest_checkpoint() == big
    with FileEventStore(tmp_path / "s", read_only=True) as r:
        assert r.log.latest_checkpoint() == big
    log_lines = (tmp_path / "s" / "checkpoints" / "checkpoints.log").read_text().splitlines()
    assert len(log_lines) == 2


# -- stores made before the tree -----------------------------------------------------------


@pytest.fixture
def golden(tmp_path: Path) -> Path:
    dst = tmp_path / "golden"
    shutil.copytree(DATA / "file_store_v1", dst)
    for p in [dst, *dst.rglob("*")]:
        os.chmod(p, 0o700 if p.is_dir() else 0o600)
    assert not (dst / "tree.hashes").exists()
    return dst


def test_the_golden_store_read_only_gets_no_tree(golden: Path) -> None:
    with FileEventStore(golden, read_only=True) as r:
        assert r.log.state().size == 0
        assert r.verify().ok
    assert not (golden / "tree.hashes").exists()
    assert not (golden / "tree.json").exists()


def test_the_golden_store_is_upgraded_on_open(
    golden: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, "eventvault.file"), FileEventStore(golden) as s:
        assert "built the Merkle tree: 12 leaves added" in caplog.text
        assert_tree_whole(s)
        leaves = leaves_of(s)
        for i, e in enumerate(s.iter()):
            p = s.log.inclusion_proof(e.id)
            assert list(p.audit_path) == path(i, leaves)
            p.verify(root_hash=mth(leaves), leaf_hash=event_leaf_hash(e))
        assert s.backend.build_tree(None) == 0
        s.append(NewEvent(type="after.upgrade"))
        assert_tree_whole(s)


def test_a_stopped_build_resumes_with_progress(golden: Path) -> None:
    with FileEventStore(golden) as s:
        root = s.log.root()
    tree_file = golden / "tree.hashes"
    os.truncate(tree_file, stored_hash_count(5) * 32)  # killed after 5 leaves
    seen: list[tuple[int, int | None]] = []
    # (opened by hand, as `eventvault upgrade` would: the writer's open already builds)
    with FileEventStore(golden, read_only=True) as r:
        assert r.log.state().size == 5
    os.truncate(tree_file, stored_hash_count(5) * 32)
    with FileEventStore(golden) as s:
        assert s.log.root() == root  # the open resumed it
        os.truncate(tree_file, stored_hash_count(7) * 32)
        assert s.backend.build_tree(lambda done, total: seen.append((done, total))) == 5
        assert seen[0] == (0, 5)
        assert seen[-1] == (5, 5)
        assert s.log.root() == root


def _apply_retention(s: FileEventStore) -> None:
    policy = resolve_policy(RetentionConfig(rules=[RetentionRule(types=["noise.*"], max_count=3)]))
    assert policy is not None
    last = list(s.iter(Query(limit=5000)))[-1]
    s.apply_retention(policy=policy, now=last.recorded_at + timedelta(seconds=1))


def test_a_store_upgraded_after_retention_starts_its_tree_after_the_last_hole(
    tmp_path: Path,
) -> None:
    p = tmp_path / "s"
    with FileEventStore(p, segment_max_bytes=2048) as s:
        s.append([NewEvent(type="keep.early", data={"i": i}) for i in range(5)])
        s.append([NewEvent(type="noise.tick", data={"i": i}) for i in range(40)])
        for i in range(30):
            s.append(NewEvent(type="keep.me", data={"i": i}))
        _apply_retention(s)
        positions = [e.position for e in s.iter(Query(limit=5000))]
        head = s.head()
    missing = set(range(1, head + 1)) - set(positions)
    assert missing, "retention left a hole"
    # Make it a store from before the tree.
    (p / "tree.hashes").unlink()
    (p / "tree.json").unlink()
    with FileEventStore(p, segment_max_bytes=2048) as s:
        state = s.log.state()
        assert state.base == max(missing)
        assert state.size == head - state.base
        events = list(s.iter(Query(limit=5000)))
        tail = [e for e in events if e.position > state.base]
        assert s.log.root() == mth([event_leaf_hash(e) for e in tail])
        s.log.inclusion_proof(tail[0].id).verify(leaf_hash=event_leaf_hash(tail[0]))
        with pytest.raises(ValidationError, match="before the tree began"):
            s.log.inclusion_proof(events[0].id)
        result = s.verify()
        assert result.ok, result.reason


def test_retention_never_touches_the_tree(tmp_path: Path) -> None:
    p = tmp_path / "s"
    with FileEventStore(p, segment_max_bytes=2048) as s:
        s.append([NewEvent(type="noise.tick", data={"i": i}) for i in range(40)])
        for i in range(30):
            s.append(NewEvent(type="keep.me", data={"i": i}))
        before = (p / "tree.hashes").read_bytes()
        _apply_retention(s)
        after = (p / "tree.hashes").read_bytes()
        assert after.startswith(before)  # only grown (by the receipts)
        result = s.verify()
        assert result.ok, result.reason
        assert result.tree_size == s.head()


def test_retention_catches_a_lagging_tree_up_first(tmp_path: Path) -> None:
    """Leaves of removed events can no longer be computed: an older writer (one that
    keeps no tree) appended events; retention must add their leaves before removing."""
    p = tmp_path / "s"
    with FileEventStore(p, segment_max_bytes=2048) as s:
        s.append([NewEvent(type="noise.tick", data={"i": i}) for i in range(40)])
        for i in range(30):
            s.append(NewEvent(type="keep.me", data={"i": i}))
        full = MerkleTree(MemoryHashStore())
        full.append_leaf_hashes(leaves_of(s))
        os.truncate(p / "tree.hashes", stored_hash_count(10) * 32)  # the tree lags
        _apply_retention(s)
        assert s.log.root(70) == full.root()
        result = s.verify()
        assert result.ok, result.reason


def test_a_failed_write_adds_no_leaf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A group's leaves join the tree only after its events are written: when the
    write fails, the tree stays as it was (and the next append extends it)."""
    import errno

    from eventvault.backends.file import writing
    from eventvault.errors import EventVaultError

    group = 128
    with FileEventStore(tmp_path / "s") as s:
        s.append([NewEvent(type="t", data={"i": i}) for i in range(group * 3)])
        assert_tree_whole(s)
        real_write = os.write

        def full(fd: int, data: bytes | memoryview) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(writing.os, "write", full)
        with pytest.raises(EventVaultError):
            s.append([NewEvent(type="lost", data={"i": i}) for i in range(group * 2)])
        monkeypatch.setattr(writing.os, "write", real_write)
        assert s.log.state().size == group * 3 == s.head()
        s.append([NewEvent(type="t2", data={"i": i}) for i in range(group)])
        assert_tree_whole(s)
    with FileEventStore(tmp_path / "s") as s:
        assert_tree_whole(s)
