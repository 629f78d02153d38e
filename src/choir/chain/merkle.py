"""Merkle trees for anchors: the RFC 6962 / RFC 9162 (Certificate Transparency) construction.

    leaf hash = sha256(0x00 || leaf data)        node hash = sha256(0x01 || left || right)

The prefixes keep a leaf from ever being read as an inner node (second-preimage safety). A level with an
odd count carries its last node up unchanged, which yields exactly RFC 6962's tree (split at the largest
power of two) and, unlike Bitcoin's "duplicate the last node", gives every leaf list its own root.
An inclusion proof is the audit path plus the leaf's index and the tree's size; verification follows
RFC 9162 §2.1.3.2, so a proof also binds the position of the leaf.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

LEAF_PREFIX: Final = b"\x00"
NODE_PREFIX: Final = b"\x01"
HASH_SIZE: Final = 32
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
# 2^32 leaves is far beyond one batch; the bound keeps proofs short and loops finite.
LEAVES_MAX: Final = 2**32


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


@dataclass(frozen=True, slots=True)
class MerkleProof:
    index: int
    size: int
    path: tuple[bytes, ...]

    def to_json(self) -> dict[str, object]:
        return {"index": self.index, "size": self.size, "path": [p.hex() for p in self.path]}

    @classmethod
    def from_json(cls, data: dict[str, object]) -> MerkleProof:
        index, size, path = data["index"], data["size"], data["path"]
        if not isinstance(index, int) or not isinstance(size, int) or not isinstance(path, list):
            raise ValueError("a Merkle proof is {index: int, size: int, path: [hex]}")
        return cls(index, size, tuple(bytes.fromhex(str(p)) for p in path))


class MerkleTree:
    """All levels of the tree over the given leaf data, for the root and any leaf's proof."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if len(leaves) > LEAVES_MAX:
            raise ValueError(f"{len(leaves)} leaves; at most {LEAVES_MAX}")
        level = [leaf_hash(leaf) for leaf in leaves]
        self._levels: list[list[bytes]] = [level]
        while len(level) > 1:
            paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                paired.append(level[-1])
            level = paired
            self._levels.append(level)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    @property
    def root(self) -> bytes:
        return self._levels[-1][0] if self.size else EMPTY_ROOT

    def proof(self, index: int) -> MerkleProof:
        if not 0 <= index < self.size:
            raise IndexError(f"leaf {index} of a tree of {self.size}")
        path: list[bytes] = []
        position = index
        for level in self._levels[:-1]:
            sibling = position ^ 1
            # A lone last node has no sibling at this level: it is carried up unchanged.
            if sibling < len(level):
                path.append(level[sibling])
            position >>= 1
        return MerkleProof(index, self.size, tuple(path))


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    return MerkleTree(leaves).root


def verify_proof(root: bytes, leaf: bytes, proof: MerkleProof) -> bool:
    """Whether `leaf` (its data, not its hash) is at `proof.index` of the tree whose root is `root`."""
    if not 0 <= proof.index < proof.size or len(root) != HASH_SIZE:
        return False
    if any(len(step) != HASH_SIZE for step in proof.path):
        return False
    fn, sn = proof.index, proof.size - 1
    result = leaf_hash(leaf)
    for step in proof.path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(step, result)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, step)
        fn >>= 1
        sn >>= 1
    return sn == 0 and result == root
