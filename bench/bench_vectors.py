"""Vector search engines side by side, in one run, on the same points and queries:

    exact      numpy: one matrix product over every point (the anchor: what any engine must match)
    edge       the embedded Qdrant edge shard (HNSW once optimized), `choir serve`'s default
    sql        the shared SQL engine: the table in SQLite, searched exactly in this process's replica
    pgvector   pgvector's HNSW in PostgreSQL (only with --pgvector-url: the build installable on this
               project's machines dies with SIGILL at 384 dimensions on their CPUs)

For each engine and size: search p50 / p99 (ms, public human points, limit 10) and recall@10 against
exact. Points are MiniLM-sized (384), drawn around 200 topics so that neighbours are meaningful.

    python -m bench vectors [--quick] [--sizes 10000,100000] [--queries 200] [--pgvector-url URL]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from choir.store.sql import Store
from choir.store.vectors import EdgeVectorIndex, SqlVectorIndex, VectorIndex, VectorPoint

DIM = 384
LIMIT = 10


def points(n: int, rng: np.random.Generator) -> np.ndarray:
    topics = rng.standard_normal((200, DIM)).astype(np.float32)
    vectors = topics[rng.integers(0, len(topics), n)] + 0.6 * rng.standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def as_points(vectors: np.ndarray) -> list[VectorPoint]:
    return [
        VectorPoint(f"m{i:07d}", f"t{i % 500}", v, "public", False, f"h{i}", f"a{i % 97}", (f"a{i % 97}",))
        for i, v in enumerate(vectors)
    ]


def timed(
    search: Callable[[np.ndarray], list[str]], queries: np.ndarray
) -> tuple[list[list[str]], list[float]]:
    found, times = [], []
    for q in queries:
        start = time.perf_counter()
        found.append(search(q))
        times.append((time.perf_counter() - start) * 1000)
    return found, times


def row(name: str, n: int, times: list[float], found: list[list[str]], truth: list[list[str]]) -> str:
    ordered = sorted(times)
    p50, p99 = ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    recall = np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    return f"| {name:<9} | {n:>7} | {p50:>8.2f} | {p99:>8.2f} | {recall:>9.3f} |"


def engine_search(index: VectorIndex) -> Callable[[np.ndarray], list[str]]:
    return lambda q: [h.message_id for h in index.search(q, LIMIT)]


def run_size(n: int, queries_n: int, pgvector_url: str | None, rng: np.random.Generator) -> list[str]:
    vectors = points(n, rng)
    queries = points(queries_n, rng)
    ids = [f"m{i:07d}" for i in range(n)]
    lines = []

    def exact(q: np.ndarray) -> list[str]:
        scores = vectors @ q
        top = np.argpartition(-scores, LIMIT)[:LIMIT]
        return [ids[i] for i in sorted(top, key=lambda i: (-scores[i], ids[i]))]

    truth, times = timed(exact, queries)
    lines.append(row("exact", n, times, truth, truth))
    batch = as_points(vectors)
    with tempfile.TemporaryDirectory(prefix="choir-vectors-") as tmp:
        edge = EdgeVectorIndex(Path(tmp) / "edge", DIM, background_optimize=False)
        for start in range(0, n, 1000):
            edge.upsert(batch[start : start + 1000])
        edge.optimize()
        found, times = timed(engine_search(edge), queries)
        lines.append(row("edge", n, times, found, truth))
        edge.close()
        store = Store(f"sqlite:///{Path(tmp) / 'choir.db'}")
        store.migrate()
        sql = SqlVectorIndex(store.engine, DIM)
        for start in range(0, n, 1000):
            sql.upsert(batch[start : start + 1000])
        found, times = timed(engine_search(sql), queries)
        lines.append(row("sql", n, times, found, truth))
        sql.close()
        store.close()
    if pgvector_url:
        from choir.store.vectors.pgvector import PgvectorIndex

        pg = PgvectorIndex(pgvector_url, DIM)
        pg.delete([p.message_id for p in pg.scroll_all()])
        for start in range(0, n, 1000):
            pg.upsert(batch[start : start + 1000])
        found, times = timed(engine_search(pg), queries)
        lines.append(row("pgvector", n, times, found, truth))
        pg.close()
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench vectors", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2,000 and 10,000 points, 50 queries")
    parser.add_argument("--sizes", default=None, help="comma-separated point counts (default 10000,100000)")
    parser.add_argument("--queries", type=int, default=None, help="queries per engine (default 200)")
    parser.add_argument("--pgvector-url", default=None, help="a PostgreSQL with pgvector to measure too")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        sizes = [int(s) for s in (args.sizes or ("2000,10000" if args.quick else "10000,100000")).split(",")]
    except ValueError:
        parser.error("--sizes takes comma-separated integers")
    queries = args.queries or (50 if args.quick else 200)
    if any(s <= LIMIT for s in sizes) or queries < 1:
        parser.error(f"every size must exceed {LIMIT} and --queries be >= 1")
    rng = np.random.default_rng(args.seed)
    print(
        "| engine    |  points |  p50_ms  |  p99_ms  | recall@10 |\n"
        "|-----------|---------|----------|----------|-----------|",
        flush=True,
    )
    for n in sizes:
        for line in run_size(n, queries, args.pgvector_url, rng):
            print(line, flush=True)


if __name__ == "__main__":
    main()
