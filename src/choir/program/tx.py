"""A scratchpad over a State: reads fall through, writes are buffered.

The processor only ever writes here; ``finish`` turns the buffer into an Outcome
after the ledger has checked every transfer together, so an instruction that
raises leaves the state exactly as it was.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from choir.ledger import LedgerError, Transfer, TransferKind, derive_transfer_id
from choir.program import errors
from choir.program.state import (
    CitationRecord,
    EpochSettlement,
    Event,
    Message,
    Notice,
    Outcome,
    Revision,
    Spec,
    State,
    Thread,
)


class Tx:
    __slots__ = (
        "citations",
        "epochs",
        "events",
        "messages",
        "notices",
        "novelty",
        "now",
        "result",
        "revisions",
        "specs",
        "state",
        "threads",
        "transfers",
    )

    def __init__(self, state: State, now: datetime) -> None:
        self.state = state
        self.now = now
        self.threads: dict[str, Thread] = {}
        self.specs: dict[str, Spec] = {}
        self.messages: list[Message] = []
        self.transfers: list[Transfer] = []
        self.events: list[Event] = []
        self.notices: list[Notice] = []
        self.citations: list[CitationRecord] = []
        self.epochs: list[EpochSettlement] = []
        self.novelty: list[tuple[str, int]] = []
        self.revisions: list[Revision] = []
        self.result: dict[str, Any] = {}

    def thread(self, thread_id: str) -> Thread:
        thread = self.threads.get(thread_id) or self.state.threads.get(thread_id)
        if thread is None:
            raise errors.ThreadNotFound(f"no thread {thread_id!r}")
        return thread

    def readable_thread(self, thread_id: str, actor: str) -> Thread:
        """The thread, for an actor who may read it; to anyone else a private thread does not exist
        (the same refusal as for an id nobody holds)."""
        thread = self.threads.get(thread_id) or self.state.threads.get(thread_id)
        if thread is None or not thread.readable_by(actor):
            raise errors.ThreadNotFound(f"no thread {thread_id!r}")
        return thread

    def spec(self, spec_id: str) -> Spec:
        spec = self.specs.get(spec_id) or self.state.specs.get(spec_id)
        if spec is None:
            raise errors.SpecNotFound(f"no spec {spec_id!r}")
        return spec

    def put_thread(self, thread: Thread) -> None:
        self.threads[thread.thread_id] = thread

    def put_spec(self, spec: Spec) -> None:
        self.specs[spec.spec_id] = spec

    def emit(self, thread_id: str, kind: str, data: dict[str, Any]) -> int:
        """Append a thread event with the next gap-free seq."""
        thread = self.thread(thread_id)
        seq = thread.last_seq + 1
        self.put_thread(advanced(thread, seq))
        self.events.append(Event(thread_id, seq, kind, data, self.now))
        return seq

    def balance(self, account: str) -> int:
        amount = self.state.ledger.balance(account)
        for t in self.transfers:
            if t.debit == account:
                amount -= t.amount
            elif t.credit == account:
                amount += t.amount
        return amount

    def pay(
        self, debit: str, credit: str, amount: int, kind: TransferKind, ref: str
    ) -> dict[str, str] | None:
        """Queue a transfer (skipped when zero: a transfer moves a positive amount)."""
        if amount == 0:
            return None
        transfer = Transfer(
            id=derive_transfer_id(kind, ref, debit, credit),
            debit=debit,
            credit=credit,
            amount=amount,
            kind=kind,
            ref=ref,
            at=self.now,
        )
        self.transfers.append(transfer)
        return {"debit": debit, "credit": credit, "amount": str(amount), "kind": str(kind)}

    def finish(self) -> Outcome:
        try:
            plan = self.state.ledger.plan(self.transfers)
        except LedgerError as exc:
            if exc.code == "insufficient_funds":
                raise errors.InsufficientFunds(exc.message) from None
            if exc.code == "transfer_id_conflict":
                raise errors.TransferConflict(exc.message) from None
            raise errors.InvalidAmount(exc.message) from None
        return Outcome(
            threads=self.threads,
            specs=self.specs,
            messages=self.messages,
            transfers=plan.new,
            balances=plan.balances,
            events=self.events,
            notices=self.notices,
            citations=self.citations,
            epochs=self.epochs,
            result=self.result,
            at=self.now,
            novelty=self.novelty,
            revisions=self.revisions,
        )


def advanced(thread: Thread, seq: int, new_messages: int = 0) -> Thread:
    """The thread with its last event at ``seq`` and ``new_messages`` more messages. Written
    out rather than dataclasses.replace: this is on the path of every post."""
    return Thread(
        thread.thread_id,
        thread.title,
        thread.visibility,
        thread.creator,
        thread.created_at,
        thread.min_stake,
        thread.members,
        thread.message_count + new_messages,
        seq,
    )
