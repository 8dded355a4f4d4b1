"""``eventvault log watch``: the client-held state of a log.

A watcher keeps the newest checkpoint it verified in a directory of its own and
accepts a new one only if its signature holds and a consistency proof shows it
extends the kept one. A log that went backwards, or shows a fork (another tree at a
size already seen, or a tree that does not extend the kept one), is refused: the
command exits 6 naming it and the kept checkpoint stays as it was — the evidence.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import click
import msgspec

from .. import errors
from ..timeutil import parse_duration
from ..tlog.checkpoint import Checkpoint, check_extends
from ..tlog.note import NoteVerifier
from ..tlog.proofjson import ConsistencyProof
from ..tlog.proofs import ProofError
from .auditkeys import (
    IntegrityFailure,
    fetch_checkpoint,
    http_get,
    load_verifiers,
    open_signed,
    server_base,
)
from .common import EXIT_INTEGRITY, Ctx, PathArg, _handle_errors, pass_ctx

__all__ = ["log_group"]

#: Where the newest accepted checkpoint is kept in the watcher's directory.
LATEST = "latest"


@click.group("log")
def log_group() -> None:
    """The store as a transparency log (docs/audit.md).

    \b
    Example:
      eventvault log watch --checkpoint-dir seen/ --key audit.pub --once
    """


# (latest note or None, consistency proof between two sizes)
Source = tuple[Callable[[], str | None], Callable[[int, int], ConsistencyProof]]


@log_group.command("watch")
@click.option(
    "--checkpoint-dir",
    "directory",
    type=PathArg(file_okay=False),
    required=True,
    metavar="DIR",
    help="The watcher's own directory: DIR/latest and DIR/<size>.checkpoint.",
)
@click.option(
    "--key",
    "keys",
    multiple=True,
    required=True,
    metavar="KEY_OR_FILE",
    help="The log's verifier key, or a file holding it.",
)
@click.option(
    "--url",
    default=None,
    metavar="URL",
    help="Watch a server (GET /v1/log/checkpoint, /v1/log/consistency) instead of the "
    "configured store.",
)
@click.option("--interval", default="10s", show_default=True, help="Between two checks.")
@click.option("--once", is_flag=True, help="Check once and exit (cron, tests).")
@pass_ctx
@_handle_errors
def log_watch(
    ctx: Ctx, /, directory: str, keys: tuple[str, ...], url: str | None, interval: str, once: bool
) -> None:
    """Keep the newest verified checkpoint of a log, refusing to go backwards.

    Each check fetches the latest checkpoint (from the server at --url, or the
    configured store), verifies its signature and a consistency proof from the one
    kept in DIR, then writes it to DIR/latest and DIR/<size>.checkpoint. A log that
    went backwards or forked exits 6 with the reason, keeping the old checkpoint.

    \b
    Examples:
      eventvault log watch --checkpoint-dir ~/.eventvault/prod --key prod.pub \\
          --url https://events.example.com
      eventvault log watch --checkpoint-dir seen/ --key prod.pub --once
    """
    verifiers = load_verifiers(keys)
    try:
        pause = parse_duration(interval).total_seconds()
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--interval") from None
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    if url is not None:
        _watch(ctx, folder, verifiers, _server_source(url), pause, once)
        return
    with ctx.store() as store:

        def latest() -> str | None:
            return store.log.latest_checkpoint()

        _watch(ctx, folder, verifiers, (latest, store.log.consistency_proof), pause, once)


def _server_source(url: str) -> Source:
    base = server_base(url).rstrip("/")

    def latest() -> str | None:
        try:
            return fetch_checkpoint(base)
        except errors.StoreNotFoundError:
            return None

    def consistency(first: int, second: int) -> ConsistencyProof:
        raw = http_get(f"{base}/v1/log/consistency", {"first": first, "second": second})
        try:
            return ConsistencyProof.from_dict(msgspec.json.decode(raw))
        except msgspec.DecodeError:
            raise errors.ValidationError(
                f"{base}/v1/log/consistency answered something that is not JSON"
            ) from None

    return latest, consistency


def _watch(
    ctx: Ctx,
    folder: Path,
    verifiers: Sequence[NoteVerifier],
    source: Source,
    pause: float,
    once: bool,
) -> None:
    while True:
        try:
            check_once(ctx, folder, verifiers, source)
        except IntegrityFailure as exc:
            click.echo(f"REFUSED: {exc}", err=True)
            click.echo(f"the last verified checkpoint is kept in {folder / LATEST}", err=True)
            sys.exit(EXIT_INTEGRITY)
        except (errors.StoreUnavailableError, errors.AccessError) as exc:
            if once:
                raise
            click.echo(f"warning: {exc}; trying again in {pause:g} s", err=True)
        if once:
            return
        time.sleep(pause)


def check_once(
    ctx: Ctx, folder: Path, verifiers: Sequence[NoteVerifier], source: Source
) -> Checkpoint | None:
    """One check: the new checkpoint accepted (None: nothing new, or none yet)."""
    latest, consistency = source
    kept_path = folder / LATEST
    kept = None
    if kept_path.exists():
        kept = open_signed(
            kept_path.read_text("utf-8"), verifiers, f"the kept checkpoint {kept_path}"
        )
    note = latest()
    if note is None:
        if kept is not None:
            raise IntegrityFailure(
                f"the log serves no checkpoint, but one of size {kept.size} was seen: "
                "its checkpoints were removed"
            )
        ctx.say("the log has no signed checkpoint yet")
        return None
    new = open_signed(note, verifiers, "the log's latest checkpoint")
    if kept is not None:
        if new.size == kept.size and new.root_hash == kept.root_hash:
            ctx.say(f"unchanged: tree size {new.size:,}")
            return None
        try:
            if new.size < kept.size or new.origin != kept.origin:
                check_extends(kept, new, ())  # raises, naming which
            proof = consistency(kept.size, new.size) if kept.size else None
            if proof is not None:
                if (proof.first, proof.second) != (kept.size, new.size):
                    raise ProofError(
                        f"asked for a consistency proof from {kept.size} to {new.size}, "
                        f"got one from {proof.first} to {proof.second}"
                    )
                check_extends(kept, new, proof.proof)
            else:
                check_extends(kept, new, ())
        except ProofError as exc:
            raise IntegrityFailure(
                f"the log's checkpoint of size {new.size} does not extend the one kept "
                f"(size {kept.size}): {exc}"
            ) from None
    _keep(folder, new.size, note)
    was = f" (extends {kept.size:,})" if kept is not None else " (the first one kept)"
    click.echo(f"accepted: tree size {new.size:,}, root {new.root_hash.hex()}{was}")
    return new


def _keep(folder: Path, size: int, note: str) -> None:
    """Write ``note`` as DIR/<size>.checkpoint and DIR/latest, each atomically."""
    for name in (f"{size}.checkpoint", LATEST):
        target = folder / name
        partial = folder / f".{name}.partial"
        try:
            with open(partial, "w", encoding="utf-8") as f:
                f.write(note)
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, target)
        except OSError as exc:
            raise errors.StoreUnavailableError(f"writing {target}: {exc.strerror}") from exc
