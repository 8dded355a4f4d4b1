"""A witness: co-signs a log's checkpoint only if it extends the last one it co-signed.

A log operator who shows one history to some verifiers and another to others (a
*split view*) cannot get both co-signed by the same witness: the witness keeps,
per log, the latest checkpoint it co-signed, and signs a new one only with a valid
consistency proof from that one. Verifiers that require a witness's cosignature
therefore all see one history.

Formats, as C2SP specifies them:

* the request (``tlog-witness`` ``add-checkpoint``): ``old <size>\\n``, up to 63
  base64 consistency-proof lines, an empty line, then the signed checkpoint;
* the answer: one note signature line, a ``tlog-cosignature`` ``cosignature/v1``
  (Ed25519 over ``cosignature/v1\\ntime <t>\\n`` ‖ the checkpoint body; the
  signature is the 8-byte big-endian time ‖ the 64-byte Ed25519 signature; key id
  = ``SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key)[:4]``);
* the outcome as the HTTP status the protocol assigns (:class:`WitnessRefusal`):
  404 unknown log, 403 no valid signature by the log's key, 400 old size above the
  new one, 409 old size is not the one last co-signed (the body then says which),
  422 the proof does not verify.

The witness's state is one small file per log in its state directory, replaced
atomically under a lock, so the check and the update are one step (the spec's
race between two submissions cannot roll a log back).
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from ..errors import ValidationError
from .checkpoint import Checkpoint
from .hashing import EMPTY_ROOT
from .note import NoteError, NoteSigner, NoteVerifier, Signature, open_note
from .proofs import ProofError, verify_consistency

__all__ = [
    "ALG_COSIGNATURE_V1",
    "CosignatureVerifier",
    "Cosigner",
    "Witness",
    "WitnessRefusal",
    "add_checkpoint_request",
    "request_cosignature",
]

ALG_COSIGNATURE_V1: Final = 0x04
MAX_PROOF_LINES: Final = 63


def _cosigned_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


class CosignatureVerifier(NoteVerifier):
    """Verifies a witness's ``cosignature/v1`` lines (pass it to ``open_note`` /
    ``open_checkpoint`` with the log's own verifier to require both). Its key text
    is ``<name>+<hex key id>+<base64(0x04 ‖ public key)>``."""

    __slots__ = ()
    ALG = ALG_COSIGNATURE_V1

    def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != 8 + 64:
            return False
        timestamp = int.from_bytes(signature[:8], "big")
        if timestamp == 0 or timestamp >= 2**63:
            return False
        return NoteVerifier.verify(
            self, _cosigned_message(message.decode(), timestamp), signature[8:]
        )

    @staticmethod
    def timestamp(signature: Signature) -> int:
        """The time (POSIX seconds) a cosignature line says it was made."""
        return int.from_bytes(base64.b64decode(signature.base64)[4:12], "big")


class Cosigner(NoteSigner):
    """The witness's Ed25519 key (``PRIVATE+KEY+<name>+<hex id>+<base64(0x04 ‖
    seed)>``: the signed-note private key form with the cosignature type byte). Its
    ``repr`` never shows the key."""

    __slots__ = ()
    ALG = ALG_COSIGNATURE_V1
    VERIFIER = CosignatureVerifier

    def cosign(self, text: str, timestamp: int | None = None) -> str:
        """The cosignature line (``— name base64…\\n``) of checkpoint body ``text``."""
        when = int(time.time()) if timestamp is None else timestamp
        if not 0 < when < 2**63:
            raise ValidationError(f"a cosignature's time must be 1..2^63-1, got {when}")
        sig = self.sign(_cosigned_message(text, when))
        raw = self.key_id.to_bytes(4, "big") + when.to_bytes(8, "big") + sig
        return Signature(self.name, self.key_id, base64.b64encode(raw).decode()).line


class WitnessRefusal(Exception):
    """The witness will not co-sign: ``status`` is the HTTP status tlog-witness
    assigns; ``body`` what to answer (for 409, the size last co-signed)."""

    def __init__(self, status: int, message: str, body: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body if body is not None else message + "\n"
        self.content_type = "text/x.tlog.size" if status == 409 else "text/plain; charset=utf-8"


def add_checkpoint_request(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """The body of a tlog-witness ``add-checkpoint`` request."""
    lines = [f"old {old_size}"] + [base64.b64encode(h).decode() for h in proof]
    return ("\n".join(lines) + "\n\n" + note).encode()


def _parse_request(body: bytes) -> tuple[int, list[bytes], str]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WitnessRefusal(400, "the request is not UTF-8") from None
    head, sep, note = text.partition("\n\n")
    if not sep:
        raise WitnessRefusal(400, "the request needs an empty line before the checkpoint")
    lines = head.split("\n")
    first = lines[0]
    size_text = first[4:]
    if not first.startswith("old ") or not size_text.isdigit() or not size_text.isascii():
        raise WitnessRefusal(400, "the request must start with 'old <size>'")
    if size_text != "0" and size_text.startswith("0"):
        raise WitnessRefusal(400, "the old size must have no leading zeros")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise WitnessRefusal(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
    proof: list[bytes] = []
    for line in lines[1:]:
        try:
            h = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            raise WitnessRefusal(400, f"proof line {line[:50]!r} is not base64") from None
        if len(h) != 32:
            raise WitnessRefusal(400, "each proof line must hold a 32-byte hash")
        proof.append(h)
    return int(size_text), proof, note


@dataclass(slots=True)
class _Seen:
    size: int
    root: bytes


class Witness:
    """Co-signs checkpoints of the logs it knows (``logs``: origin → the log's verifier
    keys), keeping its state in ``state_dir`` (one file per log)."""

    def __init__(
        self,
        cosigner: Cosigner,
        logs: Mapping[str, Iterable[NoteVerifier]],
        state_dir: str | os.PathLike[str],
    ) -> None:
        self.cosigner = cosigner
        self.logs = {origin: list(keys) for origin, keys in logs.items()}
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()

    def _state_path(self, origin: str) -> Path:
        digest = hashlib.sha256(origin.encode()).hexdigest()[:32]
        return self.state_dir / f"{digest}.json"

    def latest(self, origin: str) -> tuple[int, bytes] | None:
        """The size and root of the latest checkpoint co-signed for ``origin``."""
        seen = self._read(origin)
        return None if seen is None else (seen.size, seen.root)

    def _read(self, origin: str) -> _Seen | None:
        try:
            raw = json.loads(self._state_path(origin).read_text("utf-8"))
        except FileNotFoundError:
            return None
        if raw.get("origin") != origin:
            raise ValidationError(f"witness state for {origin!r} is for another log")
        return _Seen(int(raw["size"]), bytes.fromhex(raw["root"]))

    def _write(self, origin: str, seen: _Seen) -> None:
        path = self._state_path(origin)
        tmp = path.with_suffix(".tmp")
        data = json.dumps({"origin": origin, "size": seen.size, "root": seen.root.hex()})
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(self.state_dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def add_checkpoint(self, body: bytes, *, timestamp: int | None = None) -> str:
        """Handle an ``add-checkpoint`` request body: the cosignature line, or
        :class:`WitnessRefusal` with the protocol's status."""
        old, proof, note = _parse_request(body)
        try:
            origin = note[: note.index("\n")]
        except ValueError:
            raise WitnessRefusal(400, "the checkpoint is not a signed note") from None
        keys = self.logs.get(origin)
        if keys is None:
            raise WitnessRefusal(404, f"unknown log {origin!r}")
        try:
            opened = open_note(note, keys)
            cp = Checkpoint.from_text(opened.text)
        except NoteError as exc:
            raise WitnessRefusal(403, f"no valid signature by the log's key: {exc}") from None
        except ValidationError as exc:
            raise WitnessRefusal(400, f"not a checkpoint: {exc}") from None
        if old > cp.size:
            raise WitnessRefusal(400, f"old size {old} is above the checkpoint's {cp.size}")
        if cp.size == 0 and cp.root_hash != EMPTY_ROOT:
            raise WitnessRefusal(422, "a checkpoint of size 0 must have the empty tree's root")
        # One lock for the file lock and the thread lock: check and update are one step.
        with self._lock, self._file_lock():
            seen = self._read(origin)
            current = 0 if seen is None else seen.size
            if old != current:
                raise WitnessRefusal(
                    409,
                    f"old size {old} is not the size last co-signed ({current})",
                    f"{current}\n",
                )
            if old == 0:
                if proof:
                    raise WitnessRefusal(422, "a proof from size 0 must be empty")
            else:
                assert seen is not None
                try:
                    verify_consistency(old, cp.size, seen.root, cp.root_hash, proof)
                except (ProofError, ValidationError) as exc:
                    raise WitnessRefusal(
                        422, f"the checkpoint does not extend size {old}: {exc}"
                    ) from None
            line = self.cosigner.cosign(opened.text, timestamp)
            self._write(origin, _Seen(cp.size, cp.root_hash))
        return line

    def _file_lock(self) -> _FileLock:
        return _FileLock(self.state_dir / "lock")


