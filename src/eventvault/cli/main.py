"""The ``eventvault`` command line.

Data goes to stdout, messages and progress bars to stderr. Exit codes:

====  =========================================================
0     success
1     unexpected internal error (set EVENTVAULT_DEBUG=1 for a traceback)
2     bad input: usage, an invalid event (an unknown field too), query, cursor, time
      or number
3     configuration error
4     conflict: wrong expected revision, or an id reused with other content
5     store unavailable: I/O error, disk full, server unreachable, a write to a
      read-only store
6     integrity: verify found a broken chain, or stored data is corrupt; a checkpoint,
      proof or audit bundle does not verify (or is signed by another key)
7     no store where the configuration points (reading commands never create one)
130   interrupted (Ctrl-C / SIGINT)
====  =========================================================
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from ..registry import backend_names
from .appending import append
from .audit import checkpoint_command, keygen, prove, upgrade, verify_bundle_command
from .bench import bench
from .common import EXIT_INTERNAL, Ctx
from .copying import copy_command
from .exporting import export_command, import_command
from .init import init
from .inspecting import list_command, reindex, stats, verify
from .logwatch import log_group
from .reading import get, query, tail
from .retention import retention
from .runs import COMMANDS as RUN_COMMANDS  # runs, trace, diff
from .serve import serve
from .witness import witness


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--config",
    "-c",
    "config",
    metavar="PATH",
    envvar=None,
    help="Config file (default: $EVENTVAULT_CONFIG, ./eventvault.toml, built-in).",
)
@click.option(
    "--backend",
    type=click.Choice(backend_names()),
    default=None,
    help="Override store.backend from the configuration.",
)
@click.option(
    "--url",
    metavar="URL",
    default=None,
    help="A server to use (`eventvault serve`): the http backend; token from EVENTVAULT_TOKEN.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bars or messages on stderr.")
@click.version_option(package_name="eventvault")
@click.pass_context
def cli(
    ctx: click.Context, config: str | None, backend: str | None, url: str | None, quiet: bool
) -> None:
    """eventvault: an append-only, verifiable event store.

    The global options (--config, --backend, --url, -q) may also follow the command:
    'eventvault verify --config prod.toml'.

    \b
    Zero configuration uses the file backend in ./eventvault-data:
      eventvault append --type build.started --actor ci --data '{"sha": "abc"}'
      eventvault query --type 'build.*' --since 2h --format json
      eventvault verify

    \b
    Exit codes: 0 ok, 1 internal error, 2 bad input, 3 configuration,
    4 conflict, 5 store unavailable, 6 integrity (verify, verify-bundle, log
    watch), 7 no store at the
    configured place (only init, append, import, serve create one),
    130 interrupted.
    """
    ctx.obj = Ctx(config, backend, quiet, url)


# Each command lives in the module named for what it does; importing them all is cheap
# (whatever is heavy — a driver, the server, the benchmarks — is imported when run).

for _command in [
    init, append, query, get, tail, stats, list_command, verify, reindex, retention,
    bench, copy_command, export_command, import_command, serve, *RUN_COMMANDS,
    keygen, checkpoint_command, prove, upgrade, verify_bundle_command, log_group, witness,
]:  # fmt: skip
    cli.add_command(_command)


def _global_option(attr: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def store(ctx: click.Context, _param: click.Parameter, value: Any) -> None:
        if value:  # (None / False: not given after the command; keep what came before)
            setattr(ctx.ensure_object(Ctx), attr, value)

    return store


def _accept_global_options(command: click.Command) -> None:
    """Let --config, --backend and -q follow the subcommand too (``eventvault verify
    --config x.toml``), as kubectl and the nats CLI allow: each command gets hidden
    copies that write into the same :class:`Ctx`. A command's own option of the same
    name (``bench --backend``: which backend to measure) wins."""
    taken = {opt for p in command.params for opt in getattr(p, "opts", [])}
    extra = [
        click.Option(
            ["--config", "-c"], metavar="PATH", expose_value=False, hidden=True,
            callback=_global_option("config_path"),
        ),
        click.Option(
            ["--backend"], type=click.Choice(backend_names()), expose_value=False,
            hidden=True, callback=_global_option("backend"),
        ),
        click.Option(
            ["--url"], metavar="URL", expose_value=False, hidden=True,
            callback=_global_option("url"),
        ),
        click.Option(
            ["--quiet", "-q"], is_flag=True, expose_value=False, hidden=True,
            callback=_global_option("quiet"),
        ),
    ]  # fmt: skip
    for option in extra:
        if not taken.intersection(option.opts):
            # Parsed before the command's own options, so a callback sees the Ctx set.
            command.params.insert(0, option)
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _accept_global_options(sub)


for _command in cli.commands.values():
    _accept_global_options(_command)


def main() -> None:
    """Entry point of the ``eventvault`` command."""
    # The connection pool logs every retry; the CLI reports the one error that counts.
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
    try:
        cli.main(standalone_mode=True)
    except SystemExit:
        raise
    except Exception as exc:  # pragma: no cover - last resort, no traceback for users
        if os.environ.get("EVENTVAULT_DEBUG"):
            raise
        click.echo(
            f"internal error: {type(exc).__name__}: {exc} (set EVENTVAULT_DEBUG=1 for a traceback)",
            err=True,
        )
        sys.exit(EXIT_INTERNAL)
