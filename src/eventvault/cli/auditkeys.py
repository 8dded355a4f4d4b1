"""What the audit commands share: signing and verifier keys, checkpoint notes read
from files, directories and servers (docs/audit.md)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from .. import errors
from ..tlog.checkpoint import Checkpoint
from ..tlog.note import (
    InvalidSignatureError,
    NoteError,
    NoteSigner,
    NoteVerifier,
    UnverifiedNoteError,
    open_note,
    read_key_file,
)
from .common import Ctx

__all__ = [
    "CheckpointSource",
    "IntegrityFailure",
    "http_get",
    "load_signer",
    "load_verifiers",
    "open_signed",
    "read_checkpoints",
]

#: Where ``eventvault serve`` serves the latest signed checkpoint (text/plain).
CHECKPOINT_PATH = "/v1/log/checkpoint"
#: Larger answers are refused: a checkpoint is a few hundred bytes.
_MAX_NOTE = 64 * 1024


class IntegrityFailure(errors.CorruptionError):
    """What was given does not verify (a signature, a proof): exit 6, naming it."""


def load_signer(ctx: Ctx, path: str | None) -> NoteSigner:
    """The signing key in ``path``, or in the configuration's ``[audit] signing_key``."""
    if path is None:
        path = ctx.config().audit.signing_key
    if path is None:
        raise errors.ConfigError(
            "no signing key: pass --key FILE or set [audit] signing_key in the "
            "configuration (eventvault keygen writes one)"
        )
    text = read_key_file(path)
    try:
        return NoteSigner.from_key(text)
    except errors.ValidationError as exc:
        raise errors.ValidationError(f"{path}: {exc}") from None


def load_verifiers(keys: Sequence[str]) -> list[NoteVerifier]:
    """Each ``--key``: a verifier key text (``name+id+base64``) or a file holding one."""
    if not keys:
        raise click.UsageError("pass the log's verifier key: --key KEY_OR_FILE")
    out = []
    for key in keys:
        text = key
        if os.path.exists(key) or "+" not in key:
            text = read_key_file(key)
        try:
            out.append(NoteVerifier.from_key(text))
        except errors.ValidationError as exc:
            raise errors.ValidationError(f"--key {_short(key)}: {exc}") from None
    return out


