"""The embedded engine: a Qdrant edge shard in a directory, optimized out of process.

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

import logging
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import numpy.typing as npt

from choir.store.vectors.generations import (
    _generation_name,
    _generation_number,
    _lock_directory,
    _write_current,
)
from choir.store.vectors.protocol import (
    _ORIGIN_HUMAN,
    DEFAULT_DIM,
    PAYLOAD_INDEXES,
    SCROLL_PAGE_SIZE,
    Hit,
    VectorIndexError,
    VectorPoint,
    Visibility,
    _check_co_authors,
    _check_points,
    _check_search,
    _check_vector,
    _check_visibility,
    point_id,
)

log = logging.getLogger(__name__)

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


# The shard maps its vectors from 32 MB files it grows sparsely: on a filesystem that cannot hold them
# a write into the mapping is a SIGBUS, not an error (measured: a 20 MB data directory kills `choir
# serve` and `choir audit`). So the shard refuses to open with less free than this.
SHARD_FREE_BYTES_MIN: Final = 96 * 1024 * 1024
# The HNSW candidate list of a search. The engine's default found 4 of the 10 nearest at 100k points
# (recall@10 0.42, p50 4.4 ms); 512 finds 8.6 of them in less time (0.86, 2.4 ms): bench/bench_vectors.py.
SEARCH_HNSW_EF: Final = 512


class NoRoomForShard(VectorIndexError):
    """The filesystem of the data directory has too little free space for the embedded shard."""


def _check_room(path: Path) -> None:
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if free < SHARD_FREE_BYTES_MIN:
        raise NoRoomForShard(
            f"the embedded vector index at {path} needs {SHARD_FREE_BYTES_MIN // 2**20} MB free on its "
            f"filesystem and has {free // 2**20} MB: free some space, move CHOIR_DATA_DIR, or use a shared "
            "engine (CHOIR_VECTOR_ENGINE=pgvector or sql)"
        )


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
        _check_room(Path(path))
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
            for key, schema in PAYLOAD_INDEXES.items():
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
            params=qe.SearchParams(hnsw_ef=max(SEARCH_HNSW_EF, limit)),
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
