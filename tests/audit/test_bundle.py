"""Offline audit bundles (``eventvault.integrity.bundle``) on the memory store: written
from a store, checked with no store; every tampering fails, naming what it hit."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from eventvault import EventStore, NewEvent, Query
from eventvault.backends.memory import MemoryBackend
from eventvault.errors import ValidationError
from eventvault.integrity.bundle import BundleError, read_bundle, verify_bundle, write_bundle
from eventvault.tlog import NoteSigner, NoteVerifier

pytest.importorskip("cryptography")


@pytest.fixture
def signer() -> NoteSigner:
    return NoteSigner.generate("example.com/eventvault/test")


@pytest.fixture
def store() -> EventStore:
    s = EventStore(MemoryBackend())
    for i in range(20):
        corr = "run-7" if i % 3 == 0 else "run-8"
        s.append(NewEvent(type="step", stream=f"s{i % 4}", correlation_id=corr, data={"i": i}))
    return s


def _bundle(store: EventStore, signer: NoteSigner, path: Path, **q: Any) -> Path:
    note = store.log.checkpoint(signer)
    write_bundle(store, Query(**q), path, checkpoint=note)
    return path


def _edit(path: Path, change: Any) -> None:
    doc = json.loads(path.read_bytes())
    change(doc)
    path.write_text(json.dumps(doc))


def test_round_trip(store: EventStore, signer: NoteSigner, tmp_path: Path) -> None:
    path = _bundle(store, signer, tmp_path / "run-7.evb", correlation_ids=["run-7"])
    report = verify_bundle(path, [signer.verifier()])
    assert report.events == 7
    assert report.tree_size == 20
    assert report.root_hash == store.log.root().hex()
    assert report.signed_by == (f"{signer.name}+{signer.key_id:08x}",)
    doc = json.loads(path.read_bytes())
    assert doc["format"] == "eventvault-bundle"
    assert doc["version"] == 1
    assert [e["event"]["correlation_id"] for e in doc["events"]] == ["run-7"] * 7


def test_the_kept_checkpoint_is_used_when_it_covers_the_events(
    store: EventStore, signer: NoteSigner, tmp_path: Path
) -> None:
    store.log.checkpoint(signer, save=True)
    write_bundle(store, Query(), tmp_path / "b.evb", checkpoint=None)
    assert verify_bundle(tmp_path / "b.evb", [signer.verifier()]).tree_size == 20


def test_a_kept_checkpoint_older_than_the_events_is_refused(
    store: EventStore, signer: NoteSigner, tmp_path: Path
) -> None:
    store.log.checkpoint(signer, save=True)
    store.append(NewEvent(type="late", stream="s", correlation_id="run-7"))
    with pytest.raises(ValidationError, match=r"newer than the checkpoint.*--key"):
        write_bundle(store, Query(correlation_ids=["run-7"]), tmp_path / "b", checkpoint=None)
    assert not (tmp_path / "b").exists()


def test_no_kept_checkpoint_says_to_sign_one(store: EventStore, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="sign a fresh one"):
        write_bundle(store, Query(), tmp_path / "b", checkpoint=None)


def test_changed_event_data_fails_naming_it(
    store: EventStore, signer: NoteSigner, tmp_path: Path
) -> None:
    path = _bundle(store, signer, tmp_path / "b.evb")
    victim = json.loads(path.read_bytes())["events"][5]["event"]["id"]
    _edit(path, lambda d: d["events"][5]["event"]["data"].update(i=999))
    with pytest.raises(BundleError, match=f"event {victim}.*was changed") as info:
        verify_bundle(path, [signer.verifier()])
    assert info.value.event_id == victim
    assert info.value.leaf_index == 5


def test_changed_event_with_its_leaf_hash_recomputed_fails(
    store: EventStore, signer: NoteSigner, tmp_path: Path
) -> None:
    from eventvault.integrity.bundle import read_bundle as read
    from eventvault.integrity.chain import event_leaf_hash

    path = _bundle(store, signer, tmp_path / "b.evb")
    _edit(path, lambda d: d["events"][2]["event"].update(type="forged"))
    _, pairs = read(path)
    forged = event_leaf_hash(pairs[2][0]).hex()
    _edit(path, lambda d: d["events"][2]["proof"].update(leaf_hash=forged))
    with pytest.raises(BundleError, match="not proven by the signed checkpoint") as info:
        verify_bundle(path, [signer.verifier()])
    assert info.value.leaf_index == 2


def test_swapped_proofs_fail(store: EventStore, signer: NoteSigner, tmp_path: Path) -> None:
    path = _bundle(store, signer, tmp_path / "b.evb")

    def swap(d: dict[str, Any]) -> None:
        e = d["events"]
        e[3]["proof"], e[4]["proof"] = e[4]["proof"], e[3]["proof"]

    _edit(path, swap)
    with pytest.raises(BundleError) as info:
        verify_bundle(path, [signer.verifier()])
    assert info.value.event_id == json.loads(path.read_bytes())["events"][3]["event"]["id"]


def test_a_changed_checkpoint_fails(store: EventStore, signer: NoteSigner, tmp_path: Path) -> None:
    path = _bundle(store, signer, tmp_path / "b.evb")

    def shrink(d: dict[str, Any]) -> None:
        origin, size, rest = d["checkpoint"].split("\n", 2)
        d["checkpoint"] = f"{origin}\n{int(size) - 1}\n{rest}"

    _edit(path, shrink)
    with pytest.raises(BundleError, match=r"checkpoint does not verify.*invalid signature") as info:
        verify_bundle(path, [signer.verifier()])
    assert info.value.event_id is None


def test_another_key_fails_naming_the_signer(store: EventStore, tmp_path: Path) -> None:
    other = NoteSigner.generate("evil.example/log")
    path = _bundle(store, other, tmp_path / "b.evb")
    mine = NoteSigner.generate("example.com/eventvault/test")
    with pytest.raises(BundleError, match=r"not signed by a key given.*evil.example/log"):
        verify_bundle(path, [mine.verifier()])


def test_a_proof_against_another_size_fails(
    store: EventStore, signer: NoteSigner, tmp_path: Path
) -> None:
    path = _bundle(store, signer, tmp_path / "b.evb")
    smaller = store.log.inclusion_proof(
        next(iter(store.iter(Query(limit=1)))).id, size=10
    ).to_dict()
    _edit(path, lambda d: d["events"][0].update(proof=smaller))
    with pytest.raises(BundleError, match="tree of 10 leaves, the checkpoint's has 20"):
        verify_bundle(path, [signer.verifier()])


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (b"not json", "not JSON"),
        (b'{"format": "zip", "version": 1, "checkpoint": "", "events": []}', "format 'zip'"),
        (b'{"format": "eventvault-bundle", "version": 2, "checkpoint": "", "events": []}',
         "version 2"),
        (b'{"format": "eventvault-bundle", "version": 1, "events": []}', "checkpoint"),
    ],
)  # fmt: skip
def test_malformed_bundles_are_validation_errors(raw: bytes, match: str) -> None:
    verifier = NoteSigner.generate("a.example/x").verifier()
    with pytest.raises(ValidationError, match=match):
        verify_bundle(raw, [verifier])


def test_a_malformed_proof_is_a_validation_error(
    store: EventStore, signer: NoteSigner, tmp_path: Path
) -> None:
    path = _bundle(store, signer, tmp_path / "b.evb")
    _edit(path, lambda d: d["events"][1]["proof"].update(leaf_hash="zz"))
    with pytest.raises(ValidationError, match=r"bundle event 1.*leaf_hash"):
        read_bundle(path)


def test_verifier_key_text_round_trip(signer: NoteSigner) -> None:
    assert NoteVerifier.from_key(signer.verifier().key_text) == signer.verifier()


def test_bundle_of_1000_events_is_fast(signer: NoteSigner, tmp_path: Path) -> None:
    """The issue's target: a 1,000-event run written in < 1 s, verified in < 0.5 s
    (memory store; the bound here is loose for a loaded machine — the figures are
    in docs/audit.md)."""
    store = EventStore(MemoryBackend())
    for b in range(10):
        store.append(
            NewEvent(type="t", stream="s", correlation_id="run", data={"n": b * 100 + i})
            for i in range(100)
        )
    store.append(NewEvent(type="other", stream="x", correlation_id="noise"))
    note = store.log.checkpoint(signer)
    t0 = time.perf_counter()
    write_bundle(store, Query(correlation_ids=["run"]), tmp_path / "run.evb", checkpoint=note)
    wrote = time.perf_counter() - t0
    t0 = time.perf_counter()
    report = verify_bundle(tmp_path / "run.evb", [signer.verifier()])
    checked = time.perf_counter() - t0
    assert report.events == 1000
    assert wrote < 3.0, wrote
    assert checked < 1.5, checked


def test_another_stores_checkpoint_is_refused_when_writing(
    store: EventStore, signer: NoteSigner, tmp_path: Path
) -> None:
    other = EventStore(MemoryBackend())
    for i in range(20):
        other.append(NewEvent(type="other", stream="s", data={"i": i}))
    with pytest.raises(ValidationError, match="not this store's"):
        write_bundle(store, Query(), tmp_path / "b", checkpoint=other.log.checkpoint(signer))
    assert not (tmp_path / "b").exists()


def test_a_bundle_reads_the_tree_once_per_thousand_events() -> None:
    """Proofs are fetched together: on a database each read is a round trip, and one
    per event made a 1,000-event bundle take 1.8 s on PostgreSQL."""
    import io

    from eventvault.backends.memory import MemoryBackend
    from eventvault.integrity.bundle import write_bundle
    from eventvault.store import EventStore
    from eventvault.tlog import NoteSigner

    backend = MemoryBackend()
    store = EventStore(backend)
    store.append([NewEvent(type="t", correlation_id="run-1", data={"i": i}) for i in range(1000)])
    store.append([NewEvent(type="t", correlation_id="run-1", data={"i": i}) for i in range(500)])
    note = store.log.checkpoint(NoteSigner.generate("example.com/log"))
    calls = []
    real = backend.read_hashes

    def counting(indexes):  # type: ignore[no-untyped-def]
        calls.append(len(indexes))
        return real(indexes)

    backend.read_hashes = counting  # type: ignore[method-assign]
    write_bundle(store, Query(correlation_ids=["run-1"]), io.BytesIO(), checkpoint=note)
    assert len(calls) <= 2 + 2  # two chunks of proofs, plus the checkpoint's root check
