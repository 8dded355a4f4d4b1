"""Batch checksums (CRC32C in the commit marker): torn batches, flipped bits, format 1."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from eventvault import CorruptionError, NewEvent, Query
from eventvault.backends.file import FileEventStore


def fill(path: Path, batches: int, size: int = 5, seg: int = 1 << 20) -> None:
    with FileEventStore(path, segment_max_bytes=seg) as s:
        for b in range(batches):
            s.append([NewEvent(type="t.x", data={"v": "aaaa", "b": b}) for _ in range(size)])


def segments(path: Path) -> list[Path]:
    return sorted((path / "segments").glob("*.jsonl"))


def test_every_batch_carries_its_checksum(tmp_path: Path) -> None:
    fill(tmp_path, 3)
    lines = segments(tmp_path)[0].read_bytes().split(b"\n")[:-1]
    marked = [line for line in lines if line.endswith(b',"c":1}')]
    assert len(marked) == 3
    assert all(re.search(rb',"k":"[0-9a-f]{8}","c":1}$', line) for line in marked)


def test_zeros_inside_the_last_batch_are_a_torn_write_cut_on_open(tmp_path: Path) -> None:
    """Write-back reordered pages: the last batch's marker reached the disk, a page
    in the middle did not (zeros). The store opens, cuts the batch, reports it."""
    fill(tmp_path, 4)
    seg = segments(tmp_path)[0]
    data = bytearray(seg.read_bytes())
    lines = data.split(b"\n")
    last_batch_start = len(b"\n".join(lines[:15])) + 1  # batches of 5: 15 lines before it
    good = last_batch_start
    zero_at = last_batch_start + 40
    data[zero_at : zero_at + 200] = b"\0" * 200
    seg.write_bytes(bytes(data))
    with FileEventStore(tmp_path) as s:
        assert s.head() == 15
        assert seg.stat().st_size == good
        (cut,) = s.stats().details["recovered"]
        assert cut["torn_batches"] == 1
        assert cut["after_position"] == 15
        assert cut["cut_bytes"] == len(data) - good
        assert s.append(NewEvent(type="t.after")).events[0].position == 16
        assert s.verify().ok


def test_a_reader_ignores_a_torn_batch_until_a_writer_cuts_it(tmp_path: Path) -> None:
    fill(tmp_path, 2)
    seg = segments(tmp_path)[0]
    good = seg.stat().st_size
    with FileEventStore(tmp_path) as s:
        batch = s.read(Query(limit=5)).events  # a whole batch, as stored
    torn = bytearray(b"".join(_line(e) for e in batch))
    torn[10:30] = b"\0" * 20
    # (a live writer holds the lock)
    with FileEventStore(tmp_path) as s, s.backend._writes.lock.held():
        with seg.open("ab") as fh:
            fh.write(bytes(torn) + b',"c":1}\n')
        other = FileEventStore(tmp_path)
        try:
            assert other.head() == 10  # the torn batch is not indexed
        finally:
            other.close()
    assert seg.stat().st_size > good  # nobody cut it: a writer was alive
    with FileEventStore(tmp_path) as s:
        assert s.head() == 10
        assert seg.stat().st_size == good


def _line(e: object) -> bytes:
    import msgspec

    return msgspec.json.encode(e) + b"\n"


def test_a_flipped_bit_in_a_committed_record_is_refused_by_read(tmp_path: Path) -> None:
    fill(tmp_path, 4, seg=2048)  # several sealed segments
    sealed = segments(tmp_path)[0]
    data = bytearray(sealed.read_bytes())
    at = data.index(b'"v":"aaaa"', data.index(b'{"position":3,')) + 6
    data[at] ^= 0x02  # 'a' -> 'c': still valid JSON, same length
    sealed.write_bytes(bytes(data))
    with FileEventStore(tmp_path, segment_max_bytes=2048) as s:
        with pytest.raises(CorruptionError, match=rf"{sealed.name}: position 3 is damaged"):
            s.read(Query(limit=10))
        with pytest.raises(CorruptionError, match="position 3"):
            s.read(Query(after=2, limit=1))
        # Its intact neighbours in the same batch are still served.
        assert [e.position for e in s.read(Query(before=3)).events] == [1, 2]
        assert [e.position for e in s.read(Query(after=3, limit=2)).events] == [4, 5]
        result = s.verify()
        assert not result.ok
        assert result.first_bad_position == 3


def test_a_damaged_checksum_field_is_found_by_verify(tmp_path: Path) -> None:
    """Damage the chain cannot see (the checksum itself) still fails verify."""
    fill(tmp_path, 3)
    seg = segments(tmp_path)[0]
    data = seg.read_bytes()
    m = list(re.finditer(rb',"k":"([0-9a-f]{8})"', data))[1]  # batch 2 (positions 6..10)
    digit = data[m.start(1) : m.start(1) + 1]
    flipped = b"0" if digit != b"0" else b"1"
    seg.write_bytes(data[: m.start(1)] + flipped + data[m.start(1) + 1 :])
    with FileEventStore(tmp_path) as s:
        assert [e.position for e in s.read(Query(limit=20)).events] == list(range(1, 16))
        result = s.verify()
        assert not result.ok
        assert result.first_bad_position == 6
        assert "checksum" in (result.reason or "")


def test_zeros_inside_a_sealed_segment_are_corruption_not_a_tail(tmp_path: Path) -> None:
    fill(tmp_path, 6, seg=2048)
    sealed = segments(tmp_path)[0]
    (tmp_path / "index" / sealed.name.replace(".jsonl", ".idx")).unlink()
    data = bytearray(sealed.read_bytes())
    data[100:140] = b"\0" * 40
    sealed.write_bytes(bytes(data))
    with (
        FileEventStore(tmp_path, segment_max_bytes=2048) as s,
        pytest.raises(CorruptionError, match=sealed.name),
    ):
        s.read(Query(limit=100))
    assert sealed.read_bytes() == bytes(data)  # nothing was cut


def test_format_1_segments_without_checksums_stay_readable(tmp_path: Path) -> None:
    """A store written before checksums: read, verified, appended to, compacted."""
    fill(tmp_path, 4)
    seg = segments(tmp_path)[0]
    seg.write_bytes(re.sub(rb',"k":"[0-9a-f]{8}"', b"", seg.read_bytes()))
    for idx in (tmp_path / "index").glob("*.idx"):
        idx.unlink()
    with FileEventStore(tmp_path) as s:
        assert [e.position for e in s.read(Query(limit=100)).events] == list(range(1, 21))
        assert s.verify().ok
        s.append([NewEvent(type="t.new") for _ in range(3)])
    tail = seg.read_bytes().split(b"\n")[-2]
    assert re.search(rb',"k":"[0-9a-f]{8}","c":1}$', tail)  # new batches are checksummed
    with FileEventStore(tmp_path) as s:
        assert s.head() == 23
        assert s.verify().ok


def test_zeros_in_a_format_1_last_batch_are_cut_too(tmp_path: Path) -> None:
    fill(tmp_path, 3)
    seg = segments(tmp_path)[0]
    data = bytearray(re.sub(rb',"k":"[0-9a-f]{8}"', b"", seg.read_bytes()))
    good = len(b"\n".join(data.split(b"\n")[:10])) + 1
    data[good + 30 : good + 60] = b"\0" * 30
    seg.write_bytes(bytes(data))
    with FileEventStore(tmp_path) as s:
        assert s.head() == 10
        assert s.stats().details["recovered"][0]["torn_batches"] == 1
        assert s.verify().ok
