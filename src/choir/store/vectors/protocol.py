"""The vector index's contract: points, hits, the `VectorIndex` protocol, the checks every engine
applies to its input, and `AsyncVectorIndex`, which runs any engine off the event loop."""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar, get_args, runtime_checkable

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

Visibility = Literal["public", "private"]
_VISIBILITIES: tuple[str, ...] = get_args(Visibility)
# Stored as a keyword rather than a bool: qdrant-edge-py 0.9 turns MatchValue(False) into the integer 0,
# which matches no bool, so a bool filter would silently drop every point (or, negated, keep every AI answer).
_ORIGIN_AI, _ORIGIN_HUMAN = "ai", "human"
_POINT_NAMESPACE = uuid.UUID("6f1c2a8e-2f0b-5d5e-9d1c-63686f697221")

SEARCH_LIMIT_MAX = 1000  # the Chorus asks for 20; a bound keeps a bad caller from scanning the index
SCROLL_PAGE_SIZE = 256
DEFAULT_DIM = 384
# Payload fields filtered on in every search: indexed by both engines.
PAYLOAD_INDEXES = {"thread_id": "Keyword", "visibility": "Keyword", "origin": "Keyword"}

FloatArray = npt.NDArray[np.float32]
T = TypeVar("T")


class VectorIndexError(RuntimeError):
    """The index cannot do what was asked: closed, owned by another process, or misconfigured."""


def point_id(message_id: str) -> str:
    """The index key of a message: Qdrant ids must be integers or UUIDs, message ids are free strings."""
    return str(uuid.uuid5(_POINT_NAMESPACE, message_id))


@dataclass(frozen=True)
class VectorPoint:
    """One published message as the index holds it."""

    message_id: str
    thread_id: str
    vector: FloatArray
    visibility: Visibility
    is_ai: bool
    content_hash: str
    author: str
    co_authors: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name in ("message_id", "thread_id", "content_hash", "author"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"VectorPoint.{name} must be a non-empty str, got {value!r}")
        if self.visibility not in _VISIBILITIES:
            raise ValueError(f"visibility must be one of {_VISIBILITIES}, got {self.visibility!r}")
        if not isinstance(self.is_ai, bool):
            raise ValueError(f"is_ai must be a bool, got {self.is_ai!r}")
        object.__setattr__(self, "co_authors", tuple(_check_co_authors(self.co_authors)))
        object.__setattr__(self, "vector", np.asarray(self.vector, dtype=np.float32))

    def payload(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "thread_id": self.thread_id,
            "visibility": self.visibility,
            "origin": _ORIGIN_AI if self.is_ai else _ORIGIN_HUMAN,
            "content_hash": self.content_hash,
            "author": self.author,
            "co_authors": list(self.co_authors),
        }

    @classmethod
    def from_payload(cls, payload: dict[str, Any], vector: Sequence[float]) -> VectorPoint:
        return cls(
            message_id=payload["message_id"],
            thread_id=payload["thread_id"],
            vector=np.asarray(vector, dtype=np.float32),
            visibility=payload["visibility"],
            is_ai=payload["origin"] == _ORIGIN_AI,
            content_hash=payload["content_hash"],
            author=payload["author"],
            co_authors=tuple(payload.get("co_authors", ())),
        )


@dataclass(frozen=True)
class Hit:
    """A search result: `score` is the cosine similarity to the query, in [-1, 1]."""

    message_id: str
    thread_id: str
    score: float
    content_hash: str
    author: str

    @classmethod
    def from_payload(cls, payload: dict[str, Any], score: float) -> Hit:
        return cls(
            payload["message_id"],
            payload["thread_id"],
            float(score),
            payload["content_hash"],
            payload["author"],
        )


@runtime_checkable
class VectorIndex(Protocol):
    """Blocking calls; from async code use `AsyncVectorIndex` (or `asyncio.to_thread`)."""

    @property
    def dim(self) -> int: ...

    def upsert(self, points: Sequence[VectorPoint]) -> None:
        """Insert or replace points by message id; searchable when this returns."""
        ...

    def search(
        self,
        vector: npt.ArrayLike,
        limit: int,
        score_threshold: float | None = None,
        *,
        public_only: bool = True,
        exclude_ai: bool = True,
    ) -> list[Hit]:
        """The `limit` most similar points with score ≥ `score_threshold`, best first."""
        ...

    def delete(self, message_ids: Sequence[str]) -> None: ...

    def get(self, message_id: str) -> VectorPoint | None: ...

    def scroll_all(self) -> Iterator[VectorPoint]:
        """Every point, in pages (for the audit that compares the index with the SQL store)."""
        ...

    def count(self) -> int: ...

    def set_thread_meta(self, thread_id: str, co_authors: Sequence[str], visibility: Visibility) -> None:
        """Rewrite the thread metadata carried by every point of that thread."""
        ...

    def optimize(self) -> None:
        """Build the search index now; may take long, never needed for correctness."""
        ...

    def close(self) -> None: ...


