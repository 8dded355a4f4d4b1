"""``eventvault export`` and ``eventvault import``: a store to a file and back, exactly."""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import click
import msgspec

from .. import errors
from ..export import check_export, export_store, import_store
from ..registry import open_store
from ..store import EventStore
from .appending import seekable
from .common import (
    EXIT_INTEGRITY,
    EXIT_INTERRUPTED,
    Ctx,
    FileArg,
    PathArg,
    _handle_errors,
    _query,
    pass_ctx,
    query_options,
)


@click.command("export")
@click.option(
    "--file",
    "path",
    type=PathArg(dir_okay=False, allow_dash=True),
    default="-",
    show_default=True,
    help="Where to write the export ('-': stdout).",
)
@click.option(
    "--bundle",
    type=PathArg(dir_okay=False, allow_dash=True),
    default=None,
    metavar="FILE",
    help="Instead: an offline audit bundle of the selected events, their inclusion "
    "proofs and a signed checkpoint ('eventvault verify-bundle' checks it).",
)
@click.option(
    "--key",
    "key_path",
    type=PathArg(dir_okay=False, exists=True),
    default=None,
    metavar="SIGNING_KEY",
    help="With --bundle: sign a fresh checkpoint with this key (needed when the store's "
    "latest kept checkpoint does not cover every selected event).",
)
@query_options
@pass_ctx
@_handle_errors
def export_command(
    ctx: Ctx, /, path: str, bundle: str | None, key_path: str | None, **filters: Any
) -> None:
    """Write every event (or a filtered slice) to a file, exactly as stored.

    Ids, positions, revisions, times and hashes are kept: `eventvault import`
    rebuilds the same store (the same head hash; into a store of the other hash
    format, the same events hashed its way), like `copy` into a file store. Streams
    with bounded memory; a file is written as PATH.partial and renamed when
    complete, and its last line records the count and the head hash, so a
    cut-short export is refused on import.

    \b
    Examples:
      eventvault export --file backup.jsonl
      eventvault export --type 'deploy.*' --since 7d > deploys.jsonl
      eventvault --config new.toml import --file backup.jsonl
      eventvault export --correlation-id run-7 --bundle run-7.evb
    """
    query = _query(**filters)
    if bundle is not None:
        if path != "-":
            raise click.UsageError("--bundle FILE is the output; --file is for a plain export")
        _export_bundle(ctx, query, bundle, key_path)
        return
    if key_path is not None:
        raise click.UsageError("--key signs the checkpoint of a bundle: pass --bundle FILE")
    with ctx.store() as store:
        total = store.stats().events
        with ctx.progress("exporting", total) as advance:

            def progress(done: int, _total: int | None) -> None:
                advance(done)

            if path == "-":
                report = export_store(store, sys.stdout.buffer, query, progress=progress)
            else:
                partial = Path(f"{path}.partial")
                with open(partial, "wb") as out:
                    report = export_store(store, out, query, progress=progress)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(partial, path)
    ctx.say(
        f"exported {report.events:,} events in {report.seconds:.1f} s"
        + (f", head hash {report.head_hash}" if report.head_hash else "")
    )


def _export_bundle(ctx: Ctx, query: Any, target: str, key_path: str | None) -> None:
    from ..integrity.bundle import write_bundle
    from .auditkeys import load_signer

    with ctx.store() as store:
        note = None
        if key_path is not None:
            note = store.log.checkpoint(load_signer(ctx, key_path))
        total = store.stats().events
        with ctx.progress("proving", total) as advance:
            out: Any = sys.stdout.buffer if target == "-" else target
            report = write_bundle(store, query, out, checkpoint=note, progress=advance)
    ctx.say(
        f"wrote a bundle of {report.events:,} events proven by the checkpoint of "
        f"{report.origin} (tree size {report.tree_size:,}, root {report.root_hash})"
    )


@click.command("import")
@click.option(
    "--file",
    "file_",
    type=FileArg("rb"),
    required=True,
    help="An export written by 'eventvault export' ('-': stdin).",
)
@click.option(
    "--verify/--no-verify",
    default=True,
    show_default=True,
    help="Verify the store (its hashes and Merkle tree) at the end.",
)
@click.option(
    "--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True
)
@pass_ctx
@_handle_errors
def import_command(ctx: Ctx, /, file_: IO[bytes], verify: bool, fmt: str) -> None:
    """Load an export into this store, exactly as exported (creates the store).

    The whole file is checked first (its end line, its count, every event, the hash
    links), so a damaged or cut-short export writes nothing. The store must be empty,
    or hold an interrupted import of the same file: then the import continues after
    what is there and never stores an event twice. Exits 6 if the store does not
    verify at the end.

    \b
    Example:
      eventvault export --file backup.jsonl
      eventvault --config restored.toml import --file backup.jsonl
    """
    raw_name = getattr(file_, "name", "-")
    name = "<stdin>" if raw_name in ("-", "<stdin>") else str(raw_name)
    cfg = ctx.config()
    try:
        with seekable(file_) as source, ExitStack() as stack:
            try:
                existing: EventStore | None = stack.enter_context(open_store(cfg, create=False))
            except errors.StoreNotFoundError:
                existing = None  # created once the file has passed its checks
            ctx.say(f"checking {name}…")
            checked = check_export(source, name, existing)
            store = (
                existing
                if existing is not None
                else stack.enter_context(open_store(cfg, create=True))
            )
            with ctx.progress("importing", checked.events) as advance:
                report = import_store(
                    store,
                    source,
                    name=name,
                    checked=checked,
                    progress=lambda done, _total: advance(done),
                )
            result = None
            if verify:
                ctx.say("verifying the store…")
                result = store.verify()
    except KeyboardInterrupt:
        click.echo(
            "interrupted: what was imported is kept; re-run the same command to continue "
            "(no event is stored twice)",
            err=True,
        )
        raise SystemExit(EXIT_INTERRUPTED) from None
    same_head = report.rechained or result is None or result.head_hash == report.head_hash
    ok = result is None or (result.ok and same_head)
    if fmt == "json":
        out: dict[str, Any] = msgspec.to_builtins(report)
        out["verify"] = msgspec.to_builtins(result) if result is not None else None
        out["ok"] = ok
        click.echo(msgspec.json.encode(out).decode())
    else:
        again = (
            f" ({report.already_stored:,} were already imported)" if report.already_stored else ""
        )
        click.echo(
            f"imported {report.imported:,} events{again} in {report.seconds:.1f} s"
            + (f"; head hash {report.head_hash}" if report.head_hash else "")
            + ("" if result is None else "; verified" if ok else "; VERIFY FAILED")
        )
    if not ok:
        if result is not None and not result.ok:
            click.echo(f"error: {result.reason} at position {result.first_bad_position}", err=True)
        elif result is not None:
            click.echo(
                f"error: the store's head hash {result.head_hash} is not the export's "
                f"{report.head_hash}",
                err=True,
            )
        sys.exit(EXIT_INTEGRITY)
