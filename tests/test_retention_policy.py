"""The retention policy: validation at load, rule order, plain-words description."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from eventvault import ConfigError, load_config
from eventvault.retention import RECEIPT_TYPE, resolve_policy


def policy(retention: dict[str, Any]):  # type: ignore[no-untyped-def]
    return resolve_policy(load_config({"retention": retention}, env={}).retention)


def test_no_table_means_keep_forever() -> None:
    assert resolve_policy(load_config({}, env={}).retention) is None


def test_first_matching_rule_decides() -> None:
    p = policy(
        {
            "max_age": "90d",
            "rules": [
                {"types": ["debug.*"], "max_age": "7d"},
                {"types": ["audit.*"], "keep": "forever"},
                {"streams": ["scratch"], "max_count": 10},
            ],
        }
    )
    assert p.window_for("debug.trace", "s").max_age == timedelta(days=7)
    assert p.window_for("audit.login", "scratch") is None  # rule 1 wins over rule 2
    assert p.window_for("task.done", "scratch").max_count == 10
    assert p.window_for("task.done", "main").max_age == timedelta(days=90)
    assert p.window_for(RECEIPT_TYPE, "main") is None


def test_description_is_plain_words() -> None:
    p = policy(
        {"max_age": "90d", "max_count": 1000, "rules": [{"types": ["audit.*"], "keep": "forever"}]}
    )
    lines = p.describe()
    assert lines[0] == "Events of type audit.* are kept forever."
    assert lines[1] == (
        "All other events: removed 90 days after they were recorded, "
        "and only the newest 1,000 are kept."
    )
    assert RECEIPT_TYPE in lines[2]


@pytest.mark.parametrize(
    ("retention", "message"),
    [
        ({"max_age": "0d"}, r"retention\.max_age.*longer than zero"),
        ({"max_age": "30m"}, r"under one hour.*allow_short"),
        ({"max_age": "soon"}, r"retention\.max_age.*not a duration"),
        ({"max_count": 0}, r"retention\.max_count.*at least 1"),
        ({}, r"removes nothing"),
        ({"rules": [{"types": ["audit.*"], "keep": "forever"}]}, r"removes nothing"),
        ({"max_age": "1d", "rules": [{"max_age": "2d"}]}, r"rules\[0\].*types.*streams"),
        ({"max_age": "1d", "rules": [{"types": ["a*b"], "max_age": "2d"}]}, r"rules\[0\]\.types"),
        ({"max_age": "1d", "rules": [{"types": ["x"]}]}, r"rules\[0\].*keep"),
        (
            {"max_age": "1d", "rules": [{"types": ["x"], "keep": "forever", "max_age": "2d"}]},
            r"rules\[0\].*conflicts",
        ),
        (
            {
                "max_age": "1d",
                "rules": [
                    {"types": ["debug.*"], "max_age": "2d"},
                    {"types": ["debug.x"], "keep": "forever"},
                ],
            },
            r"rules\[1\] can never apply.*rules\[0\]",
        ),
        (
            {
                "max_age": "1d",
                "rules": [{"types": ["*"], "max_age": "2d"}, {"streams": ["s"], "max_age": "3d"}],
            },
            r"rules\[1\] can never apply",
        ),
        ({"max_age": "1d", "check_interval": "10s"}, r"check_interval"),
        ({"max_age": "1d", "rules": [{"types": ["x"], "max_age": "-1h"}]}, r"rules\[0\]\.max_age"),
    ],
)
def test_invalid_policies_fail_at_load_naming_the_rule(retention: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({"retention": retention}, env={})


def test_short_windows_with_allow_short() -> None:
    p = policy({"max_age": "30m", "allow_short": True})
    assert p.default.max_age == timedelta(minutes=30)


def test_rules_that_do_not_shadow_are_fine() -> None:
    p = policy(
        {
            "max_age": "1d",
            "rules": [
                {"types": ["debug.x"], "keep": "forever"},
                {"types": ["debug.*"], "streams": ["s"], "max_age": "3d"},
                {"types": ["debug.*"], "max_age": "2d"},
            ],
        }
    )
    assert len(p.rules) == 3


def test_retention_show_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from eventvault.cli.main import cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVENTVAULT_CONFIG", raising=False)
    runner = CliRunner()
    r = runner.invoke(cli, ["retention", "show"])
    assert r.exit_code == 0
    assert "kept forever (the default)" in r.stdout
    (tmp_path / "eventvault.toml").write_text(
        '[retention]\nmax_age = "90d"\n[[retention.rules]]\ntypes = ["debug.*"]\nmax_age = "7d"\n'
    )
    r = runner.invoke(cli, ["retention", "show"])
    assert r.exit_code == 0
    assert (
        r.stdout.splitlines()[0]
        == "Events of type debug.*: removed 1 week after they were recorded."
    )
    (tmp_path / "eventvault.toml").write_text('[retention]\nmax_age = "5m"\n')
    r = runner.invoke(cli, ["retention", "show"])
    assert r.exit_code == 3
    assert "allow_short" in r.stderr
