"""``eventvault serve`` as a user starts and stops it (issue 17 item 11): a busy port
fails before anything is announced; Ctrl-C stops it gracefully with exit 0."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

from tests.server.test_process import EV, answers, free_port, write_config


def test_a_busy_port_fails_before_announcing_a_url(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    write_config(config, tmp_path / "d")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run(
            [*EV, "--config", str(config), "serve", "--port", str(port)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert r.returncode == 5, r.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in r.stderr
    assert "choose another --port" in r.stderr
    assert "http://" not in r.stderr  # no "listening on" line first
    assert "Traceback" not in r.stderr


def test_ctrl_c_stops_serve_gracefully_with_exit_0(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    write_config(config, tmp_path / "d")
    port = free_port()
    proc = subprocess.Popen(
        [*EV, "--config", str(config), "serve", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert answers(f"http://127.0.0.1:{port}/healthz", 30)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"http://127.0.0.1:{port}" in err
    assert "Traceback" not in err
