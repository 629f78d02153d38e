"""Retrieval quality on a small labelled set: MiniLM vectors in the edge index find the right prior."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from choir.chorus.embed import MiniLMEmbedder
from choir.store.vectors import EdgeVectorIndex, VectorPoint

DATA = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "retrieval_set.json").read_text())
RECALL_AT_5_MIN = 0.9
TOP_K = 5


def recall_at_k(index: EdgeVectorIndex, embedder: MiniLMEmbedder, questions: list[dict[str, Any]]) -> float:
    vectors = embedder.embed([q["q"] for q in questions])
    found = 0
    for question, vector in zip(questions, vectors, strict=True):
        hits = index.search(vector, limit=TOP_K, score_threshold=0.2)
        found += question["answer"] in [h.message_id for h in hits]
    return found / len(questions)


def test_recall_at_5(tmp_path: Path) -> None:
    embedder = MiniLMEmbedder()
    priors = DATA["priors"]
    questions = DATA["questions"]
    assert len(priors) >= 30 and len(questions) >= 20
    vectors = embedder.embed([p["text"] for p in priors])
    points = [
        VectorPoint(
            p["id"],
            p["thread"],
            v,
            "public",
            False,
            hashlib.sha256(p["text"].encode()).hexdigest(),
            "author-" + p["thread"],
            ["author-" + p["thread"]],
        )
        for p, v in zip(priors, vectors, strict=True)
    ]
    # An AI answer that repeats a question word for word: the closest point of all, and never a prior.
    ai_text = questions[0]["q"]
    ai_answer = VectorPoint(
        "ai-answer", "kitchen", embedder.embed([ai_text])[0], "public", True, "h-ai", "choir"
    )
    with EdgeVectorIndex(tmp_path, embedder.dim, background_optimize=False, indexing_threshold_kb=1) as index:
        index.upsert([*points, ai_answer])
        before = recall_at_k(index, embedder, questions)
        index.optimize()  # and again once HNSW serves the search
        assert index.indexed_vectors_count() > 0
        after = recall_at_k(index, embedder, questions)
        assert "ai-answer" not in [
            h.message_id for h in index.search(embedder.embed([ai_text])[0], limit=TOP_K)
        ]
    assert before >= RECALL_AT_5_MIN, f"recall@5 before optimize = {before:.2f}"
    assert after >= RECALL_AT_5_MIN, f"recall@5 after optimize = {after:.2f}"
    assert after == pytest.approx(before)
