"""Hand-made broken stores: each case asserts the exact outcome."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from eventvault import CorruptionError, NewEvent, Query, StoreUnavailableError
from eventvault.backends.file import FileEventStore


def fill(path: Path, batches: int = 10, size: int = 5, seg: int = 4096) -> list[int]:
    with FileEventStore(path, segment_max_bytes=seg) as s:
        for b in range(batches):
            s.append([NewEvent(type="t.x", data={"v": "aaaa", "b": b}) for _ in range(size)])
        return [e.position for e in s.iter()]


def segments(path: Path) -> list[Path]:
    return sorted((path / "segments").glob("*.jsonl"))


def reopen(path: Path, seg: int = 4096) -> FileEventStore:
    return FileEventStore(path, segment_max_bytes=seg)


@pytest.mark.parametrize(
    "tail",
    [
        b'{"position":51,"stream_revision":50,"recorded_at":"2026-',  # torn mid-line
        b"\x00\x00\x00\x00\x00\x00",  # zero-filled pages after a power loss
        b"garbage\nmore garbage\n\xff\xfe\n",  # junk with newlines
    ],
    ids=["torn-line", "zeros", "garbage"],
)
def test_uncommitted_tail_is_cut_and_reported(tmp_path: Path, tail: bytes) -> None:
    fill(tmp_path)
    active = segments(tmp_path)[-1]
    good = active.stat().st_size
    with active.open("ab") as fh:
        fh.write(tail)
    with reopen(tmp_path) as s:
        assert s.head() == 50
        assert active.stat().st_size == good
        (cut,) = s.stats().details["recovered"]
        assert cut["cut_bytes"] == len(tail)
        assert s.append(NewEvent(type="t.after")).events[0].position == 51
        assert s.verify().ok


def test_batch_without_its_commit_marker_is_cut_whole(tmp_path: Path) -> None:
    """A crash after 2 of 3 lines of a batch: neither line survives (atomic batch)."""
    fill(tmp_path, batches=2)
    with reopen(tmp_path) as s:
        s.append([NewEvent(type="t.batch") for _ in range(3)])
    active = segments(tmp_path)[-1]
    lines = active.read_bytes().split(b"\n")[:-1]
    assert lines[-1].endswith(b',"c":1}')
    active.write_bytes(b"\n".join(lines[:-1]) + b"\n")  # drop the marker line
    with reopen(tmp_path) as s:
        assert s.head() == 10
        assert [e.type for e in s.read(Query(after=8)).events] == ["t.x", "t.x"]


def test_bad_record_before_committed_ones_is_corruption(tmp_path: Path) -> None:
    fill(tmp_path, batches=3, seg=1 << 20)  # one segment, all active
    seg = segments(tmp_path)[-1]
    data = bytearray(seg.read_bytes())
    second = data.index(b"\n") + 1
    data[second] = ord("X")  # break record 2's opening brace
    seg.write_bytes(bytes(data))
    (tmp_path / "index" / seg.name.replace(".jsonl", ".idx")).unlink(missing_ok=True)
    with pytest.raises(CorruptionError, match=r"00000000000000000001\.jsonl.*after position 1"):
        reopen(tmp_path, seg=1 << 20)


def test_flipped_bit_inside_a_value_is_found_by_verify(tmp_path: Path) -> None:
    fill(tmp_path)
    sealed = segments(tmp_path)[0]
    data = bytearray(sealed.read_bytes())
    at = data.index(b'"v":"aaaa"', data.index(b'{"position":3,')) + 6
    data[at] ^= 0x02  # 'a' -> 'c': still valid JSON
    sealed.write_bytes(bytes(data))
    with reopen(tmp_path) as s:
        result = s.verify()
        assert not result.ok
        assert result.first_bad_position == 3
        assert s.head() == 50


def test_flipped_structural_byte_in_sealed_segment_names_file_and_position(
    tmp_path: Path,
) -> None:
    fill(tmp_path)
    sealed = segments(tmp_path)[0]
    data = bytearray(sealed.read_bytes())
    at = data.index(b'{"position":4,') + 1
    data[at] = ord("}")
    sealed.write_bytes(bytes(data))
    with reopen(tmp_path) as s:
        with pytest.raises(CorruptionError, match=rf"{sealed.name}.*position 4"):
            s.read(Query(limit=10))
        assert s.read(Query(after=4, limit=2)).events[0].position == 5


def test_bad_sealed_segment_without_index_fails_on_rebuild(tmp_path: Path) -> None:
    fill(tmp_path)
    sealed = segments(tmp_path)[0]
    data = bytearray(sealed.read_bytes())
    data[data.index(b'{"position":4,') + 1] = ord("}")
    sealed.write_bytes(bytes(data))
    (tmp_path / "index" / sealed.name.replace(".jsonl", ".idx")).unlink()
    with reopen(tmp_path) as s, pytest.raises(CorruptionError, match=sealed.name):
        s.read(Query(limit=10))


@pytest.mark.parametrize("damage", ["missing", "truncated", "flipped", "empty"])
def test_damaged_index_is_rebuilt(tmp_path: Path, damage: str) -> None:
    positions = fill(tmp_path)
    with reopen(tmp_path) as s:
        want = s.read(Query(types=["t.x"], limit=100)).events
    idx = sorted((tmp_path / "index").glob("*.idx"))[0]
    data = idx.read_bytes()
    if damage == "missing":
        idx.unlink()
    elif damage == "truncated":
        idx.write_bytes(data[: len(data) // 2])
    elif damage == "flipped":
        idx.write_bytes(data[:-5] + bytes([data[-5] ^ 1]) + data[-4:])
    else:
        idx.write_bytes(b"")
    with reopen(tmp_path) as s:
        assert s.read(Query(types=["t.x"], limit=100)).events == want
        assert [e.position for e in s.iter()] == positions
    assert idx.exists()
    assert idx.read_bytes() != b""


def test_stray_files_are_ignored_and_reported(tmp_path: Path) -> None:
    fill(tmp_path, batches=2)
    (tmp_path / "segments" / "notes.txt").write_text("hello")
    (tmp_path / "segments" / "123.jsonl").write_text("{}\n")
    (tmp_path / "README").write_text("operator notes")
    with reopen(tmp_path) as s:
        assert s.head() == 10
        assert sorted(s.stats().details["ignored_files"]) == ["123.jsonl", "notes.txt"]
        assert s.verify().ok


def test_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "data"
    target.write_text("not a directory")
    with pytest.raises(StoreUnavailableError, match="not a directory"):
        FileEventStore(target)


def test_non_empty_directory_without_metadata_is_refused(tmp_path: Path) -> None:
    (tmp_path / "important.doc").write_text("x")
    with pytest.raises(StoreUnavailableError, match="not an eventvault store"):
        FileEventStore(tmp_path)


def test_damaged_metadata_is_refused(tmp_path: Path) -> None:
    fill(tmp_path, batches=1)
    (tmp_path / "eventvault.json").write_text("{nope")
    with pytest.raises(StoreUnavailableError, match="damaged"):
        reopen(tmp_path)


def test_files_and_directories_are_private(tmp_path: Path) -> None:
    fill(tmp_path, batches=3)
    for path in [tmp_path, tmp_path / "segments", tmp_path / "index"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o700
    for path in [*segments(tmp_path), tmp_path / "eventvault.json", tmp_path / "lock"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_stale_checkpoint_is_not_trusted(tmp_path: Path) -> None:
    """An active-segment checkpoint that does not match its segment is ignored."""
    fill(tmp_path, batches=300, size=5, seg=1 << 22)  # 1500 events, one segment
    seg = segments(tmp_path)[-1]
    data = bytearray(seg.read_bytes())
    last_hash_at = data.rindex(b'"hash":"') + 8
    data[last_hash_at] = ord("0") if data[last_hash_at] != ord("0") else ord("1")
    seg.write_bytes(bytes(data))
    with reopen(tmp_path, seg=1 << 22) as s:
        assert s.head() == 1500
        assert s.verify().first_bad_position == 1500


def test_reindex_rebuilds_every_sealed_index(tmp_path: Path) -> None:
    fill(tmp_path)
    for idx in (tmp_path / "index").glob("*.idx"):
        idx.unlink()
    with reopen(tmp_path) as s:
        n = s.reindex()
        assert n == len(segments(tmp_path)) - 1
        assert s.verify().ok
    assert len(list((tmp_path / "index").glob("*.idx"))) >= n


@pytest.mark.parametrize("mode", ["always", "interval", "never"])
def test_every_fsync_mode_round_trips(tmp_path: Path, mode: str) -> None:
    with FileEventStore(tmp_path, fsync=mode, fsync_interval=0.01) as s:  # type: ignore[arg-type]
        s.append([NewEvent(type="t.x") for _ in range(20)])
    with FileEventStore(tmp_path) as s:
        assert s.head() == 20
        assert s.verify().ok


def test_unknown_fsync_mode_is_rejected(tmp_path: Path) -> None:
    from eventvault import ValidationError

    with pytest.raises(ValidationError, match="fsync"):
        FileEventStore(tmp_path, fsync="sometimes")  # type: ignore[arg-type]


def test_newer_format_is_refused(tmp_path: Path) -> None:
    fill(tmp_path, batches=1)
    meta = tmp_path / "eventvault.json"
    meta.write_text(re.sub(r'"version":\d+', '"version":99', meta.read_text()))
    with pytest.raises(StoreUnavailableError, match="not supported"):
        reopen(tmp_path)
