"""The vector index of published messages: the `VectorIndex` protocol and its three engines.

    protocol.py     VectorPoint, Hit, the VectorIndex protocol, AsyncVectorIndex (any engine, off the loop)
    edge.py         EdgeVectorIndex: an embedded Qdrant edge shard in a directory (the `choir serve` default)
    generations.py  the edge shard's generation directories, CURRENT pointer and owner lock
    server.py       QdrantServerIndex: a Qdrant server through qdrant-client (`CHOIR_QDRANT_URL`)
    sql.py          SqlVectorIndex: points in Choir's own SQL database, shared by every process
                    (`CHOIR_VECTOR_ENGINE=sql`), searched exactly in a per-process replica

Each point is one message, keyed by a UUID derived from its `message_id`, with the payload the Chorus and
the audit need. A search is public-only and human-only unless asked otherwise, so a caller cannot leak a
private message or cite an AI answer as a prior by forgetting a flag.
"""

from choir.store.vectors.edge import EdgeVectorIndex
from choir.store.vectors.protocol import (
    AsyncVectorIndex,
    Hit,
    VectorIndex,
    VectorIndexError,
    VectorPoint,
    Visibility,
    point_id,
)
from choir.store.vectors.server import QdrantServerIndex
from choir.store.vectors.sql import SqlVectorIndex

__all__ = [
    "AsyncVectorIndex",
    "EdgeVectorIndex",
    "Hit",
    "QdrantServerIndex",
    "SqlVectorIndex",
    "VectorIndex",
    "VectorIndexError",
    "VectorPoint",
    "Visibility",
    "point_id",
]
