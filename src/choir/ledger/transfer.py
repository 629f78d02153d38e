"""A transfer: the only way CHOIR moves (TigerBeetle's model, DESIGN §3)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

MAX_TRANSFER_ID = 2**128 - 1


class TransferKind(StrEnum):
    STAKE = "stake"  # user -> escrow when a spec is submitted
    SPEC_APPROVED = "spec_approved"  # escrow -> approvers (and remainder -> thread)
    SPEC_DENIED = "spec_denied"  # escrow -> thread
    SPEC_MIXED = "spec_mixed"  # escrow -> treasury share, rest -> thread
    SPEC_EXPIRED = "spec_expired"  # escrow -> treasury
    DIVEST = "divest"  # thread -> leaving co-author
    NEW_MESSAGE_REWARD = "new_message_reward"  # pool -> author
    PRIOR_REWARD = "prior_reward"  # treasury -> cited thread
    GRANT = "grant"  # treasury -> user (faucet / operator grant)
    WITHDRAW = "withdraw"  # user -> withdrawn:<address> (left the app for a wallet)


@dataclass(frozen=True, slots=True)
class Transfer:
    id: int
    debit: str
    credit: str
    amount: int
    kind: TransferKind
    ref: str
    at: datetime

    def same_fields(self, other: Transfer) -> bool:
        """Equal in everything but ``at``, which a retried instruction may restate."""
        return (self.id, self.debit, self.credit, self.amount, self.kind, self.ref) == (
            other.id,
            other.debit,
            other.credit,
            other.amount,
            other.kind,
            other.ref,
        )


def derive_transfer_id(*parts: str | int) -> int:
    """A 128-bit id derived from what the transfer is for, so that a rule applied
    twice yields the same id and is applied once."""
    text = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=16).digest(), "big")
