"""The app as uvicorn's worker processes build it (``eventvault serve --workers N``).

Each worker opens the store from the same configuration the parent validated
(``EVENTVAULT_CONFIG``/``EVENTVAULT_BACKEND`` as the parent had them); the file
backend and PostgreSQL both take appends from several processes safely. Only the
first worker runs scheduled retention (``EVENTVAULT_SERVE_RETENTION``).
"""

from __future__ import annotations

import gc
import os

from fastapi import FastAPI

from ..config import load_config
from ..registry import open_store
from .app import create_app


def app() -> FastAPI:
    config = load_config(os.environ.get("EVENTVAULT_SERVE_CONFIG") or None)
    store = open_store(config)
    built = create_app(store, config)
    if os.environ.get("EVENTVAULT_SERVE_RETENTION") != str(os.getpid()):
        built.state.service.retention_enabled = False
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    return built
