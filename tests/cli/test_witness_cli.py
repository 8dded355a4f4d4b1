"""``eventvault witness keygen`` / ``serve``: a real witness process over HTTP."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest

from eventvault import MemoryEventStore, NewEvent
from eventvault.tlog import NoteSigner, open_checkpoint
from eventvault.tlog.witness import (
    CosignatureVerifier,
    WitnessRefusal,
    add_checkpoint_request,
    request_cosignature,
)
from tests.cli.helpers import EXE, clean_env, ev
from tests.server.test_process import free_port


def _wait_listening(port: int, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError("the witness did not start")


def test_keygen_writes_a_private_key_only_its_owner_reads(tmp_path: Path) -> None:
    done = ev(tmp_path, "witness", "keygen", "--name", "witness.test/w1", "--out", "w")
    assert done.returncode == 0, done.stderr
    key, pub = tmp_path / "w.key", tmp_path / "w.pub"
    assert key.stat().st_mode & 0o777 == 0o600
    assert done.stdout.strip() == pub.read_text().strip()
    assert "PRIVATE" not in done.stdout + done.stderr
    CosignatureVerifier.from_key(pub.read_text())
    again = ev(tmp_path, "witness", "keygen", "--name", "witness.test/w1", "--out", "w")
    assert again.returncode != 0
    assert "refusing to overwrite" in again.stderr


def test_a_witness_process_cosigns_growth_and_refuses_rollback(tmp_path: Path) -> None:
    assert (
        ev(tmp_path, "witness", "keygen", "--name", "witness.test/w1", "--out", "w").returncode == 0
    )
    log_key = NoteSigner.generate("eventvault.test/log")
    port = free_port()
    proc = subprocess.Popen(
        [*EXE, "witness", "serve", "--key", "w.key", "--log", log_key.verifier().key_text,
         "--state-dir", "state", "--port", str(port)],
        cwd=tmp_path, env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait_listening(port)
        store = MemoryEventStore()
        store.append([NewEvent(type="t", data={"i": i}) for i in range(9)])
        url = f"http://127.0.0.1:{port}/add-checkpoint"
        first = store.log.checkpoint(log_key, size=5)
        r = httpx.post(url, content=add_checkpoint_request(0, (), first), timeout=10)
        assert r.status_code == 200, r.text
        witness_key = CosignatureVerifier.from_key((tmp_path / "w.pub").read_text())
        assert open_checkpoint(first + r.text, [witness_key]).size == 5
        second = store.log.checkpoint(log_key, size=9)
        proof = store.log.consistency_proof(5, 9).proof
        r = httpx.post(url, content=add_checkpoint_request(5, proof, second), timeout=10)
        assert r.status_code == 200, r.text
        # An old checkpoint presented again as if nothing happened since: refused.
        r = httpx.post(url, content=add_checkpoint_request(5, (), first), timeout=10)
        assert r.status_code == 409
        assert r.headers["content-type"].startswith("text/x.tlog.size")
        assert r.text == "9\n"
        # The log's client: told the witness's size (409), it asks again from there.
        store.append([NewEvent(type="t") for _ in range(3)])
        third = store.log.checkpoint(log_key)
        line = request_cosignature(
            f"http://127.0.0.1:{port}",
            third,
            witness=witness_key,
            prove=lambda m: store.log.consistency_proof(m).proof,
            old_size=5,
        )
        assert open_checkpoint(third + line, [witness_key]).size == 12
        fork = MemoryEventStore()  # a fork of what it saw
        fork.append([NewEvent(type="fork") for _ in range(13)])
        with pytest.raises(WitnessRefusal) as refused:
            request_cosignature(
                f"http://127.0.0.1:{port}",
                fork.log.checkpoint(log_key),
                witness=witness_key,
                prove=lambda m: fork.log.consistency_proof(m).proof,
                old_size=12,
            )
        assert refused.value.status == 422
    finally:
        proc.terminate()
        proc.wait(timeout=20)
