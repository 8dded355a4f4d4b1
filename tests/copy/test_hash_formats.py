"""Hash formats: what each store keeps, converting by copy, and what a copy refuses.

A leaf-hash destination computes every hash itself, so a copy into one must check
its source first: otherwise a damaged source would come out of it looking intact.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from eventvault import MemoryEventStore, NewEvent, Query, ValidationError
from eventvault.backends.file import FileEventStore
from eventvault.copy import CopyError, copy_store
from eventvault.errors import CorruptionError
from eventvault.export import check_export, export_store, import_store
from eventvault.integrity.chain import CHAIN, GENESIS, LEAF, event_leaf_hash, record_hash
from tests.copy.test_copy_cli import file_config


def filled(hashes: int, n: int = 40) -> MemoryEventStore:
    store = MemoryEventStore(hash_format=hashes)
    store.append([NewEvent(type=f"t.{i % 3}", stream=f"s{i % 4}", data={"i": i}) for i in range(n)])
    return store


def held(store: MemoryEventStore) -> list[tuple[object, ...]]:
    """Every event but its hash (and position), as a copy must keep it."""
    return [
        msgspec.structs.astuple(msgspec.structs.replace(e, position=0, hash=""))
        for e in store.iter(Query(limit=1000))
    ]


def test_each_format_stores_what_it_says() -> None:
    leaf, chain = filled(LEAF), filled(CHAIN)
    assert leaf.hash_format == LEAF
    assert chain.hash_format == CHAIN
    for ev in leaf.iter():
        assert ev.hash == event_leaf_hash(ev).hex()  # one hash: the tree's leaf
    prev = GENESIS
    for ev in chain.iter():
        prev = record_hash(prev, ev)
        assert ev.hash == prev.hex()
    # Both keep the same tree: leaves are the same bytes' hashes either way.
    assert leaf.log.state().size == chain.log.state().size == 40
    assert leaf.verify().ok
    assert chain.verify().ok


@pytest.mark.parametrize(("src_format", "dst_format"), [(CHAIN, LEAF), (LEAF, CHAIN)])
def test_a_copy_converts_between_formats(src_format: int, dst_format: int) -> None:
    src = filled(src_format)
    dst = MemoryEventStore(hash_format=dst_format)
    report = copy_store(src, dst)
    assert report.rechained  # the destination computed its own hashes
    assert report.comparison is not None
    assert report.comparison.ok, report.comparison
    assert held(dst) == held(src)
    result = dst.verify()
    assert result.ok, result
    assert result.checked == 40
    # Resuming is by content, not by hash (the hashes differ by design).
    src.append(NewEvent(type="late"))
    again = copy_store(src, dst)
    assert again.copied == 1
    assert dst.verify().ok


def test_a_chain_source_that_does_not_verify_is_not_copied_into_a_leaf_store() -> None:
    src = filled(CHAIN)
    events = src.backend._events
    events[7] = msgspec.structs.replace(events[7], data={"i": "forged"})
    dst = MemoryEventStore()
    with pytest.raises(CopyError, match=r"source does not verify \(position 8"):
        copy_store(src, dst)
    assert dst.stats().events == 0


def test_an_altered_leaf_source_event_is_refused() -> None:
    src = filled(LEAF)
    events = src.backend._events
    events[9] = msgspec.structs.replace(events[9], data={"i": "forged"})
    dst = MemoryEventStore()
    with pytest.raises(CopyError, match=r"source does not verify \(position 10: hash does not"):
        copy_store(src, dst, batch=5)
    assert dst.stats().events == 0  # (verified first: nothing copied)


def test_an_altered_leaf_source_event_with_its_hash_recomputed_is_refused() -> None:
    # Its own hash matches again; only the source's Merkle tree knows better — so a
    # copy (which builds a tree of its own) checks the source's first.
    src = filled(LEAF)
    events = src.backend._events
    forged = msgspec.structs.replace(events[9], data={"i": "forged"})
    events[9] = msgspec.structs.replace(forged, hash=event_leaf_hash(forged).hex())
    with pytest.raises(CopyError, match="does not match leaf 9 of the Merkle tree"):
        copy_store(src, MemoryEventStore())


def test_a_leaf_source_missing_an_event_is_refused() -> None:
    src = filled(LEAF)
    backend = src.backend
    del backend._events[20], backend._positions[20]  # deleted behind the store's back
    assert not src.verify().ok
    with pytest.raises(CopyError, match=r"positions 21\.\.21 are missing and no retention"):
        copy_store(src, MemoryEventStore())


def test_events_lost_after_the_check_are_caught_as_the_copy_goes_and_on_resume() -> None:
    # (source_verified_to=0: as if the source verified just before, with nothing in
    # it yet; the events go after.)
    src = filled(LEAF, n=100)
    backend = src.backend
    del backend._events[50:60], backend._positions[50:60]
    dst = MemoryEventStore()
    with pytest.raises(CopyError, match=r"lacks positions 51\.\.60.*no retention receipt"):
        copy_store(src, dst, batch=50, source_verified_to=0)
    assert dst.stats().events == 50
    # Running the same copy again resumes after 50: the gap is still refused.
    with pytest.raises(CopyError, match=r"lacks positions 51\.\.60"):
        copy_store(src, dst, batch=50, source_verified_to=0)
    assert dst.stats().events == 50


def test_a_file_store_keeps_the_format_it_was_made_with(tmp_path: Path) -> None:
    with FileEventStore(tmp_path / "new") as s:
        assert s.hash_format == LEAF
        s.append(NewEvent(type="x"))
    with FileEventStore(tmp_path / "old", hash_format=CHAIN) as s:
        s.append([NewEvent(type="x"), NewEvent(type="y")])
        assert s.verify().ok
        first, second = list(s.iter())
        assert second.hash == record_hash(bytes.fromhex(first.hash), second).hex()
    assert b'"version":1' in (tmp_path / "old" / "eventvault.json").read_bytes()
    assert b'"version":2' in (tmp_path / "new" / "eventvault.json").read_bytes()
    with FileEventStore(tmp_path / "old") as s:
        assert s.hash_format == CHAIN  # (asked nothing: it is what it is)
    with pytest.raises(ValidationError, match="keeps hash format 1, not 2"):
        FileEventStore(tmp_path / "old", hash_format=LEAF)
    with pytest.raises(ValidationError, match="hash_format must be 1 or 2"):
        FileEventStore(tmp_path / "other", hash_format=3)
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize(("src_format", "dst_format"), [(CHAIN, LEAF), (LEAF, CHAIN), (LEAF, LEAF)])
def test_export_and_import_across_formats(src_format: int, dst_format: int) -> None:
    src = filled(src_format)
    buf = io.BytesIO()
    export_store(src, buf)
    buf.seek(0)
    dst = MemoryEventStore(hash_format=dst_format)
    import_store(dst, buf)
    assert held(dst) == held(src)
    assert dst.verify().ok
    # Again (an interrupted import's re-run): the newest event is found by id, not hash.
    buf.seek(0)
    assert check_export(buf, "x", dst).resume_line == 40


def test_an_altered_leaf_export_is_refused_naming_the_line() -> None:
    src = filled(LEAF)
    buf = io.BytesIO()
    export_store(src, buf)
    lines = buf.getvalue().split(b"\n")
    lines[5] = lines[5].replace(b'"i":4', b'"i":99')
    with pytest.raises(CorruptionError, match=r"line 6: .* does not match its hash"):
        check_export(io.BytesIO(b"\n".join(lines)), "x", None)


def _cli(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventvault.cli", *map(str, args)],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_cli_converts_a_chain_store_by_copying_it(tmp_path: Path) -> None:
    """The way an old store moves to leaf hashes: copy it into a new store. The source
    is verified first (with a progress bar), and a damaged one is refused."""
    with FileEventStore(tmp_path / "old", hash_format=CHAIN) as old:
        old.append([NewEvent(type="t", stream=f"s{i % 3}", data={"i": i}) for i in range(300)])
    src, dst = file_config(tmp_path, "old"), file_config(tmp_path, "new")
    run = _cli("copy", "--from", src, "--to", dst)
    assert run.returncode == 0, run.stderr
    assert "verifying the source first" in run.stderr
    with FileEventStore(tmp_path / "new") as new:
        assert new.hash_format == LEAF
        assert new.verify().ok
        assert new.stats().events == 300
    # A damaged chain source: refused before anything is copied.
    seg = sorted((tmp_path / "old" / "segments").iterdir())[0]
    data = seg.read_bytes()
    assert b'"i":7}' in data
    seg.write_bytes(data.replace(b'"i":7}', b'"i":8}', 1))
    for index in (tmp_path / "old" / "index").iterdir():
        index.unlink()  # (as an attacker would: no checksum left to trip over first)
    run = _cli("copy", "--from", src, "--to", file_config(tmp_path, "other"))
    assert run.returncode != 0
    assert "the source does not verify" in run.stderr
    assert not (tmp_path / "other" / "segments").exists() or not any(
        (tmp_path / "other" / "segments").iterdir()
    )


def _without_line(export: bytes, k: int) -> bytes:
    """The export with its k-th event line deleted and the end line's count fixed (as
    someone hiding an event would)."""
    lines = export.rstrip(b"\n").split(b"\n")
    del lines[1 + k]
    end = json.loads(lines[-1])
    end["eventvault_export_end"]["events"] -= 1
    lines[-1] = json.dumps(end, separators=(",", ":")).encode()
    return b"\n".join(lines) + b"\n"


@pytest.mark.parametrize("src_format", [CHAIN, LEAF])
def test_an_export_missing_a_line_is_refused_where_hashes_are_recomputed(src_format: int) -> None:
    src = filled(src_format)
    buf = io.BytesIO()
    export_store(src, buf)
    cut = io.BytesIO(_without_line(buf.getvalue(), 20))
    with pytest.raises(CorruptionError, match="does not verify at source position 22"):
        import_store(MemoryEventStore(hash_format=LEAF), cut)
    if src_format == CHAIN:  # into a chain store the hashes are kept: its verify finds it
        cut.seek(0)
        kept = MemoryEventStore(hash_format=CHAIN)
        import_store(kept, cut)
        assert kept.verify().first_bad_position == 21  # (renumbered: the next event)
