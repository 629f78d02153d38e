"""Double-entry balances with idempotent, all-or-nothing transfer batches."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from choir.ledger.accounts import GENESIS_BALANCES, SUPPLY, totals_by_class
from choir.ledger.transfer import MAX_TRANSFER_ID, Transfer


class LedgerError(Exception):
    """A batch of transfers that cannot be applied; ``code`` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Plan:
    """What applying a batch would do: the transfers that are new, and the
    resulting balance of every account they touch."""

    new: tuple[Transfer, ...]
    balances: dict[str, int]


@dataclass(slots=True)
class Ledger:
    balances: dict[str, int] = field(default_factory=dict)
    transfers: dict[int, Transfer] = field(default_factory=dict)
    # Σ of every balance change recorded since this ledger was built; always 0.
    net_change: int = 0

    @classmethod
    def genesis(cls) -> Ledger:
        return cls(balances=dict(GENESIS_BALANCES))

    def balance(self, account: str) -> int:
        return self.balances.get(account, 0)

    def plan(self, batch: Sequence[Transfer]) -> Plan:
        """Validate a batch against current balances without changing anything.

        Raises LedgerError if any transfer is malformed, would overdraw an account
        (checked in order, so later transfers may spend what earlier ones credit),
        or reuses an id with different fields. A transfer whose id was already
        applied with the same fields is skipped: that is what makes retries safe.
        """
        running: dict[str, int] = {}
        new: list[Transfer] = []
        seen: dict[int, Transfer] = {}
        for t in batch:
            _check_shape(t)
            prior = self.transfers.get(t.id) or seen.get(t.id)
            if prior is not None:
                if not prior.same_fields(t):
                    raise LedgerError(
                        "transfer_id_conflict", f"transfer id {t.id:#x} reused with other fields"
                    )
                continue
            debit = running.get(t.debit, self.balance(t.debit)) - t.amount
            if debit < 0:
                raise LedgerError(
                    "insufficient_funds", f"{t.debit} cannot pay {t.amount}: balance {debit + t.amount}"
                )
            running[t.debit] = debit
            running[t.credit] = running.get(t.credit, self.balance(t.credit)) + t.amount
            seen[t.id] = t
            new.append(t)
        return Plan(new=tuple(new), balances=running)

    def commit(self, plan: Plan) -> None:
        """Apply a plan made by ``plan`` on this same ledger state."""
        self.record(plan.new, plan.balances)

    def record(self, new: Iterable[Transfer], balances: Mapping[str, int]) -> None:
        """Store applied transfers and the balances they produced. The running total
        moves by the balances' net change, which conservation says is zero: keeping it
        lets the invariant be checked after every step without summing every account."""
        for account, amount in balances.items():
            self.net_change += amount - self.balances.get(account, 0)
            self.balances[account] = amount
        for t in new:
            self.transfers[t.id] = t

    def apply(self, batch: Sequence[Transfer]) -> tuple[Transfer, ...]:
        """All or nothing: every transfer of the batch is applied, or none."""
        plan = self.plan(batch)
        self.commit(plan)
        return plan.new

    def total(self) -> int:
        return sum(self.balances.values())

    def check(self) -> list[str]:
        """Conservation and non-negativity; returns the violations found."""
        problems = [f"negative balance {a}: {b}" for a, b in self.balances.items() if b < 0]
        if (total := self.total()) != SUPPLY:
            problems.append(f"conservation: sum of balances {total} != supply {SUPPLY}")
        return problems

    def by_class(self) -> dict[str, int]:
        return totals_by_class(self.balances)

    @classmethod
    def from_rows(cls, balances: Mapping[str, int], transfers: Iterable[Transfer]) -> Ledger:
        return cls(balances=dict(balances), transfers={t.id: t for t in transfers})


def _check_shape(t: Transfer) -> None:
    if type(t.amount) is not int or t.amount <= 0:
        raise LedgerError("invalid_amount", f"transfer amount must be a positive integer, got {t.amount!r}")
    if type(t.id) is not int or not 0 <= t.id <= MAX_TRANSFER_ID:
        raise LedgerError("invalid_transfer_id", "transfer id must be an integer of at most 128 bits")
    if t.debit == t.credit:
        raise LedgerError("invalid_transfer", f"transfer from {t.debit} to itself")
    if t.amount > SUPPLY:
        raise LedgerError("invalid_amount", "transfer amount exceeds the supply")
