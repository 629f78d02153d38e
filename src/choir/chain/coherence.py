"""The coherence check behind `choir audit`: the SQL store, the vector index and the chain agree.

Inputs are plain mappings so that each place is read by its own module:

* co-author sets per thread id, from the SQL store and from the vector index's metadata;
* the latest anchored ownership record per thread id (`AnchorLog.latest_ownership`), whose
  co-author hash commits to the set that was anchored;
* published messages per message id (thread id + content hash), from each of the three places.

Anchoring lags the store by design, so a message or thread not anchored *yet* is no difference;
everything else that disagrees is named, one human-readable line per difference, in a stable order.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from choir.chain.records import MessageRecord, OwnershipRecord, co_author_set_hash


def _members(co_authors: Collection[str]) -> str:
    return "{" + ", ".join(sorted(co_authors)) + "}"


def _co_author_differences(
    sql: Mapping[str, Collection[str]],
    index: Mapping[str, Collection[str]],
    anchored: Mapping[str, OwnershipRecord],
    indexed_threads: set[str],
) -> list[str]:
    out: list[str] = []
    for thread_id in sorted(set(sql) | set(index) | set(anchored)):
        in_sql = sql.get(thread_id)
        if in_sql is None:
            where = [
                p
                for p, m in (("the vector index", index), ("the anchored records", anchored))
                if thread_id in m
            ]
            out.append(f"thread {thread_id}: in {' and '.join(where)} but not in the SQL store")
            continue
        in_index = index.get(thread_id)
        if in_index is None:
            if thread_id in indexed_threads:
                out.append(f"thread {thread_id}: its messages are indexed but the index has no co-author set")
        elif set(in_index) != set(in_sql):
            added, removed = set(in_index) - set(in_sql), set(in_sql) - set(in_index)
            out.append(
                f"thread {thread_id}: co-authors differ: SQL {_members(in_sql)}, vector index {_members(in_index)}"
                f" (only in index: {_members(added)}, only in SQL: {_members(removed)})"
            )
        record = anchored.get(thread_id)
        if record is not None and record.co_author_set_hash != co_author_set_hash(in_sql):
            out.append(
                f"thread {thread_id}: SQL co-authors {_members(in_sql)} hash to "
                f"{co_author_set_hash(in_sql).hex()}, the anchored ownership record has "
                f"{record.co_author_set_hash.hex()}"
            )
    return out


def _message_differences(
    sql: Mapping[str, MessageRecord],
    index: Mapping[str, MessageRecord],
    anchored: Mapping[str, MessageRecord],
) -> list[str]:
    out: list[str] = []
    for message_id in sorted(set(sql) | set(index) | set(anchored)):
        in_sql = sql.get(message_id)
        if in_sql is None:
            where = [
                p
                for p, m in (("the vector index", index), ("the chain anchors", anchored))
                if message_id in m
            ]
            out.append(f"message {message_id}: in {' and '.join(where)} but not in the SQL store")
            continue
        for place, other in (
            ("vector index", index.get(message_id)),
            ("chain anchor", anchored.get(message_id)),
        ):
            if other is None:
                if place == "vector index":
                    out.append(f"message {message_id}: in the SQL store but not in the vector index")
                continue
            if other.content_hash != in_sql.content_hash:
                out.append(
                    f"message {message_id}: content hash {in_sql.content_hash.hex()} in SQL, "
                    f"{other.content_hash.hex()} in the {place}"
                )
            if other.thread_id != in_sql.thread_id:
                out.append(
                    f"message {message_id}: thread {in_sql.thread_id} in SQL, {other.thread_id} in the {place}"
                )
    return out


def coherence_differences(
    *,
    sql_co_authors: Mapping[str, Collection[str]],
    index_co_authors: Mapping[str, Collection[str]],
    anchored_ownership: Mapping[str, OwnershipRecord],
    sql_messages: Mapping[str, MessageRecord],
    index_messages: Mapping[str, MessageRecord],
    anchored_messages: Mapping[str, MessageRecord],
) -> list[str]:
    """Every difference between the three places; an empty list when they agree."""
    indexed_threads = {m.thread_id for m in index_messages.values()}
    return _co_author_differences(
        sql_co_authors, index_co_authors, anchored_ownership, indexed_threads
    ) + _message_differences(sql_messages, index_messages, anchored_messages)
