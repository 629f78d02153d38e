"""Chorus building blocks: MiniLM embedding throughput, edge vector search latency, and hybrid search.

    python -m bench chorus            # full: search at 10k and 100k points (~6 min on 2 cores)
    python -m bench chorus --quick    # 10k points only, fewer repetitions

Embedding, in the same run: the numpy encoder (the fallback), onnxruntime on one intra-op thread (the
default), and onnxruntime with int8 weights (with its cosine to the float model on the same texts).
Hybrid search is `chorus.retrieval.Retriever` on a real SQLite store (FTS5) of that many messages
(synthetic sentences over a 2,000-word vocabulary, random unit vectors in an optimized edge index):
hybrid (keywords and vectors, fused) against vector only, each query embedded as the server does.

Search uses what the Chorus asks (top 20, score >= 0.2, public and human only) over synthetic unit vectors:
10% of points private and 5% AI answers, queries near stored points so that results pass the threshold.
Goal: p50 <= 5 ms at 100k points once optimized (HNSW); "publish -> searchable" is one upsert followed by
the search that must find it (DESIGN §7: within 1 s).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from choir.chorus.embed import Embedder, MiniLMEmbedder
from choir.store.vectors import EdgeVectorIndex, VectorPoint

SEARCH_LIMIT = 20
SCORE_THRESHOLD = 0.2
UPSERT_BATCH = 1000
Row = tuple[str, str, str]


def _sentences(n: int) -> list[str]:
    topics = ["staking", "escrow", "the treasury", "a sourdough starter", "git rebase", "jet lag", "tomatoes"]
    return [
        f"Message {i}: has anyone figured out how {topics[i % len(topics)]} works when several co-authors "
        f"disagree about the rules and the thread balance keeps changing every day?"
        for i in range(n)
    ]


def _texts_per_s(embedder: Embedder, batch: int, texts: int) -> float:
    sentences = _sentences(texts)
    embedder.embed(sentences[:batch])  # warm-up: weights loaded, BLAS threads started
    start = time.perf_counter()
    for i in range(0, texts, batch):
        embedder.embed(sentences[i : i + batch])
    return texts / (time.perf_counter() - start)


def bench_embed(quick: bool) -> list[Row]:
    from choir.chorus.onnx_minilm import OnnxMiniLMEmbedder

    engines: list[tuple[str, Embedder]] = [
        ("numpy", MiniLMEmbedder()),
        ("onnxruntime", OnnxMiniLMEmbedder()),
        ("onnxruntime int8", OnnxMiniLMEmbedder(quantize=True)),
    ]
    rows: list[Row] = []
    reference = engines[0][1].embed(_sentences(64))
    for name, embedder in engines:
        start = time.perf_counter()
        embedder.embed(["warm up"])
        rows.append((f"embed {name}: load", f"{(time.perf_counter() - start) * 1000:.0f}", "ms"))
        for batch, texts in ((1, 30 if quick else 100), (32, 64 if quick else 256)):
            rows.append(
                (f"embed {name}: batch {batch}", f"{_texts_per_s(embedder, batch, texts):.0f}", "texts/s")
            )
        cosine = (embedder.embed(_sentences(64)) * reference).sum(axis=1)
        rows.append((f"embed {name}: min cosine to numpy", f"{cosine.min():.6f}", ""))
    return rows


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _fill(index: EdgeVectorIndex, vectors: np.ndarray) -> None:
    for start in range(0, len(vectors), UPSERT_BATCH):
        index.upsert(
            [
                VectorPoint(
                    f"m{i}",
                    f"t{i % 500}",
                    vectors[i],
                    "private" if i % 10 == 0 else "public",
                    i % 20 == 1,
                    f"h{i}",
                    f"a{i % 300}",
                )
                for i in range(start, min(start + UPSERT_BATCH, len(vectors)))
            ]
        )


def _latencies_ms(fn: Callable[[int], object], n: int) -> np.ndarray:
    out = np.empty(n)
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        out[i] = (time.perf_counter() - start) * 1000
    return out


def bench_search(points: int, queries: int, dim: int = 384) -> list[Row]:
    rng = np.random.default_rng(points)
    vectors = _unit(rng, points, dim)
    near = vectors[rng.integers(0, points, queries)] + 0.05 * _unit(rng, queries, dim)
    label = f"{points // 1000}k"
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        index = EdgeVectorIndex(Path(tmp), dim, background_optimize=False)
        try:
            start = time.perf_counter()
            _fill(index, vectors)
            rows.append(
                (f"search {label}: upsert", f"{points / (time.perf_counter() - start):.0f}", "points/s")
            )

            def search(i: int) -> object:
                return index.search(near[i], SEARCH_LIMIT, SCORE_THRESHOLD)

            plain = _latencies_ms(search, min(queries, 50))
            rows.append((f"search {label}: not optimized p50", f"{np.percentile(plain, 50):.2f}", "ms"))
            start = time.perf_counter()
            index.optimize()
            rows.append(
                (f"search {label}: optimize (child process)", f"{time.perf_counter() - start:.1f}", "s")
            )
            _latencies_ms(search, 20)  # warm-up: pages of the new generation mapped in
            optimized = _latencies_ms(search, queries)
            rows.append((f"search {label}: optimized p50", f"{np.percentile(optimized, 50):.2f}", "ms"))
            rows.append((f"search {label}: optimized p99", f"{np.percentile(optimized, 99):.2f}", "ms"))
            fresh = _unit(rng, 50, dim)

            def publish(i: int) -> object:
                index.upsert([VectorPoint(f"new{i}", "t-new", fresh[i], "public", False, f"hn{i}", "a")])
                hits = index.search(fresh[i], 1)
                assert hits and hits[0].message_id == f"new{i}", "a published point was not found"
                return hits

            visible = _latencies_ms(publish, len(fresh))
            rows.append(
                (f"search {label}: publish -> searchable p99", f"{np.percentile(visible, 99):.2f}", "ms")
            )
        finally:
            index.close()
    return rows


VOCABULARY_WORDS = 2000


def bench_hybrid(points: int, queries: int, dim: int = 384) -> list[Row]:
    """Hybrid against vector-only search through the Retriever, on a real store of `points` messages."""
    from datetime import UTC, datetime

    from choir.chorus.onnx_minilm import OnnxMiniLMEmbedder
    from choir.chorus.retrieval import Retriever
    from choir.engine import Coordinator
    from choir.program import CreateThread, PostMessage
    from choir.store.sql import Store

    rng = np.random.default_rng(points + 1)
    vocabulary = [f"w{i:04d}" for i in range(VOCABULARY_WORDS)]
    # Zipf-like word frequencies, as in a chat: a few words everywhere, most of them rare.
    weights = 1.0 / np.arange(1, VOCABULARY_WORDS + 1)
    weights /= weights.sum()
    label = f"{points // 1000}k"
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'choir.db'}")
        coordinator = Coordinator.open(store, clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))
        threads = 50
        for t in range(threads):
            coordinator.execute(CreateThread(f"author{t}", f"t{t}", f"Thread {t}"))
        start = time.perf_counter()
        for first in range(0, points, UPSERT_BATCH):
            batch = []
            for i in range(first, min(first + UPSERT_BATCH, points)):
                words = rng.choice(vocabulary, size=12, p=weights)
                batch.append(
                    PostMessage(f"author{i % threads}", f"t{i % threads}", f"m{i}", f"{i} " + " ".join(words))
                )
            coordinator.execute_many(batch)
        rows.append(
            (
                f"hybrid {label}: post (store + FTS5)",
                f"{points / (time.perf_counter() - start):.0f}",
                "messages/s",
            )
        )
        vectors = _unit(rng, points, dim)
        index = EdgeVectorIndex(Path(tmp) / "vectors", dim, background_optimize=False)
        try:
            for first in range(0, points, UPSERT_BATCH):
                index.upsert(
                    [
                        VectorPoint(
                            f"m{i}",
                            f"t{i % threads}",
                            vectors[i],
                            "public",
                            False,
                            f"h{i}",
                            f"author{i % threads}",
                        )
                        for i in range(first, min(first + UPSERT_BATCH, points))
                    ]
                )
            index.optimize()
            retriever = Retriever(OnnxMiniLMEmbedder(), index, store)
            texts = [" ".join(rng.choice(vocabulary, size=3, p=weights)) for _ in range(queries)]
            readable = [f"t{t}" for t in range(threads)]  # every thread is public here
            retriever.search(texts[0], SEARCH_LIMIT, readable)  # warm-up
            for name, vector_only in (("hybrid", False), ("vector only", True)):
                lat = _latencies_ms(
                    lambda i, v=vector_only: retriever.search(texts[i], SEARCH_LIMIT, readable, v), queries
                )
                rows.append((f"hybrid {label}: {name} p50", f"{np.percentile(lat, 50):.2f}", "ms"))
                rows.append((f"hybrid {label}: {name} p99", f"{np.percentile(lat, 99):.2f}", "ms"))
        finally:
            index.close()
            store.close()
    return rows


def _print(rows: Sequence[Row]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"{'chorus benchmark':<{width}}  {'value':>10}  unit")
    print(f"{'-' * width}  {'-' * 10}  -------")
    for name, value, unit in rows:
        print(f"{name:<{width}}  {value:>10}  {unit}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="10k points only, fewer repetitions")
    # parse_known_args: a runner that calls every bench module's main() may pass flags meant for others.
    args, _ = parser.parse_known_args(sys.argv[1:] if argv is None else list(argv))
    rows = bench_embed(args.quick)
    sizes = (10_000,) if args.quick else (10_000, 100_000)
    for points in sizes:
        rows += bench_search(points, queries=200 if args.quick else 1000)
    for points in sizes:
        rows += bench_hybrid(points, queries=100 if args.quick else 300)
    _print(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
