"""The ``[retention]`` table as written: types only (msgspec), so that
:mod:`eventvault.config` can hold it and stay a leaf. :func:`.policy.resolve_policy`
validates it into a :class:`~.policy.Policy`.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["RetentionConfig", "RetentionRule"]


class RetentionRule(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    types: list[str] = msgspec.field(default_factory=list)
    streams: list[str] = msgspec.field(default_factory=list)
    max_age: str | None = None
    max_count: int | None = None
    keep: Literal["forever"] | None = None


class RetentionConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    max_age: str | None = None
    max_count: int | None = None
    check_interval: str = "1h"
    allow_short: bool = False
    rules: list[RetentionRule] = msgspec.field(default_factory=list)
