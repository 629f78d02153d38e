"""What a batch anchors: published messages and thread ownership records, as Merkle leaves.

Leaf encodings are length-prefixed and tagged, so that no message leaf reads as an ownership leaf and no
two different records share bytes:

    message:   b"M" || u8 len || message_id || u8 len || thread_id || content_hash (32)
    ownership: b"O" || u8 len || thread_id  || co_author_set_hash (32) || balance (u64 little-endian)

``co_author_set_hash = sha256("\\n".join(sorted(base58 addresses)))``: the sorted set, so the order
in which co-authors joined does not change it. Ids are UTF-8, at most 255 bytes.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from choir.program import VERSION_MARK

_MESSAGE_TAG: Final = b"M"
_OWNERSHIP_TAG: Final = b"O"
_ID_BYTES_MAX: Final = 255
_HASH_BYTES: Final = 32
_U64_MAX: Final = 2**64 - 1


def _short(text: str, what: str) -> bytes:
    raw = text.encode()
    if not raw or len(raw) > _ID_BYTES_MAX:
        raise ValueError(f"{what} must be 1..{_ID_BYTES_MAX} UTF-8 bytes, got {len(raw)}")
    return bytes((len(raw),)) + raw


def _check_hash(value: bytes, what: str) -> None:
    if len(value) != _HASH_BYTES:
        raise ValueError(f"{what} must be {_HASH_BYTES} bytes, got {len(value)}")


def co_author_set_hash(co_authors: Iterable[str]) -> bytes:
    members = sorted(set(co_authors))
    return hashlib.sha256("\n".join(members).encode()).digest()


def split_record_id(record_id: str) -> tuple[str, int]:
    """(message id, version) of an anchored message record's id (``program.version_record_id``)."""
    base, mark, version = record_id.rpartition(VERSION_MARK)
    if mark and version.isdigit():
        return base, int(version)
    return record_id, 1


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """A published message: its id, its thread and sha256 of its UTF-8 content."""

    message_id: str
    thread_id: str
    content_hash: bytes

    def __post_init__(self) -> None:
        _check_hash(self.content_hash, "content_hash")
        _short(self.message_id, "message_id")
        _short(self.thread_id, "thread_id")

    def leaf(self) -> bytes:
        return (
            _MESSAGE_TAG
            + _short(self.message_id, "message_id")
            + _short(self.thread_id, "thread_id")
            + (self.content_hash)
        )

    def to_json(self) -> dict[str, str]:
        return {
            "message_id": self.message_id,
            "thread_id": self.thread_id,
            "content_hash": self.content_hash.hex(),
        }

    @classmethod
    def from_json(cls, data: dict[str, str]) -> MessageRecord:
        return cls(data["message_id"], data["thread_id"], bytes.fromhex(data["content_hash"]))


@dataclass(frozen=True, slots=True)
class OwnershipRecord:
    """Who owns a thread and what it holds, as of a settlement position."""

    thread_id: str
    co_author_set_hash: bytes
    balance: int

    def __post_init__(self) -> None:
        _check_hash(self.co_author_set_hash, "co_author_set_hash")
        _short(self.thread_id, "thread_id")
        if not 0 <= self.balance <= _U64_MAX:
            raise ValueError(f"balance out of u64 range: {self.balance}")

    @classmethod
    def of(cls, thread_id: str, co_authors: Iterable[str], balance: int) -> OwnershipRecord:
        return cls(thread_id, co_author_set_hash(co_authors), balance)

    def leaf(self) -> bytes:
        return (
            _OWNERSHIP_TAG
            + _short(self.thread_id, "thread_id")
            + self.co_author_set_hash
            + struct.pack("<Q", self.balance)
        )

    def to_json(self) -> dict[str, str | int]:
        return {
            "thread_id": self.thread_id,
            "co_author_set_hash": self.co_author_set_hash.hex(),
            "balance": str(self.balance),
        }

    @classmethod
    def from_json(cls, data: dict[str, str | int]) -> OwnershipRecord:
        return cls(
            str(data["thread_id"]), bytes.fromhex(str(data["co_author_set_hash"])), int(data["balance"])
        )
