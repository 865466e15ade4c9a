"""RFC 6962 / 9162 tree hashes and proofs against public known-answer vectors and corruption probes.

The eight leaves and their roots are the RFC 6962 test data as used by the transparency-dev
merkle project's proof tests.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lsssdc.ledger import merkle
from lsssdc.ledger.merkle import ProofError

LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (leaf number 1-based, tree size, proof)
INCLUSION = [
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (2, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
CONSISTENCY = [
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]  # fmt: skip
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
LEAF_HASHES = [merkle.leaf_hash(x) for x in LEAVES]


def _h(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


def test_empty_tree_root_is_sha256_of_nothing() -> None:
    assert merkle.root([]) == hashlib.sha256(b"").digest()
    assert merkle.CompactRange().root() == merkle.EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_known_roots(size: int) -> None:
    assert merkle.root(LEAF_HASHES[:size]).hex() == ROOTS[size - 1]
    frontier = merkle.CompactRange()
    for leaf in LEAF_HASHES[:size]:
        frontier.append(leaf)
    assert frontier.root().hex() == ROOTS[size - 1]
    again = merkle.CompactRange.from_bytes(size, frontier.to_bytes())
    assert again.root() == frontier.root()


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION)
def test_known_inclusion_proofs(leaf: int, size: int, proof: list[str]) -> None:
    assert merkle.inclusion_proof(leaf - 1, LEAF_HASHES[:size]) == _h(proof)
    root = bytes.fromhex(ROOTS[size - 1])
    merkle.verify_inclusion(leaf - 1, size, LEAF_HASHES[leaf - 1], _h(proof), root)


@pytest.mark.parametrize(("size1", "size2", "proof"), CONSISTENCY)
def test_known_consistency_proofs(size1: int, size2: int, proof: list[str]) -> None:
    assert merkle.consistency_proof(size1, LEAF_HASHES[:size2]) == _h(proof)
    merkle.verify_consistency(
        size1, size2, bytes.fromhex(ROOTS[size1 - 1]), bytes.fromhex(ROOTS[size2 - 1]), _h(proof)
    )


def _inclusion_probes(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> list[tuple]:
    probes = [
        (index - 1, size, leaf, proof, root, "index - 1"),
        (index + 1, size, leaf, proof, root, "index + 1"),
        (index ^ 2, size, leaf, proof, root, "index ^ 2"),
        (index, size * 2, leaf, proof, root, "size * 2"),
        (index, size // 2, leaf, proof, root, "size / 2"),
        (index, size, b"WrongLeaf", proof, root, "wrong leaf"),
        (index, size, leaf, proof, merkle.EMPTY_ROOT, "empty root"),
        (index, size, leaf, proof, SOME_HASH, "random root"),
        (index, size, leaf, [*proof, b""], root, "trailing garbage"),
        (index, size, leaf, [*proof, root], root, "trailing root"),
        (index, size, leaf, [b"", *proof], root, "preceding garbage"),
        (index, size, leaf, [root, *proof], root, "preceding root"),
    ]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = bytes([wrong[i][0] ^ 8]) + wrong[i][1:]
        probes.append((index, size, leaf, wrong, root, f"flipped bit in proof[{i}]"))
    if proof:
        probes.append((index, size, leaf, proof[:-1], root, "truncated proof"))
    if len(proof) > 1:
        probes.append((index, size, leaf, [proof[0], SOME_HASH, *proof[1:]], root, "extra element"))
    return probes


@pytest.mark.parametrize(("leaf", "size", "proof"), INCLUSION)
def test_inclusion_corruption_probes_all_fail(leaf: int, size: int, proof: list[str]) -> None:
    root = bytes.fromhex(ROOTS[size - 1])
    accepted = []
    for index, sz, lh, pr, rt, desc in _inclusion_probes(
        leaf - 1, size, LEAF_HASHES[leaf - 1], _h(proof), root
    ):
        try:
            merkle.verify_inclusion(index, sz, lh, pr, rt)
        except ProofError:
            continue
        accepted.append(desc)
    assert accepted == []


def _consistency_probes(s1: int, s2: int, r1: bytes, r2: bytes, proof: list[bytes]) -> list[tuple]:
    probes = [
        (s1 - 1, s2, r1, r2, proof, "size1 - 1"),
        (s1 + 1, s2, r1, r2, proof, "size1 + 1"),
        (s1 ^ 2, s2, r1, r2, proof, "size1 ^ 2"),
        (s1, s2 * 2, r1, r2, proof, "size2 * 2"),
        (s1, s2 // 2, r1, r2, proof, "size2 / 2"),
        (s1, s2, b"WrongRoot", r2, proof, "wrong root1"),
        (s1, s2, r1, b"WrongRoot", proof, "wrong root2"),
        (s1, s2, r2, r1, proof, "swapped roots"),
        (s1, s2, r1, r2, [], "empty proof"),
        (s1, s2, r1, r2, [*proof, b""], "trailing garbage"),
        (s1, s2, r1, r2, [*proof, r1], "trailing root1"),
        (s1, s2, r1, r2, [*proof, r2], "trailing root2"),
        (s1, s2, r1, r2, [b"", *proof], "preceding garbage"),
        (s1, s2, r1, r2, [r1, *proof], "preceding root1"),
        (s1, s2, r1, r2, [r2, *proof], "preceding root2"),
        (s1, s2, r1, r2, [proof[0], *proof], "preceding proof[0]"),
        (s1, s2, r1, r2, proof[:-1], "truncated proof"),
    ]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = bytes([wrong[i][0] ^ 16]) + wrong[i][1:]
        probes.append((s1, s2, r1, r2, wrong, f"flipped bit in proof[{i}]"))
    return probes


@pytest.mark.parametrize(("size1", "size2", "proof"), CONSISTENCY)
def test_consistency_corruption_probes_all_fail(size1: int, size2: int, proof: list[str]) -> None:
    r1, r2 = bytes.fromhex(ROOTS[size1 - 1]), bytes.fromhex(ROOTS[size2 - 1])
    accepted = []
    for s1, s2, a, b, pr, desc in _consistency_probes(size1, size2, r1, r2, _h(proof)):
        try:
            merkle.verify_consistency(s1, s2, a, b, pr)
        except ProofError:
            continue
        accepted.append(desc)
    assert accepted == []


def test_consistency_edge_cases() -> None:
    r1, r2 = b"don't care 1", b"don't care 2"
    merkle.verify_consistency(0, 0, r1, r1, [])
    merkle.verify_consistency(0, 1, r1, r2, [])
    merkle.verify_consistency(1, 1, r2, r2, [])
    for args in [
        (0, 0, r1, r2, []),  # same size, different roots
        (1, 1, r1, r2, []),
        (1, 0, r1, r2, []),  # time travel
        (2, 1, r1, r2, []),
        (1, 2, r1, r2, []),  # empty proof
        (0, 1, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, [merkle.EMPTY_ROOT]),  # proof should be empty
        (1, 1, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, [merkle.EMPTY_ROOT]),
    ]:
        with pytest.raises(ProofError):
            merkle.verify_consistency(*args)


def test_inclusion_edge_cases() -> None:
    leaf = merkle.leaf_hash(b"data")
    merkle.verify_inclusion(0, 1, leaf, [], leaf)
    for index, size, lh, root in [
        (0, 1, leaf, b""),
        (0, 1, b"", leaf),
        (0, 0, SOME_HASH, merkle.EMPTY_ROOT),
        (2, 1, SOME_HASH, SOME_HASH),
    ]:
        with pytest.raises(ProofError):
            merkle.verify_inclusion(index, size, lh, [], root)
    with pytest.raises(ProofError):
        merkle.inclusion_proof(3, LEAF_HASHES[:3])
    with pytest.raises(ProofError):
        merkle.consistency_proof(4, LEAF_HASHES[:3])


@given(st.integers(1, 70), st.data())
def test_generated_proofs_verify_for_every_shape(size: int, data: st.DataObject) -> None:
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    root = merkle.root(leaves)
    index = data.draw(st.integers(0, size - 1))
    merkle.verify_inclusion(index, size, leaves[index], merkle.inclusion_proof(index, leaves), root)
    size1 = data.draw(st.integers(0, size))
    proof = merkle.consistency_proof(size1, leaves)
    merkle.verify_consistency(size1, size, merkle.root(leaves[:size1]), root, proof)
    if 0 < size1 < size:  # a prefix that differs in one leaf is not consistent
        changed = list(leaves[:size1])
        changed[data.draw(st.integers(0, size1 - 1))] = SOME_HASH
        with pytest.raises(ProofError):
            merkle.verify_consistency(size1, size, merkle.root(changed), root, proof)


@given(st.integers(0, 300))
def test_compact_range_matches_full_root(size: int) -> None:
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(size)]
    frontier = merkle.CompactRange()
    for leaf in leaves:
        frontier.append(leaf)
    assert frontier.root() == merkle.root(leaves)
    assert len(frontier.nodes) == size.bit_count()
