"""Write the golden vectors under tests/vectors/ from TODAY's code.

    python scripts/make_vectors.py            # (re)write the files
    python scripts/make_vectors.py --check    # exit 1 if a file would change

Run it only to *add* vectors. A change to an existing vector means stored data
written before the change no longer verifies: that needs a new canonical version
and an upgrade path, not a regenerated file. The tests (tests/test_golden_vectors.py,
tests/tlog/test_tree_vectors.py) recompute every vector, the tree ones also with a
naive implementation written from RFC 9162's definitions.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from eventvault.integrity.canonical import CANONICAL_VERSION, canonical_event_bytes
from eventvault.integrity.chain import GENESIS
from eventvault.tlog import MemoryHashStore, MerkleTree, leaf_hash

OUT = Path(__file__).resolve().parent.parent / "tests" / "vectors"

# Events covering what the canonical form must pin: key order, unicode (non-BMP,
# combining marks, escapes, keys that sort differently in UTF-16), numbers JSONB
# rewrites (1e23, 1e308, -0.0, 2**53 ± 1, huge integers, tiny floats), nesting,
# optional fields absent, times with and without fractions. Payloads are kept as
# JSON *text* so that reading the vector file cannot change them.
EVENTS: list[dict[str, Any]] = [
    {
        "id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "type": "task.started",
        "stream": "default",
        "stream_revision": 0,
        "occurred_at": "2026-01-01T00:00:00Z",
        "recorded_at": "2026-01-01T00:00:00Z",
        "data_json": "{}",
        "metadata_json": "{}",
    },
    {
        "id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c",
        "type": "task.completed",
        "stream": "run-7",
        "stream_revision": 0,
        "actor": "agent-x",
        "correlation_id": "run-7",
        "causation_id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "source": "https://ci.example/jobs/7",
        "occurred_at": "2026-01-01T00:00:00.120000Z",
        "recorded_at": "2026-01-01T00:00:00.123456Z",
        "data_json": '{"z": 1, "a": 2, "m": {"y": true, "b": null, "k": [3, 2, 1]}}',
        "metadata_json": '{"trace": "abc"}',
    },
    {
        "id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5d",
        "type": "numbers",
        "stream": "run-7",
        "stream_revision": 1,
        "occurred_at": "2026-02-28T23:59:59.000001Z",
        "recorded_at": "2026-02-28T23:59:59.999999Z",
        "data_json": (
            '{"e23": 1e23, "e308": 1e308, "neg_zero": -0.0, "two53": 9007199254740992, '
            '"two53p1": 9007199254740993, "two53m1": 9007199254740991, '
            '"neg_two53p1": -9007199254740993, "big": 123456789012345678901234567890, '
            '"tiny": 1.5e-7, "tenth": 0.1, "third": 0.3333333333333333, "one_f": 1.0, '
            '"e20": 1e20, "e21": 1e21, "neg": -42, "min_sub": 5e-324, '
            '"max": 1.7976931348623157e308, "half": 0.5, "e_minus_5": 0.00001, "int0": 0}'
        ),
        "metadata_json": "{}",
    },
    {
        "id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5e",
        "type": "unicode",
        "stream": "strömung/ünïcode",
        "stream_revision": 0,
        "actor": "agënt-ø",
        "occurred_at": "2026-03-01T12:00:00Z",
        "recorded_at": "2026-03-01T12:00:00.5Z",
        "data_json": (
            '{"emoji": "\\ud83d\\ude00 grin", "cjk": "日本語", "combining": "e\\u0301", '
            '"rtl": "\\u05e9\\u05dc\\u05d5\\u05dd", "escapes": "quote\\" back\\\\ tab\\t nl\\n", '
            '"ctrl": "\\u0001\\u001f", "ls_ps": "\\u2028\\u2029", "bom": "\\ufeff", '
            '"\\uffff": "last BMP key", "\\ud83d\\ude00": "non-BMP key", "A": "upper", '
            '"a": "lower", "": "empty key", "nbsp": "\\u00a0", "slash": "a/b<c>&"}'
        ),
        "metadata_json": '{"lang": "français"}',
    },
    {
        "id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5f",
        "type": "nested",
        "stream": "default",
        "stream_revision": 1,
        "source": "cli",
        "occurred_at": "1999-12-31T23:59:59Z",
        "recorded_at": "2026-03-01T12:00:01Z",
        "data_json": (
            '{"l1": {"l2": {"l3": {"l4": [[], {}, [{"x": [1, [2, [3, {"deep": "yes"}]]]}]]}}}, '
            '"list_of_objects": [{"b": 1, "a": 2}, {"d": 3, "c": 4}], "empty_list": [], '
            '"empty_obj": {}, "bools": [true, false], "nulls": [null, null], '
            '"mixed": [1, "1", 1.5, true, null, {"k": "v"}, []]}'
        ),
        "metadata_json": '{"nested": {"b": 2, "a": 1}}',
    },
    {
        "id": "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a60",
        "type": "ns:type/with-chars_1.2",
        "stream": "s" * 200,
        "stream_revision": 0,
        "actor": "a",
        "correlation_id": "c",
        "occurred_at": "2026-12-31T23:59:59.999999Z",
        "recorded_at": "2026-12-31T23:59:59.999999Z",
        "data_json": '{"long": "' + "x" * 300 + '"}',
        "metadata_json": "{}",
    },
]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text)


def canonical_vectors() -> dict[str, Any]:
    prev = GENESIS
    leaves: list[bytes] = []
    out = []
    for ev in EVENTS:
        canon = canonical_event_bytes(
            id=UUID(ev["id"]),
            type=ev["type"],
            stream=ev["stream"],
            stream_revision=ev["stream_revision"],
            actor=ev.get("actor"),
            correlation_id=ev.get("correlation_id"),
            causation_id=ev.get("causation_id"),
            source=ev.get("source"),
            occurred_at=_time(ev["occurred_at"]),
            recorded_at=_time(ev["recorded_at"]),
            data=json.loads(ev["data_json"]),
            metadata=json.loads(ev["metadata_json"]),
        )
        prev = hashlib.sha256(prev + canon).digest()
        leaves.append(leaf_hash(canon))
        out.append(
            {
                "event": ev,
                "canonical_hex": canon.hex(),
                "canonical_text": canon.decode("utf-8"),
                "chain_hash": prev.hex(),
                "leaf_hash": leaves[-1].hex(),
            }
        )
    tree = MerkleTree(MemoryHashStore())
    tree.append_leaf_hashes(leaves)
    return {
        "description": (
            "eventvault canonical form v1: event fields -> canonical bytes -> chain hash "
            "(sha256(prev || canonical), first prev = 32 zero bytes) and RFC 9162 leaf hash "
            "(sha256(0x00 || canonical)). Produced by src/eventvault/canonical.py and chain.py "
            "as of this file's commit; stored stores depend on every byte. data_json and "
            "metadata_json are the payloads as JSON text (parse them, e.g. json.loads). "
            "Absent optional fields (actor, correlation_id, causation_id, source) are null."
        ),
        "canonical_version": CANONICAL_VERSION,
        "vectors": out,
        "tree_roots": {str(n): tree.root(n).hex() for n in range(len(leaves) + 1)},
    }


SIZES_ROOT = [*range(17), 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 1000]
SIZES_INCLUSION = [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 100, 1000]
PAIRS_CONSISTENCY = sorted(
    {(m, n) for n in range(1, 9) for m in range(1, n + 1)}
    | {(1, 16), (7, 16), (8, 16), (9, 16), (15, 16), (16, 16), (16, 17), (3, 100)}
    | {(64, 100), (99, 100), (100, 100), (1, 1000), (100, 1000), (512, 1000)}
    | {(513, 1000), (999, 1000), (1000, 1000), (127, 129), (128, 129), (65, 128)}
)


def _indexes(size: int) -> list[int]:
    if size <= 9:
        return list(range(size))
    return sorted({0, 1, size // 3, size // 2, size - 2, size - 1})


def tree_vectors() -> dict[str, Any]:
    entries = [f"leaf {i}".encode() for i in range(1000)]
    tree = MerkleTree(MemoryHashStore())
    tree.extend(entries)
    return {
        "description": (
            "RFC 9162 section 2.1 Merkle tree vectors: entries (UTF-8 text) -> leaf hashes "
            "sha256(0x00 || entry) -> roots (MTH) at several sizes -> inclusion proofs "
            "(PATH, section 2.1.3.1) and consistency proofs (PROOF, section 2.1.4.1), "
            "hashes in hex, proof hashes in RFC order (nearest the leaf / old tree first). "
            "Consistency with first == second is the empty proof. Produced by "
            "eventvault.tlog; checked in the tests by a naive implementation of the RFC's "
            "recursive definitions."
        ),
        "entries": [e.decode() for e in entries],
        "leaf_hashes_first_16": [tree.leaf_hash(i).hex() for i in range(16)],
        "roots": {str(n): tree.root(n).hex() for n in SIZES_ROOT},
        "inclusion": [
            {
                "leaf_index": i,
                "tree_size": n,
                "leaf_hash": tree.leaf_hash(i).hex(),
                "audit_path": [h.hex() for h in tree.inclusion_proof(i, n)],
                "root_hash": tree.root(n).hex(),
            }
            for n in SIZES_INCLUSION
            for i in _indexes(n)
        ],
        "consistency": [
            {
                "first": m,
                "second": n,
                "first_root": tree.root(m).hex(),
                "second_root": tree.root(n).hex(),
                "proof": [h.hex() for h in tree.consistency_proof(m, n)],
            }
            for m, n in PAIRS_CONSISTENCY
        ],
    }


def _dump(value: Any) -> str:
    return json.dumps(value, indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a file would change")
    args = parser.parse_args()
    files = {
        "canonical_v1.json": _dump(canonical_vectors()),
        "rfc9162_tree.json": _dump(tree_vectors()),
    }
    stale = []
    for name, text in files.items():
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text("utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, "utf-8")
            print(f"wrote {path}")
    if stale:
        print(f"would change: {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
