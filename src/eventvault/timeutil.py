"""Durations (``90d``, ``12h``, ``200ms``) and user-facing times (ISO-8601 or ``2h`` ago)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

__all__ = ["from_us", "parse_duration", "parse_time", "to_us"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def to_us(value: datetime) -> int:
    """Microseconds since the Unix epoch (what indexes store)."""
    return (value - _EPOCH) // _US


def from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


_UNITS = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*")


def parse_duration(text: str) -> timedelta:
    """``"90d"`` -> 90 days. Units: ms, s, m, h, d, w; one number and one unit."""
    m = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(
            f"{text!r} is not a duration; write a number and a unit (ms, s, m, h, d, w), "
            "e.g. '90d', '12h', '30m'"
        )
    try:
        return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    except (OverflowError, ValueError):  # beyond timedelta's 999,999,999 days
        raise ValueError(f"{text!r} is too long a duration (the longest is 999999999d)") from None


def parse_time(text: str, *, now: datetime | None = None) -> datetime:
    """An absolute ISO-8601 time (naive means UTC), ``now``, a duration ago (``2h``),
    or a duration from now (``+30d``)."""
    now = now if now is not None else datetime.now(UTC)
    value = text.strip()
    if value.lower() == "now":
        return now
    try:
        m = _DURATION.fullmatch(value)
        if m is not None:
            return now - parse_duration(value)
        if value.startswith("+") and _DURATION.fullmatch(value[1:]):
            return now + parse_duration(value[1:])
        try:
            parsed = datetime.fromisoformat(value.replace("z", "Z"))
        except ValueError:
            raise ValueError(
                f"{text!r} is not a time; use ISO-8601 (2026-11-26T10:00:00Z, 2026-11-26), "
                "'now', a duration ago such as '2h', '30m', '7d', or ahead such as '+30d'"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except OverflowError:  # e.g. 999999999d ago, or 0001-01-01T00:00+14:00 in UTC
        raise ValueError(
            f"{text!r} lies outside the times UTC can express (years 1 to 9999)"
        ) from None
