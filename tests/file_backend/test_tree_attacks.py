"""Attacks on a file store's files, and what a checkpoint signed before them shows.

Each test signs a checkpoint of the store (``NoteSigner``), opens it as a verifier
would (``open_checkpoint``), then changes the files the way an attacker with write
access to the directory could, and checks that ``verify(checkpoints=[cp])`` fails
naming what was done. Each also records what a plain ``verify()`` — no checkpoint —
says: the chain and the tree are both recomputable by whoever rewrites the files, so
without a signed checkpoint an attacker who rewrites *everything consistently* is
not caught; that is what checkpoints are for.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from eventvault import NewEvent, Query, RecordedEvent
from eventvault.backends.file import FileEventStore
from eventvault.backends.file.records import encode_batch
from eventvault.errors import CorruptionError
from eventvault.integrity.chain import GENESIS, event_leaf_hash, record_hash
from eventvault.tlog import (
    Checkpoint,
    FileHashStore,
    InvalidSignatureError,
    MerkleTree,
    NoteError,
    NoteSigner,
    open_checkpoint,
)

ORIGIN = "eventvault.test/attacks"
N = 12


def make_store(path: Path, n: int = N, tag: str = "") -> None:
    with FileEventStore(path) as s:
        for i in range(n):  # one event a batch: one line each
            s.append(NewEvent(type="pay", stream=f"acct{i % 3}", data={"v": i, "t": tag}))


def signed_checkpoint(path: Path) -> Checkpoint:
    signer = NoteSigner.generate(ORIGIN)
    with FileEventStore(path) as s:
        note = s.log.checkpoint(signer, save=True)
    return open_checkpoint(note, [signer.verifier()], origin=ORIGIN)


def events(path: Path) -> list[RecordedEvent]:
    with FileEventStore(path, read_only=True) as r:
        return list(r.iter(Query(limit=5000)))


def rewrite(path: Path, change: Callable[[list[RecordedEvent]], list[RecordedEvent]]) -> None:
    """Rewrite the store's events as an attacker would: change them, renumber them,
    recompute every hash (in the chain format, every later one too) and batch checksum,
    drop the derived indexes."""
    recs = change(events(path))
    with FileEventStore(path, read_only=True) as r:
        hashes = r.hash_format  # (the attacker writes the store's own format)
    prev = GENESIS
    out = []
    for i, old in enumerate(recs):
        rec = msgspec.structs.replace(old, position=i + 1, hash="")
        prev = record_hash(prev, rec, hashes)
        out.append(msgspec.structs.replace(rec, hash=prev.hex()))
    segs = sorted((path / "segments").iterdir())
    for seg in segs:
        seg.unlink()
    for idx in (path / "index").iterdir():
        idx.unlink()
    (path / "segments" / f"{1:020d}.jsonl").write_bytes(
        b"".join(encode_batch([rec])[0] for rec in out)
    )


def rebuild_tree(path: Path) -> None:
    """The attacker also recomputes tree.hashes from the (altered) events."""
    leaves = [event_leaf_hash(e) for e in events(path)]
    (path / "tree.hashes").unlink()
    store = FileHashStore(path / "tree.hashes")
    MerkleTree(store).append_leaf_hashes(leaves)
    store.close()


def verify_both(path: Path, cp: Checkpoint) -> tuple[str | None, str | None]:
    """(plain verify's reason or None if ok, checkpoint verify's reason); the latter
    must fail."""
    with FileEventStore(path) as s:
        plain = s.verify()
        checked = s.verify(checkpoints=[cp])
    assert not checked.ok
    return (None if plain.ok else plain.reason), checked.reason


@pytest.fixture
def store(tmp_path: Path) -> Path:
    make_store(tmp_path / "s")
    return tmp_path / "s"


# (a) the newest events removed ------------------------------------------------------------


def test_cutting_the_newest_events(store: Path) -> None:
    cp = signed_checkpoint(store)
    seg = sorted((store / "segments").iterdir())[-1]
    lines = seg.read_bytes().splitlines(keepends=True)
    seg.write_bytes(b"".join(lines[:-3]))  # three whole batches gone; the chain still holds
    with FileEventStore(store) as s:
        # The tree is ahead of the events: no crash under fsync="always" does that.
        assert any("have no event" in n for n in s.notices)
        with pytest.raises(CorruptionError, match="Appends are refused"):
            s.append(NewEvent(type="more"))
    plain, checked = verify_both(store, cp)
    assert plain is not None
    assert f"events {N - 2}..{N} were removed from the newest end" in plain
    assert "removed from the newest end" in (checked or "")


def test_cutting_the_newest_events_and_the_tree_to_match(store: Path) -> None:
    cp = signed_checkpoint(store)
    seg = sorted((store / "segments").iterdir())[-1]
    lines = seg.read_bytes().splitlines(keepends=True)
    seg.write_bytes(b"".join(lines[:-3]))
    tree = FileHashStore(store / "tree.hashes")
    MerkleTree(tree).truncate(N - 3)
    tree.close()
    plain, checked = verify_both(store, cp)
    assert plain is None  # chain and tree agree: only a checkpoint knows there was more
    assert f"commits to {N} events, but this store's tree has only {N - 3}" in (checked or "")
    assert "cut back" in (checked or "")


# (b) one event changed, every later chain hash recomputed ------------------------------------


def _change_event_5(recs: list[RecordedEvent]) -> list[RecordedEvent]:
    recs[4] = msgspec.structs.replace(recs[4], data={"v": 4000, "t": ""})
    return recs


def test_changing_an_event_and_rechaining(store: Path) -> None:
    cp = signed_checkpoint(store)
    rewrite(store, _change_event_5)
    with FileEventStore(store) as s:
        assert s.verify().ok is False
    plain, checked = verify_both(store, cp)
    # The chain was recomputed, so it holds; the tree was not: it names the event.
    assert plain is not None
    assert "position 5 does not match leaf 4 of the Merkle tree" in plain
    assert "position 5 does not match leaf 4" in (checked or "")


def test_changing_an_event_and_rechaining_and_rebuilding_the_tree(store: Path) -> None:
    cp = signed_checkpoint(store)
    rewrite(store, _change_event_5)
    rebuild_tree(store)
    plain, checked = verify_both(store, cp)
    assert plain is None  # everything recomputed: consistent, and only the signature knows
    assert f"the tree of this store's first {N} events has root" in (checked or "")
    assert "rewritten" in (checked or "")


def test_a_checkpoint_before_the_change_still_verifies(store: Path) -> None:
    """A checkpoint of the first 3 events is not affected by a change at position 5
    (it proves those 3 only); the one of all events is."""
    signer = NoteSigner.generate(ORIGIN)
    with FileEventStore(store) as s:
        early = open_checkpoint(s.log.checkpoint(signer, size=3), [signer.verifier()])
    rewrite(store, _change_event_5)
    rebuild_tree(store)
    with FileEventStore(store) as s:
        result = s.verify(checkpoints=[early])
    assert result.ok, result.reason


# (c) an event inserted ---------------------------------------------------------------------


def _insert_at_4(recs: list[RecordedEvent]) -> list[RecordedEvent]:
    fake = msgspec.structs.replace(recs[3], id=uuid.uuid4(), stream="inserted", stream_revision=0)
    return [*recs[:3], fake, *recs[3:]]


def test_inserting_an_event(store: Path) -> None:
    cp = signed_checkpoint(store)
    rewrite(store, _insert_at_4)
    with FileEventStore(store) as s:
        # The writer's open recomputes the last leaves: a consistent tree that
        # disagrees with the events is reported, never "repaired" to match them.
        assert any("does not match leaf" in n for n in s.notices)
    plain, checked = verify_both(store, cp)
    assert plain is not None
    assert "position 4 does not match leaf 3" in plain
    assert "position 4 does not match leaf 3" in (checked or "")


def test_inserting_an_event_and_rebuilding_the_tree(store: Path) -> None:
    cp = signed_checkpoint(store)
    rewrite(store, _insert_at_4)
    rebuild_tree(store)
    plain, checked = verify_both(store, cp)
    assert plain is None
    assert "rewritten at or before that point" in (checked or "")


# (d) the store replaced by a fork --------------------------------------------------------


def test_a_fork_replacing_the_store(tmp_path: Path) -> None:
    a = tmp_path / "a"
    make_store(a, n=6)
    fork = tmp_path / "fork"
    shutil.copytree(a, fork)  # the same first 6 events (and store id)...
    with FileEventStore(a) as s:
        s.append([NewEvent(type="pay", data={"v": 100 + i}) for i in range(4)])
    with FileEventStore(fork) as s:
        s.append([NewEvent(type="pay", data={"v": 900 + i}) for i in range(6)])  # ...then others
    cp = signed_checkpoint(a)  # the log at 10 events, as its auditors hold it
    shutil.rmtree(a)
    shutil.move(fork, a)
    plain, checked = verify_both(a, cp)
    assert plain is None  # a fork is a perfectly good store by itself
    assert "has root" in (checked or "")
    assert "or this is a fork" in (checked or "")


def test_an_early_checkpoint_cannot_tell_a_fork_apart(tmp_path: Path) -> None:
    """A checkpoint of size <= the common prefix verifies on the fork: it proves the
    prefix only (which the fork shares). Later checkpoints are what catch a fork."""
    a = tmp_path / "a"
    make_store(a, n=6)
    signer = NoteSigner.generate(ORIGIN)
    with FileEventStore(a) as s:
        cp = open_checkpoint(s.log.checkpoint(signer), [signer.verifier()])
    fork = tmp_path / "fork"
    shutil.copytree(a, fork)
    with FileEventStore(fork) as s:
        s.append(NewEvent(type="other"))
        assert s.verify(checkpoints=[cp]).ok


# (e) a checkpoint signed by another key ----------------------------------------------------


def test_a_checkpoint_by_another_key_is_refused(store: Path) -> None:
    ours = NoteSigner.generate(ORIGIN)
    theirs = NoteSigner.generate(ORIGIN)  # same name, another key
    with FileEventStore(store) as s:
        forged = s.log.checkpoint(theirs)
    with pytest.raises((InvalidSignatureError, NoteError)):
        open_checkpoint(forged, [ours.verifier()], origin=ORIGIN)
    other = NoteSigner.generate("eventvault.test/other-log")
    with FileEventStore(store) as s:
        note = s.log.checkpoint(other)
    with pytest.raises(NoteError, match="not"):
        open_checkpoint(note, [ours.verifier()], origin=ORIGIN)
