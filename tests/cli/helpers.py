"""Running the real ``eventvault`` command in a subprocess, in a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXE = [sys.executable, "-m", "eventvault.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTVAULT_")}
    env.update(extra)
    return env


def ev(
    cwd: Path, *args: str, input: str | bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``eventvault ARGS`` in ``cwd``; text output, never raises on a non-zero exit."""
    if isinstance(input, bytes):
        input = input.decode()
    return subprocess.run(
        [*EXE, *args],
        cwd=cwd,
        env=env if env is not None else clean_env(),
        input=input,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
