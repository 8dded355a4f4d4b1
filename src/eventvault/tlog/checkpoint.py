"""C2SP ``tlog-checkpoint``: the text a log signs to commit to its tree head.

::

    <origin>\\n
    <tree size, decimal>\\n
    <root hash, base64>\\n
    [<extension line>\\n ...]

The body of a :mod:`signed note <eventvault.tlog.note>`; see https://c2sp.org/tlog-checkpoint.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import ValidationError
from .hashing import HASH_SIZE
from .note import NoteError, NoteSigner, NoteVerifier, Signature, open_note, sign_note
from .proofs import ProofError, verify_consistency

__all__ = ["Checkpoint", "check_extends", "open_checkpoint", "sign_checkpoint"]


def _check_line(line: str, what: str) -> None:
    if not line:
        raise ValidationError(f"checkpoint {what} must not be empty")
    for ch in line:
        if ch < " ":
            raise ValidationError(f"checkpoint {what} must not contain control characters")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tree head: which log (``origin``), how many leaves, and their root."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if type(self.size) is not int or self.size < 0:
            raise ValidationError(
                f"checkpoint tree size must be an integer >= 0, got {self.size!r}"
            )
        if type(self.root_hash) is not bytes or len(self.root_hash) != HASH_SIZE:
            raise ValidationError(f"checkpoint root hash must be {HASH_SIZE} bytes")
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for line in self.extensions:
            if type(line) is not str:
                raise ValidationError("checkpoint extension lines must be strings")
            _check_line(line, "extension line")

    def to_text(self) -> str:
        """The checkpoint body, every line ending in a newline (the note text to sign)."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root_hash).decode()]
        lines.extend(self.extensions)
        return "".join(line + "\n" for line in lines)

    @classmethod
    def from_text(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body (the text of a signed note, after it was verified)."""
        if not text.endswith("\n"):
            raise ValidationError("a checkpoint must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise ValidationError(
                "a checkpoint needs at least three lines: origin, tree size, root hash"
            )
        origin, size_text, root_text, *extensions = lines
        if (
            not size_text.isascii()
            or not size_text.isdigit()
            or (size_text != "0" and size_text.startswith("0"))
        ):
            raise ValidationError(
                f"checkpoint tree size {size_text!r} must be a decimal number without leading zeros"
            )
        try:
            root = base64.b64decode(root_text, validate=True)
        except (binascii.Error, ValueError):
            raise ValidationError(f"checkpoint root hash {root_text!r} is not base64") from None
        if base64.b64encode(root).decode() != root_text:
            raise ValidationError(f"checkpoint root hash {root_text!r} is not canonical base64")
        return cls(origin, int(size_text), root, tuple(extensions))


def sign_checkpoint(
    checkpoint: Checkpoint, signers: Iterable[NoteSigner], keep: Sequence[Signature] = ()
) -> str:
    """The checkpoint as a signed note (C2SP: the log's key name should be its origin)."""
    return sign_note(checkpoint.to_text(), signers, keep)


def open_checkpoint(
    message: str | bytes, verifiers: Iterable[NoteVerifier], *, origin: str | None = None
) -> Checkpoint:
    """Verify a signed checkpoint and parse it.

    The signature must be by one of ``verifiers`` (see
    :func:`~eventvault.tlog.note.open_note`), and, if given, the origin must be
    ``origin`` — a checkpoint of another log signed by a trusted key proves nothing
    about this one.
    """
    note = open_note(message, verifiers)
    try:
        checkpoint = Checkpoint.from_text(note.text)
    except ValidationError as exc:
        raise NoteError(f"the signed note is not a checkpoint: {exc}") from None
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"the checkpoint is for the log {checkpoint.origin!r}, not {origin!r}")
    return checkpoint


def check_extends(old: Checkpoint, new: Checkpoint, proof: Sequence[bytes]) -> None:
    """Check that ``new`` extends ``old``: same log, not smaller, and ``proof`` a valid
    consistency proof between them (:class:`~eventvault.tlog.ProofError` naming what
    failed). This is what a client holding ``old`` must check before accepting ``new``."""
    if old.origin != new.origin:
        raise ProofError(f"checkpoints of two logs: {old.origin!r} and {new.origin!r}")
    if new.size < old.size:
        raise ProofError(
            f"the log went backwards: a checkpoint of size {old.size} was seen, now {new.size}"
        )
    if old.size == 0:
        return  # the empty tree is a prefix of every tree
    verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)
