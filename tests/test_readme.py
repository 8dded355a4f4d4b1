"""Every code block in the README runs as shown (issue 17 item 15).

* ``python`` blocks run in a fresh directory, twice (a snippet that only works
  once, or never ends, fails here);
* ``toml`` blocks load as a configuration (``${VAR}`` filled with example values);
* ``sh`` blocks run in bash (``set -e``, ``pipefail``) with this checkout's
  ``eventvault`` on PATH, in a fresh directory; ``pip`` is a no-op there (the
  package is installed already).

A block that cannot run inside a test says so, and why, in an HTML comment on the
line before its fence — ``<!-- readme-test: skip: REASON -->`` — and one that needs
events to work on says ``<!-- readme-test: with-store -->``. A block that *is* a
test module of this suite says ``<!-- readme-test: is: PATH -->``: it must equal that
file, which runs with the rest.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from eventvault import load_config

README = Path(__file__).resolve().parents[1] / "README.md"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
_DIRECTIVE = re.compile(r"<!-- readme-test: (.*?) -->\s*$")
_EXAMPLE_ENV = {
    "EVENTVAULT_POSTGRES_DSN": "postgresql://app@db.example:5432/app",
    "EVENTVAULT_ESDB_URI": "kurrentdb://127.0.0.1:2113?tls=false",
    "EVENTVAULT_TOKEN_CI": "ci-token-0123456789abcdef",
}


def _blocks() -> list[tuple[int, str, str, str]]:
    """(line, language, code, directive) for every fenced block."""
    text = README.read_text(encoding="utf-8")
    out = []
    for m in _FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        before = text[: m.start()].rstrip("\n").rsplit("\n", 1)[-1]
        d = _DIRECTIVE.search(before)
        out.append((line, m.group(1), m.group(2), d.group(1) if d else ""))
    return out


BLOCKS = _blocks()


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTVAULT_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(tmp_path)
    return env


def test_the_readme_has_blocks_of_each_kind() -> None:
    kinds = {lang for _, lang, _, _ in BLOCKS}
    assert {"python", "sh", "toml"} <= kinds
    for line, lang, _, directive in BLOCKS:
        assert lang, f"README line {line}: a code block without a language"
        if directive.startswith("skip"):
            assert len(directive) > len("skip: ") + 10, f"line {line}: skip needs a reason"


@pytest.mark.parametrize(
    ("line", "lang", "code", "directive"),
    [b for b in BLOCKS if not b[3].startswith("skip")],
    ids=[f"line{b[0]}-{b[1]}" for b in BLOCKS if not b[3].startswith("skip")],
)
def test_block_runs_as_shown(
    tmp_path: Path, line: int, lang: str, code: str, directive: str
) -> None:
    if directive.startswith("is: "):  # the block is that file, which runs in this suite
        shown = README.parent / directive.removeprefix("is: ")
        assert code == shown.read_text(encoding="utf-8"), f"README line {line}: not {shown}"
        return
    env = _env(tmp_path)
    if directive == "with-store":
        for i in range(3):
            subprocess.run(
                [sys.executable, "-m", "eventvault.cli", "-q", "append", "--type", f"task.s{i}"],
                cwd=tmp_path, env=env, check=True, capture_output=True,
            )  # fmt: skip
    if lang == "python":
        for attempt in (1, 2):
            r = subprocess.run(
                [sys.executable, "-c", code], cwd=tmp_path, env=env,
                capture_output=True, text=True, timeout=60, check=False,
            )  # fmt: skip
            assert r.returncode == 0, f"README line {line}, run {attempt}:\n{r.stderr}"
    elif lang == "toml":
        (tmp_path / "example.toml").write_text(code)
        load_config(tmp_path / "example.toml", env={**env, **_EXAMPLE_ENV})
    elif lang == "sh":
        script = "set -eo pipefail\npip() { :; }\n" + code
        r = subprocess.run(
            ["bash", "-c", script], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert r.returncode == 0, f"README line {line}:\n{r.stdout}\n{r.stderr}"
    else:
        pytest.fail(f"README line {line}: no way to run a {lang!r} block")
