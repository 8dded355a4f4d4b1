"""Comparing two runs: which steps one has and the other lacks, what changed, what slowed.

The runs are aligned by their (actor, type) sequences with a longest common
subsequence (:mod:`.align`), not position by position, so one inserted step does
not make every later step "different". Events the alignment leaves over in both
runs with the same (actor, type) are paired as *moved* (a reordering). Every event
of either run lands in exactly one step.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

from ..errors import ValidationError
from ..model import RecordedEvent
from ..timeutil import to_us
from .align import lcs_pairs
from .jsondiff import json_changes
from .model import DiffStep, RunDiff, RunTrace, StepKind

__all__ = ["DEFAULT_TIMING_THRESHOLD", "diff_runs"]

#: Step-time differences up to this are noise, not a difference.
DEFAULT_TIMING_THRESHOLD = timedelta(seconds=1)


def _events(run: RunTrace | Sequence[RecordedEvent]) -> tuple[str, list[RecordedEvent]]:
    if isinstance(run, RunTrace):
        return run.correlation_id, run.events
    events = list(run)
    name = next((e.correlation_id for e in events if e.correlation_id), None)
    return name or "(events)", events


def _times(events: Sequence[RecordedEvent]) -> tuple[list[int], list[int]]:
    """Each event's offset from the run's start, and its time since the previous one."""
    stamps = [to_us(e.recorded_at) for e in events]
    t0 = stamps[0] if stamps else 0
    offsets = [t - t0 for t in stamps]
    steps = [0] + [b - a for a, b in itertools.pairwise(stamps)]
    return offsets, steps


def diff_runs(
    run_a: RunTrace | Sequence[RecordedEvent],
    run_b: RunTrace | Sequence[RecordedEvent],
    *,
    timing_threshold: timedelta = DEFAULT_TIMING_THRESHOLD,
    max_changes: int = 100,
) -> RunDiff:
    """Align run A with run B and report how B differs.

    A *step time* is the time from the previous event of the same run; aligned
    events whose step times differ by more than ``timing_threshold`` are flagged
    ``slower``/``faster`` (step times, not offsets from the start, so one slow step
    does not flag every step after it). ``max_changes`` bounds the field changes
    reported per event pair.
    """
    if not isinstance(timing_threshold, timedelta) or timing_threshold < timedelta(0):
        raise ValidationError(f"timing_threshold must be a duration >= 0, got {timing_threshold!r}")
    name_a, a = _events(run_a)
    name_b, b = _events(run_b)
    keys: dict[tuple[str | None, str], int] = {}  # small ints compare and hash fastest
    key_a = [keys.setdefault((e.actor, e.type), len(keys)) for e in a]
    key_b = [keys.setdefault((e.actor, e.type), len(keys)) for e in b]
    pairs = lcs_pairs(key_a, key_b)
    off_a, step_a = _times(a)
    off_b, step_b = _times(b)
    threshold = timing_threshold // timedelta(microseconds=1)

    def aligned(i: int, j: int, *, moved: bool) -> DiffStep:
        changes, more = json_changes(a[i].data, b[j].data, limit=max_changes)
        delta = step_b[j] - step_a[i]
        kind: StepKind = "moved" if moved else "changed" if changes else "same"
        return DiffStep(
            kind=kind,
            actor=a[i].actor, type=a[i].type, a=i, b=j,
            a_position=a[i].position, b_position=b[j].position,
            changes=tuple(changes), changes_truncated=more,
            a_offset_us=off_a[i], b_offset_us=off_b[j],
            a_step_us=step_a[i], b_step_us=step_b[j], timing_delta_us=delta,
            slower=delta > threshold, faster=-delta > threshold,
        )  # fmt: skip

    # Left-overs with the same key in both runs: reorderings, paired first come first.
    matched_a = {i for i, _ in pairs}
    matched_b = {j for _, j in pairs}
    spare_a: dict[int, list[int]] = {}
    for i in range(len(a)):
        if i not in matched_a:
            spare_a.setdefault(key_a[i], []).append(i)
    moved_to: dict[int, int] = {}  # b index -> a index
    for j in range(len(b)):
        if j not in matched_b and spare_a.get(key_b[j]):
            moved_to[j] = spare_a[key_b[j]].pop(0)
    moved_from = set(moved_to.values())

    steps: list[DiffStep] = []
    i = j = 0
    for pi, pj in [*pairs, (len(a), len(b))]:
        steps.extend(
            DiffStep(
                kind="only_a",
                actor=a[k].actor,
                type=a[k].type,
                a=k,
                a_position=a[k].position,
                a_offset_us=off_a[k],
                a_step_us=step_a[k],
            )
            for k in range(i, pi)
            if k not in moved_from
        )
        for k in range(j, pj):
            if k in moved_to:
                steps.append(aligned(moved_to[k], k, moved=True))
            else:
                steps.append(
                    DiffStep(
                        kind="only_b",
                        actor=b[k].actor,
                        type=b[k].type,
                        b=k,
                        b_position=b[k].position,
                        b_offset_us=off_b[k],
                        b_step_us=step_b[k],
                    )
                )
        if pi < len(a):
            steps.append(aligned(pi, pj, moved=False))
        i, j = pi + 1, pj + 1

    counts = Counter(step.kind for step in steps)
    return RunDiff(
        a=name_a,
        b=name_b,
        a_events=len(a),
        b_events=len(b),
        steps=steps,
        timing_threshold_us=threshold,
        timing=sum(1 for step in steps if step.slower or step.faster),
        a_duration_us=off_a[-1] if a else 0,
        b_duration_us=off_b[-1] if b else 0,
        same=counts["same"],
        changed=counts["changed"],
        only_a=counts["only_a"],
        only_b=counts["only_b"],
        moved=counts["moved"],
    )
