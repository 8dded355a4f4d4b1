"""``eventvault keygen``, ``checkpoint``, ``prove``, ``upgrade`` and ``verify-bundle``:
the Merkle tree of a store, its signed checkpoints and proofs (docs/audit.md)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
import msgspec

from .. import errors
from ..spi import Proving, lacking
from .auditkeys import load_signer, load_verifiers
from .common import EXIT_INTEGRITY, EXIT_INTERRUPTED, Ctx, PathArg, _handle_errors, pass_ctx

__all__ = ["checkpoint_command", "keygen", "prove", "upgrade", "verify_bundle_command"]


@click.command("keygen")
@click.option(
    "--name",
    default=None,
    metavar="NAME",
    help="The key's name, also the log's origin: a schema-less URL unique to the store "
    "(default: eventvault.local/<store id> of the configured store).",
)
@click.option(
    "--out",
    "prefix",
    type=PathArg(dir_okay=False),
    default="eventvault-audit",
    show_default=True,
    metavar="PREFIX",
    help="Write PREFIX.key (the signing key, mode 0600) and PREFIX.pub (the verifier key).",
)
@pass_ctx
@_handle_errors
def keygen(ctx: Ctx, /, name: str | None, prefix: str) -> None:
    """Make an Ed25519 key pair to sign the store's checkpoints.

    The signing key (PREFIX.key) belongs to the service that appends, not to whoever
    administers the files or the database: keep it readable by that user only (it is
    written 0600 and never printed). The verifier key is printed and written to
    PREFIX.pub: give it to every auditor. An existing key file is never overwritten.

    \b
    Example:
      eventvault keygen --name example.com/eventvault/prod --out /etc/eventvault/audit
      # then in eventvault.toml:  [audit]  signing_key = "/etc/eventvault/audit.key"
    """
    from ..tlog.note import NoteSigner, write_key_file

    if name is None:
        name = _default_name(ctx)
    key_path, pub_path = Path(f"{prefix}.key"), Path(f"{prefix}.pub")
    for path in (key_path, pub_path):
        if path.exists():
            raise errors.ValidationError(
                f"{path} already exists; refusing to overwrite a key (choose another --out)"
            )
    signer = NoteSigner.generate(name)
    verifier = signer.verifier().key_text
    write_key_file(key_path, signer.key_text)
    try:
        pub_path.write_text(verifier + "\n", encoding="utf-8")
    except OSError as exc:
        raise errors.StoreUnavailableError(f"writing {pub_path}: {exc.strerror}") from exc
    ctx.say(f"wrote the signing key to {key_path} (mode 0600) and the verifier key to {pub_path}")
    ctx.say(f'sign checkpoints with it: [audit] signing_key = "{key_path}"')
    click.echo(verifier)


def _default_name(ctx: Ctx) -> str:
    try:
        with ctx.store() as store:
            store_id = store.store_id
    except (errors.StoreNotFoundError, errors.ConfigError):
        raise click.UsageError(
            "no store is configured here to name the key after: pass --name NAME "
            "(a schema-less URL unique to the log, e.g. example.com/eventvault/prod)"
        ) from None
    return f"eventvault.local/{store_id}"


@click.command("checkpoint")
@click.option(
    "--key",
    "key_path",
    type=PathArg(dir_okay=False, exists=True),
    default=None,
    metavar="FILE",
    help="The signing key (default: [audit] signing_key).",
)
@click.option("--size", type=click.IntRange(min=0), default=None, help="Tree size (default: all).")
@click.option(
    "--out", type=PathArg(dir_okay=False), default=None, help="Write the note here, not stdout."
)
@click.option(
    "--save", is_flag=True, help="Keep it in the store too (served at GET /v1/log/checkpoint)."
)
@pass_ctx
@_handle_errors
def checkpoint_command(
    ctx: Ctx, /, key_path: str | None, size: int | None, out: str | None, save: bool
) -> None:
    """Sign a checkpoint of the store's Merkle tree (a C2SP signed note).

    Keep checkpoints outside the store: 'eventvault verify --checkpoint' later proves
    the store still holds every event they cover, unchanged.

    \b
    Examples:
      eventvault checkpoint > seen/$(date +%s).checkpoint
      eventvault checkpoint --save --out latest.checkpoint
    """
    signer = load_signer(ctx, key_path)
    with ctx.store() as store:
        note = store.log.checkpoint(signer, size=size, save=save)
    if out is None:
        click.echo(note, nl=False)
        return
    _write_atomically(Path(out), note)
    ctx.say(f"wrote {out}" + (" and kept it in the store" if save else ""))


def _write_atomically(path: Path, text: str) -> None:
    import os

    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
    except OSError as exc:
        raise errors.StoreUnavailableError(f"writing {path}: {exc.strerror}") from exc


@click.command("prove")
@click.argument("event_id", required=False)
@click.option("--size", type=click.IntRange(min=0), default=None, help="Tree size (default: all).")
@click.option(
    "--consistency",
    nargs=2,
    type=click.IntRange(min=0),
    default=None,
    metavar="M N",
    help="Instead: prove the tree of N leaves extends the tree of M.",
)
@pass_ctx
@_handle_errors
def prove(
    ctx: Ctx, /, event_id: str | None, size: int | None, consistency: tuple[int, int] | None
) -> None:
    """Print an inclusion proof of an event, or a consistency proof, as JSON.

    Inclusion: {"leaf_index", "tree_size", "leaf_hash", "audit_path", "root_hash"};
    consistency: {"first", "second", "first_root", "second_root", "proof"}. Hashes in
    hex, paths in RFC 9162 order: any RFC 9162 verifier checks them.

    \b
    Examples:
      eventvault prove 0190f1e2-...-7c3a --size 1000
      eventvault prove --consistency 1000 2000
    """
    if (event_id is None) == (consistency is None):
        raise click.UsageError("pass an EVENT_ID or --consistency M N (one of them)")
    if consistency is not None and size is not None:
        raise click.UsageError("--size is for an inclusion proof; --consistency names both sizes")
    with ctx.store() as store:
        if consistency is not None:
            body = store.log.consistency_proof(*consistency).to_dict()
        else:
            assert event_id is not None
            body = store.log.inclusion_proof(_event_id(event_id), size=size).to_dict()
    click.echo(msgspec.json.encode(body).decode())


def _event_id(text: str) -> str:
    from uuid import UUID

    try:
        return str(UUID(text))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not an event id (a UUID)", param_hint="EVENT_ID"
        ) from None


@click.command("upgrade")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation (for scripts).")
@pass_ctx
@_handle_errors
def upgrade(ctx: Ctx, /, yes: bool) -> None:
    """Build the Merkle tree of an existing store, in place.

    Resumable: interrupted, it keeps what it built and the next run continues. Events
    keep their chain hashes; the tree is added alongside. Appends may continue meanwhile.

    \b
    Example:
      eventvault upgrade --yes && eventvault checkpoint --save
    """
    with ctx.store() as store:
        backend = store.backend
        build = getattr(backend, "build_tree", None)
        if build is None:
            if isinstance(backend, Proving):
                state = store.log.state()
                click.echo(
                    f"nothing to upgrade: the store keeps its Merkle tree ({state.size:,} leaves)"
                )
                return
            raise errors.NotSupportedError(
                f"this store cannot be upgraded: {lacking(backend, Proving)}"
            )
        total = store.stats().events
        if not yes:
            if not sys.stdin.isatty():
                raise errors.ValidationError("refusing to upgrade without confirmation; pass --yes")
            click.confirm(f"Build the Merkle tree over {total:,} events?", abort=True, err=True)
        try:
            with ctx.progress("building the tree", total) as advance:
                added = build(lambda done, _total: advance(done))
        except KeyboardInterrupt:
            click.echo(
                "interrupted: what was built is kept; run 'eventvault upgrade' again to continue",
                err=True,
            )
            raise SystemExit(EXIT_INTERRUPTED) from None
        state = store.log.state()
        root = store.log.root().hex()
    if added:
        click.echo(f"added {added:,} leaves: the tree has {state.size:,} leaves, root {root}")
    else:
        click.echo(
            f"nothing left to build: the tree is complete, {state.size:,} leaves, root {root}"
        )


@click.command("verify-bundle")
@click.argument("path", type=PathArg(dir_okay=False, exists=True, allow_dash=True), metavar="FILE")
@click.option(
    "--key",
    "keys",
    multiple=True,
    metavar="KEY_OR_FILE",
    help="The log's verifier key, or a file holding it (repeat to accept several).",
)
@click.option(
    "--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True
)
@pass_ctx
@_handle_errors
def verify_bundle_command(ctx: Ctx, /, path: str, keys: tuple[str, ...], fmt: str) -> None:
    """Check an audit bundle with no access to the store; exit 6 at the first event
    (or the checkpoint) that does not verify.

    The checkpoint's signature must be by a key given; every event's leaf hash is
    recomputed from its fields and its inclusion proof checked against the signed root.

    \b
    Example:
      eventvault verify-bundle run-7.evb --key "$(cat prod.pub)"
    """
    from ..integrity.bundle import BundleError, verify_bundle

    verifiers = load_verifiers(keys)
    source: str | bytes = sys.stdin.buffer.read() if path == "-" else path
    try:
        report = verify_bundle(source, verifiers)
    except BundleError as exc:
        if fmt == "json":
            body = {"ok": False, "reason": str(exc), "event_id": exc.event_id,
                    "leaf_index": exc.leaf_index}  # fmt: skip
            click.echo(msgspec.json.encode(body).decode())
        else:
            click.echo(f"FAILED: {exc}")
        sys.exit(EXIT_INTEGRITY)
    if fmt == "json":
        body = {"ok": True, **msgspec.to_builtins(report)}
        click.echo(msgspec.json.encode(body).decode())
        return
    click.echo(
        f"ok: {report.events:,} events proven by the checkpoint of {report.origin} "
        f"(tree size {report.tree_size:,}, root {report.root_hash}), signed by "
        + ", ".join(report.signed_by)
    )
