"""The settlement checkpoint: how far the chain mirrors the ledger, and what is in flight.

Idempotency rests on a write-ahead journal. Before the first transaction of a batch is sent, the
checkpoint records the batch and every signed transaction of it (bytes and signature). Only when the
whole batch has landed does the position advance and the journal clear. After a crash, the journal
tells which signatures to look up: landed ones are never sent again, unlanded ones are resent as the
same bytes while their blockhash lives (a cluster processes a signature once), and rebuilt with a
fresh blockhash only once the chain says theirs has expired.

For an in-process chain (LiteSVM) the chain's own state is saved in the same checkpoint, so the chain
and the cursor can never disagree after a crash.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Final, Protocol

from solders.hash import Hash
from solders.signature import Signature

from choir.chain.feed import FeedBatch

_FORMAT_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class InFlightTx:
    """One signed transaction of a batch: transfers [first, end) of the batch, maybe the anchor."""

    signature: Signature
    raw: bytes
    first: int
    end: int
    anchor: bool

    def to_json(self) -> dict[str, object]:
        return {
            "signature": str(self.signature),
            "raw": base64.b64encode(self.raw).decode(),
            "first": self.first,
            "end": self.end,
            "anchor": self.anchor,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> InFlightTx:
        return cls(
            Signature.from_string(str(data["signature"])),
            base64.b64decode(str(data["raw"])),
            int(str(data["first"])),
            int(str(data["end"])),
            bool(data["anchor"]),
        )


@dataclass(frozen=True, slots=True)
class InFlightBatch:
    """A batch whose transactions were signed and may have been sent."""

    batch: FeedBatch
    memo: str
    blockhash: Hash
    last_valid_block_height: int
    txs: tuple[InFlightTx, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "batch": self.batch.to_json(),
            "memo": self.memo,
            "blockhash": str(self.blockhash),
            "last_valid_block_height": self.last_valid_block_height,
            "txs": [t.to_json() for t in self.txs],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> InFlightBatch:
        batch, txs = data["batch"], data["txs"]
        if not isinstance(batch, dict) or not isinstance(txs, list):
            raise ValueError("corrupt in-flight batch")
        return cls(
            FeedBatch.from_json(batch),
            str(data["memo"]),
            Hash.from_string(str(data["blockhash"])),
            int(str(data["last_valid_block_height"])),
            tuple(InFlightTx.from_json(t) for t in txs),
        )


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """`position`: every ledger change at or before it is settled and anchored on chain."""

    position: int = 0
    in_flight: InFlightBatch | None = None
    chain_snapshot: bytes | None = None
    # The blockhash of the last plan: a new plan never reuses it, so no two transactions with the
    # same instructions can share a blockhash and be taken for one another.
    last_blockhash: Hash | None = None

    def with_snapshot(self, snapshot: bytes | None) -> Checkpoint:
        return replace(self, chain_snapshot=snapshot)

    def to_json(self) -> dict[str, object]:
        return {
            "version": _FORMAT_VERSION,
            "position": self.position,
            "in_flight": None if self.in_flight is None else self.in_flight.to_json(),
            "chain_snapshot": None
            if self.chain_snapshot is None
            else base64.b64encode(self.chain_snapshot).decode(),
            "last_blockhash": None if self.last_blockhash is None else str(self.last_blockhash),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> Checkpoint:
        if data.get("version") != _FORMAT_VERSION:
            raise ValueError(f"unknown checkpoint version {data.get('version')!r}")
        in_flight, snapshot, blockhash = data["in_flight"], data["chain_snapshot"], data["last_blockhash"]
        if in_flight is not None and not isinstance(in_flight, dict):
            raise ValueError("corrupt checkpoint: in_flight")
        return cls(
            int(str(data["position"])),
            None if in_flight is None else InFlightBatch.from_json(in_flight),
            None if snapshot is None else base64.b64decode(str(snapshot)),
            None if blockhash is None else Hash.from_string(str(blockhash)),
        )


class CursorStore(Protocol):
    async def load(self) -> Checkpoint:
        """The last saved checkpoint, or `Checkpoint()` when none was ever saved."""
        ...

    async def save(self, checkpoint: Checkpoint) -> None:
        """Replace the checkpoint atomically and durably (all or nothing, even on power loss)."""
        ...


class FileCursorStore:
    """A checkpoint in one JSON file, replaced atomically (write, fsync, rename, fsync the directory).

    A chain snapshot goes to a sidecar file named by its hash, written (and fsynced) before the JSON
    that names it: journal saves, which carry the previous snapshot unchanged, then write no snapshot
    bytes at all. Sidecars no checkpoint names any more are removed after each save.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    async def load(self) -> Checkpoint:
        return await asyncio.to_thread(self._load)

    async def save(self, checkpoint: Checkpoint) -> None:
        await asyncio.to_thread(self._save, checkpoint)

    def _load(self) -> Checkpoint:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return Checkpoint()
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"corrupt settlement checkpoint {self.path}: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"corrupt settlement checkpoint {self.path}")
        sidecar = data.pop(_SIDECAR_KEY, None)
        checkpoint = Checkpoint.from_json(data)
        if sidecar is not None:
            snapshot = (self.path.parent / str(sidecar)).read_bytes()
            if hashlib.sha256(snapshot).hexdigest()[:_SIDECAR_HASH_CHARS] not in str(sidecar):
                raise ValueError(f"chain snapshot {sidecar} does not match its name")
            checkpoint = checkpoint.with_snapshot(snapshot)
        return checkpoint

    def _save(self, checkpoint: Checkpoint) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = checkpoint.with_snapshot(None).to_json()
        sidecar: str | None = None
        if checkpoint.chain_snapshot is not None:
            digest = hashlib.sha256(checkpoint.chain_snapshot).hexdigest()[:_SIDECAR_HASH_CHARS]
            sidecar = f"{self.path.name}.snapshot-{digest}"
            if not (self.path.parent / sidecar).exists():
                # Same directory: the checkpoint's directory fsync below makes this entry durable too.
                _write_durably(self.path.parent / sidecar, checkpoint.chain_snapshot, sync_directory=False)
            data[_SIDECAR_KEY] = sidecar
        _write_durably(self.path, json.dumps(data, separators=(",", ":")).encode())
        for stale in self.path.parent.glob(f"{self.path.name}.snapshot-*"):
            if stale.name != sidecar:
                stale.unlink(missing_ok=True)


_SIDECAR_KEY: Final = "chain_snapshot_file"
_SIDECAR_HASH_CHARS: Final = 32


def _write_durably(path: Path, content: bytes, sync_directory: bool = True) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as out:
        out.write(content)
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, path)
    if not sync_directory:
        return
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
