"""Sealed-segment index files: what they answer, and what they cost a reader's heap."""

from __future__ import annotations

import tracemalloc
import uuid
from array import array
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from eventvault import NewEvent, Query
from eventvault.backends.file import FileEventStore
from eventvault.backends.file.index import FIELDS, DiskIndex, MemIndex


def _mem(keys: dict[str, list[str]], revisions: dict[str, int]) -> MemIndex:
    """An index of len(type keys) records, record i carrying the i-th key of each field."""
    n = len(keys["type"])
    mem = MemIndex(1)
    for i in range(n):
        mem.add(
            i * 10,
            recorded_us=i,
            id_key=uuid.UUID(int=i + 1).int,
            type=keys["type"][i],
            stream=keys["stream"][i],
            stream_revision=i,
            actor=keys["actor"][i],
            correlation_id=keys["correlation_id"][i],
            hash=f"h{i}",
        )
    mem._stream_last.update(revisions)  # compaction keeps revisions of emptied streams
    mem.set_size(n * 10)
    return mem


names = st.text(
    st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(st.tuples(names, names, names, names), min_size=1, max_size=60),
    extra=st.dictionaries(names, st.integers(0, 2**40), max_size=5),
    probes=st.lists(names, max_size=10),
)
def test_disk_index_answers_as_the_memory_index_did(
    tmp_path_factory: object,
    keys: list[tuple[str, str, str, str]],
    extra: dict[str, int],
    probes: list[str],
) -> None:
    """Unicode keys of any length, repeated or not: the mapped key tables give back
    exactly the postings and revisions the memory index held."""
    cols = {f: [k[i] for k in keys] for i, f in enumerate(FIELDS)}
    mem = _mem(cols, extra)
    path = Path(str(tmp_path_factory.mktemp("idx"))) / "1.idx"  # type: ignore[attr-defined]
    mem.write(path, 0o600)
    disk = DiskIndex.load(path, first=1, size=mem.size)
    assert disk is not None
    try:
        for field in FIELDS:
            want = {k: list(v) for k, v in mem.postings(field).items()}
            got = disk.postings(field)
            assert {k: list(v) for k, v in got.items()} == want
            assert sorted(got) == sorted(want)
            assert len(got) == len(want)
            for key in [*want, *probes, "\U0010ffff", ""]:
                assert (key in got) == (key in want)
                if key in want:
                    assert list(got[key]) == want[key]
        assert dict(disk.stream_last().items()) == dict(mem.stream_last())
        for key in [*probes, *extra]:
            assert disk.stream_last().get(key) == mem.stream_last().get(key)
        assert "\ud800" not in disk.postings("type")  # a lone surrogate cannot match
        back = MemIndex.from_disk(disk)
        assert {f: dict(back.postings(f).items()) for f in FIELDS} == {
            f: {k: array("I", v) for k, v in mem.postings(f).items()} for f in FIELDS
        }
    finally:
        disk.close()


def test_sealed_indexes_do_not_keep_their_keys_on_the_heap(tmp_path: Path) -> None:
    """Distinct correlation ids (one per run, say) grow without bound in a real store;
    loading a sealed segment's index must not decode them all (it used to, in every
    process that opened the store: a writer's heap grew with the store)."""
    with FileEventStore(tmp_path, segment_max_bytes=1 << 20) as s:
        for b in range(30):
            s.append(
                [
                    NewEvent(
                        type="run.step",
                        stream=f"run-{b}-{i % 50}",
                        correlation_id=f"corr-{b}-{i}",
                        data={"i": i},
                    )
                    for i in range(1000)
                ]
            )
    with FileEventStore(tmp_path, segment_max_bytes=1 << 20) as s:
        sealed = len(list((tmp_path / "index").glob("*.idx")))
        assert sealed >= 3
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            # Touches every sealed index (an id no segment holds).
            assert s.read(Query(correlation_ids=["corr-none"], limit=10)).events == []
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        # ~30,000 distinct ids: decoded, they took several MB; mapped, a few KB a segment.
        assert grown < 20_000 * sealed, grown
        found = s.read(Query(correlation_ids=["corr-3-17", "corr-29-999"], limit=10)).events
        assert [e.correlation_id for e in found] == ["corr-3-17", "corr-29-999"]
        assert s.read(Query(streams=["run-7-3"], limit=100)).events[-1].stream_revision == 19


def test_index_files_of_the_previous_format_are_rebuilt(tmp_path: Path) -> None:
    with FileEventStore(tmp_path, segment_max_bytes=4096) as s:
        for b in range(20):
            s.append([NewEvent(type="t.x", stream=f"s{b % 3}", data={"b": b}) for _ in range(5)])
        want = s.read(Query(streams=["s1"], limit=1000)).events
    old = sorted((tmp_path / "index").glob("*.idx"))[0]
    data = bytearray(old.read_bytes())
    data[:8] = b"EVIDX02\n"  # the format before batch boundaries
    old.write_bytes(bytes(data))
    with FileEventStore(tmp_path, segment_max_bytes=4096) as s:
        assert s.read(Query(streams=["s1"], limit=1000)).events == want
        assert s.verify().ok
    assert old.read_bytes()[:8] == b"EVIDX03\n"
