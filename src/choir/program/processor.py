"""apply(state, instruction, now) -> Outcome: the whole of the Thread Program.

Pure and deterministic: no clock (``now`` is an argument), no I/O, no randomness.
Each handler validates first and raises a ProgramError on refusal; it writes only
to a Tx, so a refusal leaves ``state`` untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from choir.ledger import (
    POOL_NEW_MESSAGES,
    TREASURY,
    TransferKind,
    escrow_account,
    thread_account,
    user_account,
    withdrawn_account,
)
from choir.program import errors
from choir.program.instructions import (
    CitationInput,
    CreateThread,
    DeleteMessage,
    Divest,
    EditMessage,
    Expire,
    Grant,
    Instruction,
    PostAnswer,
    PostMessage,
    RecordCitations,
    SetNovelty,
    SettleEpoch,
    SubmitSpec,
    Vote,
    Withdraw,
)
from choir.program.revisions import delete_message, edit_message
from choir.program.state import (
    AI_AUTHOR,
    Citation,
    CitationRecord,
    EpochSettlement,
    Event,
    Member,
    Message,
    Notice,
    Outcome,
    Params,
    Spec,
    SpecStatus,
    State,
    Thread,
    Visibility,
    content_hash,
    utc,
)
from choir.program.tx import Tx, advanced
from choir.program.validate import (
    check_actor,
    check_amount,
    check_content,
    check_id,
    check_new_id,
    check_ppm,
    check_title,
)
from choir.rewards import (
    NOVELTY_ONE_PPM,
    epoch_budget,
    prior_budget,
    split_new_message_rewards,
    split_prior_rewards,
)

MAX_CITATIONS = 64
MAX_MENTIONS = 20


def apply(state: State, instruction: Instruction, now: datetime) -> Outcome:
    handler = _HANDLERS.get(type(instruction))
    if handler is None:
        raise errors.InvalidInput(f"unknown instruction {type(instruction).__name__}")
    tx = Tx(state, utc(now))
    handler(tx, instruction)
    return tx.finish()


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


# -- threads ---------------------------------------------------------------------------


def _create_thread(tx: Tx, ins: CreateThread) -> None:
    actor = check_actor(ins.actor)
    thread_id = check_id(ins.thread_id, "thread_id")
    title = check_title(ins.title, tx.state.params)
    try:
        visibility = Visibility(ins.visibility)
    except ValueError:
        raise errors.InvalidInput("visibility must be public or private") from None
    if thread_id in tx.state.threads:
        raise errors.ThreadExists(f"thread {thread_id!r} exists")
    hour_ago = tx.now - timedelta(hours=1)
    recent = [t for t in tx.state.creations.get(actor, ()) if t > hour_ago]
    if len(recent) >= tx.state.params.threads_per_hour:
        raise errors.RateLimited(f"at most {tx.state.params.threads_per_hour} new threads per hour")
    thread = Thread(
        thread_id=thread_id,
        title=title,
        visibility=visibility,
        creator=actor,
        created_at=tx.now,
        min_stake=tx.state.params.min_stake,
        members=(Member(actor, tx.now),),
    )
    tx.put_thread(thread)
    data = {
        "thread_id": thread_id,
        "title": title,
        "visibility": str(visibility),
        "creator": actor,
        "min_stake": str(thread.min_stake),
    }
    seq = tx.emit(thread_id, "thread.created", data)
    tx.result = {"thread_id": thread_id, "seq": seq}


def _post_message(tx: Tx, ins: PostMessage) -> None:
    actor = check_actor(ins.actor)
    message_id = check_id(ins.message_id, "message_id")
    content = check_content(ins.content, tx.state.params)
    novelty = _check_novelty(ins.novelty_ppm)
    is_ai = actor == AI_AUTHOR
    thread_id = check_id(ins.thread_id, "thread_id")
    thread = tx.thread(thread_id) if is_ai else tx.readable_thread(thread_id, actor)
    if not is_ai and thread.member(actor) is None:
        raise errors.NotCoAuthor(f"{actor} is not a co-author of {thread.thread_id!r}")
    if not is_ai and (ins.ask_id is not None or ins.citations):
        raise errors.InvalidInput("only an answer carries an ask_id and citations")
    if ins.ask_id is not None:
        check_id(ins.ask_id, "ask_id")
    check_new_id(tx.state, message_id)
    citations = tuple(Citation(c.n, c.message_id, c.score_ppm) for c in _check_citations(ins.citations))
    mentions = _check_mentions(thread, actor, ins.mentions)
    _publish(tx, thread, message_id, actor, content, novelty, ins.ask_id, citations, mentions=mentions)
    tx.result = {"message_id": message_id, "seq": tx.thread(thread.thread_id).last_seq}


def _publish(
    tx: Tx,
    thread: Thread,
    message_id: str,
    author: str,
    content: str,
    novelty_ppm: int | None,
    ask_id: str | None = None,
    citations: tuple[Citation, ...] = (),
    question: str | None = None,
    mentions: tuple[str, ...] = (),
    asker: str | None = None,
) -> None:
    digest = content_hash(content)
    taken = hashes.get(digest) if (hashes := tx.state.hashes.get(thread.thread_id)) else None
    # A person may not post the same thing twice in a thread; the AI answering the same question
    # again with the same answer is not a duplicate.
    if taken is not None and taken != message_id and author != AI_AUTHOR:
        raise errors.DuplicateContent(f"the same content is already in {thread.thread_id!r}")
    current = tx.thread(thread.thread_id)
    seq = current.last_seq + 1
    tx.put_thread(advanced(current, seq, new_messages=1))
    data: dict[str, Any] = {
        "message_id": message_id,
        "author": author,
        "content": content,
        "content_hash": digest,
        "citations": [{"n": c.n, "message_id": c.message_id, "score": c.score_ppm / 1e6} for c in citations],
        "ask_id": ask_id,
    }
    if ask_id is not None:
        data["question"] = question
        data["asker"] = asker
    if mentions:
        data["mentions"] = list(mentions)
    tx.events.append(Event(thread.thread_id, seq, "message.posted", data, tx.now))
    tx.messages.append(
        Message(
            message_id,
            thread.thread_id,
            author,
            content,
            digest,
            tx.now,
            seq,
            novelty_ppm,
            ask_id,
            citations,
            question,
            mentions=mentions,
        )
    )


def _check_mentions(thread: Thread, author: str, mentions: object) -> tuple[str, ...]:
    """The mentioned addresses that stay: valid, not the author, at most MAX_MENTIONS, and in a
    private thread only its co-authors (a mention never shows a private message to anyone else)."""
    if not isinstance(mentions, tuple | list):
        raise errors.InvalidInput("mentions must be a list of addresses")
    kept = dict.fromkeys(check_actor(m) for m in mentions)
    kept.pop(author, None)
    if thread.visibility is Visibility.PRIVATE:
        kept = {a: None for a in kept if thread.member(a) is not None}
    if len(kept) > MAX_MENTIONS:
        raise errors.InvalidInput(f"at most {MAX_MENTIONS} people can be mentioned in one message")
    return tuple(kept)


def _check_citations(citations: object) -> tuple[CitationInput, ...]:
    if not isinstance(citations, tuple | list):
        raise errors.InvalidInput("citations must be a list")
    if len(citations) > MAX_CITATIONS:
        raise errors.InvalidInput(f"at most {MAX_CITATIONS} citations")
    for c in citations:
        if not isinstance(c, CitationInput):
            raise errors.InvalidInput("each citation must be a CitationInput")
        if type(c.n) is not int or c.n < 1:
            raise errors.InvalidInput("citation number must be a positive integer")
        check_id(c.message_id, "cited message_id")
        check_ppm(c.score_ppm, "citation score_ppm")
    return tuple(citations)


# -- specs -----------------------------------------------------------------------------


def _submit_spec(tx: Tx, ins: SubmitSpec) -> None:
    actor = check_actor(ins.actor)
    spec_id = check_id(ins.spec_id, "spec_id")
    content = check_content(ins.content, tx.state.params)
    stake = check_amount(ins.stake, "stake")
    novelty = _check_novelty(ins.novelty_ppm)
    thread = tx.thread(check_id(ins.thread_id, "thread_id"))
    params = tx.state.params
    if actor == AI_AUTHOR:
        raise errors.Forbidden("the Choir AI does not submit specs")
    if thread.member(actor) is not None:
        raise errors.AlreadyCoAuthor(f"{actor} is already a co-author of {thread.thread_id!r}")
    check_new_id(tx.state, spec_id, errors.SpecExists)
    if len(thread.members) >= params.max_co_authors:
        raise errors.ThreadFull(f"{thread.thread_id!r} has {params.max_co_authors} co-authors")
    if len(tx.state.pending.get(thread.thread_id, ())) >= params.max_pending_specs:
        raise errors.TooManyPendingSpecs(f"{thread.thread_id!r} has {params.max_pending_specs} pending specs")
    if stake < thread.min_stake:
        raise errors.StakeTooLow(f"stake {stake} is below the thread's minimum {thread.min_stake}")
    if stake > tx.balance(user_account(actor)):
        raise errors.InsufficientFunds(f"stake {stake} exceeds the balance of {actor}")
    digest = content_hash(content)
    # A duplicate is refused where the submitter could see it: in a public thread now; in a private
    # one only at the approving vote (its co-authors see the thread), or the refusal would be an
    # oracle for the private text.
    if thread.readable_by(actor) and digest in tx.state.hashes.get(thread.thread_id, {}):
        raise errors.DuplicateContent(f"the same content is already in {thread.thread_id!r}")
    spec = Spec(
        spec_id=spec_id,
        thread_id=thread.thread_id,
        author=actor,
        content=content,
        content_hash=digest,
        stake=stake,
        submitted_at=tx.now,
        expires_at=tx.now + timedelta(seconds=params.spec_ttl_s),
        voters=thread.co_authors,
        novelty_ppm=novelty,
    )
    tx.put_spec(spec)
    tx.pay(user_account(actor), escrow_account(spec_id), stake, TransferKind.STAKE, spec_id)
    data = {
        "spec_id": spec_id,
        "author": actor,
        "content": content,
        "stake": str(stake),
        "expires_at": _iso(spec.expires_at),
        "voters": list(spec.voters),
    }
    seq = tx.emit(thread.thread_id, "spec.submitted", data)
    tx.result = {"spec_id": spec_id, "seq": seq}


def _vote(tx: Tx, ins: Vote) -> None:
    actor = check_actor(ins.actor)
    if not isinstance(ins.approve, bool):
        raise errors.InvalidInput("approve must be true or false")
    spec = tx.spec(check_id(ins.spec_id, "spec_id"))
    if actor not in spec.voters and not tx.thread(spec.thread_id).readable_by(actor):
        raise errors.SpecNotFound(f"no spec {spec.spec_id!r}")
    if spec.status is not SpecStatus.PENDING:
        raise errors.SpecNotPending(f"spec {spec.spec_id!r} is {spec.status}")
    if actor not in spec.voters:
        raise errors.NotVoter(f"{actor} is not a voter of spec {spec.spec_id!r}")
    if spec.vote_of(actor) is not None:
        raise errors.AlreadyVoted(f"{actor} already voted on spec {spec.spec_id!r}")
    if tx.now >= spec.expires_at:
        raise errors.SpecExpired(f"spec {spec.spec_id!r} expired at {_iso(spec.expires_at)}")
    spec = replace(spec, votes=(*spec.votes, (actor, ins.approve)))
    tx.put_spec(spec)
    seq = tx.emit(
        spec.thread_id, "spec.voted", {"spec_id": spec.spec_id, "voter": actor, "approve": ins.approve}
    )
    if spec.all_voted:
        _settle(tx, spec)
        seq = tx.thread(spec.thread_id).last_seq
    tx.result = {"seq": seq}


def _settle(tx: Tx, spec: Spec) -> None:
    """Every voter has voted: approved, denied or mixed (DESIGN §4)."""
    approvers = [a for a in spec.voters if spec.vote_of(a)]
    escrow, thread_acct = escrow_account(spec.spec_id), thread_account(spec.thread_id)
    moved: list[dict[str, str] | None] = []
    if len(approvers) == len(spec.voters):
        outcome = SpecStatus.APPROVED
        if not _can_join(tx, spec):
            raise errors.ThreadFull(f"{spec.thread_id!r} has {tx.state.params.max_co_authors} co-authors")
        share = spec.stake // len(approvers)
        for approver in approvers:
            moved.append(
                tx.pay(escrow, user_account(approver), share, TransferKind.SPEC_APPROVED, spec.spec_id)
            )
        remainder = spec.stake - share * len(approvers)
        moved.append(tx.pay(escrow, thread_acct, remainder, TransferKind.SPEC_APPROVED, spec.spec_id))
    elif not approvers:
        outcome = SpecStatus.DENIED
        moved.append(tx.pay(escrow, thread_acct, spec.stake, TransferKind.SPEC_DENIED, spec.spec_id))
    else:
        outcome = SpecStatus.MIXED
        to_treasury = spec.stake * len(approvers) // len(spec.voters)
        moved.append(tx.pay(escrow, TREASURY, to_treasury, TransferKind.SPEC_MIXED, spec.spec_id))
        moved.append(
            tx.pay(escrow, thread_acct, spec.stake - to_treasury, TransferKind.SPEC_MIXED, spec.spec_id)
        )
    _close(tx, spec, outcome, moved)
    if outcome is SpecStatus.APPROVED:
        _join(tx, spec)


def _can_join(tx: Tx, spec: Spec) -> bool:
    """Room for the author, or no room needed: one person may have had two specs
    pending in a thread, and the first approved already made them a co-author."""
    thread = tx.thread(spec.thread_id)
    return thread.member(spec.author) is not None or len(thread.members) < tx.state.params.max_co_authors


def _close(tx: Tx, spec: Spec, outcome: SpecStatus, moved: list[dict[str, str] | None]) -> None:
    settled = replace(spec, status=spec.status.settle(outcome), settled_at=tx.now)
    tx.put_spec(settled)
    data = {"spec_id": spec.spec_id, "outcome": str(outcome), "transfers": [m for m in moved if m]}
    tx.emit(spec.thread_id, "spec.settled", data)


def _join(tx: Tx, spec: Spec) -> None:
    thread = tx.thread(spec.thread_id)
    if thread.member(spec.author) is None:
        tx.put_thread(replace(thread, members=(*thread.members, Member(spec.author, tx.now))))
        tx.emit(spec.thread_id, "coauthor.joined", {"address": spec.author, "spec_id": spec.spec_id})
    # The spec's message is published under the spec's id, as its author's.
    _publish(tx, thread, spec.spec_id, spec.author, spec.content, spec.novelty_ppm)


def _expire(tx: Tx, ins: Expire) -> None:
    check_actor(ins.actor)
    spec = tx.spec(check_id(ins.spec_id, "spec_id"))
    if spec.status is not SpecStatus.PENDING:
        raise errors.SpecNotPending(f"spec {spec.spec_id!r} is {spec.status}")
    if tx.now < spec.expires_at:
        raise errors.SpecNotExpired(f"spec {spec.spec_id!r} expires at {_iso(spec.expires_at)}")
    moved = tx.pay(
        escrow_account(spec.spec_id), TREASURY, spec.stake, TransferKind.SPEC_EXPIRED, spec.spec_id
    )
    _close(tx, spec, SpecStatus.EXPIRED, [moved])
    tx.result = {"seq": tx.thread(spec.thread_id).last_seq}


def _divest(tx: Tx, ins: Divest) -> None:
    actor = check_actor(ins.actor)
    thread = tx.readable_thread(check_id(ins.thread_id, "thread_id"), actor)
    member = thread.member(actor)
    if member is None:
        raise errors.NotCoAuthor(f"{actor} is not a co-author of {thread.thread_id!r}")
    if len(thread.members) == 1:
        raise errors.LastCoAuthor("the last co-author cannot leave a thread")
    unlock = member.joined_at + timedelta(seconds=tx.state.params.divest_lock_s)
    if tx.now < unlock:
        raise errors.DivestTooSoon(f"{actor} may divest from {_iso(unlock)}")
    amount = tx.balance(thread_account(thread.thread_id)) // len(thread.members)
    tx.pay(
        thread_account(thread.thread_id),
        user_account(actor),
        amount,
        TransferKind.DIVEST,
        _divest_ref(tx, thread),
    )
    members = tuple(m for m in thread.members if m.address != actor)
    tx.put_thread(replace(thread, members=members))
    seq = tx.emit(thread.thread_id, "coauthor.left", {"address": actor, "amount": str(amount)})
    for spec_id in sorted(tx.state.pending.get(thread.thread_id, ())):
        _drop_voter(tx, tx.spec(spec_id), actor, members)
    tx.result = {"amount": str(amount), "seq": max(seq, tx.thread(thread.thread_id).last_seq)}


def _divest_ref(tx: Tx, thread: Thread) -> str:
    # A person may join, leave and join again: the ref names this leaving.
    return f"{thread.thread_id}:{thread.last_seq + 1}"


def _drop_voter(tx: Tx, spec: Spec, leaver: str, members: tuple[Member, ...]) -> None:
    if leaver not in spec.voters:
        return
    voters = tuple(v for v in spec.voters if v != leaver)
    if not voters:
        # Nobody from the snapshot is left to decide: the co-authors now present do.
        voters = tuple(m.address for m in members)
    votes = tuple((a, v) for a, v in spec.votes if a != leaver)
    spec = replace(spec, voters=voters, votes=votes)
    tx.put_spec(spec)
    # A full thread cannot take an approved author; leaving must not be blocked by
    # that, so such a spec stays pending (and expires), as a refused last vote would.
    full = all(approve for _, approve in spec.votes) and not _can_join(tx, spec)
    if spec.all_voted and tx.now < spec.expires_at and not full:
        _settle(tx, spec)


# -- citations and rewards -------------------------------------------------------------


def _record_citations(tx: Tx, ins: RecordCitations) -> None:
    ask_id = check_id(ins.ask_id, "ask_id")
    asker = check_actor(ins.asker)
    asking_thread = tx.thread(check_id(ins.thread_id, "thread_id")).thread_id
    _record(tx, ask_id, asker, asking_thread, _check_citations(ins.citations))
    tx.result = {"recorded": len(tx.citations), "eligible": sum(r.eligible for r in tx.citations)}


def _post_answer(tx: Tx, ins: PostAnswer) -> None:
    """The AI's answer and its citation records, in one instruction: both or neither."""
    ask_id = check_id(ins.ask_id, "ask_id")
    asker = check_actor(ins.asker)
    message_id = check_id(ins.message_id, "message_id")
    content = check_content(ins.content, tx.state.params)
    question = _check_question(ins.question, tx.state.params)
    thread = tx.thread(check_id(ins.thread_id, "thread_id"))
    check_new_id(tx.state, message_id)
    inputs = _check_citations(ins.citations)
    _record(tx, ask_id, asker, thread.thread_id, inputs)
    citations = tuple(Citation(c.n, c.message_id, c.score_ppm) for c in inputs)
    _publish(
        tx, thread, message_id, AI_AUTHOR, content, NOVELTY_ONE_PPM, ask_id, citations, question, asker=asker
    )
    tx.result = {
        "message_id": message_id,
        "seq": tx.thread(thread.thread_id).last_seq,
        "recorded": len(tx.citations),
        "eligible": sum(r.eligible for r in tx.citations),
    }


