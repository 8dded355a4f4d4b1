"""``[[audit.witnesses]]``: the service's checkpoints co-signed by a real witness process."""

from __future__ import annotations

import logging
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from eventvault.errors import ConfigError
from eventvault.server.app import create_app
from eventvault.server.checkpoints import Checkpointer, load_witnesses
from eventvault.server.holder import StoreHolder
from eventvault.tlog import open_checkpoint, open_note
from eventvault.tlog.witness import CosignatureVerifier, Cosigner
from tests.cli.helpers import EXE, clean_env
from tests.server.test_log_api import config, fill, key_file, memory_store
from tests.server.test_process import free_port


@pytest.fixture
def witness_process(tmp_path: Path) -> tuple[str, CosignatureVerifier, str]:
    """A real ``eventvault witness serve`` trusting the log key made here."""
    log_key, signer = key_file(tmp_path)
    cosigner = Cosigner.generate("witness.test/w1")
    wkey = tmp_path / "w.key"
    from eventvault.tlog import write_key_file

    write_key_file(wkey, cosigner.key_text)
    port = free_port()
    proc = subprocess.Popen(
        [*EXE, "witness", "serve", "--key", str(wkey), "--log", signer.verifier().key_text,
         "--state-dir", str(tmp_path / "wstate"), "--port", str(port)],
        env=clean_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url, timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield url, cosigner.verifier(), str(log_key)
    proc.terminate()
    proc.wait(timeout=20)


def test_checkpoints_carry_the_witness_cosignature(
    witness_process: tuple[str, CosignatureVerifier, str], tmp_path: Path
) -> None:
    url, wkey, log_key = witness_process
    cfg = config(Path(log_key), witnesses=[{"url": url, "key": wkey.key_text}])
    store = memory_store()
    from eventvault.server.checkpoints import load_signer

    signer = load_signer(cfg)
    assert signer is not None
    cp = Checkpointer.from_config(StoreHolder(store), signer, cfg)
    fill(store, 4)
    first = cp.run_once(startup=True)
    assert first is not None
    # Both the log's key and the witness's verify the kept note.
    opened = open_note(first, [signer.verifier(), wkey])
    assert len(opened.signatures) == 2
    fill(store, 3)
    second = cp.run_once(startup=True)
    assert second is not None
    assert open_checkpoint(second, [wkey]).size == 7
    assert store.log.latest_checkpoint() == second
    # A restarted service does not know the witness's size: the 409 tells it.
    again = Checkpointer.from_config(StoreHolder(store), signer, cfg)
    fill(store, 2)
    third = again.run_once(startup=True)
    assert third is not None
    assert open_checkpoint(third, [wkey]).size == 9
    assert again.witness_failures == 0


def test_a_refusing_witness_is_logged_and_the_checkpoint_kept(
    witness_process: tuple[str, CosignatureVerifier, str], caplog: pytest.LogCaptureFixture
) -> None:
    url, wkey, log_key = witness_process
    cfg = config(Path(log_key), witnesses=[{"url": url, "key": wkey.key_text}])
    from eventvault.server.checkpoints import load_signer

    signer = load_signer(cfg)
    assert signer is not None
    honest, fork = memory_store(), memory_store()
    fill(honest, 5)
    assert Checkpointer.from_config(StoreHolder(honest), signer, cfg).run_once(startup=True)
    fill(fork, 6)  # the same key, another history: the witness must not co-sign it
    cp = Checkpointer.from_config(StoreHolder(fork), signer, cfg)
    with caplog.at_level(logging.WARNING, "eventvault.server"):
        note = cp.run_once(startup=True)
    assert note is not None
    assert cp.witness_failures == 1
    assert "did not co-sign" in caplog.text
    assert len(open_note(note, [signer.verifier(), wkey]).signatures) == 1  # the log's only


def test_bad_witness_entries_refuse_the_start(tmp_path: Path) -> None:
    log_key, _ = key_file(tmp_path)
    good = Cosigner.generate("w.test/w").verifier().key_text
    for entry, message in (
        ({"url": "ftp://x", "key": good}, "must be an http"),
        ({"url": "http://x", "key": "nope"}, "audit.witnesses\\[0\\]"),
        ({"url": "http://x", "key": good, "timeout": "soon"}, "timeout"),
    ):
        cfg = config(log_key, witnesses=[entry])
        with pytest.raises(ConfigError, match=message):
            load_witnesses(cfg)
        with pytest.raises(ConfigError, match=message):
            create_app(memory_store(), cfg)
