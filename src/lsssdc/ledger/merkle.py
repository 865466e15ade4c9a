"""The Merkle tree of RFC 6962 / RFC 9162 over the ledger's entries.

Why a tree on top of the hash chain: a signed tree head (size, root) commits to every entry
before it, and two heads can be checked against each other with a logarithmic consistency
proof. A head exported outside the database therefore detects a truncated or rewritten
ledger even when the attacker rewrote the whole database consistently.

Leaf hash ``SHA-256(0x00 || entry)``, node hash ``SHA-256(0x01 || left || right)``, empty tree
``SHA-256("")``. Proofs are lists of 32-byte hashes, ordered from the leaf towards the root.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_LEAF, _NODE = b"\x00", b"\x01"


class ProofError(ValueError):
    """A proof does not verify (or its sizes cannot describe a real tree)."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(_NODE + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def root(leaves: Sequence[bytes]) -> bytes:
    """Tree hash over leaf hashes, level by level (same result as the recursive definition)."""
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    sha = hashlib.sha256
    while len(level) > 1:
        odd = level[-1] if len(level) % 2 else None
        pairs = zip(level[0::2], level[1::2], strict=False)
        level = [sha(_NODE + a + b).digest() for a, b in pairs]
        if odd is not None:  # an unpaired right-most node moves up unchanged
            level.append(odd)
    return level[0]


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """Audit path for leaf ``index`` in the tree over ``leaves`` (RFC 9162, 2.1.3.1)."""
    if not 0 <= index < len(leaves):
        raise ProofError(f"leaf {index} is outside a tree of size {len(leaves)}")
    path: list[bytes] = []
    lo, hi = 0, len(leaves)
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            path.append(root(leaves[lo + k : hi]))
            hi = lo + k
        else:
            path.append(root(leaves[lo : lo + k]))
            lo += k
    path.reverse()
    return path


def consistency_proof(size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """Proof that the tree of the first ``size`` leaves is a prefix of the whole tree (2.1.4.1)."""
    n = len(leaves)
    if not 0 <= size <= n:
        raise ProofError(f"size {size} is outside a tree of size {n}")
    if size == 0 or size == n:
        return []
    path: list[bytes] = []
    lo, hi, m, complete = 0, n, size, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            path.append(root(leaves[lo + k : hi]))
            hi = lo + k
        else:
            path.append(root(leaves[lo : lo + k]))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        path.append(root(leaves[lo:hi]))
    path.reverse()
    return path


def _check_hashes(*hashes: bytes) -> None:
    if any(len(h) != HASH_SIZE for h in hashes):
        raise ProofError("a hash in the proof does not have 32 bytes")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` implies for ``leaf`` at ``index`` (RFC 9162, 2.1.3.2)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is outside a tree of size {size}")
    _check_hashes(leaf, *proof)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("the proof is longer than the tree is high")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the proof is shorter than the tree is high")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected: bytes) -> None:
    """Raise :class:`ProofError` unless ``leaf`` is at ``index`` in the tree with root ``expected``."""
    if root_from_inclusion(index, size, leaf, proof) != expected:
        raise ProofError("the inclusion proof does not lead to the expected root")


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]) -> None:
    """Raise :class:`ProofError` unless tree (size1, root1) is a prefix of (size2, root2) (2.1.4.2)."""
    if not 0 <= size1 <= size2:
        raise ProofError(f"a tree of size {size1} cannot be a prefix of one of size {size2}")
    if size1 == size2 or size1 == 0:
        if proof:
            raise ProofError("the consistency proof should be empty")
        if size1 == size2 and root1 != root2:
            raise ProofError("two trees of the same size have different roots")
        return
    if not proof:
        raise ProofError("the consistency proof is empty")
    _check_hashes(root1, root2, *proof)
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # size1 is a power of two: its root is the first node
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is too long")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise ProofError("the consistency proof is too short")
    if fr != root1 or sr != root2:
        raise ProofError("the consistency proof does not lead to the expected roots")


class CompactRange:
    """The roots of the perfect subtrees covering leaves 0..size-1 (the tree's right frontier).

    Appending a leaf and computing the root both cost O(log size), so the ledger can sign a
    fresh head on every append and verification can check every stored head in one pass.
    """

    def __init__(self, size: int = 0, nodes: Sequence[bytes] = ()) -> None:
        if len(nodes) != size.bit_count():
            raise ProofError(f"a frontier of a tree of size {size} has {size.bit_count()} nodes")
        self.size = size
        self.nodes = list(nodes)

    def append(self, leaf: bytes) -> None:
        node, size = leaf, self.size
        while size & 1:  # merge equal-sized subtrees, like carrying in binary addition
            node = node_hash(self.nodes.pop(), node)
            size >>= 1
        self.nodes.append(node)
        self.size += 1

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        r = self.nodes[-1]
        for node in reversed(self.nodes[:-1]):
            r = node_hash(node, r)
        return r

    def to_bytes(self) -> bytes:
        return b"".join(self.nodes)

    @classmethod
    def from_bytes(cls, size: int, blob: bytes) -> CompactRange:
        nodes = [blob[i : i + HASH_SIZE] for i in range(0, len(blob), HASH_SIZE)]
        return cls(size, nodes)
