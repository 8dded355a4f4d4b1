"""Benchmark the pure Merkle tree (eventvault.tlog) on the file-backed hash store.

    python scripts/tlog_bench.py                       # 1M and 10M leaves
    python scripts/tlog_bench.py --sizes 1000000 --samples 2000

For each size: append that many leaves (200-byte entries, leaf hashing included)
into a fresh FileHashStore in batches, syncing after each batch like a backend's
group commit would; then time inclusion and consistency proofs (built from the
file, i.e. the O(log n) preads included, then verified) at random indexes and sizes,
and report p50/p99. Files go to a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from eventvault.tlog import (
    FileHashStore,
    MerkleTree,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)


def _pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def _ms(x: float) -> str:
    return f"{x * 1e3:.3f} ms"


def bench(size: int, samples: int, batch: int, directory: Path, sync_every: int) -> None:
    path = directory / f"tree-{size}.hashes"
    store = FileHashStore(path, fsync=True)
    tree = MerkleTree(store)
    pad = b"x" * 190
    t0 = time.perf_counter()
    c0 = time.process_time()
    hashing = 0.0
    tree_cpu = 0.0  # CPU inside append_leaf_hashes: the tree's own cost per leaf
    for batches, start in enumerate(range(0, size, batch), 1):
        h0 = time.perf_counter()
        leaves = [leaf_hash(b"%010d" % i + pad) for i in range(start, min(size, start + batch))]
        hashing += time.perf_counter() - h0
        a0 = time.thread_time()
        tree.append_leaf_hashes(leaves)
        tree_cpu += time.thread_time() - a0
        if batches % sync_every == 0:
            store.sync()
    store.sync()
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    mb = path.stat().st_size / 2**20
    print(
        f"size {size:>11,}: append {size / elapsed:,.0f} leaves/s "
        f"({elapsed:.1f} s wall, {cpu:.1f} s CPU, of which leaf hashing {hashing:.1f} s; "
        f"batches of {batch}, "
        f"fsync every {sync_every} batches); file {mb:.0f} MiB, "
        f"{store.hash_count / size:.3f} hashes/leaf; tree maintenance alone "
        f"{tree_cpu / size * 1e6:.2f} µs CPU a leaf"
    )
    store.close()

    # Proofs from a freshly opened store (cold process cache aside), as a server would.
    store = FileHashStore(path, readonly=True)
    tree = MerkleTree(store)
    rng = random.Random(size)
    root = tree.root()
    inc_build: list[float] = []
    inc_cpu: list[float] = []
    inc_verify: list[float] = []
    for _ in range(samples):
        i = rng.randrange(size)
        t, c = time.perf_counter(), time.thread_time()
        proof = tree.inclusion_proof(i)
        inc_build.append(time.perf_counter() - t)
        inc_cpu.append(time.thread_time() - c)
        leaf = tree.leaf_hash(i)
        t = time.perf_counter()
        verify_inclusion(i, size, leaf, proof, root)
        inc_verify.append(time.perf_counter() - t)
    con_build: list[float] = []
    con_cpu: list[float] = []
    con_verify: list[float] = []
    for _ in range(samples):
        m = rng.randrange(1, size)
        t, c = time.perf_counter(), time.thread_time()
        proof = tree.consistency_proof(m)
        old = tree.root(m)
        con_build.append(time.perf_counter() - t)
        con_cpu.append(time.thread_time() - c)
        t = time.perf_counter()
        verify_consistency(m, size, old, root, proof)
        con_verify.append(time.perf_counter() - t)
    for name, build, cpu_s, check in (
        ("inclusion  ", inc_build, inc_cpu, inc_verify),
        ("consistency", con_build, con_cpu, con_verify),
    ):
        print(
            f"  {name} ({samples} random): build p50 {_ms(_pct(build, 0.5))} "
            f"p99 {_ms(_pct(build, 0.99))} (CPU p99 {_ms(_pct(cpu_s, 0.99))}) | "
            f"verify p50 {_ms(_pct(check, 0.5))} p99 {_ms(_pct(check, 0.99))} | "
            f"mean build {_ms(statistics.fmean(build))}"
        )
    print(
        "  (consistency build includes reading the old root at size m; CPU = this "
        "thread's CPU time, which excludes waiting for a core on a loaded machine)"
    )
    store.close()
    os.unlink(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=1000, help="leaves per append")
    parser.add_argument("--sync-every", type=int, default=10, help="batches per fsync")
    parser.add_argument("--dir", default=None, help="where to put the files (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as d:
        for size in (int(s) for s in args.sizes.split(",")):
            bench(size, args.samples, args.batch, Path(d), args.sync_every)


if __name__ == "__main__":
    main()
