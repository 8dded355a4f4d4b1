"""The app as ``eventvault serve --workers N`` builds it in each worker process.

Each worker loads the configuration the supervisor validated
(``EVENTVAULT_SERVE_CONFIG``, and the environment overrides it inherited) and opens
its own store client; the file backend and PostgreSQL both take appends from
several processes safely. Scheduled retention runs in the supervisor, not here.
"""

from __future__ import annotations

import os

from fastapi import FastAPI

from ..registry import load_config, open_store
from .app import create_app
from .process import limit_heads, setup_logging, tune_gc
from .startup import check_serving


def app() -> FastAPI:
    setup_logging("json")
    config = load_config(os.environ.get("EVENTVAULT_SERVE_CONFIG") or None)
    timeout = os.environ.get("EVENTVAULT_SERVE_HEADER_TIMEOUT")
    limit_heads(config.server, float(timeout) if timeout else None)
    host = os.environ.get("EVENTVAULT_SERVE_HOST") or config.server.host
    # A worker (re)started after the configuration changed checks it as start-up did.
    check_serving(config, host)
    built = create_app(open_store(config), config, retention=False, host=host)
    tune_gc()
    return built
