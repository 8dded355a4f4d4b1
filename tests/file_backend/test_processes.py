"""Several processes on one store: concurrent appends, cross-process tail, SIGKILL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from eventvault import NewEvent, Query
from eventvault.backends.file import FileEventStore

WRITER = [sys.executable, str(Path(__file__).with_name("writer.py"))]


def acked(ack_files: list[Path]) -> list[str]:
    ids: list[str] = []
    for f in ack_files:
        if f.exists():
            # A kill can tear the last ack line; a torn line names no whole id.
            ids += [line for line in f.read_text().split("\n") if len(line) == 36]
    return ids


def check_store(path: Path, ack_files: list[Path]) -> int:
    with FileEventStore(path, segment_max_bytes=16384) as store:
        events = list(store.iter(Query(limit=5000)))
        positions = [e.position for e in events]
        assert positions == list(range(1, len(events) + 1)), "positions not contiguous"
        ids = [str(e.id) for e in events]
        assert len(set(ids)) == len(ids), "an event is stored twice"
        missing = set(acked(ack_files)) - set(ids)
        assert not missing, f"{len(missing)} acknowledged events lost"
        result = store.verify()
        assert result.ok, result
        revisions: dict[str, int] = {}
        for e in events:
            assert e.stream_revision == revisions.get(e.stream, -1) + 1
            revisions[e.stream] = e.stream_revision
        return len(events)


def test_concurrent_processes_append_without_loss(tmp_path: Path) -> None:
    store = tmp_path / "store"
    FileEventStore(store).close()
    acks = [tmp_path / f"ack{i}" for i in range(4)]
    procs = [
        subprocess.Popen([*WRITER, str(store), str(a), "400", str(i)]) for i, a in enumerate(acks)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    n = check_store(store, acks)
    assert n == len(acked(acks)) >= 1600


def test_tail_sees_events_from_another_process(tmp_path: Path) -> None:
    store_path = tmp_path / "store"
    with FileEventStore(store_path, segment_max_bytes=16384) as store:
        got: list[int] = []
        stop = threading.Event()

        def follow() -> None:
            for e in store.subscribe(poll_interval=0.05, stop=stop):
                got.append(e.position)
                if len(got) >= 200:
                    stop.set()

        t = threading.Thread(target=follow)
        t.start()
        proc = subprocess.run(
            [*WRITER, str(store_path), str(tmp_path / "ack"), "200", "1"], check=True, timeout=120
        )
        assert proc.returncode == 0
        t.join(timeout=30)
        assert got[:200] == list(range(1, 201))


@pytest.mark.system
def test_kill_9_at_random_instants_loses_no_acknowledged_event(tmp_path: Path) -> None:
    """50 rounds: 3 writers append in a loop and are SIGKILLed at a random instant."""
    store = tmp_path / "store"
    FileEventStore(store, segment_max_bytes=16384).close()
    rng = random.Random(1234)
    acks: list[Path] = []
    for round_ in range(50):
        procs = []
        for w in range(3):
            ack = tmp_path / f"ack-{round_}-{w}"
            acks.append(ack)
            procs.append(
                subprocess.Popen([*WRITER, str(store), str(ack), "-1", str(round_ * 10 + w)])
            )
        # Kill while they append: once every writer is up (its ack file exists; a
        # busy machine can take a while to start three interpreters), at a random
        # instant.
        deadline = time.monotonic() + 30
        while not all(a.exists() for a in acks[-3:]) and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.15, 0.6))
        for p in procs:
            os.kill(p.pid, signal.SIGKILL)
        for p in procs:
            p.wait()
        check_store(store, acks)
    assert len(acked(acks)) > 500  # the rounds really appended


@pytest.mark.system
def test_lock_holder_killed_does_not_block_others(tmp_path: Path) -> None:
    store = tmp_path / "store"
    FileEventStore(store).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import fcntl, os, sys, time;"
                f"fd=os.open({str(store / 'lock')!r}, os.O_RDWR);"
                "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    with FileEventStore(store) as s:
        assert s.append(NewEvent(type="after.kill")).events[0].position == 1


DISK_FULL = """
import resource, signal, sys
from eventvault import NewEvent, StoreUnavailableError
from eventvault.backends.file import FileEventStore

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
path, limit = sys.argv[1], int(sys.argv[2])
with FileEventStore(path, segment_max_bytes=1 << 30) as s:
    ok = 0
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        while True:
            s.append([NewEvent(type="fill", data={"pad": "x" * 300}) for _ in range(7)])
            ok += 7
    except StoreUnavailableError as exc:
        print("ERROR", exc, file=sys.stderr)
    assert s.head() == ok, (s.head(), ok)
    assert s.verify().ok
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)  # space is back
    s.append(NewEvent(type="after"))
    print(ok + 1)
"""


def test_disk_full_gives_a_clear_error_and_an_intact_store(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", DISK_FULL, str(tmp_path / "s"), "60000"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "size limit" in proc.stderr
    total = int(proc.stdout)
    with FileEventStore(tmp_path / "s") as s:
        assert s.head() == total
        assert s.verify().ok
        seg = sorted((tmp_path / "s" / "segments").iterdir())[0]
        assert seg.stat().st_size < 61000


@pytest.mark.parametrize("n", [2])
def test_processes_roll_segments_together(tmp_path: Path, n: int) -> None:
    store = tmp_path / "store"
    FileEventStore(store, segment_max_bytes=4096).close()
    acks = [tmp_path / f"ack{i}" for i in range(n)]
    procs = [
        subprocess.Popen([*WRITER, str(store), str(a), "300", str(i), "4096"])
        for i, a in enumerate(acks)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0
    assert check_store(store, acks) == len(acked(acks))
    assert len(list((store / "segments").iterdir())) > 10


def fill_until_error(store: FileEventStore) -> tuple[int, Exception]:
    """Append batches of 5 until one fails; return how many were acknowledged."""
    acked = 0
    while True:
        try:
            store.append([NewEvent(type="fill", data={"pad": "x" * 300}) for _ in range(5)])
        except Exception as exc:  # returned for the caller to assert on
            return acked, exc
        acked += 5


def test_real_enospc_on_a_tiny_tmpfs(tmp_path: Path) -> None:
    """A genuinely full file system: clear error, intact store, works once space is back."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(
            f"cannot mount a tmpfs here ({mounted.stderr.strip()}); "
            "test_disk_full_gives_a_clear_error_and_an_intact_store covers the path"
        )
    try:
        ballast = mnt / "ballast"
        ballast.write_bytes(b"\0" * 64 * 1024)
        from eventvault import StoreUnavailableError

        with FileEventStore(mnt / "store", segment_max_bytes=1 << 30) as s:
            acked, error = fill_until_error(s)
            assert isinstance(error, StoreUnavailableError)
            assert "disk is full" in str(error)
            assert s.head() == acked > 0
            assert s.verify().ok
            ballast.unlink()  # space is back
            s.append(NewEvent(type="after.full"))
        with FileEventStore(mnt / "store") as s:
            assert s.head() == acked + 1
            assert s.verify().ok
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True, check=False)
