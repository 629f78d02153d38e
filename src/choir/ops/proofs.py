"""`choir proof MESSAGE_ID`: a message's inclusion proof, read from the store and checked offline.

The store keeps, for every anchored batch, the records behind its Merkle root (`chain_anchors`). The
command finds the batch that anchored the message, rebuilds the message's record from the stored
content (so the content is what is proven), verifies the RFC 6962 path against the root that the
batch's anchor memo carries, and prints the proof with the transaction that anchored it. It does not
read the chain: `GET /api/messages/{id}/proof` on a running server also checks the root on chain.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from choir.chain.merkle import verify_proof
from choir.chain.records import MessageRecord
from choir.chain.sqlstate import SqlAnchorLog
from choir.ops.commands import EXIT_CANNOT_AUDIT, EXIT_CLEAN, CannotOpen, Echo, open_store, settings_for
from choir.program import version_record_id
from choir.store import schema

EXIT_NOT_PROVEN = 1


def proof_of(store: Any, message_id: str, version: int = 1) -> dict[str, Any]:
    """The proof of a message's ``version`` (1 as published) as JSON, with `verified` (against the
    stored anchor's root); raises LookupError."""
    found = store.message_history(message_id)
    if found is None:
        raise LookupError(f"no message {message_id!r} in this store")
    thread_id, versions = found
    if version not in versions:
        raise LookupError(f"message {message_id!r} has no version {version} (it has 1..{max(versions)})")
    kept = versions[version]
    with store.engine.connect() as conn:
        chains = [c for (c,) in conn.execute(select(schema.chain_anchors.c.chain).distinct())]
    if not chains:
        raise LookupError("nothing is anchored in this store (the server settles on no chain)")
    for chain in chains:
        try:
            proof = SqlAnchorLog(store.engine, chain).message_proof(message_id, version)
        except LookupError:
            continue
        # The record rebuilt from the stored content (the content is what is proven); a version whose
        # content was deleted has only its stored hash left to show anchored.
        content = kept["content"]
        digest = (
            bytes.fromhex(kept["content_hash"])
            if content is None
            else hashlib.sha256(content.encode()).digest()
        )
        record_id = version_record_id(message_id, version)
        leaf = MessageRecord(record_id, thread_id, digest).leaf()
        return {
            "message_id": message_id,
            "version": version,
            "record_id": record_id,
            "content_deleted": content is None,
            "thread_id": thread_id,
            "content_hash": digest.hex(),
            "leaf": proof.leaf.hex(),
            "index": proof.proof.index,
            "size": proof.proof.size,
            "path": [p.hex() for p in proof.proof.path],
            "root": proof.root.hex(),
            "signature": str(proof.signature),
            "through": proof.through,
            "chain": chain,
            # The record rebuilt from the stored content is the anchored one, and its path leads to
            # the root the anchor memo carries.
            "verified": leaf == proof.leaf and verify_proof(proof.root, leaf, proof.proof),
            "verified_against": "the root in the stored anchor (the chain is not read here)",
        }
    raise LookupError(f"message {version_record_id(message_id, version)} is not anchored yet")


def proof_command(
    data_dir: Path | None, database_url: str | None, message_id: str, echo: Echo, version: int = 1
) -> int:
    try:
        with open_store(settings_for(data_dir, database_url)) as store:
            proof = proof_of(store, message_id, version)
    except CannotOpen as exc:
        echo(f"choir proof: {exc}", err=True)
        return EXIT_CANNOT_AUDIT
    except LookupError as exc:
        echo(f"choir proof: {exc}", err=True)
        return EXIT_NOT_PROVEN
    echo(json.dumps(proof, indent=2))
    return EXIT_CLEAN if proof["verified"] else EXIT_NOT_PROVEN
