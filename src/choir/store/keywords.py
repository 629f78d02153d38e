"""Keyword search over messages, on the SQL engine's own full-text index: SQLite FTS5 in the embedded
default, PostgreSQL's text search (an `english` GIN index) on PostgreSQL. The indexes are the
database's (migration 0006), written in the message's own transaction.

The engine only matches; the ranking is BM25 (Robertson et al.) computed here over the threads the
caller names (those the reader may read) and nothing else: the number of messages, how many contain
each word and their mean length are counted in that scope. An engine's own ranking (FTS5's bm25)
takes its statistics from every message, private ones included, and then one could tell by planting
public posts which word a private message holds. A query is reduced to its words, any of which may
match (a rare word such as a product name or a handle ranks a message first, common words barely
count); AI answers and tombstones are never results."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import Connection, text

from choir.program import AI_AUTHOR

# Words of a query: runs of letters and digits, in any script (a handle's "@" and a name's dots split it).
_WORD: Final = re.compile(r"\w+", re.UNICODE)
MAX_TERMS: Final = 32
MAX_RESULTS: Final = 200
# Per word at most this many matches are ranked (the newest), beside those another word found.
CANDIDATES_MAX: Final = 2000
# BM25's term-frequency saturation and length normalisation (the usual constants). A word counts once
# per message: the engines match, they do not count.
BM25_K1: Final = 1.2
BM25_B: Final = 0.75


@dataclass(frozen=True)
class KeywordHit:
    message_id: str
    thread_id: str
    rank: float  # BM25 over the caller's scope: higher is better within one result list only


def terms(query: str) -> list[str]:
    """The distinct words of a query, lower-cased, in order (at most MAX_TERMS)."""
    return list(dict.fromkeys(w.lower() for w in _WORD.findall(query)))[:MAX_TERMS]


@dataclass(frozen=True)
class _Dialect:
    source: str  # the messages, joined to the full-text index where it is a table of its own
    match: str  # a message matching the word :w
    scope: str  # a message of a thread in :scope
    key: str  # a message's key among the candidates

    def word(self, w: str) -> str:
        return '"' + w.replace('"', '""') + '"' if self.key == "m.rowid" else w


_SQLITE: Final = _Dialect(
    "messages_fts f JOIN messages m ON m.rowid = f.rowid",
    "messages_fts MATCH :w",
    "m.thread_id IN (SELECT value FROM json_each(:scope))",
    "m.rowid",
)
_POSTGRES: Final = _Dialect(
    "messages m",
    "to_tsvector('english', m.content) @@ to_tsquery('english', :w)",
    "m.thread_id = ANY(:scope)",
    "m.message_id",
)


def search(conn: Connection, query: str, limit: int, readable: Collection[str]) -> list[KeywordHit]:
    """Messages of the ``readable`` threads matching any word of ``query``, best first."""
    words = terms(query)
    scope = sorted(set(readable))
    if not words or limit < 1 or not scope:
        return []
    sqlite = conn.dialect.name == "sqlite"
    d = _SQLITE if sqlite else _POSTGRES
    params: dict[str, Any] = {"ai": AI_AUTHOR, "scope": json.dumps(scope) if sqlite else scope}
    if not sqlite:
        words = _without_stop_words(conn, words)
        if not words:
            return []
    mine = f"m.author != :ai AND m.deleted_at IS NULL AND {d.scope}"
    # One statement: the scope's size, its mean length, and how many of it hold each word.
    counts = ", ".join(
        f"(SELECT count(*) FROM {d.source} WHERE {d.match.replace(':w', f':w{i}')} AND {mine})"
        for i in range(len(words))
    )
    stats = conn.execute(
        text(f"SELECT count(*), avg(length(m.content)), {counts} FROM messages m WHERE {mine}"),
        params | {f"w{i}": d.word(w) for i, w in enumerate(words)},
    ).one()
    total, mean_length = stats[0], stats[1]
    if not total:
        return []
    frequency = {w: int(stats[2 + i]) for i, w in enumerate(words)}
    found: dict[Any, tuple[str, str, int]] = {}  # key -> (message_id, thread_id, length)
    matched: dict[Any, list[str]] = {}
    # The rarest words first: the messages they find are then checked for the common ones too.
    for w in sorted((w for w in words if frequency[w]), key=lambda w: (frequency[w], w)):
        known = list(found)
        among = (
            f" OR {d.key} IN (SELECT value FROM json_each(:known))"
            if sqlite
            else f" OR {d.key} = ANY(:known)"
        )
        sql = (
            f"SELECT {d.key} AS k, m.message_id, m.thread_id, length(m.content) AS n FROM {d.source} "
            f"WHERE {d.match} AND {mine} AND ({d.key} IN (SELECT {d.key} FROM {d.source} WHERE {d.match} "
            f"AND {mine} ORDER BY m.published_at DESC, m.message_id DESC LIMIT :cap){among if known else ''})"
        )
        extra = {"w": d.word(w), "cap": CANDIDATES_MAX}
        if known:
            extra["known"] = json.dumps(known) if sqlite else known
        for r in conn.execute(text(sql), params | extra):
            found[r.k] = (r.message_id, r.thread_id, int(r.n or 0))
            matched.setdefault(r.k, []).append(w)
    mean = max(float(mean_length or 1.0), 1.0)
    idf = {w: math.log(1 + (total - df + 0.5) / (df + 0.5)) for w, df in frequency.items()}

    def score(key: Any) -> float:
        length_norm = 1 - BM25_B + BM25_B * found[key][2] / mean
        return sum(idf[w] * (BM25_K1 + 1) / (1 + BM25_K1 * length_norm) for w in matched[key])

    # Equal scores keep the engine's key order (SQLite: the order of writing), never a random id's.
    ranked = sorted(found, key=lambda k: (-score(k), k))
    return [KeywordHit(found[k][0], found[k][1], score(k)) for k in ranked[: min(limit, MAX_RESULTS)]]


def _without_stop_words(conn: Connection, words: list[str]) -> list[str]:
    """PostgreSQL's english configuration drops stop words ("why", "my"): their query is empty ("T")."""
    lexemes = conn.execute(
        text("SELECT " + ", ".join(f"querytree(to_tsquery('english', :w{i}))" for i in range(len(words)))),
        {f"w{i}": w for i, w in enumerate(words)},
    ).one()
    return [w for w, tree in zip(words, lexemes, strict=True) if tree and tree != "T"]


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