class _FileLock:
    """An exclusive ``flock`` on the state directory (several witness processes)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def request_cosignature(
    url: str,
    note: str,
    *,
    witness: CosignatureVerifier,
    prove: Callable[[int], Sequence[bytes]],
    old_size: int = 0,
    timeout: float = 10.0,
) -> str:
    """Ask the witness at ``url`` (its submission prefix) to co-sign ``note``; returns
    the cosignature line, checked against ``witness``'s key.

    ``prove(m)`` gives the consistency proof from size ``m`` to the note's size.
    ``old_size`` is the size the caller believes the witness co-signed last; when
    the witness says otherwise (409) the request is made once more from its size,
    as the protocol intends. Any other refusal is a :class:`WitnessRefusal`.
    """
    try:
        import httpx
    except ImportError:
        from ..errors import MissingExtraError

        raise MissingExtraError("http", "httpx") from None
    endpoint = url.rstrip("/") + "/add-checkpoint"
    for _attempt in range(2):
        proof = prove(old_size) if old_size else ()
        try:
            r = httpx.post(
                endpoint, content=add_checkpoint_request(old_size, proof, note), timeout=timeout
            )
        except httpx.HTTPError as exc:
            raise WitnessRefusal(503, f"the witness at {url} did not answer: {exc}") from None
        if r.status_code == 409 and r.text.strip().isdigit() and _attempt == 0:
            old_size = int(r.text.strip())
            continue
        if r.status_code != 200:
            raise WitnessRefusal(
                r.status_code, f"the witness at {url} refused: {r.text.strip()[:200]}"
            )
        line = r.text
        try:
            opened = open_note(note + line, [witness])
        except NoteError as exc:
            raise WitnessRefusal(
                502, f"the witness at {url} answered no valid cosignature: {exc}"
            ) from None
        return "".join(s.line for s in opened.signatures)
    raise WitnessRefusal(409, f"the witness at {url} keeps moving its size")
