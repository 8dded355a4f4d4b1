"""The append-only hash file: persistence, torn tails, readers, and a real kill -9."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from eventvault.errors import (
    CorruptionError,
    StoreClosedError,
    StoreUnavailableError,
    ValidationError,
)
from eventvault.tlog import FileHashStore, MerkleTree, stored_hash_count

from . import reference as ref

ENTRIES = [f"e{i}".encode() for i in range(200)]


def test_a_reopened_file_is_the_same_tree(tmp_path: Path) -> None:
    path = tmp_path / "t.hashes"
    with FileHashStore(path) as store:
        tree = MerkleTree(store)
        tree.extend(ENTRIES[:150])
        root, proof = tree.root(), tree.inclusion_proof(77)
    assert path.stat().st_size == 32 * stored_hash_count(150)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with FileHashStore(path) as store:
        tree = MerkleTree(store)
        assert tree.size == 150
        assert tree.root() == root == ref.mth(ENTRIES[:150])
        assert tree.inclusion_proof(77) == proof
        tree.extend(ENTRIES[150:])
        assert tree.root() == ref.mth(ENTRIES)


def test_reads_span_the_buffer_and_the_file(tmp_path: Path) -> None:
    # A tiny buffer: some hashes are on disk, the newest still in memory.
    store = FileHashStore(tmp_path / "t.hashes", fsync=False, buffer_bytes=5 * 32)
    tree = MerkleTree(store)
    for e in ENTRIES[:61]:
        tree.append(e)
    assert 0 < os.path.getsize(store.path) < 32 * store.hash_count
    memo = ref.Memo(ENTRIES[:61])
    for m in (0, 30, 59, 60):
        assert tree.inclusion_proof(m) == memo.path(m, 0, 61)
    assert tree.consistency_proof(33) == memo.subproof(33, 0, 61, True)
    store.close()
    store.close()  # closing twice is harmless


def test_a_torn_record_is_cut_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "t.hashes"
    with FileHashStore(path) as store:
        MerkleTree(store).extend(ENTRIES[:9])
    with path.open("ab") as f:
        f.write(b"\x07" * 13)  # the process died inside a record
    with FileHashStore(path) as store:
        assert store.recovered_bytes == 13
        assert path.stat().st_size == 32 * stored_hash_count(9)
        assert MerkleTree(store).root() == ref.mth(ENTRIES[:9])


def test_a_torn_leaf_is_cut_back_to_the_last_whole_leaf(tmp_path: Path) -> None:
    path = tmp_path / "t.hashes"
    with FileHashStore(path) as store:
        MerkleTree(store).extend(ENTRIES[:15])  # leaf 15 writes 5 hashes
    with path.open("ab") as f:
        f.write(bytes(32) * 3)  # only 3 of them made it
    with FileHashStore(path) as store:
        tree = MerkleTree(store)
        assert tree.repaired_hashes == 3
        assert tree.size == 15
        tree.append(ENTRIES[15])
        assert tree.root() == ref.mth(ENTRIES[:16])


def test_a_reader_follows_the_writer(tmp_path: Path) -> None:
    path = tmp_path / "t.hashes"
    writer = FileHashStore(path, fsync=False)
    wtree = MerkleTree(writer)
    wtree.extend(ENTRIES[:10])
    writer.flush()
    reader = FileHashStore(path, readonly=True)
    assert MerkleTree(reader).root() == wtree.root()
    wtree.extend(ENTRIES[10:20])
    writer.sync()
    assert reader.refresh() == stored_hash_count(20)
    assert MerkleTree(reader).root() == ref.mth(ENTRIES[:20])
    with pytest.raises(ValidationError, match="read-only"):
        reader.append_hashes(reader.hash_count, [bytes(32)])
    with pytest.raises(ValidationError, match="cannot truncate"):
        reader.truncate(0)
    reader.close()
    writer.close()


def test_truncate_is_durable(tmp_path: Path) -> None:
    path = tmp_path / "t.hashes"
    with FileHashStore(path) as store:
        tree = MerkleTree(store)
        tree.extend(ENTRIES[:100])
        tree.truncate(64)
        tree.extend(ENTRIES[64:70])  # in the buffer
        tree.truncate(66)  # cut inside the buffer only
    with FileHashStore(path) as store:
        assert MerkleTree(store).root() == ref.mth(ENTRIES[:66])
        with pytest.raises(ValidationError, match="cannot truncate"):
            store.truncate(store.hash_count + 1)


def test_misuse_and_failures_are_typed_errors(tmp_path: Path) -> None:
    store = FileHashStore(tmp_path / "t.hashes")
    with pytest.raises(ValidationError, match="end of the store"):
        store.append_hashes(1, [bytes(32)])
    with pytest.raises(ValidationError, match="32 bytes"):
        store.append_hashes(0, [b"short"])
    with pytest.raises(CorruptionError, match="only 0 are stored"):
        store.read_hashes([0])
    store.close()
    with pytest.raises(StoreClosedError):
        store.read_hashes([0])
    with pytest.raises(StoreClosedError):
        store.flush()
    with pytest.raises(StoreUnavailableError, match="opening the tree's hash file"):
        FileHashStore(tmp_path / "no" / "such" / "dir" / "t.hashes")
    # A file shorter than its size says (cut behind our back) is corruption on read.
    path = tmp_path / "cut.hashes"
    with FileHashStore(path) as s:
        MerkleTree(s).extend(ENTRIES[:8])
    s = FileHashStore(path, readonly=True)
    os.truncate(path, 32 * 4)
    with pytest.raises(CorruptionError):
        s.read_hashes([10, 11, 12])
    s.close()


CHILD = textwrap.dedent(
    """
    import sys
    from eventvault.tlog import FileHashStore, MerkleTree
    store = FileHashStore(sys.argv[1], fsync=True, buffer_bytes=1 << 16)
    tree = MerkleTree(store)
    n = tree.size
    while True:
        tree.extend(f"e{i}".encode() for i in range(n, n + 37))
        n += 37
        store.sync()
        print(n, flush=True)  # acknowledged: synced
    """
)


@pytest.mark.system
def test_kill_9_loses_no_synced_leaf(tmp_path: Path) -> None:
    path = tmp_path / "t.hashes"
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    acked = 0
    deadline = time.monotonic() + 30
    while acked < 3000 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acked = int(line)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert acked >= 3000, "the writer did not get going"
    with FileHashStore(path) as store:
        tree = MerkleTree(store)
        assert tree.size >= acked
        entries = [f"e{i}".encode() for i in range(tree.size)]
        memo = ref.Memo(entries)
        assert tree.root(acked) == memo.mth(0, acked)
        assert tree.root() == memo.mth(0, tree.size)


def test_a_reader_never_cuts_a_leaf_the_writer_is_still_writing(tmp_path: Path) -> None:
    path = tmp_path / "t.hashes"
    writer = FileHashStore(path, fsync=False, buffer_bytes=32)  # flushes every hash
    wtree = MerkleTree(writer)
    wtree.extend(ENTRIES[:15])
    # The writer is in the middle of leaf 15 (5 hashes): 2 of them are on disk.
    writer.append_hashes(writer.hash_count, [bytes(32), bytes(32)])
    reader = FileHashStore(path, readonly=True)
    rtree = MerkleTree(reader)
    assert rtree.size == 15
    assert rtree.repaired_hashes == 0
    assert rtree.root() == ref.mth(ENTRIES[:15])
    assert path.stat().st_size == 32 * (stored_hash_count(15) + 2)  # nothing cut
    writer.truncate(stored_hash_count(15))
    wtree.truncate(15)
    wtree.extend(ENTRIES[15:40])
    writer.flush()
    assert rtree.refresh() == 40
    assert rtree.root() == ref.mth(ENTRIES[:40])
    assert rtree.inclusion_proof(39) == ref.path(39, ENTRIES[:40])
    reader.close()
    writer.close()


def test_a_range_reads_like_the_same_indexes_listed(tmp_path: Path) -> None:
    """A ``range`` of flushed hashes is one pread; the answer is the listed one's, and a
    range reaching into the unflushed buffer or past the end is handled the same way."""
    import hashlib

    from eventvault.errors import CorruptionError

    hashes = [hashlib.sha256(b"%d" % i).digest() for i in range(100)]
    with FileHashStore(tmp_path / "h") as store:
        store.append_hashes(0, hashes[:60])
        store.flush()
        store.append_hashes(60, hashes[60:])  # buffered, not flushed
        for lo, hi in ((0, 60), (5, 17), (59, 61), (50, 100), (10, 10)):
            assert store.read_hashes(range(lo, hi)) == hashes[lo:hi]
            assert store.read_hashes(list(range(lo, hi))) == hashes[lo:hi]
        with pytest.raises(CorruptionError):
            store.read_hashes(range(90, 101))
