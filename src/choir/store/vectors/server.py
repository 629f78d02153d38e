"""The distributed engine: a collection on a Qdrant server through qdrant-client (`CHOIR_QDRANT_URL`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy.typing as npt

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
            for key in PAYLOAD_INDEXES:
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
