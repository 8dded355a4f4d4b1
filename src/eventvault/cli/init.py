"""``eventvault init``: create the store, and optionally a commented config file."""

from __future__ import annotations

from pathlib import Path

import click

from .. import errors
from ..backends.file.config import FileConfig
from ..backends.postgres.config import PostgresConfig
from ..config import DEFAULT_FILE_NAME
from ..registry import open_store
from .common import Ctx, _handle_errors, pass_ctx

__all__ = ["STARTER_CONFIG", "init"]


@click.command("init")
@click.option(
    "--write-config",
    is_flag=True,
    help=f"Also write a commented config file with the defaults (to --config PATH, or "
    f"./{DEFAULT_FILE_NAME}).",
)
@pass_ctx
@_handle_errors
def init(ctx: Ctx, /, write_config: bool) -> None:
    """Create the store (and optionally a config file).

    \b
    Example:
      eventvault init --write-config
    """
    if write_config:
        # (to --config PATH when given: the file this command then reads)
        target = Path(ctx.config_path or DEFAULT_FILE_NAME)
        if target.exists():
            raise errors.ConfigError(f"{target} exists already; not overwriting it")
        try:
            target.write_text(STARTER_CONFIG, encoding="utf-8")
        except OSError as exc:
            raise errors.ConfigError(f"cannot write {target}: {exc.strerror or exc}") from None
        ctx.say(f"wrote {target}")
    cfg = ctx.config()
    with open_store(cfg) as store:
        where = {
            "file": cfg.store.options(FileConfig).path,
            "postgres": f"schema {cfg.store.options(PostgresConfig).schema}",
        }
        detail = f" ({where[cfg.backend]})" if cfg.backend in where else ""
        ctx.say(f"store ready: {cfg.backend} backend{detail}, {store.head()} events")


STARTER_CONFIG = """\
# eventvault configuration. Every key is optional; these are the defaults.
# Docs: README.md, section "Configuration".

[store]
backend = "file"                 # file | postgres | memory
max_event_bytes = 1_048_576      # largest event (canonical JSON bytes)

[store.file]
path = "./eventvault-data"       # relative to this file's directory
fsync = "always"                 # always | interval | never
fsync_interval = "200ms"         # with fsync = "interval"
segment_max_bytes = 67_108_864

# [store.postgres]                # pip install 'eventvault[postgres]'
# dsn = "${EVENTVAULT_POSTGRES_DSN}"   # required with backend = "postgres"
# schema = "eventvault"

# Retention: without a [retention] table every event is kept forever.
# [retention]
# max_age = "90d"                # and/or max_count = 50_000_000
# check_interval = "1h"          # how often 'eventvault serve' applies it
# [[retention.rules]]            # the first rule matching an event decides
# types = ["debug.*"]
# max_age = "7d"

# The HTTP service ('eventvault serve').
# [server]
# host = "127.0.0.1"             # beyond loopback needs tokens
# port = 8730
# [[server.tokens]]
# name = "ci-runner"
# token = "${EVENTVAULT_TOKEN_CI}"   # 16+ characters, from the environment
# scopes = ["append", "read"]      # append | read | admin
"""
