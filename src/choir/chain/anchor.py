"""Anchors: each settlement batch's SPL Memo carries the Merkle root of what it anchors.

Memo text (ASCII, one line)::

    choir:v1 anchor <first>..<through> transfers=<n> leaves=<k> root=<64 hex>

``first..through`` is the batch's range of store positions: the memo itself says which ledger changes
the batch settled. The Memo program logs the text, so it is read back from the transaction's logs
(``Program log: choir:v1 anchor ...``) on LiteSVM and over RPC alike.

`AnchorLog` keeps, per landed batch, the records behind the root (not on chain: only the root is), so
that any message or ownership record can be proven later against the root read back from the chain.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from solders.signature import Signature

from choir.chain.backend import ChainBackend
from choir.chain.feed import FeedBatch
from choir.chain.merkle import MerkleProof, MerkleTree, verify_proof
from choir.chain.records import MessageRecord, OwnershipRecord

ANCHOR_PREFIX: Final = "choir:v1 anchor "
NONCE_PREFIX: Final = "choir:v1 nonce "
_LOG_PREFIX: Final = "Program log: "
_ANCHOR_RE: Final = re.compile(
    r"choir:v1 anchor (\d+)\.\.(\d+) transfers=(\d+) leaves=(\d+) root=([0-9a-f]{64})"
)


@dataclass(frozen=True, slots=True)
class AnchorMemo:
    first: int
    through: int
    transfers: int
    leaves: int
    root: bytes

    def text(self) -> str:
        return (
            f"{ANCHOR_PREFIX}{self.first}..{self.through} transfers={self.transfers} "
            f"leaves={self.leaves} root={self.root.hex()}"
        )

    @classmethod
    def parse(cls, text: str) -> AnchorMemo:
        match = _ANCHOR_RE.fullmatch(text)
        if match is None:
            raise ValueError(f"not a Choir anchor memo: {text!r}")
        first, through, transfers, leaves, root = match.groups()
        return cls(int(first), int(through), int(transfers), int(leaves), bytes.fromhex(root))


def anchor_memo_for(batch: FeedBatch) -> AnchorMemo:
    leaves = batch.anchor_leaves()
    return AnchorMemo(
        batch.after + 1, batch.through, len(batch.transfers), len(leaves), MerkleTree(leaves).root
    )


def anchor_from_logs(logs: Sequence[str]) -> AnchorMemo | None:
    for line in logs:
        if line.startswith(_LOG_PREFIX + ANCHOR_PREFIX):
            return AnchorMemo.parse(line[len(_LOG_PREFIX) :])
    return None


async def read_anchor(backend: ChainBackend, signature: Signature) -> AnchorMemo:
    """The anchor memo of a landed transaction, read from the chain."""
    logs = await backend.transaction_logs(signature)
    if logs is None:
        raise LookupError(f"transaction {signature} is not on chain")
    memo = anchor_from_logs(logs)
    if memo is None:
        raise LookupError(f"transaction {signature} carries no Choir anchor")
    return memo


@dataclass(frozen=True, slots=True)
class AnchoredBatch:
    """The records behind one anchored root, and the transaction that anchored it."""

    signature: Signature
    memo: AnchorMemo
    messages: tuple[MessageRecord, ...]
    ownership: tuple[OwnershipRecord, ...]  # sorted by thread id, as anchored

    @classmethod
    def of(cls, signature: Signature, memo: AnchorMemo, batch: FeedBatch) -> AnchoredBatch:
        ownership = tuple(sorted(batch.ownership, key=lambda r: r.thread_id))
        return cls(signature, memo, batch.messages, ownership)

    def leaves(self) -> list[bytes]:
        return [m.leaf() for m in self.messages] + [o.leaf() for o in self.ownership]

    def proof(self, leaf: bytes) -> MerkleProof:
        leaves = self.leaves()
        try:
            index = leaves.index(leaf)
        except ValueError:
            raise LookupError("the record is not in this anchored batch") from None
        return MerkleTree(leaves).proof(index)

    def to_json(self) -> dict[str, object]:
        return {
            "signature": str(self.signature),
            "memo": self.memo.text(),
            "messages": [m.to_json() for m in self.messages],
            "ownership": [o.to_json() for o in self.ownership],
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> AnchoredBatch:
        messages, ownership = data["messages"], data["ownership"]
        if not isinstance(messages, list) or not isinstance(ownership, list):
            raise ValueError("corrupt anchored batch")
        return cls(
            Signature.from_string(str(data["signature"])),
            AnchorMemo.parse(str(data["memo"])),
            tuple(MessageRecord.from_json(m) for m in messages),
            tuple(OwnershipRecord.from_json(o) for o in ownership),
        )


async def verify_on_chain(
    backend: ChainBackend, signature: Signature, leaf: bytes, proof: MerkleProof
) -> bool:
    """Whether the leaf is proven by the root that transaction `signature` anchored on chain."""
    memo = await read_anchor(backend, signature)
    return proof.size == memo.leaves and verify_proof(memo.root, leaf, proof)


class AnchorLog:
    """Anchored batches as JSON lines, appended after each landed batch.

    A crash between the append and the cursor save appends the same batch again on recovery; readers
    keep one entry per signature.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, anchored: AnchoredBatch) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torn = self.path.exists() and self.path.stat().st_size > 0 and not self._ends_with_newline()
        with open(self.path, "a") as out:
            # After a line torn by a crash, start a new line so that the torn one stays alone.
            out.write(("\n" if torn else "") + json.dumps(anchored.to_json(), separators=(",", ":")) + "\n")
            out.flush()
            # Durable before the cursor moves past the batch: the records are the only way to prove it.
            os.fsync(out.fileno())

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as data:
            data.seek(-1, os.SEEK_END)
            return data.read(1) == b"\n"

    def batches(self) -> Iterator[AnchoredBatch]:
        if not self.path.exists():
            return
        seen: set[str] = set()
        for line in self.path.read_text().splitlines():
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                # Torn by a crash mid-append; its batch was appended again on recovery.
                continue
            anchored = AnchoredBatch.from_json(data)
            if str(anchored.signature) not in seen:
                seen.add(str(anchored.signature))
                yield anchored

    def latest_ownership(self) -> dict[str, tuple[OwnershipRecord, AnchoredBatch]]:
        """For each thread, its most recently anchored ownership record and the batch that holds it."""
        latest: dict[str, tuple[OwnershipRecord, AnchoredBatch]] = {}
        for anchored in self.batches():
            for record in anchored.ownership:
                latest[record.thread_id] = (record, anchored)
        return latest

    def anchored_messages(self) -> dict[str, tuple[MessageRecord, AnchoredBatch]]:
        found: dict[str, tuple[MessageRecord, AnchoredBatch]] = {}
        for anchored in self.batches():
            for record in anchored.messages:
                found.setdefault(record.message_id, (record, anchored))
        return found
