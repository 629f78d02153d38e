"""The vector index of published messages: the `VectorIndex` protocol and its two engines.

Engines:
    EdgeVectorIndex     an embedded Qdrant edge shard in a directory (the `choir serve` default)
    QdrantServerIndex   a Qdrant server through qdrant-client (`CHOIR_QDRANT_URL`)
    AsyncVectorIndex    wraps either for asyncio: every call runs in a worker thread

Each point is one message, keyed by a UUID derived from its `message_id`, with the payload the Chorus and the
audit need: thread, visibility, whether an AI wrote it, content hash, author and the thread's co-authors.
A search is public-only and human-only unless asked otherwise, so a caller cannot leak a private message or
cite an AI answer as a prior by forgetting a flag.

How the edge shard stays searchable while it is optimized (measured on qdrant-edge-py 0.9):
- a point is searchable as soon as `update` returns: the shard's appendable segment is searched exactly,
  without an index; only its speed degrades as that un-indexed tail grows (~65 ms at 100k points);
- `EdgeShard.optimize()` (building HNSW) holds the GIL for its whole run (~90 s for 100k points on 2 cores),
  so calling it in a thread would freeze the event loop, and every other thread, for that long.
So the index is never optimized in this process. A cycle copies the flushed shard to a new generation
directory, optimizes the copy in a child process, loads it, replays the updates made meanwhile (a bounded
journal), and swaps it in; the live shard keeps serving reads and writes throughout, and a published
message stays searchable at once. Cycles start in a background thread every `optimize_every_points`
upserts, or synchronously with `optimize()`. `CURRENT` names the live generation, so a crash at any step
leaves a consistent shard. One process owns a directory (an exclusive lock on `LOCK`).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import math
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Protocol, TypeVar, get_args, runtime_checkable

import numpy as np
import numpy.typing as npt

__all__ = [
    "AsyncVectorIndex",
    "EdgeVectorIndex",
    "Hit",
    "QdrantServerIndex",
    "VectorIndex",
    "VectorIndexError",
    "VectorPoint",
    "Visibility",
    "point_id",
]

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


# --- embedded: Qdrant edge shard ------------------------------------------------------------------------

# Runs in a child process: EdgeShard.optimize() holds the GIL, so only another process can run it without
# stalling the server. Niced because the server keeps answering on the same cores meanwhile.
_OPTIMIZER_SCRIPT = """
import ctypes, os, signal, sys
ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: never outlive the server that started it
import qdrant_edge
os.nice(10)
shard = qdrant_edge.EdgeShard.load(sys.argv[1])
shard.optimize()
shard.flush()
shard.close()
"""
# Updates made while a copy is optimized are replayed onto it; past this many the cycle is abandoned
# rather than holding an unbounded backlog in memory (the live shard still has every update).
JOURNAL_OPS_MAX = 100_000
# Un-indexed points are searched exactly; past ~4 MB of vectors (~2,700 at 384-d) a segment gets HNSW.
DEFAULT_INDEXING_THRESHOLD_KB = 4096
DEFAULT_OPTIMIZE_EVERY_POINTS = 5000
OPTIMIZER_TIMEOUT_S = 3600.0
_PAYLOAD_INDEXES = {"thread_id": "Keyword", "visibility": "Keyword", "origin": "Keyword"}


class EdgeVectorIndex:
    """An embedded Qdrant edge shard under `path`, optimized out of process (see the module docstring)."""

    def __init__(
        self,
        path: str | Path,
        dim: int = DEFAULT_DIM,
        *,
        optimize_every_points: int = DEFAULT_OPTIMIZE_EVERY_POINTS,
        background_optimize: bool = True,
        indexing_threshold_kb: int = DEFAULT_INDEXING_THRESHOLD_KB,
        optimizer_timeout_s: float = OPTIMIZER_TIMEOUT_S,
    ) -> None:
        import qdrant_edge as qe

        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        if optimize_every_points < 1:
            raise ValueError(f"optimize_every_points must be >= 1, got {optimize_every_points}")
        self._qe = qe
        self._dim = dim
        self._every = optimize_every_points
        self._background = background_optimize
        self._optimizer_timeout_s = optimizer_timeout_s
        self._config = qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=dim, distance=qe.Distance.Cosine),
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=indexing_threshold_kb),
        )
        self._root = Path(path)
        self._root.mkdir(parents=True, exist_ok=True)
        self._lock_file = _lock_directory(self._root)
        # _lock guards the live shard (every call into it, and the swap); _write_lock orders writes with
        # the copy and the journal; _cycle_lock runs one optimization cycle at a time.
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._cycle_lock = threading.Lock()
        self._journal: list[Any] | None = None
        self._journal_overflowed = False
        self._cycle_thread: threading.Thread | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._closed = False
        self.last_optimize_error: BaseException | None = None
        try:
            self._gen_dir, self._shard = self._open_current()
            info = self._shard.info()
            self._unoptimized_points: int = max(0, int(info.points_count) - int(info.indexed_vectors_count))
        except BaseException:
            self._lock_file.close()
            raise

    # -- opening ----------------------------------------------------------------------------------------

    def _open_current(self) -> tuple[Path, Any]:
        current = self._root / "CURRENT"
        if current.exists():
            gen_dir = self._root / current.read_text().strip()
            try:
                shard = self._qe.EdgeShard.load(str(gen_dir), self._config)
            except Exception as exc:
                raise VectorIndexError(f"cannot open the vector shard {gen_dir}: {exc}") from exc
        else:
            gen_dir = self._root / _generation_name(1)
            shutil.rmtree(gen_dir, ignore_errors=True)  # a crash between create and CURRENT
            shard = self._qe.EdgeShard.create(str(gen_dir), self._config)
            for key, schema in _PAYLOAD_INDEXES.items():
                shard.update(
                    self._qe.UpdateOperation.create_field_index(
                        key, getattr(self._qe.PayloadSchemaType, schema)
                    )
                )
            shard.flush()
            _write_current(self._root, gen_dir.name)
        # Generations other than the live one are leftovers of an interrupted cycle.
        for stale in self._root.glob("gen-*"):
            if stale != gen_dir:
                shutil.rmtree(stale, ignore_errors=True)
        return gen_dir, shard

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def path(self) -> Path:
        return self._root

    def _live(self) -> Any:
        if self._closed:
            raise VectorIndexError("the vector index is closed")
        return self._shard

    # -- writes -----------------------------------------------------------------------------------------

    def _apply(self, operation: Any) -> None:
        with self._write_lock:
            with self._lock:
                self._live().update(operation)
            if self._journal is not None:
                if len(self._journal) >= JOURNAL_OPS_MAX:
                    self._journal_overflowed = True
                    self._journal = None
                else:
                    self._journal.append(operation)

    def upsert(self, points: Sequence[VectorPoint]) -> None:
        rows = _check_points(points, self._dim)
        if not rows:
            return
        qe = self._qe
        self._apply(
            qe.UpdateOperation.upsert_points([qe.Point(pid, vec, payload) for pid, vec, payload in rows])
        )
        with self._write_lock:
            self._unoptimized_points += len(rows)
            due = self._background and self._unoptimized_points >= self._every
            if due and not self._closed and (self._cycle_thread is None or not self._cycle_thread.is_alive()):
                self._cycle_thread = threading.Thread(
                    target=self._background_cycle, name="edge-vector-optimizer", daemon=True
                )
                self._cycle_thread.start()

    def delete(self, message_ids: Sequence[str]) -> None:
        ids: list[int | uuid.UUID | str] = [point_id(m) for m in message_ids]
        if ids:
            self._apply(self._qe.UpdateOperation.delete_points(ids))

    def set_thread_meta(self, thread_id: str, co_authors: Sequence[str], visibility: Visibility) -> None:
        _check_visibility(visibility)
        payload = {"co_authors": _check_co_authors(co_authors), "visibility": visibility}
        self._apply(
            self._qe.UpdateOperation.set_payload_by_filter(self._match("thread_id", thread_id), payload)
        )

    # -- reads ------------------------------------------------------------------------------------------

    def _match(self, key: str, value: str) -> Any:
        qe = self._qe
        return qe.Filter(must=[qe.FieldCondition(key, match=qe.MatchValue(value))])

    def search(
        self,
        vector: npt.ArrayLike,
        limit: int,
        score_threshold: float | None = None,
        *,
        public_only: bool = True,
        exclude_ai: bool = True,
    ) -> list[Hit]:
        _check_search(limit, score_threshold)
        qe = self._qe
        must = []
        if public_only:
            must.append(qe.FieldCondition("visibility", match=qe.MatchValue("public")))
        if exclude_ai:
            must.append(qe.FieldCondition("origin", match=qe.MatchValue(_ORIGIN_HUMAN)))
        request = qe.QueryRequest(
            limit=limit,
            query=qe.Query.Nearest(_check_vector(vector, self._dim)),
            filter=qe.Filter(must=must) if must else None,
            score_threshold=score_threshold,
            with_payload=True,
        )
        with self._lock:
            found = self._live().query(request)
        return [Hit.from_payload(p.payload, p.score) for p in found]

    def get(self, message_id: str) -> VectorPoint | None:
        with self._lock:
            records = self._live().retrieve([point_id(message_id)], True, True)
        return VectorPoint.from_payload(records[0].payload, records[0].vector) if records else None

    def scroll_all(self) -> Iterator[VectorPoint]:
        qe = self._qe
        offset = None
        while True:
            request = qe.ScrollRequest(
                offset=offset, limit=SCROLL_PAGE_SIZE, with_payload=True, with_vector=True
            )
            with self._lock:
                records, offset = self._live().scroll(request)
            for record in records:
                yield VectorPoint.from_payload(record.payload, record.vector)
            if offset is None:
                return

    def count(self) -> int:
        with self._lock:
            return int(self._live().count(self._qe.CountRequest(exact=True)))

    def indexed_vectors_count(self) -> int:
        """How many vectors an HNSW index covers (the rest are searched exactly)."""
        with self._lock:
            return int(self._live().info().indexed_vectors_count)

    # -- optimization -----------------------------------------------------------------------------------

    def optimize(self) -> None:
        """Run one optimization cycle now (after any running one); blocks this thread, not the process."""
        self._cycle()

    def wait_for_background_optimize(self, timeout_s: float) -> bool:
        """Wait for a running background cycle; False if it is still running after `timeout_s`."""
        thread = self._cycle_thread
        if thread is not None:
            thread.join(timeout_s)
            return not thread.is_alive()
        return True

    def _background_cycle(self) -> None:
        try:
            self._cycle()
            self.last_optimize_error = None
        except Exception as exc:  # a failed cycle costs speed only; the live shard is untouched
            self.last_optimize_error = exc
            if not self._closed:
                log.exception("vector index optimization failed; the live shard keeps serving")

    def _cycle(self) -> None:
        with self._cycle_lock:
            # Only a cycle (this one, under _cycle_lock) moves the live generation, so the name is stable.
            new_dir = self._root / _generation_name(_generation_number(self._gen_dir) + 1)
            try:
                copied_points = self._copy_live(new_dir)
                self._optimize_copy(new_dir)
                new_shard = self._qe.EdgeShard.load(str(new_dir), self._config)
            except BaseException:
                with self._write_lock:
                    self._journal = None
                shutil.rmtree(new_dir, ignore_errors=True)
                raise
            old_dir = self._swap(new_shard, new_dir, copied_points)
            if old_dir is not None:
                shutil.rmtree(old_dir, ignore_errors=True)

    def _copy_live(self, new_dir: Path) -> int:
        """Copy the live shard to `new_dir`; return the un-optimized point count the copy holds."""
        # Writers wait during the copy (reads go on) so the copy is one consistent state; the journal
        # starts at that same instant.
        with self._write_lock:
            with self._lock:
                shard = self._live()
                shard.flush()
            shutil.rmtree(new_dir, ignore_errors=True)
            shutil.copytree(self._gen_dir, new_dir)
            self._journal = []
            self._journal_overflowed = False
            return self._unoptimized_points

    def _optimize_copy(self, new_dir: Path) -> None:
        with self._write_lock:
            if self._closed:
                raise VectorIndexError("the vector index was closed during optimization")
            self._child = subprocess.Popen(
                [sys.executable, "-c", _OPTIMIZER_SCRIPT, str(new_dir)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
        child = self._child
        try:
            _, stderr = child.communicate(timeout=self._optimizer_timeout_s)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            raise VectorIndexError(f"optimizer exceeded {self._optimizer_timeout_s} s") from None
        finally:
            self._child = None
        if child.returncode != 0:
            raise VectorIndexError(
                f"optimizer exited {child.returncode}: {stderr.decode(errors='replace')[-2000:]}"
            )

    def _swap(self, new_shard: Any, new_dir: Path, copied_points: int) -> Path | None:
        with self._write_lock:
            journal, self._journal = self._journal, None
            if self._closed or journal is None:
                new_shard.close()
                shutil.rmtree(new_dir, ignore_errors=True)
                if self._journal_overflowed:
                    raise VectorIndexError(f"more than {JOURNAL_OPS_MAX} updates during optimization")
                raise VectorIndexError("the vector index was closed during optimization")
            for operation in journal:
                new_shard.update(operation)
            new_shard.flush()
            # CURRENT moves before the live shard does, and no write lands in between (write lock held):
            # after a crash here the new generation is complete.
            _write_current(self._root, new_dir.name)
            with self._lock:
                old_shard, old_dir = self._shard, self._gen_dir
                self._shard, self._gen_dir = new_shard, new_dir
            self._unoptimized_points = max(0, self._unoptimized_points - copied_points)
        old_shard.close()
        return old_dir

    def close(self) -> None:
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            child = self._child
        if child is not None and child.poll() is None:
            child.terminate()  # our own optimizer child; its copy is discarded
        if self._cycle_thread is not None:
            self._cycle_thread.join(timeout=60)
        with self._write_lock, self._lock:
            self._shard.flush()
            self._shard.close()
        self._lock_file.close()

    def __enter__(self) -> EdgeVectorIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _generation_name(number: int) -> str:
    return f"gen-{number:06d}"


def _generation_number(gen_dir: Path) -> int:
    return int(gen_dir.name.removeprefix("gen-"))


def _write_current(root: Path, name: str) -> None:
    tmp = root / "CURRENT.tmp"
    with open(tmp, "w") as f:
        f.write(name)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, root / "CURRENT")
    dir_fd = os.open(root, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _lock_directory(root: Path) -> IO[str]:
    lock_file = open(root / "LOCK", "a")  # noqa: SIM115 - held open for the index's lifetime
    try:
        fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.close()
        raise VectorIndexError(f"{root} is already open (one process owns a vector shard)") from None
    return lock_file


# --- distributed: Qdrant server -------------------------------------------------------------------------


class QdrantServerIndex:
    """A collection on a Qdrant server (or qdrant-client's local mode, which runs the same client code)."""

    def __init__(self, client: Any, collection: str = "choir_messages", dim: int = DEFAULT_DIM) -> None:
        from qdrant_client import models

        self._client = client
        self._models = models
        self._collection = collection
        self._dim = dim
        self._closed = False
        self._ensure_collection()

    @classmethod
    def connect(
        cls,
        url: str,
        *,
        api_key: str | None = None,
        collection: str = "choir_messages",
        dim: int = DEFAULT_DIM,
        timeout_s: float = 10.0,
    ) -> QdrantServerIndex:
        """`url` is `CHOIR_QDRANT_URL`; ":memory:" gives qdrant-client's in-process mode."""
        from qdrant_client import QdrantClient

        return cls(QdrantClient(location=url, api_key=api_key, timeout=int(timeout_s)), collection, dim)

    def _ensure_collection(self) -> None:
        import warnings

        m = self._models
        if self._client.collection_exists(self._collection):
            params = self._client.get_collection(self._collection).config.params.vectors
            if getattr(params, "size", None) != self._dim:
                raise VectorIndexError(
                    f"collection {self._collection!r} holds vectors of size {getattr(params, 'size', '?')}, "
                    f"not {self._dim}"
                )
            return
        self._client.create_collection(
            self._collection, vectors_config=m.VectorParams(size=self._dim, distance=m.Distance.COSINE)
        )
        with warnings.catch_warnings():
            # Local mode warns that payload indexes do nothing there; a server uses them.
            warnings.filterwarnings("ignore", message="Payload indexes have no effect")
            for key in _PAYLOAD_INDEXES:
                self._client.create_payload_index(self._collection, key, m.PayloadSchemaType.KEYWORD)

    @property
    def dim(self) -> int:
        return self._dim

    def _live(self) -> Any:
        if self._closed:
            raise VectorIndexError("the vector index is closed")
        return self._client

    def _match(self, key: str, value: str) -> Any:
        m = self._models
        return m.FieldCondition(key=key, match=m.MatchValue(value=value))

    def upsert(self, points: Sequence[VectorPoint]) -> None:
        rows = _check_points(points, self._dim)
        if rows:
            structs = [self._models.PointStruct(id=pid, vector=vec, payload=pay) for pid, vec, pay in rows]
            # wait=True: the point must be searchable when this returns, like the edge index.
            self._live().upsert(self._collection, points=structs, wait=True)

    def search(
        self,
        vector: npt.ArrayLike,
        limit: int,
        score_threshold: float | None = None,
        *,
        public_only: bool = True,
        exclude_ai: bool = True,
    ) -> list[Hit]:
        _check_search(limit, score_threshold)
        must = []
        if public_only:
            must.append(self._match("visibility", "public"))
        if exclude_ai:
            must.append(self._match("origin", _ORIGIN_HUMAN))
        response = self._live().query_points(
            self._collection,
            query=_check_vector(vector, self._dim),
            limit=limit,
            score_threshold=score_threshold,
            query_filter=self._models.Filter(must=must) if must else None,
            with_payload=True,
        )
        return [Hit.from_payload(p.payload, p.score) for p in response.points]

    def delete(self, message_ids: Sequence[str]) -> None:
        ids = [point_id(m) for m in message_ids]
        if ids:
            selector = self._models.PointIdsList(points=ids)
            self._live().delete(self._collection, points_selector=selector, wait=True)

    def get(self, message_id: str) -> VectorPoint | None:
        records = self._live().retrieve(
            self._collection, ids=[point_id(message_id)], with_payload=True, with_vectors=True
        )
        return VectorPoint.from_payload(records[0].payload, records[0].vector) if records else None

    def scroll_all(self) -> Iterator[VectorPoint]:
        offset = None
        while True:
            records, offset = self._live().scroll(
                self._collection, limit=SCROLL_PAGE_SIZE, offset=offset, with_payload=True, with_vectors=True
            )
            for record in records:
                yield VectorPoint.from_payload(record.payload, record.vector)
            if offset is None:
                return

    def count(self) -> int:
        return int(self._live().count(self._collection, exact=True).count)

    def set_thread_meta(self, thread_id: str, co_authors: Sequence[str], visibility: Visibility) -> None:
        _check_visibility(visibility)
        payload = {"co_authors": _check_co_authors(co_authors), "visibility": visibility}
        selector = self._models.Filter(must=[self._match("thread_id", thread_id)])
        self._live().set_payload(self._collection, payload=payload, points=selector, wait=True)

    def optimize(self) -> None:
        """Nothing to do: a Qdrant server indexes in the background, and points are searchable meanwhile."""
        self._live()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._client.close()
