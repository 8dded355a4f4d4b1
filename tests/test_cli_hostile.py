"""Issue 16.6: nothing from an event is interpreted by a human output of the real
CLI — no rich markup, no terminal control sequences, no bidi reordering."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from eventvault.cli.output import write_events
from eventvault.model import RecordedEvent

HOSTILE = [
    "x[/]",
    "[bold red]root[/bold red]",
    "[link=https://evil.example]run-7[/link]",
    "[/link]",
    "a\\[b]",
    ":warning:",
]


def sh(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTVAULT_")}
    return subprocess.run(
        [sys.executable, "-m", "eventvault.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize("fmt", ["table", "text"])
def test_hostile_names_print_as_they_are(tmp_path: Path, fmt: str) -> None:
    for name in HOSTILE:
        r = sh(tmp_path, "append", "--type", "audit.step", "--actor", name, "--stream", name,
               "--correlation-id", name, "--data", '{"k": "[red]x[/red]"}')  # fmt: skip
        assert r.returncode == 0, r.stderr
    for command in (["query", "--format", fmt], ["query"], ["tail", "-n", "10"]):
        r = sh(tmp_path, *command)
        assert r.returncode == 0, (command, r.stderr)
        for name in HOSTILE:
            assert name in r.stdout, (command, name, r.stdout)
        assert "[red]x[/red]" in r.stdout


def recorded(**names: str) -> RecordedEvent:
    """An event as a store written before the name rule might hold it."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    fields = {"stream": "s", **names}
    return RecordedEvent(position=1, stream_revision=0, recorded_at=now, id=uuid.uuid4(),
                         type="t.x", occurred_at=now, data={}, metadata={}, hash="0" * 64,
                         **fields)  # type: ignore[arg-type]  # fmt: skip


@pytest.mark.parametrize("fmt", ["table", "text"])
@pytest.mark.parametrize(
    "name", ["\x9b31mred", "a\u202eevil", "zero\u200bwidth", "line\u2028sep", "bom\ufeff"]
)
def test_control_and_bidi_characters_are_shown_escaped(fmt: str, name: str) -> None:
    out = io.StringIO()
    write_events([recorded(actor=name, stream=name)], fmt, out)
    text = out.getvalue()
    assert name not in text
    shown = "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in name)
    assert shown in text, text
