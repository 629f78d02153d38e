"""Settlement state kept in the SQL store: the checkpoint (with the embedded chain's snapshot) and the
records behind every anchored root.

Why the store and not files under the data directory:

* a backup of the database holds the ledger and the chain mirroring it as of one moment; restoring it
  brings back an embedded chain that matches the restored ledger (a snapshot file next to an older
  database would be ahead of its ledger for ever);
* with PostgreSQL, whichever process holds the settlement lock finds the cursor, the chain snapshot and
  the anchors, and `choir audit --chain` reads them from the database URL alone.

Durability: on SQLite (WAL, ``synchronous=NORMAL`` for the ledger's commits) each checkpoint save is
committed with ``synchronous=FULL``, so it survives a power loss, and so does every ledger commit
before it — the transfers a journal is about to send are durable before they are sent. PostgreSQL
commits durably by default.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from solders.signature import Signature
from sqlalchemy import Connection, Engine, select

from choir.chain.anchor import AnchoredBatch, AnchorLog
from choir.chain.cursor import Checkpoint
from choir.chain.merkle import MerkleProof
from choir.chain.sqlfeed import MESSAGE, VERSION
from choir.program import version_record_id
from choir.store import schema
from choir.store.sql import read_snapshot


class SqlCursorStore:
    """`CursorStore` in the `chain_checkpoints` table, one row per chain.

    A journal save carries the previous snapshot unchanged: the snapshot column is only written when
    its hash changes.
    """

    def __init__(self, engine: Engine, chain: str) -> None:
        self.engine = engine
        self.chain = chain

    async def load(self) -> Checkpoint:
        return await asyncio.to_thread(self.load_sync)

    async def save(self, checkpoint: Checkpoint) -> None:
        await asyncio.to_thread(self._save, checkpoint)

    def load_sync(self) -> Checkpoint:
        with self.engine.connect() as conn:
            return load_checkpoint(conn, self.chain)

    def _save(self, checkpoint: Checkpoint) -> None:
        t = schema.chain_checkpoints
        snapshot = checkpoint.chain_snapshot
        digest = None if snapshot is None else hashlib.sha256(snapshot).hexdigest()
        values: dict[str, object] = {
            "checkpoint": json.dumps(checkpoint.with_snapshot(None).to_json(), separators=(",", ":")),
            "updated_at": datetime.now(UTC),
        }
        sqlite = self.engine.dialect.name == "sqlite"
        with self.engine.connect() as conn:
            if sqlite:
                conn.exec_driver_sql("PRAGMA synchronous=FULL")
                conn.commit()
            try:
                with conn.begin():
                    stored = conn.execute(select(t.c.snapshot_sha256).where(t.c.chain == self.chain)).first()
                    if stored is None or stored[0] != digest:
                        values.update(snapshot=snapshot, snapshot_sha256=digest)
                    if stored is None:
                        conn.execute(t.insert().values(chain=self.chain, **values))
                    else:
                        conn.execute(t.update().where(t.c.chain == self.chain).values(**values))
            finally:
                if sqlite:
                    conn.exec_driver_sql("PRAGMA synchronous=NORMAL")
                    conn.commit()


def load_checkpoint(conn: Connection, chain: str) -> Checkpoint:
    """The chain's checkpoint as `conn` sees it (`Checkpoint()` when it never saved one)."""
    t = schema.chain_checkpoints
    row = conn.execute(
        select(t.c.checkpoint, t.c.snapshot, t.c.snapshot_sha256).where(t.c.chain == chain)
    ).first()
    if row is None:
        return Checkpoint()
    try:
        checkpoint = Checkpoint.from_json(json.loads(row.checkpoint))
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"corrupt settlement checkpoint of {chain}: {exc}") from None
    if row.snapshot is None:
        return checkpoint
    snapshot = bytes(row.snapshot)
    if hashlib.sha256(snapshot).hexdigest() != row.snapshot_sha256:
        raise ValueError(f"the chain snapshot of {chain} does not match its hash")
    return checkpoint.with_snapshot(snapshot)


