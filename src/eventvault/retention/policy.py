"""Retention policies: the validated, resolved form of the ``[retention]`` table.

No ``[retention]`` table means every event is kept forever (the default). A policy
has a global window (``max_age`` and/or ``max_count``) and ordered rules for type
patterns and/or streams; the **first** rule that matches an event decides for it,
and events no rule matches fall under the global window. A rule either has its own
window or says ``keep = "forever"``. Retention receipts
(``eventvault.retention.applied``) are never removed.

Validation happens when the configuration loads: no zero or negative windows,
windows under one hour only with ``allow_short = true``, no rule that can never
apply, every error naming the rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from ..errors import ConfigError
from ..model import type_matches
from ..timeutil import parse_duration
from .config import RetentionConfig, RetentionRule

__all__ = ["RECEIPT_TYPE", "Policy", "Rule", "Window", "resolve_policy"]

#: The type of the event every retention run appends (never removed).
RECEIPT_TYPE = "eventvault.retention.applied"
_SHORT = timedelta(hours=1)
_MIN_CHECK = timedelta(minutes=1)
_MAX_CHECK = timedelta(days=365)  # (the scheduler's wait takes no more)
_MAX_COUNT = 2**63 - 1  # (a bigint in PostgreSQL)


@dataclass(frozen=True, slots=True)
class Window:
    """How long, or how many, events are kept (None: no limit of that kind)."""

    max_age: timedelta | None
    max_count: int | None

    def describe(self) -> str:
        parts = []
        if self.max_age is not None:
            parts.append(f"removed {_human(self.max_age)} after they were recorded")
        if self.max_count is not None:
            parts.append(f"only the newest {self.max_count:,} are kept")
        return ", and ".join(parts)


@dataclass(frozen=True, slots=True)
class Rule:
    """Which events (type patterns and/or streams) and what happens to them."""

    types: tuple[str, ...]
    streams: tuple[str, ...]
    window: Window | None  # None: keep forever

    def matches(self, type: str, stream: str) -> bool:
        if self.streams and stream not in self.streams:
            return False
        return not self.types or type_matches(self.types, type)

    def describe(self) -> str:
        what = []
        if self.types:
            what.append("of type " + " or ".join(self.types))
        if self.streams:
            what.append("in stream " + " or ".join(self.streams))
        subject = "Events " + " ".join(what)
        if self.window is None:
            return f"{subject} are kept forever."
        return f"{subject}: {self.window.describe()}."


@dataclass(frozen=True, slots=True)
class Policy:
    """A resolved retention policy."""

    default: Window | None  # None: events no rule matches are kept forever
    rules: tuple[Rule, ...]
    check_interval: timedelta

    def rule_for(self, type: str, stream: str) -> Rule | None:
        """The first rule that matches (None: the global window applies)."""
        for rule in self.rules:
            if rule.matches(type, stream):
                return rule
        return None

    def window_for(self, type: str, stream: str) -> Window | None:
        """The window that governs such an event (None: kept forever)."""
        if type == RECEIPT_TYPE:
            return None
        rule = self.rule_for(type, stream)
        return self.default if rule is None else rule.window

    @property
    def groups(self) -> list[tuple[int, str, Window]]:
        """``(group id, name, window)`` of every group retention can remove from.

        Group ``i < len(rules)`` is "events rule i takes"; group ``len(rules)`` is
        "events no rule takes" (the global window). Forever-groups are left out.
        """
        out = [
            (i, f"retention.rules[{i}]", rule.window)
            for i, rule in enumerate(self.rules)
            if rule.window is not None
        ]
        if self.default is not None:
            out.append((len(self.rules), "retention", self.default))
        return out

    def group_of(self, type: str, stream: str) -> int | None:
        """The group id deciding for such an event (None: kept forever)."""
        if type == RECEIPT_TYPE:
            return None
        for i, rule in enumerate(self.rules):
            if rule.matches(type, stream):
                return i if rule.window is not None else None
        return len(self.rules) if self.default is not None else None

    @property
    def uses_streams(self) -> bool:
        """Whether any rule selects by stream (the group then depends on it too)."""
        return any(rule.streams for rule in self.rules)

    def describe_group(self, gid: int) -> str:
        """One group (see :attr:`groups`) in plain words."""
        if gid < len(self.rules):
            return self.rules[gid].describe()
        assert self.default is not None
        others = "All other events" if self.rules else "All events"
        return f"{others}: {self.default.describe()}."

    def describe(self) -> list[str]:
        """The policy in plain words, one sentence a line, in the order it applies."""
        lines = [rule.describe() for rule in self.rules]
        if self.default is None:
            others = "All other events" if self.rules else "All events"
            lines.append(f"{others} are kept forever.")
        else:
            lines.append(self.describe_group(len(self.rules)))
        lines.append(f"Retention receipts ({RECEIPT_TYPE}) are always kept.")
        lines.append(f"Checked every {_human(self.check_interval)} (retention.check_interval).")
        return lines


def _human(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{value.total_seconds():g} seconds"


def _window(
    where: str, max_age: str | None, max_count: int | None, allow_short: bool
) -> Window | None:
    age = None
    if max_age is not None:
        try:
            age = parse_duration(max_age)
        except ValueError as exc:
            raise ConfigError(f"{where}.max_age: {exc}") from None
        if age <= timedelta(0):
            raise ConfigError(f"{where}.max_age: {max_age!r} must be longer than zero")
        if age < _SHORT and not allow_short:
            raise ConfigError(
                f"{where}.max_age: {max_age!r} is under one hour; set "
                "retention.allow_short = true if you really mean it"
            )
    if max_count is not None and not 1 <= max_count <= _MAX_COUNT:
        raise ConfigError(f"{where}.max_count: {max_count} must be at least 1 (and < 2**63)")
    if age is None and max_count is None:
        return None
    return Window(max_age=age, max_count=max_count)


def _rule(i: int, raw: RetentionRule, allow_short: bool) -> Rule:
    where = f"retention.rules[{i}]"
    if not raw.types and not raw.streams:
        raise ConfigError(f"{where}: select events with 'types' and/or 'streams'")
    for pattern in raw.types:
        body = pattern[:-1] if pattern.endswith("*") else pattern
        if not pattern or "*" in body:
            raise ConfigError(
                f"{where}.types: {pattern!r} is not a type or a pattern with a trailing '*'"
            )
    window = _window(where, raw.max_age, raw.max_count, allow_short)
    if raw.keep == "forever" and window is not None:
        raise ConfigError(f'{where}: keep = "forever" conflicts with max_age/max_count')
    if raw.keep is None and window is None:
        raise ConfigError(f'{where}: give it max_age and/or max_count, or keep = "forever"')
    return Rule(types=tuple(raw.types), streams=tuple(raw.streams), window=window)


def resolve_policy(config: RetentionConfig | None) -> Policy | None:
    """Validate the ``[retention]`` table; None when there is none (keep forever)."""
    if config is None:
        return None
    default = _window("retention", config.max_age, config.max_count, config.allow_short)
    rules = tuple(_rule(i, r, config.allow_short) for i, r in enumerate(config.rules))
    if default is None and not any(r.window for r in rules):
        raise ConfigError(
            "retention: the table removes nothing (no max_age, max_count or rule with a "
            "window); delete it to keep every event forever"
        )
    for j, later in enumerate(rules):
        for i, earlier in enumerate(rules[:j]):
            if _shadows(earlier, later):
                raise ConfigError(
                    f"retention.rules[{j}] can never apply: retention.rules[{i}] already "
                    "matches every event it selects (the first matching rule decides)"
                )
    try:
        interval = parse_duration(config.check_interval)
    except ValueError as exc:
        raise ConfigError(f"retention.check_interval: {exc}") from None
    if interval < _MIN_CHECK:
        raise ConfigError(f"retention.check_interval: {config.check_interval!r} is under 1m")
    if interval > _MAX_CHECK:
        raise ConfigError(f"retention.check_interval: {config.check_interval!r} is over 365d")
    return Policy(default=default, rules=rules, check_interval=interval)


def _shadows(earlier: Rule, later: Rule) -> bool:
    """Whether every event ``later`` selects is already taken by ``earlier``."""
    if earlier.streams and not (later.streams and set(later.streams) <= set(earlier.streams)):
        return False
    if not earlier.types:
        return True
    if not later.types:  # later takes every type: only a "*" rule covers that
        return "*" in earlier.types
    return all(any(_covers(e, t) for e in earlier.types) for t in later.types)


def _covers(pattern: str, other: str) -> bool:
    """Whether type pattern ``pattern`` matches everything ``other`` matches."""
    if pattern.endswith("*"):
        return other.startswith(pattern[:-1])
    return pattern == other
