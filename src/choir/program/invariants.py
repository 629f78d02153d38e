"""The invariants of DESIGN §4, checked after every instruction in tests and the simulator."""

from __future__ import annotations

from collections.abc import Iterable

from choir.ledger import escrow_account
from choir.program.state import Outcome, Spec, SpecStatus, State, Thread


class InvariantViolation(AssertionError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def violations(state: State) -> list[str]:
    problems = list(state.ledger.check())
    problems += _thread_problems(state)
    problems += _spec_problems(state)
    problems += _deleted_problems(state)
    return problems


def _deleted_problems(state: State) -> list[str]:
    """Content that no longer exists earns nothing: no deleted message waits for a new-message
    reward, and no citation of one waits for a prior reward."""
    problems = [
        f"deleted message {mid} waits for a reward in epoch {epoch}"
        for epoch, posts in state.epoch_posts.items()
        for mid in posts
        if state.messages[mid].deleted
    ]
    problems += [
        f"a citation of deleted message {r.message_id} waits for epoch {epoch}"
        for epoch, records in state.epoch_citations.items()
        for r in records
        if state.messages[r.message_id].deleted
    ]
    return problems


def check(state: State) -> None:
    if problems := violations(state):
        raise InvariantViolation(problems)


def check_step(state: State, outcome: Outcome) -> None:
    """The invariants after one committed step, on what that step touched: conservation
    (the ledger's net change stays 0), no negative balance, and the thread and spec rules
    for every thread and spec it wrote. O(step), so the simulator can run it every step."""
    problems: list[str] = []
    if state.ledger.net_change != 0:
        problems.append(f"conservation: balances changed by {state.ledger.net_change} in all")
    problems += [f"negative balance {a}: {b}" for a, b in outcome.balances.items() if b < 0]
    touched = {t: state.threads[t] for t in outcome.threads}
    for spec in outcome.specs.values():
        touched.setdefault(spec.thread_id, state.threads[spec.thread_id])
    problems += _thread_problems_of(state, touched.values())
    problems += _spec_problems_of(state, [state.specs[s] for s in outcome.specs])
    if problems:
        raise InvariantViolation(problems)


def _thread_problems(state: State) -> list[str]:
    return _thread_problems_of(state, state.threads.values())


def _thread_problems_of(state: State, threads: Iterable[Thread]) -> list[str]:
    problems: list[str] = []
    for thread in threads:
        published = 0
        for content_hash, item_id in state.hashes.get(thread.thread_id, {}).items():
            ref = state.messages.get(item_id)
            if ref is None:
                spec = state.specs.get(item_id)
                if spec is None or spec.status is not SpecStatus.PENDING:
                    problems.append(f"thread {thread.thread_id}: hash {content_hash[:8]} held by {item_id}")
                continue
            published += 1
            if ref.content_hash != content_hash or ref.thread_id != thread.thread_id:
                problems.append(f"message {item_id}: its hash is not unique in {thread.thread_id}")
        authors = thread.co_authors
        if not authors:
            problems.append(f"thread {thread.thread_id} has no co-author")
        if len(set(authors)) != len(authors):
            problems.append(f"thread {thread.thread_id} lists a co-author twice")
        if len(authors) > state.params.max_co_authors:
            problems.append(
                f"thread {thread.thread_id} has more than {state.params.max_co_authors} co-authors"
            )
        published += state.answers.get(thread.thread_id, 0) + state.tombstones.get(thread.thread_id, 0)
        if published != thread.message_count:
            problems.append(f"thread {thread.thread_id}: message count {thread.message_count} is wrong")
    return problems


def _spec_problems(state: State) -> list[str]:
    problems = _spec_problems_of(state, state.specs.values())
    total_escrow = sum(s.stake for s in state.specs.values() if s.status is SpecStatus.PENDING)
    held = sum(b for a, b in state.ledger.balances.items() if a.startswith("escrow:"))
    if total_escrow != held:
        problems.append(f"escrow accounts hold {held}, pending stakes are {total_escrow}")
    return problems


def _spec_problems_of(state: State, specs: Iterable[Spec]) -> list[str]:
    problems: list[str] = []
    for spec in specs:
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
    return problems
