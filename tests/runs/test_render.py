"""The text forms: durations, the folded diff, the run table, outcome patterns."""

from __future__ import annotations

import io

import pytest

from eventvault.errors import ValidationError
from eventvault.runs import RunPage, build_trace, diff_runs, parse_outcomes
from eventvault.runs.render import console_for, format_us, render_diff, render_runs

from .helpers import rec


@pytest.mark.parametrize(
    ("us", "text"),
    [
        (None, "-"),
        (0, "0ms"),
        (250, "250µs"),
        (1500, "2ms"),
        (1_250_000, "1.25s"),
        (125_000_000, "2m05s"),
        (3 * 3600 * 1_000_000 + 120_000_000, "3h02m"),
        (-2_000_000, "-2.00s"),
    ],
)
def test_durations_for_people(us: int | None, text: str) -> None:
    assert format_us(us) == text


def test_long_identical_stretches_fold_and_changes_show_values() -> None:
    a = [rec(k, f"t{k}", data={"k": k}) for k in range(1, 21)]
    b = [*a[:10], rec(11, "t11", data={"k": 11, "new": [1]}), *a[11:]]
    b[15] = rec(16, "t16", data={})
    b[18] = rec(19, "t19", data={f"f{i}": i for i in range(5)})
    lines = [line.plain for line in render_diff(diff_runs(a, b, max_changes=3))]
    # No context before the first difference, two lines around every other one.
    assert lines[2:5] == [
        "  … 8 identical steps",
        "= agent:a t9  (A @9, B @9)",
        "= agent:a t10  (A @10, B @10)",
    ]
    assert "    /new added [1]" in lines
    assert "    /k removed 16" in lines
    assert "    … more changes not shown" in lines
    assert lines[-1] == "= agent:a t20  (A @20, B @20)"
    assert sum(line.startswith("~") for line in lines) == 3


def test_the_run_table_shortens_long_actor_lists() -> None:
    events = [rec(k, actor=f"agent:{k}") for k in range(1, 6)]
    page = RunPage(runs=[build_trace("run-1", events, max_events=10).summary])
    out = io.StringIO()
    console_for(out).print(render_runs(page))
    assert "agent:1, agent:2, agent:3 +2" in out.getvalue()


def test_outcome_patterns_are_checked() -> None:
    assert parse_outcomes({"*.ok": "passed"}) == (("*.ok", "passed"),)
    assert parse_outcomes([("a.*", "x")]) == (("a.*", "x"),)
    for bad, message in (
        ([("only-one",)], "pair"),
        ({"": "x"}, "pattern"),
        ({"*.ok": ""}, "outcome"),
    ):
        with pytest.raises(ValidationError, match=message):
            parse_outcomes(bad)  # type: ignore[arg-type]
