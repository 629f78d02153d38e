"""What the settlement worker consumes: committed ledger changes after a store position.

The ledger and the store belong to other modules; this is the narrow shape the chain needs from them,
so that the coordinator adapts its own types to it. A *position* is the store's commit cursor: strictly
increasing, shared by transfers, published messages and co-author changes.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

from choir.chain.layout import validate_account_name
from choir.chain.records import MessageRecord, OwnershipRecord

_U64_MAX: Final = 2**64 - 1
_THREAD_PREFIX: Final = "thread:"
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ChainTransfer:
    """A committed ledger transfer, as the chain mirrors it."""

    position: int
    id: int
    debit: str
    credit: str
    amount: int

    def __post_init__(self) -> None:
        if self.position <= 0:
            raise ValueError(f"transfer positions start at 1, got {self.position}")
        if not 0 < self.amount <= _U64_MAX:
            raise ValueError(f"transfer amount must be in 1..2^64-1, got {self.amount}")
        if self.debit == self.credit:
            raise ValueError(f"transfer {self.id} debits and credits the same account {self.debit!r}")

    def to_json(self) -> dict[str, str | int]:
        return {
            "position": self.position,
            "id": str(self.id),
            "debit": self.debit,
            "credit": self.credit,
            "amount": str(self.amount),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, str | int]) -> ChainTransfer:
        return cls(
            int(data["position"]),
            int(data["id"]),
            str(data["debit"]),
            str(data["credit"]),
            int(data["amount"]),
        )


@dataclass(frozen=True, slots=True)
class FeedBatch:
    """Every committed change at positions in (after, through].

    ``messages``: messages published in that range; ``ownership``: one record per thread whose
    co-authors or balance changed in that range, as of ``through``.
    """

    after: int
    through: int
    transfers: tuple[ChainTransfer, ...]
    messages: tuple[MessageRecord, ...]
    ownership: tuple[OwnershipRecord, ...]

    @property
    def empty(self) -> bool:
        return self.through == self.after

    def anchor_leaves(self) -> list[bytes]:
        """Leaf data in anchoring order: messages in publication order, then ownership by thread id."""
        ownership = sorted(self.ownership, key=lambda r: r.thread_id)
        return [m.leaf() for m in self.messages] + [o.leaf() for o in ownership]

    def to_json(self) -> dict[str, object]:
        return {
            "after": self.after,
            "through": self.through,
            # Rows, not objects: a journal holds up to a batch of them and is written before every send.
            "transfers": [[t.position, str(t.id), t.debit, t.credit, str(t.amount)] for t in self.transfers],
            "messages": [m.to_json() for m in self.messages],
            "ownership": [o.to_json() for o in self.ownership],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> FeedBatch:
        transfers = data["transfers"]
        messages = data["messages"]
        ownership = data["ownership"]
        assert isinstance(transfers, list) and isinstance(messages, list) and isinstance(ownership, list)
        return cls(
            int(str(data["after"])),
            int(str(data["through"])),
            tuple(ChainTransfer(int(p), int(i), str(d), str(c), int(a)) for p, i, d, c, a in transfers),
            tuple(MessageRecord.from_json(m) for m in messages),
            tuple(OwnershipRecord.from_json(o) for o in ownership),
        )


class SettlementFeed(Protocol):
    async def read_after(self, position: int, max_transfers: int, max_records: int) -> FeedBatch:
        """Changes after `position`, at most `max_transfers` transfers and `max_records` anchor records.

        ``through`` is the last position included: every change at or before it is in the batch.
        An empty batch has ``through == position``.
        """
        ...


@dataclass(frozen=True, slots=True)
class _Event:
    position: int
    transfer: ChainTransfer | None = None
    message: MessageRecord | None = None
    thread_id: str | None = None  # a co-author change


class MemoryFeed:
    """An in-memory ledger feed for tests, benchmarks and the simulator.

    It refuses overdrafts like the ledger does, so a test cannot settle a sequence the ledger would not
    have committed. Positions are contiguous from 1.
    """

    def __init__(self, genesis_balances: Mapping[str, int]) -> None:
        self._events: list[_Event] = []
        self.balances: dict[str, int] = dict(genesis_balances)
        self._co_authors: dict[str, list[tuple[int, frozenset[str]]]] = {}
        self._thread_balances: dict[str, list[tuple[int, int]]] = {}

    @property
    def head(self) -> int:
        return len(self._events)

    def transfer(self, debit: str, credit: str, amount: int, transfer_id: int | None = None) -> ChainTransfer:
        validate_account_name(debit)
        validate_account_name(credit)
        if self.balances.get(debit, 0) < amount:
            raise ValueError(f"{debit} holds {self.balances.get(debit, 0)}, cannot pay {amount}")
        position = self.head + 1
        if transfer_id is None:
            transfer_id = int.from_bytes(
                hashlib.sha256(f"memory-feed:{position}".encode()).digest()[:16], "big"
            )
        transfer = ChainTransfer(position, transfer_id, debit, credit, amount)
        self.balances[debit] -= amount
        self.balances[credit] = self.balances.get(credit, 0) + amount
        for name in (debit, credit):
            if name.startswith(_THREAD_PREFIX):
                self._thread_balances.setdefault(name[len(_THREAD_PREFIX) :], []).append(
                    (position, self.balances[name])
                )
        self._events.append(_Event(position, transfer=transfer))
        return transfer

    def publish(self, message_id: str, thread_id: str, content: str) -> MessageRecord:
        record = MessageRecord(message_id, thread_id, hashlib.sha256(content.encode()).digest())
        self._events.append(_Event(self.head + 1, message=record))
        return record

    def set_co_authors(self, thread_id: str, co_authors: Iterable[str]) -> None:
        position = self.head + 1
        self._co_authors.setdefault(thread_id, []).append((position, frozenset(co_authors)))
        self._events.append(_Event(position, thread_id=thread_id))

    def co_authors_at(self, thread_id: str, position: int) -> frozenset[str]:
        return _value_at(self._co_authors.get(thread_id, []), position, frozenset())

    def thread_balance_at(self, thread_id: str, position: int) -> int:
        return _value_at(self._thread_balances.get(thread_id, []), position, 0)

    async def read_after(self, position: int, max_transfers: int, max_records: int) -> FeedBatch:
        if max_transfers < 1 or max_records < 1:
            raise ValueError("a batch holds at least one transfer and one record")
        transfers: list[ChainTransfer] = []
        messages: list[MessageRecord] = []
        changed: set[str] = set()
        through = position
        for event in self._events[position:]:
            if event.transfer is not None and len(transfers) == max_transfers:
                break
            if event.transfer is None and len(messages) + len(changed) >= max_records:
                break
            if event.transfer is not None:
                transfers.append(event.transfer)
                changed.update(
                    n[len(_THREAD_PREFIX) :]
                    for n in (event.transfer.debit, event.transfer.credit)
                    if n.startswith(_THREAD_PREFIX)
                )
            elif event.message is not None:
                messages.append(event.message)
            elif event.thread_id is not None:
                changed.add(event.thread_id)
            through = event.position
        ownership = tuple(
            OwnershipRecord.of(t, self.co_authors_at(t, through), self.thread_balance_at(t, through))
            for t in sorted(changed)
        )
        return FeedBatch(position, through, tuple(transfers), tuple(messages), ownership)


def _value_at(history: list[tuple[int, _T]], position: int, default: _T) -> _T:
    index = bisect.bisect_right(history, position, key=lambda item: item[0])
    return history[index - 1][1] if index else default
