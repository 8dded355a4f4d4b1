"""A real ``eventvault serve`` process with tokens, for the http backend's tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..server.test_process import Served, answers, free_port

EV = [sys.executable, "-m", "eventvault.cli"]

#: token -> what it may do
WRITER = "writer-secret-token-0123456789"
READER = "reader-secret-token-0123456789"
ADMIN = "admin-secret-token-01234567890"


def server_config(path: Path, data_dir: Path, extra: str = "") -> Path:
    path.write_text(
        f'[store]\nbackend = "file"\n[store.file]\npath = "{data_dir}"\n'
        '[server]\nheartbeat = "1s"\ngraceful_timeout = "10s"\nmax_body_bytes = 65536\n'
        f'[[server.tokens]]\nname = "writer"\ntoken = "{WRITER}"\nscopes = ["append", "read"]\n'
        f'[[server.tokens]]\nname = "reader"\ntoken = "{READER}"\nscopes = ["read"]\n'
        f'[[server.tokens]]\nname = "ops"\ntoken = "{ADMIN}"\n'
        'scopes = ["append", "read", "admin"]\n'
        f"{extra}"
    )
    path.chmod(0o600)
    return path


def start(config: Path, port: int) -> Served:
    proc = subprocess.Popen(
        [*EV, "--config", str(config), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    srv = Served(proc, port, config)
    if not answers(f"{srv.url}/healthz", 30):
        proc.kill()
        raise AssertionError("".join(srv.lines))
    return srv


def stop(srv: Served) -> None:
    if srv.proc.poll() is None:
        srv.proc.terminate()  # graceful (and lets coverage write its data)
        try:
            srv.proc.wait(20)
        except subprocess.TimeoutExpired:
            srv.proc.kill()
            srv.proc.wait()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Served]:
    srv = start(server_config(tmp_path / "server.toml", tmp_path / "data"), free_port())
    yield srv
    stop(srv)


@pytest.fixture
def client_env(server: Served) -> dict[str, str]:
    """The environment of a CLI that talks to ``server`` with the writer's token."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTVAULT_")}
    env.update(EVENTVAULT_URL=server.url, EVENTVAULT_TOKEN=WRITER, EVENTVAULT_BACKEND="http")
    return env
