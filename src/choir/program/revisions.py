"""Editing and deleting one's own message: each change is the message's next version.

An edit must change the content and may not duplicate another message of the thread; a deletion
leaves a tombstone (empty content). Only the author changes a message, and never after deleting it.
What an edit or a deletion does to rewards is the state's rule (``State._revise``, docs/tokens.md).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final

from choir.program import errors
from choir.program.instructions import DeleteMessage, EditMessage
from choir.program.state import AI_AUTHOR, MessageRef, Revision, content_hash, tombstone_hash
from choir.program.tx import Tx
from choir.program.validate import check_actor, check_content, check_id

# The answers one deletion redacts in its commit (the latest so many of those citing the message:
# a bound on one transaction; docs/security.md states it).
MAX_REDACTIONS: Final = 200


def edit_message(tx: Tx, ins: EditMessage) -> None:
    actor = check_actor(ins.actor)
    message_id = check_id(ins.message_id, "message_id")
    content = check_content(ins.content, tx.state.params)
    ref = _own_message(tx, actor, message_id)
    digest = content_hash(content)
    if digest == ref.content_hash:
        raise errors.Unchanged("the edit is the message's current content")
    taken = tx.state.hashes.get(ref.thread_id, {}).get(digest)
    if taken is not None and taken != message_id:
        raise errors.DuplicateContent(f"the same content is already in {ref.thread_id!r}")
    _revise(tx, ref, message_id, content, deleted=False)


def delete_message(tx: Tx, ins: DeleteMessage) -> None:
    actor = check_actor(ins.actor)
    message_id = check_id(ins.message_id, "message_id")
    ref = _own_message(tx, actor, message_id)
    redactions = ins.redactions
    if not isinstance(redactions, tuple) or len(redactions) > MAX_REDACTIONS:
        raise errors.InvalidInput(f"redactions must be a tuple of at most {MAX_REDACTIONS}")
    if any(not isinstance(r, tuple) or len(r) != 3 for r in redactions):
        raise errors.InvalidInput("each redaction is (answer_id, version, content)")
    _revise(tx, ref, message_id, "", deleted=True)
    deleted = tx.result
    for answer_id, base_version, redacted in redactions:
        _redact(tx, check_id(answer_id, "answer_id"), base_version, check_content(redacted, tx.state.params))
    tx.result = deleted  # the caller deleted a message; the answers' new versions are their events
    # A message that came in by a spec bears the spec's id: the spec's copy of the text goes too.
    spec = tx.state.specs.get(message_id)
    if spec is not None and spec.content:
        tx.put_spec(replace(spec, content=""))


def _redact(tx: Tx, answer_id: str, base_version: object, content: str) -> None:
    """An AI answer's next version without its quotes of a deleted message (the quotes are the
    deleter's to take back; the answer is nobody's to change otherwise)."""
    answer = tx.state.messages.get(answer_id)
    if answer is None or answer.author != AI_AUTHOR or answer.deleted:
        raise errors.MessageNotFound(f"no AI answer {answer_id!r} to redact")
    if type(base_version) is not int or base_version != answer.version:
        raise errors.AnswerChanged(
            f"answer {answer_id!r} is at version {answer.version}, not {base_version!r}"
        )
    if content_hash(content) != answer.content_hash:
        _revise(tx, answer, answer_id, content, deleted=False)


def _own_message(tx: Tx, actor: str, message_id: str) -> MessageRef:
    ref = tx.state.messages.get(message_id)
    # One's own message stays one's own to change (to delete after leaving its private thread too);
    # anyone else's in a thread they may not read is a message that does not exist.
    if ref is None or (ref.author != actor and not tx.thread(ref.thread_id).readable_by(actor)):
        raise errors.MessageNotFound(f"no message {message_id!r}")
    if ref.author != actor or actor == AI_AUTHOR:
        # The AI's answers are nobody's to change: AI_AUTHOR is no key a person signs with.
        raise errors.NotAuthor("only a message's author may edit or delete it")
    if ref.deleted:
        raise errors.MessageDeleted(f"message {message_id!r} is deleted")
    return ref


def _revise(tx: Tx, ref: MessageRef, message_id: str, content: str, *, deleted: bool) -> None:
    """The message's next version, with its thread event (edited or deleted) at the next seq."""
    version = ref.version + 1
    digest = tombstone_hash(message_id) if deleted else content_hash(content)
    kind = "message.deleted" if deleted else "message.edited"
    data: dict[str, Any] = {"message_id": message_id, "author": ref.author, "version": version}
    if not deleted:
        data |= {"content": content, "content_hash": digest}
    seq = tx.emit(ref.thread_id, kind, data)
    tx.revisions.append(
        Revision(message_id, ref.thread_id, ref.author, version, content, digest, tx.now, deleted)
    )
    tx.result = {"message_id": message_id, "version": version, "seq": seq}
