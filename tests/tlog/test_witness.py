"""The witness (C2SP tlog-witness / tlog-cosignature): co-signs only checkpoints that
extend the last one it co-signed, so a log cannot show two histories."""

from __future__ import annotations

import base64
import hashlib
import threading
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from eventvault import MemoryEventStore, NewEvent, Query
from eventvault.errors import ValidationError
from eventvault.model import Import
from eventvault.tlog import NoteSigner, open_checkpoint, open_note
from eventvault.tlog.witness import (
    CosignatureVerifier,
    Cosigner,
    Witness,
    WitnessRefusal,
    add_checkpoint_request,
)

ORIGIN = "eventvault.test/log"


def _store(n: int, tag: str = "main", past: MemoryEventStore | None = None) -> MemoryEventStore:
    """``n`` events; with ``past``, the first five are ``past``'s (copied: same leaves)."""
    store = MemoryEventStore()
    start = 0
    if past is not None:
        store.import_records(Import(past.read(Query(limit=5)).events))
        start = 5
    store.append([NewEvent(type="t", data={"i": i, "tag": tag}) for i in range(start, n)])
    return store


@pytest.fixture
def log_key() -> NoteSigner:
    return NoteSigner.generate(ORIGIN)


@pytest.fixture
def witness(tmp_path: Path, log_key: NoteSigner) -> Witness:
    return Witness(Cosigner.generate("witness.test/w1"), {ORIGIN: [log_key.verifier()]}, tmp_path)


def _submit(
    witness: Witness, store: MemoryEventStore, signer: NoteSigner, old: int, size: int
) -> str:
    note = store.log.checkpoint(signer, size=size)
    proof = store.log.consistency_proof(old, size).proof if old else ()
    return witness.add_checkpoint(add_checkpoint_request(old, proof, note))


def test_a_cosignature_is_the_documented_bytes(witness: Witness, log_key: NoteSigner) -> None:
    store = _store(5)
    note = store.log.checkpoint(log_key)
    line = witness.add_checkpoint(add_checkpoint_request(0, (), note), timestamp=1679315147)
    assert line.startswith("— witness.test/w1 ")
    assert line.endswith("\n")
    raw = base64.b64decode(line.split(" ")[2])
    cos = witness.cosigner
    # Checked by hand from the spec, not through eventvault's verifier.
    kid = hashlib.sha256(cos.name.encode() + b"\n\x04" + cos.public_key).digest()[:4]
    assert raw[:4] == kid
    assert int.from_bytes(raw[4:12], "big") == 1679315147
    body = note[: note.index("\n\n") + 1]
    message = b"cosignature/v1\ntime 1679315147\n" + body.encode()
    Ed25519PublicKey.from_public_bytes(cos.public_key).verify(raw[12:], message)
    # The cosigned note opens with the log's key and the witness's key both.
    both = note + line
    opened = open_note(both, [log_key.verifier(), cos.verifier()])
    assert {s.name for s in opened.signatures} == {ORIGIN, "witness.test/w1"}
    cp = open_checkpoint(both, [cos.verifier()])
    assert cp.size == 5


def test_the_witness_follows_a_growing_log(witness: Witness, log_key: NoteSigner) -> None:
    store = _store(12)
    _submit(witness, store, log_key, 0, 5)
    _submit(witness, store, log_key, 5, 9)
    _submit(witness, store, log_key, 9, 9)  # the same size again: same root is fine
    _submit(witness, store, log_key, 9, 12)
    assert witness.latest(ORIGIN) == (12, store.log.root())
    # Its state survives a restart.
    again = Witness(witness.cosigner, witness.logs, witness.state_dir)
    assert again.latest(ORIGIN) == (12, store.log.root())


def test_a_fork_is_refused(witness: Witness, log_key: NoteSigner) -> None:
    main = _store(9, "main")
    fork = _store(9, "fork", past=main)
    assert main.log.root(5) == fork.log.root(5)  # a common past, two futures
    _submit(witness, main, log_key, 0, 5)
    _submit(witness, main, log_key, 5, 9)
    with pytest.raises(WitnessRefusal) as refused:
        _submit(witness, fork, log_key, 9, 9)  # the same size, another root
    assert refused.value.status == 422
    # Presented as an extension of the last size co-signed, with its own proof:
    fork.append([NewEvent(type="t") for _ in range(3)])
    with pytest.raises(WitnessRefusal) as refused:
        _submit(witness, fork, log_key, 9, 12)
    assert refused.value.status == 422
    assert "does not extend" in refused.value.message
    assert witness.latest(ORIGIN) == (9, main.log.root(9))


def test_the_protocol_statuses(witness: Witness, log_key: NoteSigner) -> None:
    store = _store(9)
    _submit(witness, store, log_key, 0, 5)
    with pytest.raises(WitnessRefusal) as r:  # not the size last co-signed
        _submit(witness, store, log_key, 3, 9)
    assert (r.value.status, r.value.body, r.value.content_type) == (409, "5\n", "text/x.tlog.size")
    with pytest.raises(WitnessRefusal) as r:  # going backwards
        witness.add_checkpoint(add_checkpoint_request(5, (), store.log.checkpoint(log_key, size=3)))
    assert r.value.status == 400
    other = NoteSigner.generate(ORIGIN)  # the log's name, another key
    with pytest.raises(WitnessRefusal) as r:
        _submit(witness, store, other, 5, 9)
    assert r.value.status == 403
    stranger = NoteSigner.generate("someone.else/log")
    with pytest.raises(WitnessRefusal) as r:
        _submit(witness, store, stranger, 5, 9)
    assert r.value.status == 404
    note = store.log.checkpoint(log_key, size=9)
    with pytest.raises(WitnessRefusal) as r:  # a proof that is not one
        witness.add_checkpoint(add_checkpoint_request(5, [bytes(32)] * 3, note))
    assert r.value.status == 422
    for body in (
        b"old 5\n",
        b"new 5\n\n" + note.encode(),
        b"old 05\n\n" + note.encode(),
        b"old 5\n!!!\n\n" + note.encode(),
        b"\xff\xfe",
    ):
        with pytest.raises(WitnessRefusal) as r:
            witness.add_checkpoint(body)
        assert r.value.status == 400, body
    assert witness.latest(ORIGIN) == (5, store.log.root(5))


def test_two_submissions_at_once_cannot_roll_the_log_back(
    witness: Witness, log_key: NoteSigner
) -> None:
    store = _store(40)
    _submit(witness, store, log_key, 0, 5)
    outcomes: list[object] = []

    def submit(size: int) -> None:
        try:
            outcomes.append(_submit(witness, store, log_key, 5, size))
        except WitnessRefusal as exc:
            outcomes.append(exc.status)

    threads = [threading.Thread(target=submit, args=(s,)) for s in (10, 20, 30, 40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(isinstance(o, str) for o in outcomes) == 1
    assert sorted(o for o in outcomes if isinstance(o, int)) == [409, 409, 409]
    size, _ = witness.latest(ORIGIN) or (0, b"")
    assert size in (10, 20, 30, 40)


def test_witness_keys_round_trip_and_are_not_note_keys() -> None:
    cos = Cosigner.generate("witness.test/w2")
    assert Cosigner.from_key(cos.key_text).public_key == cos.public_key
    assert CosignatureVerifier.from_key(cos.verifier().key_text) == cos.verifier()
    assert "Cosigner(" in repr(cos)
    assert cos.key_text.split("+")[-1] not in repr(cos)
    note_key = NoteSigner.generate("witness.test/w2")
    with pytest.raises(ValidationError, match="0x04"):
        CosignatureVerifier.from_key(note_key.verifier().key_text)
