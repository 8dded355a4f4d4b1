"""The README's blocks that need a server ("Producers on other machines") run as
shown against a real ``eventvault serve`` (tests/test_readme.py skips them there)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from eventvault import Query, open_store

from ..server.test_process import Served
from ..test_readme import BLOCKS, _env
from .conftest import WRITER

REMOTE = [b for b in BLOCKS if "test_readme_remote.py" in b[3]]


def test_the_remote_blocks_are_here() -> None:
    assert {lang for _, lang, _, _ in REMOTE} == {"python", "sh"}
    assert len(REMOTE) >= 4


@pytest.mark.parametrize(
    ("line", "lang", "code"),
    [b[:3] for b in REMOTE],
    ids=[f"line{b[0]}-{b[1]}" for b in REMOTE],
)
def test_remote_block_runs_as_shown(
    server: Served, tmp_path: Path, line: int, lang: str, code: str
) -> None:
    env = {**_env(tmp_path), "EVENTVAULT_URL": server.url, "EVENTVAULT_TOKEN": WRITER}
    if lang == "python":
        args = [sys.executable, "-c", code]
    else:
        args = ["bash", "-c", "set -eo pipefail\n" + code]
    for attempt in (1, 2):
        r = subprocess.run(
            args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert r.returncode == 0, f"README line {line}, run {attempt}:\n{r.stdout}\n{r.stderr}"
    cfg = {"store": {"backend": "http", "http": {"url": server.url, "token": WRITER}}}
    with open_store(cfg) as store:
        assert next(iter(store.iter(Query(limit=1))), None) is not None  # it wrote
