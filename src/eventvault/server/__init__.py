"""``eventvault serve``: the store as an HTTP service (``pip install 'eventvault[server]'``).

See :func:`create_app` (the ASGI app) and ``eventvault.cli.serve`` (the command).
"""

from __future__ import annotations

from ..errors import MissingExtraError

try:
    import fastapi  # noqa: F401
    import prometheus_client  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise MissingExtraError("server", exc.name or "fastapi") from None

from .app import Service, create_app

__all__ = ["Service", "create_app"]
