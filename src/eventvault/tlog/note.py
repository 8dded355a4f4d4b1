"""C2SP ``signed-note`` with Ed25519 keys, compatible with Go's ``golang.org/x/mod/sumdb/note``.

A signed note is a text ending in a newline, a blank line, and signature lines::

    <text…>\\n
    \\n
    — <key name> <base64(4-byte key id ‖ Ed25519 signature of the text)>\\n

Keys are passed around as text:

* verifier key: ``<name>+<hex key id>+<base64(0x01 ‖ 32-byte public key)>``
* signer key: ``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 ‖ 32-byte seed)>``

with key id = the first four bytes (big-endian) of
SHA-256(name ‖ 0x0A ‖ 0x01 ‖ public key). Standard note tools read both forms.
See https://c2sp.org/signed-note.

Signing and verifying need the ``cryptography`` package (``pip install
'eventvault[audit]'``); parsing and formatting do not.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import ClassVar, Final, Self

from ..errors import EventVaultError, MissingExtraError, StoreUnavailableError, ValidationError

__all__ = [
    "InvalidSignatureError",
    "Note",
    "NoteError",
    "NoteSigner",
    "NoteVerifier",
    "Signature",
    "UnverifiedNoteError",
    "key_id",
    "open_note",
    "read_key_file",
    "sign_note",
    "write_key_file",
]

ALG_ED25519: Final = 0x01
#: More signatures than this and a note is refused (the spec asks for at least 16).
MAX_SIGNATURES: Final = 100
_SIG_PREFIX: Final = "— "  # em dash, space
_PRIVATE: Final = "PRIVATE+KEY+"


class NoteError(EventVaultError):
    """A signed note is malformed, or its signatures do not verify."""


class UnverifiedNoteError(NoteError):
    """The note is well formed but no signature is by a key the verifier knows
    (e.g. it was signed by another key). :attr:`note` holds what was read."""

    def __init__(self, message: str, note: Note) -> None:
        super().__init__(message)
        self.note = note


class InvalidSignatureError(NoteError):
    """A signature by a known key (name and id match) does not verify: the text
    was altered after signing, or the signature was forged."""


for _cls in (NoteError, UnverifiedNoteError, InvalidSignatureError):
    _cls.__module__ = "eventvault.tlog"


def _ed25519() -> ModuleType:
    try:
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        # Name the package to install, not the submodule that failed to import.
        raise MissingExtraError("audit", "cryptography") from None
    return ed25519


def key_id(name: str, key: bytes) -> int:
    """The 32-bit key id of ``key`` (algorithm byte ‖ public key) under ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode() + b"\n" + key).digest()[:4], "big")


def _valid_name(name: str) -> bool:
    # Non-empty, no Unicode space, no '+' (the key text's separator).
    return bool(name) and "+" not in name and not any(ch.isspace() for ch in name)


def _check_name(name: object) -> str:
    if type(name) is not str or not _valid_name(name):
        raise ValidationError(
            f"key name {name!r} is invalid: it must be non-empty text without spaces or '+' "
            "(e.g. a schema-less URL such as example.com/log)"
        )
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"key name {name!r} is not valid Unicode") from None
    if any(ch < " " for ch in name):
        raise ValidationError(f"key name {name!r} must not contain control characters")
    return name


