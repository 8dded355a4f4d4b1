"""The EventStoreDB / KurrentDB backend (``pip install 'eventvault[eventstoredb]'``)."""

from __future__ import annotations

from typing import Any

__all__ = ["from_config"]


def from_config(config: Any) -> Any:
    from .store import from_config as build

    return build(config)
