"""A longest common subsequence of two sequences, fast enough for runs of 10,000.

``difflib.SequenceMatcher`` is not used: runs repeat the same (actor, type) key a
lot (a thousand ``tool.called`` by one agent), which is its worst case — one
``find_longest_match`` over a key seen a thousand times in each run is a million
dictionary operations, 100–150 ms for two 1,000-event runs — and it finds long
blocks, not a longest common subsequence.

Instead: the bit-parallel LCS of Allison–Dix / Hyyrö (H. Hyyrö, "Bit-parallel
LCS-length computation revisited", 2004). Row ``i`` of the classic DP table is
kept as one integer ``V`` with a bit per element of ``b``; a zero bit ``j`` means
the LCS length grows by one at column ``j``. One row costs three big-integer
operations on ``len(b)`` bits (C loops over 64-bit words), so two 1,000-event runs
take about a millisecond; keeping every row (``len(a) * len(b)`` bits: 12.5 MB at
10,000 x 10,000) lets the alignment be read back exactly.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

__all__ = ["lcs_pairs"]


def lcs_pairs(a: Sequence[Hashable], b: Sequence[Hashable]) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)`` with ``a[i] == b[j]``, strictly increasing in both, of
    a longest common subsequence of ``a`` and ``b``."""
    n, m = len(a), len(b)
    lo = 0
    while lo < n and lo < m and a[lo] == b[lo]:
        lo += 1
    hi_a, hi_b = n, m
    while hi_a > lo and hi_b > lo and a[hi_a - 1] == b[hi_b - 1]:
        hi_a -= 1
        hi_b -= 1
    head = [(k, k) for k in range(lo)]
    tail = [(hi_a + k, hi_b + k) for k in range(n - hi_a)]
    return head + _middle(a, b, lo, hi_a, hi_b) + tail


def _middle(
    a: Sequence[Hashable], b: Sequence[Hashable], lo: int, hi_a: int, hi_b: int
) -> list[tuple[int, int]]:
    rows_a, cols_b = hi_a - lo, hi_b - lo
    if rows_a == 0 or cols_b == 0:
        return []
    # Bit j of match[x]: b[lo + j] == x.
    match: dict[Hashable, int] = {}
    for j in range(cols_b):
        key = b[lo + j]
        match[key] = match.get(key, 0) | (1 << j)
    full = (1 << cols_b) - 1
    rows = [full]  # rows[i]: V after the first i elements of a (all ones: LCS 0)
    v = full
    for i in range(rows_a):
        u = v & match.get(a[lo + i], 0)
        v = ((v + u) | (v - u)) & full
        rows.append(v)

    def length(i: int, j: int) -> int:
        """The LCS length of a[lo:lo+i] and b[lo:lo+j]: zero bits of rows[i] below j."""
        return j - (rows[i] & ((1 << j) - 1)).bit_count()

    pairs: list[tuple[int, int]] = []
    i, j = rows_a, cols_b
    while i > 0 and j > 0:
        if a[lo + i - 1] == b[lo + j - 1]:
            pairs.append((lo + i - 1, lo + j - 1))
            i -= 1
            j -= 1
        elif length(i - 1, j) >= length(i, j - 1):
            i -= 1
        else:
            j -= 1
    pairs.reverse()
    return pairs