def _b64(text: str, what: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError(f"{what} is not valid base64") from None
    if base64.b64encode(data).decode() != text:
        raise ValidationError(f"{what} is not canonical base64")
    return data


def _parse_key(text: str, what: str, alg: int = ALG_ED25519) -> tuple[str, int, bytes]:
    """``name+hexid+base64`` → (name, key id, decoded key) with the key's type byte
    checked (``alg``: 0x01 signed-note Ed25519, 0x04 tlog-cosignature/v1)."""
    # Cut at the first two '+' only: base64 uses '+' too.
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise ValidationError(f"{what} must look like <name>+<8 hex digits>+<base64 key>")
    name, hex_id, b64 = parts
    _check_name(name)
    if len(hex_id) != 8 or any(c not in "0123456789abcdef" for c in hex_id):
        raise ValidationError(f"{what}: key id {hex_id!r} must be 8 lowercase hex digits")
    key = _b64(b64, f"{what}: the key")
    if not key or key[0] != alg:
        raise ValidationError(
            f"{what}: unknown signature algorithm (this key must be of type 0x{alg:02x})"
        )
    if len(key) != 33:
        raise ValidationError(f"{what}: an Ed25519 key must be 32 bytes, got {len(key) - 1}")
    return name, int(hex_id, 16), key[1:]


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    """Verifies signatures by one Ed25519 key; made from a verifier key text."""

    name: str
    public_key: bytes
    key_id: int = field(init=False)
    #: The key's type byte (a subclass for another signature type sets its own).
    ALG: ClassVar[int] = ALG_ED25519

    def __post_init__(self) -> None:
        _check_name(self.name)
        if type(self.public_key) is not bytes or len(self.public_key) != 32:
            raise ValidationError("an Ed25519 public key must be 32 bytes")
        object.__setattr__(self, "key_id", key_id(self.name, bytes([self.ALG]) + self.public_key))

    @classmethod
    def from_key(cls, vkey: str) -> Self:
        """Parse ``<name>+<hex key id>+<base64(0x01 ‖ public key)>``; the id must match."""
        text = vkey.strip()
        if text.startswith(_PRIVATE):
            raise ValidationError(
                "this is a signer (private) key; verifying needs the verifier key "
                "(eventvault keygen writes both)"
            )
        name, kid, pub = _parse_key(text, "verifier key", cls.ALG)
        verifier = cls(name, pub)
        if verifier.key_id != kid:
            raise ValidationError(
                f"verifier key {name}+{kid:08x}: the key id does not match the key "
                f"(it should be {verifier.key_id:08x}); the key text was altered"
            )
        return verifier

    @property
    def key_text(self) -> str:
        """The verifier key text, to hand to anyone who checks this log."""
        b64 = base64.b64encode(bytes([self.ALG]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{b64}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` (without the key id) is this key's signature of ``message``."""
        ed = _ed25519()
        from cryptography.exceptions import InvalidSignature

        try:
            ed.Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


class NoteSigner:
    """Signs notes with one Ed25519 key. Its ``repr`` never shows the key."""

    __slots__ = ("_private", "_seed", "name", "public_key")
    #: The key's type byte and the class verifying its signatures (a subclass for
    #: another signature type sets both).
    ALG: ClassVar[int] = ALG_ED25519
    VERIFIER: ClassVar[type[NoteVerifier]] = NoteVerifier

    def __init__(self, name: str, seed: bytes) -> None:
        ed = _ed25519()
        from cryptography.hazmat.primitives import serialization

        self.name = _check_name(name)
        if type(seed) is not bytes or len(seed) != 32:
            raise ValidationError("an Ed25519 private key seed must be 32 bytes")
        self._seed = seed
        self._private = ed.Ed25519PrivateKey.from_private_bytes(seed)
        self.public_key: bytes = self._private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @classmethod
    def generate(cls, name: str) -> Self:
        """A new random key named ``name`` (e.g. the log's origin)."""
        _check_name(name)
        return cls(name, os.urandom(32))

    @classmethod
    def from_key(cls, skey: str) -> Self:
        """Parse ``PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 ‖ seed)>``."""
        text = skey.strip()
        if not text.startswith(_PRIVATE):
            raise ValidationError("a signer key starts with PRIVATE+KEY+")
        name, kid, seed = _parse_key(text[len(_PRIVATE) :], "signer key", cls.ALG)
        signer = cls(name, seed)
        if signer.key_id != kid:
            # Go checks the id against the public key derived from the seed, too.
            raise ValidationError(
                f"signer key for {name}: the key id {kid:08x} does not match the key"
            )
        return signer

    @property
    def key_id(self) -> int:
        return key_id(self.name, bytes([self.ALG]) + self.public_key)

    @property
    def key_text(self) -> str:
        """The signer key text. Secret: write it only with :func:`write_key_file`."""
        b64 = base64.b64encode(bytes([self.ALG]) + self._seed).decode()
        return f"{_PRIVATE}{self.name}+{self.key_id:08x}+{b64}"

    def verifier(self) -> NoteVerifier:
        """The verifier of this key's signatures."""
        return self.VERIFIER(self.name, self.public_key)

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature of ``message`` (64 bytes, deterministic)."""
        signature: bytes = self._private.sign(message)
        return signature

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, key_id={self.key_id:08x})"


@dataclass(frozen=True, slots=True)
class Signature:
    """One signature line: the key's name and id, and the signature (base64, as written)."""

    name: str
    key_id: int
    base64: str

    @property
    def line(self) -> str:
        return f"{_SIG_PREFIX}{self.name} {self.base64}\n"


@dataclass(frozen=True, slots=True)
class Note:
    """A note's text with the signatures that verified and those by unknown keys."""

    text: str
    signatures: tuple[Signature, ...]
    unverified: tuple[Signature, ...] = ()


def _check_text(text: str) -> None:
    if not text.endswith("\n"):
        raise ValidationError("a note's text must end with a newline")
    for ch in text:
        if ch < " " and ch != "\n":
            raise ValidationError("a note must not contain control characters other than newline")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("a note must be valid Unicode") from None


def sign_note(text: str, signers: Iterable[NoteSigner], keep: Sequence[Signature] = ()) -> str:
    """The signed note of ``text``: ``keep`` (signatures already on it, e.g. a witness's),
    then one new signature per signer. A kept signature by a signing key is replaced."""
    _check_text(text)
    message = text.encode()
    new: list[str] = []
    mine: set[tuple[str, int]] = set()
    for signer in signers:
        mine.add((signer.name, signer.key_id))
        raw = signer.key_id.to_bytes(4, "big") + signer.sign(message)
        new.append(Signature(signer.name, signer.key_id, base64.b64encode(raw).decode()).line)
    if not new and not keep:
        raise ValidationError("a signed note needs at least one signature")
    kept = [s.line for s in keep if (s.name, s.key_id) not in mine]
    return text + "\n" + "".join(kept) + "".join(new)


def open_note(message: str | bytes, verifiers: Iterable[NoteVerifier]) -> Note:
    """Parse a signed note and check its signatures against ``verifiers``.

    Follows the spec (and Go's ``note.Open``): a signature by an unknown key (its name
    *and* id must both match a verifier to be known) is kept as unverified; one by a
    known key must verify (:class:`InvalidSignatureError` otherwise); at least one
    must be by a known key (:class:`UnverifiedNoteError` otherwise). A malformed note
    is a :class:`NoteError`.
    """
    if isinstance(message, bytes):
        try:
            message = message.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("malformed note: not valid UTF-8") from None
    if any(ch < " " and ch != "\n" for ch in message):
        raise NoteError("malformed note: control characters other than newline")
    split = message.rfind("\n\n")
    if split < 0:
        raise NoteError("malformed note: no blank line before the signatures")
    text, block = message[: split + 1], message[split + 2 :]
    if not block or not block.endswith("\n"):
        raise NoteError("malformed note: no signature lines after the blank line")
    known: dict[tuple[str, int], list[NoteVerifier]] = {}
    for v in verifiers:
        known.setdefault((v.name, v.key_id), []).append(v)
    payload = text.encode()
    good: list[Signature] = []
    unknown: list[Signature] = []
    seen: set[tuple[str, int]] = set()
    seen_lines: set[str] = set()
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise NoteError(f"malformed note: {line[:40]!r} is not a signature line")
        name, _, b64 = line[len(_SIG_PREFIX) :].partition(" ")
        try:
            raw = _b64(b64, "signature")
        except ValidationError:
            raw = b""
        if not _valid_name(name) or len(raw) < 5:
            raise NoteError(f"malformed note: bad signature line {line[:60]!r}")
        kid = int.from_bytes(raw[:4], "big")
        sig = Signature(name, kid, b64)
        match = known.get((name, kid))
        if match is None:
            if line not in seen_lines:
                seen_lines.add(line)
                unknown.append(sig)
            continue
        if len(match) > 1:
            raise NoteError(f"ambiguous key {name}+{kid:08x}: given more than once")
        if (name, kid) in seen:
            continue
        seen.add((name, kid))
        if not match[0].verify(payload, raw[4:]):
            raise InvalidSignatureError(f"invalid signature for key {name}+{kid:08x}")
        good.append(sig)
    note = Note(text, tuple(good), tuple(unknown))
    if not good:
        names = ", ".join(f"{s.name}+{s.key_id:08x}" for s in unknown)
        raise UnverifiedNoteError(
            f"the note has no signature by a key given to verify it (signed by: {names})", note
        )
    return note


def write_key_file(path: str | os.PathLike[str], key_text: str) -> Path:
    """Write a key text to a new file readable only by its owner (mode 0600).

    Refuses to replace an existing file (a key lost by overwriting cannot be
    recovered, and every checkpoint it signed would become unverifiable).
    """
    target = Path(path)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ValidationError(f"{target} already exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise StoreUnavailableError(f"writing the key file {target}: {exc.strerror}") from exc
    try:
        os.fchmod(fd, 0o600)  # whatever the umask said
        os.write(fd, (key_text.strip() + "\n").encode())
        os.fsync(fd)
    except OSError as exc:
        raise StoreUnavailableError(f"writing the key file {target}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    return target


def read_key_file(path: str | os.PathLike[str]) -> str:
    """The key text in ``path``. A signer key file that others can read is refused,
    as ssh refuses such a private key: ``chmod 600`` it."""
    target = Path(path)
    try:
        text = target.read_text("utf-8").strip()
        mode = target.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationError(f"cannot read the key file {target}: {exc}") from None
    if text.startswith(_PRIVATE) and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ValidationError(
            f"the signer key {target} is accessible by other users (mode "
            f"{stat.S_IMODE(mode):04o}); run: chmod 600 {target}"
        )
    return text
