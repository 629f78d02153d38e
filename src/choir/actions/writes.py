"""What a person does in a thread: post, edit, delete, submit a spec and vote on one, divest,
withdraw, and ask the Choir AI. Each checks what the transport cannot (content limits, text that is
not text) and hands the program one instruction; the program checks the rest and refuses with a code.
A private thread is, to an outsider, a thread that does not exist: only a spec (how one asks to join)
tells its submitter that the id is a thread, and nothing of what it holds."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any, Final

from choir import program
from choir.actions.context import Context, read_store, readable_thread, snapshot
from choir.actions.refusals import Refusal
from choir.chorus.citations import redact_quotes
from choir.chorus.service import AskRefused, Echo
from choir.program import PostMessage, SubmitSpec, Vote
from choir.program.errors import AnswerChanged
from choir.program.revisions import MAX_REDACTIONS
from choir.store import inbox

MAX_CONTENT_BYTES: Final = 16 * 1024
# A deletion whose answers to redact keep changing under it is tried this many times in all.
REDACTION_ATTEMPTS: Final = 3


def check_text(content: str, what: str = "content") -> None:
    """Refuse text over the limit, or that is no text at all (a lone UTF-16 surrogate, a NUL)."""
    try:
        size = len(content.encode())
    except UnicodeEncodeError:
        raise Refusal(
            "invalid_text", f"{what} holds a lone surrogate: it is not valid Unicode text"
        ) from None
    if "\x00" in content:
        raise Refusal("invalid_text", f"{what} holds a NUL character")
    if size > MAX_CONTENT_BYTES:
        raise Refusal("too_large", f"{what} is {size} bytes; the limit is {MAX_CONTENT_BYTES}")


async def post(ctx: Context, address: str, thread_id: str, content: str) -> dict[str, Any]:
    check_text(content)
    message_id = secrets.token_hex(12)
    mentions: tuple[str, ...] = ()
    if inbox.mention_tokens(content):
        mentions = await read_store(ctx, inbox.resolve_mentions, content)
    outcome = await ctx.writer.execute(
        PostMessage(address, thread_id, message_id, content, novelty_ppm=None, mentions=mentions)
    )
    return outcome.result


async def edit(ctx: Context, address: str, message_id: str, content: str) -> dict[str, Any]:
    check_text(content)
    outcome = await ctx.writer.execute(program.EditMessage(address, message_id, content))
    return outcome.result


async def delete(ctx: Context, address: str, message_id: str) -> dict[str, Any]:
    """Delete one's message, and in the same commit take its quotes out of the AI answers that
    cited it (each answer's next version). An answer that changed meanwhile (another deletion
    redacted it) is read again."""
    for attempt in range(1, REDACTION_ATTEMPTS + 1):
        redactions = await _redactions(ctx, message_id)
        try:
            outcome = await ctx.writer.execute(program.DeleteMessage(address, message_id, redactions))
        except AnswerChanged:
            if attempt == REDACTION_ATTEMPTS:
                raise
            continue
        return outcome.result
    raise AssertionError("unreachable: the last attempt returns or raises")


async def _redactions(ctx: Context, message_id: str) -> tuple[tuple[str, int, str], ...]:
    content, answers = await asyncio.to_thread(ctx.store.quoting_answers, message_id, MAX_REDACTIONS)
    return tuple(
        (answer_id, version, redact_quotes(text, numbers, content))
        for answer_id, version, text, numbers in answers
    )


async def spec_submit(ctx: Context, address: str, thread_id: str, content: str, stake: int) -> dict[str, Any]:
    check_text(content)
    spec_id = secrets.token_hex(12)
    outcome = await ctx.writer.execute(
        SubmitSpec(address, thread_id, spec_id, content, stake, novelty_ppm=None)
    )
    snap = ctx.writer.snapshot()
    thread = snap.threads.get(thread_id)
    if thread is None or not thread.readable_by(address):
        # A private thread's seq counts its events: the submitter learns nothing of them.
        return {"spec_id": spec_id}
    return {"spec_id": spec_id, "seq": outcome.result["seq"]}


async def spec_vote(ctx: Context, address: str, spec_id: str, approve: bool) -> dict[str, Any]:
    outcome = await ctx.writer.execute(Vote(address, spec_id, approve))
    return {"seq": outcome.result["seq"]}


async def divest(ctx: Context, address: str, thread_id: str) -> dict[str, Any]:
    outcome = await ctx.writer.execute(program.Divest(address, thread_id))
    return {"amount": outcome.result["amount"], "seq": outcome.result["seq"]}


async def withdraw(ctx: Context, address: str, amount: int) -> dict[str, Any]:
    withdrawal_id = secrets.token_hex(12)
    outcome = await ctx.writer.execute(program.Withdraw(address, amount, withdrawal_id))
    return {"withdrawal_id": withdrawal_id, "amount": outcome.result["amount"]}


async def ask(ctx: Context, address: str, thread_id: str, prompt: str, echo: Echo | None) -> tuple[str, Any]:
    """Start the Chorus loop on a question; returns the ask id and the loop's task."""
    check_text(prompt, "prompt")
    chorus = ctx.chorus
    if chorus is None:
        raise Refusal("unavailable", "the Chorus loop is not running on this server")
    readable_thread(await snapshot(ctx), thread_id, address)
    try:
        return await chorus.start(address, thread_id, prompt, echo)
    except AskRefused as exc:
        raise Refusal(exc.code, exc.message) from None