def _short(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


def open_signed(note: str, verifiers: Sequence[NoteVerifier], label: str) -> Checkpoint:
    """A checkpoint note opened with the verifier keys given. Signed by another key,
    or with a signature that does not verify: :class:`IntegrityFailure` naming
    ``label`` and the signer; not a signed checkpoint at all: ValidationError."""
    try:
        opened = open_note(note, verifiers)
    except UnverifiedNoteError as exc:
        signers = ", ".join(f"{s.name}+{s.key_id:08x}" for s in exc.note.unverified)
        given = ", ".join(v.key_text.rsplit("+", 1)[0] for v in verifiers)
        raise IntegrityFailure(
            f"{label} is signed by {signers or 'no key'}, not by a key given ({given})"
        ) from None
    except InvalidSignatureError as exc:
        raise IntegrityFailure(f"{label}: {exc} (the checkpoint was altered)") from None
    except NoteError as exc:  # not a signed note at all
        raise errors.ValidationError(f"{label}: {exc}") from None
    try:
        return Checkpoint.from_text(opened.text)
    except errors.ValidationError as exc:
        raise errors.ValidationError(f"{label} is not a checkpoint: {exc}") from None


class CheckpointSource:
    """One ``--checkpoint``: a file, a directory (every file in it), or a server."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.is_url = urlsplit(spec).scheme in ("http", "https")

    def notes(self) -> list[tuple[str, str]]:
        """(label, note text) for each checkpoint this source holds."""
        if self.is_url:
            return [(self.spec, fetch_checkpoint(self.spec))]
        path = Path(self.spec)
        if path.is_dir():
            files = sorted(
                p
                for p in path.iterdir()
                if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".partial")
            )
            if not files:
                raise errors.ValidationError(f"--checkpoint {path}: the directory holds no file")
            return [(str(p), _read_note(p)) for p in files]
        return [(str(path), _read_note(path))]


def _read_note(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            raw = f.read(_MAX_NOTE + 1)
    except OSError as exc:
        raise errors.ValidationError(f"cannot read the checkpoint {path}: {exc.strerror}") from None
    return _note_text(raw, str(path))


def _note_text(raw: bytes, label: str) -> str:
    if len(raw) > _MAX_NOTE:
        raise errors.ValidationError(f"{label}: over {_MAX_NOTE} bytes, not a checkpoint")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.ValidationError(f"{label}: not UTF-8 text, not a checkpoint") from None


def read_checkpoints(
    specs: Sequence[str], verifiers: Sequence[NoteVerifier]
) -> list[tuple[str, Checkpoint]]:
    """Every checkpoint the ``--checkpoint`` specs name, each signature checked; the
    same note found twice (``log watch`` keeps DIR/latest and DIR/<size>.checkpoint)
    counts once."""
    out = []
    seen: set[str] = set()
    for spec in specs:
        for label, note in CheckpointSource(spec).notes():
            checkpoint = open_signed(note, verifiers, f"checkpoint {label}")
            if note not in seen:
                seen.add(note)
                out.append((label, checkpoint))
    return out


def _server_url(url: str, path: str) -> str:
    """``url`` as given if it names a path, else the server's ``path`` under it."""
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        return url.rstrip("/") + path
    return url


def http_get(url: str, params: dict[str, Any] | None = None) -> bytes:
    """GET ``url`` (bearer token from EVENTVAULT_TOKEN if set); the body of a 200."""
    try:
        import httpx
    except ImportError:
        raise errors.MissingExtraError("http", "httpx") from None
    headers = {}
    token = os.environ.get("EVENTVAULT_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = httpx.get(url, params=params, headers=headers, timeout=30.0)
    except httpx.HTTPError as exc:
        raise errors.StoreUnavailableError(f"GET {url}: {exc}") from None
    code = response.status_code
    if code == 200:
        return response.content
    said = _error_message(response.content)
    where = f"GET {url}: HTTP {code}" + (f": {said}" if said else "")
    if code in (401, 403):
        raise errors.AuthenticationError(
            f"{where} (set EVENTVAULT_TOKEN to a token the server knows)"
        )
    if code == 404:
        raise errors.StoreNotFoundError(f"{where} (no checkpoint there yet, or not a server)")
    if code == 400:
        raise errors.ValidationError(where)
    if code == 501:
        raise errors.NotSupportedError(where)
    raise errors.StoreUnavailableError(where)


def _error_message(body: bytes) -> str:
    """The message of a server's error answer (``{"error": {"message": ...}}`` or
    ``{"detail": ...}``), or its first line of text, shortened, for a person."""
    import msgspec

    text = ""
    try:
        doc = msgspec.json.decode(body)
    except msgspec.DecodeError:
        text = body[:300].decode("utf-8", "replace").split("\n", 1)[0]
    else:
        if isinstance(doc, dict):
            err = doc.get("error")
            found = err.get("message") if isinstance(err, dict) else doc.get("detail")
            text = found if isinstance(found, str) else ""
    text = text.strip()
    return text if len(text) <= 300 else text[:297] + "..."


def fetch_checkpoint(url: str) -> str:
    """The latest signed checkpoint a server serves (``GET /v1/log/checkpoint``)."""
    target = _server_url(url, CHECKPOINT_PATH)
    return _note_text(http_get(target), target)


def server_base(url: str) -> str:
    """The server's base URL from a URL that may name the checkpoint path."""
    return url[: -len(CHECKPOINT_PATH)] if url.rstrip("/").endswith(CHECKPOINT_PATH) else url
