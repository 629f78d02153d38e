"""Chorus building blocks: MiniLM embedding throughput and edge vector search latency.

    python bench/bench_chorus.py            # full: search at 10k and 100k points (~3 min on 2 cores)
    python bench/bench_chorus.py --quick    # 10k points only, fewer repetitions

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

from choir.chorus.embed import MiniLMEmbedder
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


def _texts_per_s(embedder: MiniLMEmbedder, batch: int, texts: int) -> float:
    sentences = _sentences(texts)
    embedder.embed(sentences[:batch])  # warm-up: weights loaded, BLAS threads started
    start = time.perf_counter()
    for i in range(0, texts, batch):
        embedder.embed(sentences[i : i + batch])
    return texts / (time.perf_counter() - start)


def bench_embed(quick: bool) -> list[Row]:
    embedder = MiniLMEmbedder()
    start = time.perf_counter()
    embedder.load()
    load_s = time.perf_counter() - start
    rows = [("embed: load weights", f"{load_s * 1000:.0f}", "ms")]
    for batch, texts in ((1, 30 if quick else 100), (32, 64 if quick else 256)):
        rows.append((f"embed: batch {batch}", f"{_texts_per_s(embedder, batch, texts):.0f}", "texts/s"))
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
    _print(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