def _check_question(value: object, params: Params) -> str | None:
    if value == "":
        return None
    return check_content(value, params)


def _record(tx: Tx, ask_id: str, asker: str, asking_thread: str, inputs: tuple[CitationInput, ...]) -> None:
    """Record an answer's citations; the eligible ones share the epoch's prior budget."""
    epoch = tx.state.epoch_of(tx.now)
    for c in inputs:
        ref = tx.state.messages.get(c.message_id)
        if ref is None:
            raise errors.MessageNotFound(f"no message {c.message_id!r}")
        cited = tx.thread(ref.thread_id)
        # Citing yourself or your own thread earns nothing; private threads are never priors.
        eligible = (
            ref.thread_id != asking_thread
            and not ref.deleted
            and ref.author != asker
            and ref.author != AI_AUTHOR
            and cited.visibility is Visibility.PUBLIC
            and epoch not in tx.state.epochs
        )
        tx.citations.append(CitationRecord(ask_id, epoch, c.message_id, ref.thread_id, c.score_ppm, eligible))


def _settle_epoch(tx: Tx, ins: SettleEpoch) -> None:
    state = tx.state
    if type(ins.epoch) is not int or ins.epoch < 0:
        raise errors.InvalidInput("epoch must be a non-negative integer")
    # An epoch has ended iff it is before the current one; compared as integers
    # first because the bounds of an absurd epoch overflow datetime.
    if ins.epoch >= state.epoch_of(tx.now):
        raise errors.EpochNotEnded(f"epoch {ins.epoch} has not ended")
    start, end = state.epoch_bounds(ins.epoch)
    if ins.epoch in state.epochs:
        tx.result = {"epoch": ins.epoch, "already_settled": True}
        return  # settling twice pays once
    posts = state.epoch_posts.get(ins.epoch)
    posted = list(posts.values()) if posts is not None else []
    waiting = sum(1 for _, w in posted if w is None)
    if waiting and tx.now < end + timedelta(seconds=state.params.novelty_grace_s):
        raise errors.NoveltyPending(
            f"epoch {ins.epoch}: {waiting} messages still wait for their novelty weight"
        )
    weights_by_post = [(author, NOVELTY_ONE_PPM if w is None else w) for author, w in posted]
    elapsed = (start - state.genesis_at).total_seconds(), (end - state.genesis_at).total_seconds()
    budget = epoch_budget(*elapsed)
    shares = split_new_message_rewards(budget, weights_by_post, state.params.author_cap_ppm)
    ref = f"epoch:{ins.epoch}"
    for author, amount in shares.items():
        tx.pay(POOL_NEW_MESSAGES, user_account(author), amount, TransferKind.NEW_MESSAGE_REWARD, ref)
        tx.notices.append(Notice(author, "reward.paid", _reward(ins.epoch, "new_message", amount)))
    weights: dict[str, int] = {}
    for record in state.epoch_citations.get(ins.epoch, ()):
        weights[record.cited_thread_id] = weights.get(record.cited_thread_id, 0) + record.score_ppm
    priors = prior_budget(tx.balance(TREASURY), state.params.prior_rate_ppm)
    prior_shares = split_prior_rewards(priors, weights)
    for thread_id, amount in prior_shares.items():
        tx.pay(TREASURY, thread_account(thread_id), amount, TransferKind.PRIOR_REWARD, ref)
        for address in tx.thread(thread_id).co_authors:
            data = _reward(ins.epoch, "prior", amount) | {"thread_id": thread_id}
            tx.notices.append(Notice(address, "reward.paid", data))
    settlement = EpochSettlement(
        ins.epoch, budget, sum(shares.values()), priors, sum(prior_shares.values()), tx.now
    )
    tx.epochs.append(settlement)
    tx.result = {"epoch": ins.epoch, "paid": str(settlement.new_message_paid + settlement.prior_paid)}


