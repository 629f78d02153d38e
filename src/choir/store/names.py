"""Names that cannot impersonate: the keys under which two display names count as the same.

Two names are the same name when a reader cannot tell them apart: equal after case folding, or
after mapping every character to the prototype of its confusables (Unicode TS #39's skeleton: the
Cyrillic "а" and the Latin "a", "rn" and "m", "l" and "I"). A server holds each key once, so a
newcomer cannot take "аlice" beside "alice", nor "ALICE".

The confusables are Unicode's own table (confusables.txt), as the ``confusable_homoglyphs`` package
ships it: for every character its look-alikes, in both directions. The table's mapping from a
character to its prototype is a function, so its classes are the connected sets of look-alike pairs;
a class's key character is its smallest ASCII letter (else ASCII member, else its smallest), and a
character whose prototype is several characters (``m`` -> ``rn``) maps to those, each keyed in turn. Only equality of
keys matters, and it is the skeleton's."""

from __future__ import annotations

import functools
import hashlib
import json
import unicodedata
from importlib import resources
from typing import Final

# The table wraps right-to-left characters in these marks to print them; they are not part of them.
_DIRECTION_MARKS: Final = str.maketrans("", "", "\u200e\u200f")
# Characters a reader does not see: they never tell two names apart.
_INVISIBLE: Final = frozenset(
    {"\u00ad", "\u034f", "\u180e", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"}
)


def name_keys(name: str) -> tuple[str, str]:
    """The two keys of a name; two names read alike when either key is the same:

    - folded: the skeleton of the case-folded name (``alice``, ``ALICE`` and ``аlice`` with a
      Cyrillic ``а``), and
    - as written: the case-folded skeleton of the name (Greek ``ΑΒΓ`` and ``ABΓ``, whose look-alikes
      are capitals; ``Iron`` and ``lron``, a capital ``I`` and a small ``l``).

    (One key closed under both would join whole alphabets: ``Γ`` reads as Cyrillic ``Г``, whose
    small ``г`` reads as ``r``, so ``r`` would be ``t``.)"""
    return _look(name.casefold()), _look(name).casefold()


def _look(text: str) -> str:
    """The skeleton, with compatibility forms (fullwidth, ligatures) folded too: the table lists
    look-alikes but not a fullwidth ``ｍ``, which NFKC makes an ``m`` (after a first skeleton, so that
    a look-alike NFKC would take apart first, as ``´``, still meets its twin)."""
    return _skeleton(unicodedata.normalize("NFKC", _skeleton(text)))


def name_digests(name: str) -> tuple[str, str]:
    """What the store keeps unique (``users.name_key``, ``users.look_key``): each key's SHA-256,
    hex (a key can be many times its name's length, longer than an index entry may be)."""
    folded, written = name_keys(name)
    return _digest(folded), _digest(written)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def same_name(a: str, b: str) -> bool:
    """Exactly the same name but for case (what a mention must match: not a look-alike)."""
    return unicodedata.normalize("NFC", a).casefold() == unicodedata.normalize("NFC", b).casefold()


def _skeleton(text: str) -> str:
    table = _table()
    out: list[str] = []
    for ch in unicodedata.normalize("NFD", text):
        if ch in _INVISIBLE:
            continue
        out.append(table.get(ch, ch))
    return unicodedata.normalize("NFD", "".join(out))


@functools.cache
def _table() -> dict[str, str]:
    """Each character that has look-alikes -> its key string."""
    raw: dict[str, list[dict[str, str]]] = json.loads(
        resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text(encoding="utf-8")
    )
    parent: dict[str, str] = {}

    def find(ch: str) -> str:
        root = ch
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(ch, ch) != root:  # path compression
            parent[ch], ch = root, parent[ch]
        return root

    def union(a: str, b: str) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb, key=_rank)] = min(ra, rb, key=_rank)

    several: dict[str, str] = {}
    for key, entries in raw.items():
        source = key.translate(_DIRECTION_MARKS)
        for entry in entries:
            other = entry["c"].translate(_DIRECTION_MARKS)
            if not source or not other:
                continue
            if len(source) == 1 and len(other) == 1:
                union(source, other)
            elif len(source) == 1:
                several[source] = other  # a single character whose prototype is several
            elif len(other) == 1:
                several[other] = source
    table = {ch: find(ch) for ch in parent}
    for ch, prototype in several.items():
        if ch not in parent:
            table[ch] = "".join(find(c) if c in parent else c for c in prototype)
    return {ch: key for ch, key in table.items() if key != ch}


def _rank(ch: str) -> tuple[bool, bool, int]:
    """The key character of a class: ASCII first, letters before digits and signs (so that case
    folding applies to it: ``0`` keys as ``O``, then ``o``), then the smallest code point."""
    return (not ch.isascii(), not ch.isalpha(), ord(ch))
