"""``eventvault witness``: run a C2SP tlog-witness for one or more logs.

``eventvault witness keygen`` makes the witness's own key (never the log's);
``eventvault witness serve`` answers ``POST /add-checkpoint`` (see
:mod:`eventvault.tlog.witness`): it co-signs a checkpoint only if it extends the
last one it co-signed for that log. Run it on another host, by another operator,
than the log: that is what makes a split view detectable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from ..errors import MissingExtraError, ValidationError
from .common import _handle_errors

__all__ = ["witness"]


@click.group("witness")
def witness() -> None:
    """Co-sign checkpoints of logs you watch (C2SP tlog-witness).

    A witness co-signs a log's checkpoint only if it extends the last one it
    co-signed, so the log cannot show different histories to different people.

    \b
    Example:
      eventvault witness keygen --name witness.example.com/w1 --out witness
      eventvault witness serve --key witness.key --state-dir state \\
          --log "$(cat log.pub)" --port 8731
    """


@witness.command("keygen")
@click.option("--name", required=True, help="The witness's name, e.g. witness.example.com/w1.")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Writes OUT.key (secret, mode 0600) and OUT.pub (the key to give verifiers).",
)
@_handle_errors
def keygen(name: str, out: Path) -> None:
    """Make a witness key (Ed25519, cosignature/v1).

    \b
    Example:
      eventvault witness keygen --name witness.example.com/w1 --out witness
    """
    from ..tlog import write_key_file
    from ..tlog.witness import Cosigner

    cosigner = Cosigner.generate(name)
    public = Path(f"{out}.pub")
    if public.exists():
        raise ValidationError(f"{public} already exists; refusing to overwrite a key")
    write_key_file(f"{out}.key", cosigner.key_text)
    public.write_text(cosigner.verifier().key_text + "\n", "utf-8")
    click.echo(cosigner.verifier().key_text)


@witness.command("serve")
@click.option(
    "--key",
    "key_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="The witness's signing key file (eventvault witness keygen).",
)
@click.option(
    "--log",
    "logs",
    multiple=True,
    required=True,
    help="A log to witness: its checkpoint verifier key (<origin>+<id>+<key>); repeatable.",
)
@click.option(
    "--state-dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where the latest co-signed checkpoint of each log is kept.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8731, show_default=True)
@_handle_errors
def serve(key_file: str, logs: tuple[str, ...], state_dir: Path, host: str, port: int) -> None:
    """Answer POST /add-checkpoint for the given logs.

    \b
    Example:
      eventvault witness serve --key witness.key --state-dir state --log "$(cat log.pub)"
    """
    try:
        import uvicorn
    except ImportError:
        raise MissingExtraError("server", "uvicorn") from None
    from ..tlog import NoteVerifier, read_key_file
    from ..tlog.witness import Cosigner, Witness

    cosigner = Cosigner.from_key(read_key_file(key_file))
    trusted: dict[str, list[NoteVerifier]] = {}
    for text in logs:
        verifier = NoteVerifier.from_key(text)
        trusted.setdefault(verifier.name, []).append(verifier)
    app = witness_app(Witness(cosigner, trusted, state_dir))
    click.echo(f"witness {cosigner.verifier().key_text} on http://{host}:{port}", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def witness_app(witness: Any) -> Any:
    """The witness's HTTP interface (a Starlette app): ``POST /add-checkpoint``."""
    from anyio import to_thread
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from ..tlog.witness import WitnessRefusal

    async def add_checkpoint(request: Request) -> PlainTextResponse:
        body = await request.body()
        if len(body) > 64 * 1024:
            return PlainTextResponse("request too large\n", status_code=413)
        try:
            line = await to_thread.run_sync(witness.add_checkpoint, body)
        except WitnessRefusal as exc:
            return PlainTextResponse(exc.body, exc.status, media_type=exc.content_type)
        return PlainTextResponse(line)

    return Starlette(routes=[Route("/add-checkpoint", add_checkpoint, methods=["POST"])])
