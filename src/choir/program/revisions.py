"""Editing and deleting one's own message: each change is the message's next version.

An edit must change the content and may not duplicate another message of the thread; a deletion
leaves a tombstone (empty content). Only the author changes a message, and never after deleting it.
What an edit or a deletion does to rewards is the state's rule (``State._revise``, docs/tokens.md).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from choir.program import errors
from choir.program.instructions import DeleteMessage, EditMessage
from choir.program.state import AI_AUTHOR, MessageRef, Revision, content_hash, tombstone_hash
from choir.program.tx import Tx
from choir.program.validate import check_actor, check_content, check_id


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
    _revise(tx, ref, message_id, "", deleted=True)
    # A message that came in by a spec bears the spec's id: the spec's copy of the text goes too.
    spec = tx.state.specs.get(message_id)
    if spec is not None and spec.content:
        tx.put_spec(replace(spec, content=""))


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
