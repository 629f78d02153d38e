"""An immutable committed state.

The coordinator applies each batch to a private ``State.fork()`` and, after COMMIT, swaps in
a new Snapshot holding that fork (one reference assignment, atomic for every thread). Nobody
commits to a published snapshot's state again: its maps are persistent, so a reader holding it
across awaits keeps reading exactly what was committed at ``version``.
"""

from __future__ import annotations

from dataclasses import dataclass

from choir.program import State


@dataclass(frozen=True, slots=True)
class Snapshot:
    state: State
    version: int

    def balance(self, account: str) -> int:
        return self.state.ledger.balance(account)
