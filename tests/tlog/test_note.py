"""Signed notes and checkpoints, checked against Go's note package and the C2SP spec.

tests/vectors/signed_notes.json holds, with their sources named, the test key and
signatures of golang.org/x/mod/sumdb/note and the example of c2sp.org/signed-note:
our signer must reproduce Go's signature byte for byte (Ed25519 is deterministic) and
our verifier must accept theirs.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from eventvault.errors import MissingExtraError, ValidationError
from eventvault.tlog import (
    Checkpoint,
    InvalidSignatureError,
    MemoryHashStore,
    MerkleTree,
    NoteError,
    NoteSigner,
    NoteVerifier,
    UnverifiedNoteError,
    key_id,
    open_note,
    read_key_file,
    sign_note,
    write_key_file,
)

V: Any = json.loads(
    (Path(__file__).resolve().parent.parent / "vectors" / "signed_notes.json").read_text("utf-8")
)
GO = V["go_note"]


def test_go_signer_key_reproduces_gos_signature() -> None:
    signer = NoteSigner.from_key(GO["signer_key"])
    assert signer.name == "PeterNeumann"
    assert signer.key_id == 0xC74F20A3
    assert signer.verifier().key_text == GO["verifier_key"]
    assert signer.key_text == GO["signer_key"]
    assert sign_note(GO["text"], [signer]) == GO["signed"]


def test_gos_signed_note_verifies() -> None:
    peter = NoteVerifier.from_key(GO["verifier_key"])
    note = open_note(GO["signed"], [peter])
    assert note.text == GO["text"]
    assert [(s.name, s.key_id) for s in note.signatures] == [("PeterNeumann", 0xC74F20A3)]
    # Two signatures, one key known: the other is kept as unverified.
    note = open_note(GO["doubly_signed"].encode(), [peter])
    assert [s.name for s in note.unverified] == ["EnochRoot"]
    enoch = NoteVerifier.from_key(GO["other_verifier_key"])
    both = open_note(GO["doubly_signed"], [peter, enoch])
    assert [s.name for s in both.signatures] == ["PeterNeumann", "EnochRoot"]


def test_c2sp_example_verifies() -> None:
    ex = V["c2sp_example"]
    verifier = NoteVerifier.from_key(ex["verifier_key"])
    assert verifier.key_text == ex["verifier_key"]
    assert open_note(ex["signed"], [verifier]).text == ex["text"]


def test_key_id_is_sha256_of_name_newline_alg_key() -> None:
    import hashlib

    v = NoteVerifier.from_key(GO["verifier_key"])
    raw = b"PeterNeumann\n\x01" + v.public_key
    assert key_id("PeterNeumann", b"\x01" + v.public_key) == int.from_bytes(
        hashlib.sha256(raw).digest()[:4], "big"
    )


def test_mangled_verifier_keys_are_refused() -> None:
    for bad in GO["bad_verifier_keys"]:
        with pytest.raises(ValidationError):
            NoteVerifier.from_key(bad)
    key = GO["verifier_key"]
    for i in range(len(key)):  # every one-character change (Go's test does the same)
        mangled = key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :]
        with pytest.raises(ValidationError):
            NoteVerifier.from_key(mangled)
    for cut in (key[:-1], key[1:], key.split("+")[0], "+".join(key.split("+")[:2])):
        with pytest.raises(ValidationError):
            NoteVerifier.from_key(cut)
    with pytest.raises(ValidationError, match="signer \\(private\\) key"):
        NoteVerifier.from_key(GO["signer_key"])


def test_mangled_signer_keys_are_refused() -> None:
    key = GO["signer_key"]
    for i in range(len(key)):
        mangled = key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :]
        with pytest.raises(ValidationError):
            NoteSigner.from_key(mangled)
    with pytest.raises(ValidationError, match="PRIVATE\\+KEY"):
        NoteSigner.from_key(GO["verifier_key"])


def test_malformed_notes_are_refused() -> None:
    peter = NoteVerifier.from_key(GO["verifier_key"])
    for bad in GO["malformed_notes"]:
        with pytest.raises(NoteError, match="malformed"):
            open_note(bad, [peter])
    with pytest.raises(NoteError, match="UTF-8"):
        open_note(b"\xff" + GO["signed"].encode(), [peter])
    with pytest.raises(NoteError, match="more than 100"):
        open_note(GO["text"] + "\n" + GO["signed"].split("\n\n")[1] * 101, [peter])


def test_a_changed_text_or_signature_fails() -> None:
    peter = NoteVerifier.from_key(GO["verifier_key"])
    changed = GO["signed"].replace("problem,", "problem;", 1)
    with pytest.raises(InvalidSignatureError, match="PeterNeumann\\+c74f20a3"):
        open_note(changed, [peter])
    line = GO["signed"].split("\n\n")[1]
    b64 = line.split(" ")[2].strip()
    raw = bytearray(base64.b64decode(b64))
    raw[10] ^= 1
    forged = GO["signed"].replace(b64, base64.b64encode(bytes(raw)).decode())
    with pytest.raises(InvalidSignatureError):
        open_note(forged, [peter])


def test_a_note_signed_by_another_key_is_unverified() -> None:
    mine = NoteSigner.generate("example.com/log")
    theirs = NoteSigner.generate("example.com/log")  # same name, another key
    signed = sign_note("hello\n", [theirs])
    with pytest.raises(UnverifiedNoteError, match="no signature by a key given") as info:
        open_note(signed, [mine.verifier()])
    assert info.value.note.unverified[0].key_id == theirs.key_id
    with pytest.raises(NoteError, match="ambiguous"):
        open_note(signed, [theirs.verifier(), theirs.verifier()])


def test_cosigning_keeps_other_signatures_and_replaces_ones_own() -> None:
    log, witness = NoteSigner.generate("log.example"), NoteSigner.generate("witness.example")
    first = sign_note("tree\n", [log])
    note = open_note(first, [log.verifier()])
    both = sign_note(note.text, [witness], keep=note.signatures)
    opened = open_note(both, [log.verifier(), witness.verifier()])
    assert [s.name for s in opened.signatures] == ["log.example", "witness.example"]
    again = sign_note(note.text, [log], keep=opened.signatures)
    assert again.count("— log.example ") == 1
    assert open_note(again + "", [log.verifier()]).signatures[0].name == "log.example"
    with pytest.raises(ValidationError, match="at least one signature"):
        sign_note("tree\n", [])
    with pytest.raises(ValidationError, match="end with a newline"):
        sign_note("tree", [log])
    with pytest.raises(ValidationError, match="control characters"):
        sign_note("tr\tee\n", [log])


@pytest.mark.parametrize("name", ["", "has space", "plus+sign", "tab\tname", "nbsp\u00a0x"])
def test_bad_key_names_are_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="key name"):
        NoteSigner.generate(name)


def test_signer_repr_hides_the_key() -> None:
    signer = NoteSigner.from_key(GO["signer_key"])
    seed_b64 = GO["signer_key"].rsplit("+", 1)[1]
    assert seed_b64 not in repr(signer)
    assert "c74f20a3" in repr(signer)


def test_key_files_are_0600_and_never_overwritten(tmp_path: Path) -> None:
    old = os.umask(0)  # even a permissive umask must not widen the mode
    try:
        path = write_key_file(tmp_path / "log.key", GO["signer_key"])
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_key_file(path) == GO["signer_key"]
    with pytest.raises(ValidationError, match="refusing to overwrite"):
        write_key_file(path, "other")
    assert read_key_file(path) == GO["signer_key"]
    os.chmod(path, 0o644)
    with pytest.raises(ValidationError, match="chmod 600"):
        read_key_file(path)
    # A verifier key is public: any mode is fine.
    pub = write_key_file(tmp_path / "log.pub", GO["verifier_key"])
    os.chmod(pub, 0o644)
    assert read_key_file(pub) == GO["verifier_key"]
    with pytest.raises(ValidationError, match="cannot read"):
        read_key_file(tmp_path / "missing.key")


def test_a_checkpoint_round_trips_through_a_signed_note() -> None:
    tree = MerkleTree(MemoryHashStore())
    tree.extend(f"event {i}".encode() for i in range(1234))
    cp = Checkpoint("example.com/eventvault/store-1", tree.size, tree.root())
    signer = NoteSigner.generate(cp.origin)
    signed = sign_note(cp.to_text(), [signer])
    lines = signed.split("\n")
    assert lines[:3] == [cp.origin, "1234", base64.b64encode(tree.root()).decode()]
    assert lines[3] == ""
    assert lines[4].startswith("— example.com/eventvault/store-1 ")
    note = open_note(signed, [signer.verifier()])
    assert Checkpoint.from_text(note.text) == cp


def test_checkpoint_text_form() -> None:
    root = bytes(range(32))
    cp = Checkpoint("example.com/log", 0, root, ("ext one", "ext two"))
    text = cp.to_text()
    assert text == (
        "example.com/log\n0\n" + base64.b64encode(root).decode() + "\next one\next two\n"
    )
    assert Checkpoint.from_text(text) == cp
    # The C2SP spec's example body.
    body = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    parsed = Checkpoint.from_text(body)
    assert (parsed.origin, parsed.size) == ("example.com/behind-the-sofa", 20852163)
    assert parsed.to_text() == body


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("o\n1\n", "at least three lines"),
        ("o\n1\nAAAA", "end with a newline"),
        ("o\n01\n" + base64.b64encode(bytes(32)).decode() + "\n", "leading zeros"),
        ("o\n-1\n" + base64.b64encode(bytes(32)).decode() + "\n", "decimal"),
        ("o\n١\n" + base64.b64encode(bytes(32)).decode() + "\n", "decimal"),
        ("o\n1\n!!!!\n", "not base64"),
        ("o\n1\n" + base64.b64encode(bytes(31)).decode() + "\n", "32 bytes"),
        ("\n1\n" + base64.b64encode(bytes(32)).decode() + "\n", "origin must not be empty"),
        ("o\n1\n" + base64.b64encode(bytes(32)).decode() + "\n\n", "extension line"),
    ],
)
def test_bad_checkpoints_are_refused(text: str, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        Checkpoint.from_text(text)


def test_checkpoint_fields_are_checked() -> None:
    with pytest.raises(ValidationError, match="tree size"):
        Checkpoint("o", -1, bytes(32))
    with pytest.raises(ValidationError, match="control"):
        Checkpoint("o\x01", 1, bytes(32))
    with pytest.raises(ValidationError, match="strings"):
        Checkpoint("o", 1, bytes(32), (1,))  # type: ignore[arg-type]


def test_core_imports_without_cryptography_and_says_which_extra_fixes_it() -> None:
    # Importing the package loads no cryptography at all.
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, eventvault.tlog; print('cryptography' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert loaded.strip() == "False"
    # A fresh interpreter where importing cryptography fails, as if not installed.
    code = (
        "import sys; sys.modules['cryptography'] = None\n"
        "import eventvault.tlog as t\n"
        "from eventvault.errors import MissingExtraError\n"
        "v = t.NoteVerifier.from_key(sys.argv[1])\n"  # parsing needs no crypto
        "print(t.Checkpoint('o', 0, t.EMPTY_ROOT).to_text(), end='')\n"
        "for call in (lambda: t.NoteSigner.generate('x'), lambda: v.verify(b'm', bytes(64))):\n"
        "    try:\n"
        "        call()\n"
        "    except MissingExtraError as e:\n"
        "        print('ERR', e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, GO["verifier_key"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.startswith("o\n0\n")
    assert out.count("ERR this feature needs the optional dependency 'cryptography'") == 2
    assert "pip install 'eventvault[audit]'" in out
    assert issubclass(MissingExtraError, ImportError)
