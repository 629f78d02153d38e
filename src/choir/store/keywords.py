"""Keyword search over messages, on the SQL engine's own full-text search: SQLite FTS5 (bm25) in the
embedded default, PostgreSQL's text search (an `english` GIN index, ranked by the rarity of the words
each message contains) on PostgreSQL.
The indexes are the database's (migration 0006), written in the message's own transaction.

A query is reduced to its words, any of which may match (a rare word such as a product name or a
handle ranks a message first, common words barely count); AI answers are never results, and a private
thread's messages are found only for the co-authors the caller names."""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Connection, text

from choir.program import AI_AUTHOR

# Words of a query: runs of letters and digits, in any script (a handle's "@" and a name's dots split it).
_WORD: Final = re.compile(r"\w+", re.UNICODE)
MAX_TERMS: Final = 32
MAX_RESULTS: Final = 200
# PostgreSQL ranks at most this many matches per query (by the rarity of the words they contain).
CANDIDATES_MAX: Final = 2000
# SQLite ranks this many times the wanted count before filtering out private threads and AI answers.
SQLITE_CANDIDATES_FACTOR: Final = 10


@dataclass(frozen=True)
class KeywordHit:
    message_id: str
    thread_id: str
    rank: float  # engine-specific: higher is better within one result list only


def terms(query: str) -> list[str]:
    """The distinct words of a query, lower-cased, in order (at most MAX_TERMS)."""
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))[:MAX_TERMS]


def search(
    conn: Connection, query: str, limit: int, private_threads: Collection[str] = ()
) -> list[KeywordHit]:
    """Messages matching any word of ``query``, best first: public threads, and the private threads
    listed (those the caller is a co-author of)."""
    words = terms(query)
    if not words or limit < 1:
        return []
    limit = min(limit, MAX_RESULTS)
    private = sorted(set(private_threads))
    scope = "t.visibility = 'public'"
    params: dict[str, object] = {"ai": AI_AUTHOR, "limit": limit}
    if private:
        names = [f"p{i}" for i in range(len(private))]
        scope = f"(t.visibility = 'public' OR t.thread_id IN ({', '.join(':' + n for n in names)}))"
        params |= dict(zip(names, private, strict=True))
    if conn.dialect.name == "sqlite":
        # Each word quoted: FTS5 query syntax (AND, NEAR, *, ") in a user's text is read as words.
        params["match"] = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
        # The best matches first, from the full-text index alone (FTS5 ranks by bm25 without a join),
        # then the scope and the AI filter on those: a common word matches most of the table.
        params["candidates"] = min(CANDIDATES_MAX, limit * SQLITE_CANDIDATES_FACTOR)
        sql = f"""
            SELECT m.message_id, m.thread_id, -best.rank AS rank
            FROM (SELECT rowid, rank FROM messages_fts WHERE messages_fts MATCH :match
                  ORDER BY rank LIMIT :candidates) AS best
            JOIN messages m ON m.rowid = best.rowid
            JOIN threads t ON t.thread_id = m.thread_id
            WHERE m.author != :ai AND {scope}
            ORDER BY best.rank, m.message_id LIMIT :limit"""
        rows = conn.execute(text(sql), params).all()
        return [KeywordHit(r.message_id, r.thread_id, float(r.rank)) for r in rows]
    return _search_postgres(conn, words, limit, scope, params)


def _search_postgres(
    conn: Connection, words: list[str], limit: int, scope: str, params: dict[str, object]
) -> list[KeywordHit]:
    """PostgreSQL's ts_rank has no notion of a word's rarity: "sungold" would count no more than
    "tomato". So each word's document frequency is read from the GIN index and the matches are ranked
    by the sum of the BM25 idf of the words they contain (length is not normalised)."""
    lexemes = conn.execute(
        text("SELECT " + ", ".join(f"querytree(to_tsquery('english', :w{i}))" for i in range(len(words)))),
        {f"w{i}": w for i, w in enumerate(words)},
    ).one()
    # Stop words ("why", "my") reduce to an empty query, shown as "T".
    kept = [w for w, tree in zip(words, lexemes, strict=True) if tree and tree != "T"]
    if not kept:
        return []
    names = [f"w{i}" for i in range(len(kept))]
    params |= dict(zip(names, kept, strict=True))
    vector = "to_tsvector('english', m.content)"
    frequencies = conn.execute(
        text(
            "SELECT "
            + ", ".join(
                f"(SELECT count(*) FROM messages m WHERE {vector} @@ to_tsquery('english', :{n}))"
                for n in names
            )
            + ", (SELECT greatest(reltuples, 1) FROM pg_class WHERE relname = 'messages')"
        ),
        params,
    ).one()
    total = max(float(frequencies[-1]), float(max(frequencies[:-1])), 1.0)
    idf = [math.log(1 + (total - df + 0.5) / (df + 0.5)) for df in frequencies[:-1]]
    matched = ", ".join(f"({vector} @@ to_tsquery('english', :{n})) AS h{i}" for i, n in enumerate(names))
    anywhere = " || ".join(f"to_tsquery('english', :{n})" for n in names)
    sql = f"""
        SELECT m.message_id, m.thread_id, {matched}
        FROM messages m JOIN threads t ON t.thread_id = m.thread_id
        WHERE {vector} @@ ({anywhere}) AND m.author != :ai AND {scope}
        LIMIT :candidates"""
    rows = conn.execute(text(sql), params | {"candidates": CANDIDATES_MAX}).all()
    ranked = sorted(
        (KeywordHit(r.message_id, r.thread_id, sum(w for i, w in enumerate(idf) if r[2 + i])) for r in rows),
        key=lambda h: (-h.rank, h.message_id),
    )
    return ranked[:limit]


def check(conn: Connection) -> list[str]:
    """The audit's findings about the keyword index (empty: it agrees with the messages)."""
    if conn.dialect.name == "sqlite":
        try:
            # rank 1: compare the index with the messages table it is built from.
            conn.execute(text("INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)"))
        except Exception as exc:
            return [f"keyword index: FTS5 integrity check failed: {exc}"]
        return []
    valid = conn.execute(
        text(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = 'ix_messages_fts'"
        )
    ).scalar_one_or_none()
    if valid is None:
        return ["keyword index: ix_messages_fts is missing"]
    return [] if valid else ["keyword index: ix_messages_fts is not valid (rebuild it with REINDEX)"]
