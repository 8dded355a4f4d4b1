"""Issue 16.7: the name rule — stream, actor, correlation/causation id and source hold
visible text only, in NFC — on every ingest path (library, CLI; HTTP and CloudEvents
in tests/server/test_attacks.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

from eventvault import NewEvent
from eventvault.errors import ValidationError

REFUSED = {
    "C1 control": "run\x85x",
    "CSI": "\x9b31mroot",
    "bidi override": "evil\u202egnp.exe",
    "bidi isolate": "a\u2066b",
    "left-to-right mark": "a\u200eb",
    "zero-width space": "ro\u200bot",
    "zero-width joiner": "ro\u200dot",
    "word joiner": "ro\u2060ot",
    "byte order mark": "\ufeffroot",
    "line separator": "a\u2028b",
    "paragraph separator": "a\u2029b",
    "noncharacter U+FFFF": "a\uffff",
    "noncharacter U+FDD0": "a\ufdd0",
    "noncharacter U+1FFFE": "a\U0001fffe",
    "whitespace only": "   ",
    "other whitespace only": "\u3000\u00a0",
    "NFD": unicodedata.normalize("NFD", "café"),
}
FIELDS = ("stream", "actor", "correlation_id", "causation_id", "source")


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("what", sorted(REFUSED))
def test_the_library_refuses(field: str, what: str) -> None:
    with pytest.raises(ValidationError, match=field):
        NewEvent(type="t.x", **{field: REFUSED[what]})  # type: ignore[arg-type]


def test_the_message_says_what_and_how() -> None:
    with pytest.raises(ValidationError, match=r"U\+202E RIGHT-TO-LEFT OVERRIDE"):
        NewEvent(type="t.x", actor="evil\u202ex")
    with pytest.raises(ValidationError, match="NFC"):
        NewEvent(type="t.x", actor=unicodedata.normalize("NFD", "café"))


@pytest.mark.parametrize(
    "name", ["café", "Zürich/ops", "東京-1", "run 7", "a\u00a0b", "emoji-🚀", "ﬁ-ligature"]
)
def test_ordinary_unicode_names_are_kept(name: str) -> None:
    assert NewEvent(type="t.x", actor=name, stream=name).actor == name


def test_the_cli_refuses(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTVAULT_")}

    def sh(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "eventvault.cli", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )

    assert sh("init").returncode == 0
    for option in ("--actor", "--stream", "--correlation-id"):
        r = sh("append", "--type", "t.x", option, "evil\u202egnp")
        assert r.returncode == 2, r.stderr
        assert "RIGHT-TO-LEFT OVERRIDE" in r.stderr
    r = sh("stats", "--format", "json")
    assert '"events":0' in r.stdout.replace(" ", "")