def chain_names(conn: Connection, kind: str) -> list[str]:
    """Chains of one kind (litesvm or rpc) with a checkpoint, the most recently saved first."""
    t = schema.chain_checkpoints
    query = select(t.c.chain).where(t.c.chain.startswith(f"{kind}:")).order_by(t.c.updated_at.desc())
    return list(conn.execute(query).scalars())


@dataclass(frozen=True, slots=True)
class InclusionProof:
    """A record's leaf, its Merkle path, and the transaction whose memo anchored the root."""

    leaf: bytes
    proof: MerkleProof
    signature: Signature
    through: int
    root: bytes = b""  # the root as the stored anchor says (the chain's own is read by verify)


class SqlAnchorLog(AnchorLog):
    """`AnchorLog` in the `chain_anchors` table: one row per anchored batch, keyed by its range.

    A subclass so that the settlement worker appends to it as to the file log (before its cursor moves
    past the batch); a batch appended again after a crash replaces its own row.
    """

    def __init__(self, engine: Engine, chain: str) -> None:  # no file: the store holds the records
        self.engine = engine
        self.chain = chain

    def append(self, anchored: AnchoredBatch) -> None:
        t = schema.chain_anchors
        row = {
            "first": anchored.memo.first,
            "signature": str(anchored.signature),
            "batch": anchored.to_json(),
        }
        key = (t.c.chain == self.chain) & (t.c.through == anchored.memo.through)
        with self.engine.begin() as conn:
            if conn.execute(t.update().where(key).values(**row)).rowcount == 0:
                conn.execute(t.insert().values(chain=self.chain, through=anchored.memo.through, **row))

    def batches(self) -> Iterator[AnchoredBatch]:
        with read_snapshot(self.engine) as conn:
            yield from anchored_batches(conn, self.chain)

    def message_proof(self, message_id: str, version: int = 1) -> InclusionProof:
        """The proof that a message's record (of ``version``: 1 as published, then each edit and
        the deletion) is in the root of the batch that anchored it."""
        c = schema.changes
        which = c.c.kind == MESSAGE if version == 1 else (c.c.kind == VERSION) & (c.c.version == version)
        record_id = version_record_id(message_id, version)
        with read_snapshot(self.engine) as conn:
            position = conn.execute(
                select(c.c.position).where(c.c.ref == message_id, which)
            ).scalar_one_or_none()
            if position is None:
                raise LookupError(f"message {record_id} is not in the change log")
            anchored = batch_holding(conn, self.chain, position)
        if anchored is None:
            raise LookupError(f"message {record_id} (position {position}) is not anchored yet")
        record = next(m for m in anchored.messages if m.message_id == record_id)
        return _proof(anchored, record.leaf())

    def ownership_proof(self, thread_id: str) -> InclusionProof:
        """The proof of the thread's most recently anchored ownership record."""
        latest = self.latest_ownership().get(thread_id)
        if latest is None:
            raise LookupError(f"thread {thread_id} has no anchored ownership record yet")
        record, anchored = latest
        return _proof(anchored, record.leaf())


def _proof(anchored: AnchoredBatch, leaf: bytes) -> InclusionProof:
    return InclusionProof(
        leaf, anchored.proof(leaf), anchored.signature, anchored.memo.through, anchored.memo.root
    )


def anchored_batches(conn: Connection, chain: str) -> Iterator[AnchoredBatch]:
    t = schema.chain_anchors
    query = select(t.c.batch).where(t.c.chain == chain).order_by(t.c.through)
    for (batch,) in conn.execute(query.execution_options(yield_per=256)):
        yield AnchoredBatch.from_json(batch)


def batch_holding(conn: Connection, chain: str, position: int) -> AnchoredBatch | None:
    """The anchored batch whose range holds `position`, if one does."""
    t = schema.chain_anchors
    query = (
        select(t.c.first, t.c.batch)
        .where(t.c.chain == chain, t.c.through >= position)
        .order_by(t.c.through)
        .limit(1)
    )
    row = conn.execute(query).first()
    if row is None or row.first > position:
        return None
    return AnchoredBatch.from_json(row.batch)
