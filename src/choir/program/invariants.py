"""The invariants of DESIGN §4, checked after every instruction in tests and the simulator."""

from __future__ import annotations

from choir.ledger import escrow_account
from choir.program.state import SpecStatus, State


class InvariantViolation(AssertionError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def violations(state: State) -> list[str]:
    problems = list(state.ledger.check())
    problems += _thread_problems(state)
    problems += _spec_problems(state)
    return problems


def check(state: State) -> None:
    if problems := violations(state):
        raise InvariantViolation(problems)


def _thread_problems(state: State) -> list[str]:
    problems: list[str] = []
    published: dict[str, int] = {}
    for message_id, ref in state.messages.items():
        published[ref.thread_id] = published.get(ref.thread_id, 0) + 1
        if state.hashes.get(ref.thread_id, {}).get(ref.content_hash) != message_id:
            problems.append(f"message {message_id}: its hash is not unique in {ref.thread_id}")
    for thread in state.threads.values():
        authors = thread.co_authors
        if not authors:
            problems.append(f"thread {thread.thread_id} has no co-author")
        if len(set(authors)) != len(authors):
            problems.append(f"thread {thread.thread_id} lists a co-author twice")
        if len(authors) > state.params.max_co_authors:
            problems.append(
                f"thread {thread.thread_id} has more than {state.params.max_co_authors} co-authors"
            )
        if published.get(thread.thread_id, 0) != thread.message_count:
            problems.append(f"thread {thread.thread_id}: message count {thread.message_count} is wrong")
    return problems


def _spec_problems(state: State) -> list[str]:
    problems: list[str] = []
    for spec in state.specs.values():
        escrow = state.ledger.balance(escrow_account(spec.spec_id))
        if spec.status is SpecStatus.PENDING and escrow != spec.stake:
            problems.append(f"pending spec {spec.spec_id}: escrow {escrow} != stake {spec.stake}")
        if spec.status is not SpecStatus.PENDING and escrow != 0:
            problems.append(f"settled spec {spec.spec_id} still holds {escrow} in escrow")
        voters = [a for a, _ in spec.votes]
        if len(set(voters)) != len(voters):
            problems.append(f"spec {spec.spec_id}: someone voted twice")
        if not set(voters) <= set(spec.voters):
            problems.append(f"spec {spec.spec_id}: a vote from a non-voter")
    total_escrow = sum(s.stake for s in state.specs.values() if s.status is SpecStatus.PENDING)
    held = sum(b for a, b in state.ledger.balances.items() if a.startswith("escrow:"))
    if total_escrow != held:
        problems.append(f"escrow accounts hold {held}, pending stakes are {total_escrow}")
    return problems
