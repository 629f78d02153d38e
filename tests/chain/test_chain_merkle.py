"""Merkle proofs: every leaf proves, nothing else does (property-tested against RFC 6962's definition)."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from choir.chain.merkle import (
    EMPTY_ROOT,
    MerkleProof,
    MerkleTree,
    leaf_hash,
    merkle_root,
    node_hash,
    verify_proof,
)

leaves_strategy = st.lists(st.binary(max_size=40), min_size=1, max_size=70)


def rfc6962_root(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) of RFC 6962 §2.1, recursively, as written in the RFC."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1 << ((len(leaves) - 1).bit_length() - 1)  # the largest power of two smaller than n
    return hashlib.sha256(b"\x01" + rfc6962_root(leaves[:k]) + rfc6962_root(leaves[k:])).digest()


@settings(max_examples=100, deadline=None)
@given(leaves_strategy)
def test_root_is_rfc6962s_and_every_leaf_proves(leaves: list[bytes]) -> None:
    tree = MerkleTree(leaves)
    assert tree.root == rfc6962_root(leaves)
    for index, leaf in enumerate(leaves):
        assert verify_proof(tree.root, leaf, tree.proof(index))


@settings(max_examples=100, deadline=None)
@given(leaves_strategy, st.data())
def test_a_proof_fails_for_any_other_leaf_index_size_path_or_root(
    leaves: list[bytes], data: st.DataObject
) -> None:
    tree = MerkleTree(leaves)
    index = data.draw(st.integers(0, len(leaves) - 1))
    proof = tree.proof(index)
    leaf = leaves[index]
    other = data.draw(st.binary(max_size=40).filter(lambda b: b != leaf))
    assert not verify_proof(tree.root, other, proof)
    assert not verify_proof(hashlib.sha256(tree.root).digest(), leaf, proof)
    # Naming another position fails, unless that position holds the same leaf data. (A proof does not
    # bind the tree size by itself: `verify_on_chain` compares it with the anchored leaf count.)
    moved = data.draw(st.integers(0, len(leaves) - 1))
    if leaves[moved] != leaf:
        assert not verify_proof(tree.root, leaf, MerkleProof(moved, proof.size, proof.path))
    if proof.path:
        step = data.draw(st.integers(0, len(proof.path) - 1))
        flipped = bytes([proof.path[step][0] ^ 1]) + proof.path[step][1:]
        path = (*proof.path[:step], flipped, *proof.path[step + 1 :])
        assert not verify_proof(tree.root, leaf, MerkleProof(index, proof.size, path))
        assert not verify_proof(tree.root, leaf, MerkleProof(index, proof.size, proof.path[:-1]))
    assert not verify_proof(tree.root, leaf, MerkleProof(index, proof.size, (*proof.path, tree.root)))


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    # A two-leaf tree's root is not the hash of a single leaf holding the two children's bytes.
    assert merkle_root([b"a", b"b"]) == node_hash(a, b) != leaf_hash(a + b)
    assert merkle_root([]) == EMPTY_ROOT
    assert MerkleProof.from_json(MerkleTree([b"x", b"y", b"z"]).proof(2).to_json()) == MerkleTree(
        [b"x", b"y", b"z"]
    ).proof(2)