def _set_novelty(tx: Tx, ins: SetNovelty) -> None:
    message_id = check_id(ins.message_id, "message_id")
    novelty = check_ppm(ins.novelty_ppm, "novelty_ppm")
    ref = tx.state.messages.get(message_id)
    if ref is None:
        raise errors.MessageNotFound(f"no message {message_id!r}")
    if ref.novelty_ppm is not None:
        raise errors.NoveltyAlreadySet(f"message {message_id!r} already has its novelty weight")
    tx.novelty.append((message_id, novelty))
    tx.result = {"message_id": message_id, "novelty_ppm": novelty}


def _check_novelty(value: int | None) -> int | None:
    return None if value is None else check_ppm(value, "novelty_ppm")


def _reward(epoch: int, kind: str, amount: int) -> dict[str, Any]:
    return {"epoch": epoch, "reward": kind, "amount": str(amount)}


def _grant(tx: Tx, ins: Grant) -> None:
    address = check_actor(ins.address)
    amount = check_amount(ins.amount, "amount")
    ref = check_id(ins.ref, "ref")
    tx.pay(TREASURY, user_account(address), amount, TransferKind.GRANT, ref)
    tx.result = {"amount": str(amount)}


def _withdraw(tx: Tx, ins: Withdraw) -> None:
    actor = check_actor(ins.actor)
    amount = check_amount(ins.amount, "amount")
    ref = check_id(ins.withdrawal_id, "withdrawal_id")
    if amount > tx.balance(user_account(actor)):
        raise errors.InsufficientFunds(f"{actor} cannot withdraw {amount}")
    tx.pay(user_account(actor), withdrawn_account(actor), amount, TransferKind.WITHDRAW, ref)
    tx.result = {"amount": str(amount), "withdrawal_id": ref}


_HANDLERS: dict[type, Callable[[Tx, Any], None]] = {
    CreateThread: _create_thread,
    PostMessage: _post_message,
    SubmitSpec: _submit_spec,
    Vote: _vote,
    Expire: _expire,
    Divest: _divest,
    RecordCitations: _record_citations,
    PostAnswer: _post_answer,
    SettleEpoch: _settle_epoch,
    SetNovelty: _set_novelty,
    EditMessage: edit_message,
    DeleteMessage: delete_message,
    Grant: _grant,
    Withdraw: _withdraw,
}
