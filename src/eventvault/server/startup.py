"""What a configuration must satisfy before it may serve — at start-up *and* on every
reload (SIGHUP), in the single process and in each worker.

A reload that produced a configuration start-up would refuse (no tokens on a
public bind, say, while a tokens file is being rotated) would hand every caller
every scope; so the same checks run, and a refused reload keeps the old
configuration.
"""

from __future__ import annotations

from ..config import Config
from ..errors import ConfigError
from .auth import TokenBook, is_loopback
from .checkpoints import load_signer, load_witnesses

__all__ = ["check_serving"]


def check_serving(config: Config, host: str, *, workers: int = 1) -> TokenBook:
    """The tokens ``config`` grants, if it may serve on ``host``; ConfigError if not
    (also when ``audit.signing_key`` is set but cannot sign)."""
    load_signer(config)
    load_witnesses(config)
    tokens = TokenBook.from_config(config.server)
    if not tokens.enabled and not is_loopback(host):
        raise ConfigError(
            f"refusing to listen on {host} without tokens: anyone who can reach it could "
            "read and append. Add [[server.tokens]] (see README, 'HTTP service') or bind "
            "127.0.0.1."
        )
    if workers > 1 and config.backend == "memory":
        raise ConfigError("the memory backend cannot be shared by several workers")
    return tokens