def _check_co_authors(co_authors: Sequence[str]) -> list[str]:
    if isinstance(co_authors, str):
        raise ValueError("co_authors must be a sequence of addresses, not a single str")
    out = list(co_authors)
    if not all(isinstance(a, str) and a for a in out):
        raise ValueError(f"co_authors must be non-empty strs, got {out!r}")
    return out


def _check_visibility(visibility: str) -> None:
    if visibility not in _VISIBILITIES:
        raise ValueError(f"visibility must be one of {_VISIBILITIES}, got {visibility!r}")


def _check_vector(vector: npt.ArrayLike, dim: int) -> list[float]:
    array = np.asarray(vector, dtype=np.float32)
    if array.shape != (dim,):
        raise ValueError(f"vector must have shape ({dim},), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("vector has NaN or infinite components")
    if float(np.linalg.norm(array)) == 0.0:
        raise ValueError("vector is zero: cosine similarity is undefined for it")
    return [float(x) for x in array]


def _check_search(limit: int, score_threshold: float | None) -> None:
    if not 1 <= limit <= SEARCH_LIMIT_MAX:
        raise ValueError(f"limit must be in [1, {SEARCH_LIMIT_MAX}], got {limit}")
    if score_threshold is not None and not math.isfinite(score_threshold):
        raise ValueError(f"score_threshold must be finite, got {score_threshold}")


def _check_points(points: Sequence[VectorPoint], dim: int) -> list[tuple[str, list[float], dict[str, Any]]]:
    """Validate a whole batch before writing any of it: a bad point must not leave half a batch applied."""
    rows = []
    for point in points:
        if not isinstance(point, VectorPoint):
            raise TypeError(f"expected VectorPoint, got {type(point).__name__}")
        rows.append((point_id(point.message_id), _check_vector(point.vector, dim), point.payload()))
    return rows


# --- asyncio ----------------------------------------------------------------------------------------------


class AsyncVectorIndex:
    """An index for coroutines: each call runs in a worker thread so the event loop never waits on it."""

    def __init__(self, index: VectorIndex) -> None:
        self.sync = index

    @property
    def dim(self) -> int:
        return self.sync.dim

    async def upsert(self, points: Sequence[VectorPoint]) -> None:
        await asyncio.to_thread(self.sync.upsert, points)

    async def search(
        self,
        vector: npt.ArrayLike,
        limit: int,
        score_threshold: float | None = None,
        *,
        public_only: bool = True,
        exclude_ai: bool = True,
    ) -> list[Hit]:
        return await asyncio.to_thread(
            self.sync.search, vector, limit, score_threshold, public_only=public_only, exclude_ai=exclude_ai
        )

    async def delete(self, message_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.sync.delete, message_ids)

    async def get(self, message_id: str) -> VectorPoint | None:
        return await asyncio.to_thread(self.sync.get, message_id)

    async def scroll_all(self) -> AsyncIterator[VectorPoint]:
        points = self.sync.scroll_all()
        while page := await asyncio.to_thread(_take, points, SCROLL_PAGE_SIZE):
            for point in page:
                yield point

    async def count(self) -> int:
        return await asyncio.to_thread(self.sync.count)

    async def set_thread_meta(
        self, thread_id: str, co_authors: Sequence[str], visibility: Visibility
    ) -> None:
        await asyncio.to_thread(self.sync.set_thread_meta, thread_id, co_authors, visibility)

    async def optimize(self) -> None:
        await asyncio.to_thread(self.sync.optimize)

    async def close(self) -> None:
        await asyncio.to_thread(self.sync.close)


def _take(items: Iterator[T], n: int) -> list[T]:
    out = []
    for item in items:
        out.append(item)
        if len(out) == n:
            break
    return out
