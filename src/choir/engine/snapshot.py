"""An immutable committed snapshot: what readers see.

The writer applies instructions to its own private ``State`` (plain dicts, as fast as the core
runs). Readers never touch that state. After each COMMIT the coordinator builds the next Snapshot
from the previous one and the batch's outcomes and swaps it in (one reference assignment, atomic
for every thread). A snapshot keeps what readers read in persistent maps (``immutables.Map``, a
HAMT), so advancing one costs a few path copies per change and shares everything else, and a
reader holding one across awaits keeps reading exactly what was committed at ``version``.

What it holds is what the shell reads: threads, specs and the pending ones, balances, settled
epochs and the epochs with posts still to settle. What only the writer needs (message hashes,
applied transfer ids, citations awaiting settlement) stays in the writer's state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from immutables import Map

from choir.ledger import totals_by_class
from choir.program import AI_AUTHOR, EpochSettlement, Outcome, Params, Spec, SpecStatus, State, Thread

_NO_PENDING: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Snapshot:
    version: int
    genesis_at: datetime
    params: Params
    threads: Map[str, Thread]
    specs: Map[str, Spec]
    pending: Map[str, frozenset[str]]  # thread -> pending spec ids
    balances: Map[str, int]
    epochs: Map[int, EpochSettlement]
    # Epochs with human posts that are not settled yet (what the duties settle).
    posted_epochs: Map[int, bool]

    @classmethod
    def of(cls, state: State, version: int) -> Snapshot:
        """The snapshot of a whole state (at load: O(state), once)."""
        return cls(
            version,
            state.genesis_at,
            state.params,
            Map(state.threads),
            Map(state.specs),
            Map({t: frozenset(ids) for t, ids in state.pending.items()}),
            Map(state.ledger.balances),
            Map(state.epochs),
            Map(dict.fromkeys(state.epoch_posts, True)),
        )

    def advanced(self, outcomes: Sequence[Outcome], version: int) -> Snapshot:
        """The next snapshot: this one with a committed batch's outcomes, in order."""
        threads, specs, pending = self.threads.mutate(), self.specs.mutate(), self.pending.mutate()
        balances, epochs, posted = self.balances.mutate(), self.epochs.mutate(), self.posted_epochs.mutate()
        for outcome in outcomes:
            for thread in outcome.threads.values():
                threads[thread.thread_id] = thread
            for spec in outcome.specs.values():
                specs[spec.spec_id] = spec
                ids = pending.get(spec.thread_id, _NO_PENDING)
                ids = ids | {spec.spec_id} if spec.status is SpecStatus.PENDING else ids - {spec.spec_id}
                pending[spec.thread_id] = ids
            for account, amount in outcome.balances.items():
                balances[account] = amount
            for message in outcome.messages:
                epoch = self.epoch_of(message.published_at)
                if message.author != AI_AUTHOR and epoch not in epochs:
                    posted[epoch] = True
            for settlement in outcome.epochs:
                epochs[settlement.epoch] = settlement
                if settlement.epoch in posted:
                    del posted[settlement.epoch]
        return Snapshot(
            version,
            self.genesis_at,
            self.params,
            threads.finish(),
            specs.finish(),
            pending.finish(),
            balances.finish(),
            epochs.finish(),
            posted.finish(),
        )

    def balance(self, account: str) -> int:
        return self.balances.get(account, 0)

    def by_class(self) -> dict[str, int]:
        return totals_by_class(self.balances)

    def epoch_of(self, at: datetime) -> int:
        return int((at - self.genesis_at).total_seconds() // self.params.epoch_seconds)
