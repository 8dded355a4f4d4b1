"""A deliberately naive RFC 9162 §2.1 implementation, for checking eventvault.tlog.

Written straight from the RFC's recursive definitions over the full list of
entries — no stored hashes, no iteration tricks, no shared code with the package
(it even hashes with its own hashlib calls) — so a bug in the package's index
arithmetic or proof assembly cannot hide behind the same bug here.

    MTH({})       = SHA-256()
    MTH({d(0)})   = SHA-256(0x00 || d(0))
    MTH(D[n])     = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])),  k < n <= 2k, k = 2^i

    PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])        if m < k
                  = PATH(m - k, D[k:n]) : MTH(D[0:k])    if m >= k
    PATH(0, {d(0)}) = {}

    PROOF(m, D[n])           = SUBPROOF(m, D[n], true)
    SUBPROOF(m, D[m], true)  = {}
    SUBPROOF(m, D[m], false) = {MTH(D[m])}
    SUBPROOF(m, D[n], b)     = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])        if m <= k
                             = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])  if m > k
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def _k(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(entries: Sequence[bytes]) -> bytes:
    n = len(entries)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return hashlib.sha256(b"\x00" + entries[0]).digest()
    k = _k(n)
    return hashlib.sha256(b"\x01" + mth(entries[:k]) + mth(entries[k:])).digest()


def path(m: int, entries: Sequence[bytes]) -> list[bytes]:
    n = len(entries)
    if n == 1:
        return []
    k = _k(n)
    if m < k:
        return [*path(m, entries[:k]), mth(entries[k:])]
    return [*path(m - k, entries[k:]), mth(entries[:k])]


def subproof(m: int, entries: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(entries)
    if m == n:
        return [] if b else [mth(entries)]
    k = _k(n)
    if m <= k:
        return [*subproof(m, entries[:k], b), mth(entries[k:])]
    return [*subproof(m - k, entries[k:], False), mth(entries[:k])]


def proof(m: int, entries: Sequence[bytes]) -> list[bytes]:
    return subproof(m, entries, True)


class Memo:
    """The same definitions over a fixed list of entries, with MTH of each range
    memoised, so checking thousands of proofs over 1000 entries stays fast. The
    recursion is unchanged; only repeated MTH(D[a:b]) calls are remembered."""

    def __init__(self, entries: Sequence[bytes]) -> None:
        self.entries = list(entries)
        self._mth: dict[tuple[int, int], bytes] = {}

    def mth(self, a: int, b: int) -> bytes:
        key = (a, b)
        if key not in self._mth:
            n = b - a
            if n == 0:
                h = hashlib.sha256(b"").digest()
            elif n == 1:
                h = hashlib.sha256(b"\x00" + self.entries[a]).digest()
            else:
                k = _k(n)
                h = hashlib.sha256(b"\x01" + self.mth(a, a + k) + self.mth(a + k, b)).digest()
            self._mth[key] = h
        return self._mth[key]

    def path(self, m: int, a: int, b: int) -> list[bytes]:
        n = b - a
        if n == 1:
            return []
        k = _k(n)
        if m < k:
            return [*self.path(m, a, a + k), self.mth(a + k, b)]
        return [*self.path(m - k, a + k, b), self.mth(a, a + k)]

    def subproof(self, m: int, a: int, b: int, flag: bool) -> list[bytes]:
        n = b - a
        if m == n:
            return [] if flag else [self.mth(a, b)]
        k = _k(n)
        if m <= k:
            return [*self.subproof(m, a, a + k, flag), self.mth(a + k, b)]
        return [*self.subproof(m - k, a + k, b, False), self.mth(a, a + k)]


def root_from_path(m: int, n: int, leaf: bytes, audit: Sequence[bytes]) -> bytes:
    """The root a PATH(m, D[n]) implies, by unwinding the PATH recursion (the last
    hash is the sibling at the top). Raises ValueError if the length is wrong."""
    if n == 1:
        if audit:
            raise ValueError("too many hashes")
        return leaf
    if not audit:
        raise ValueError("too few hashes")
    k = _k(n)
    *rest, sibling = audit
    if m < k:
        return hashlib.sha256(b"\x01" + root_from_path(m, k, leaf, rest) + sibling).digest()
    return hashlib.sha256(b"\x01" + sibling + root_from_path(m - k, n - k, leaf, rest)).digest()
