"""The numpy MiniLM must reproduce sentence-transformers' vectors (fixture made by make_minilm_reference.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from choir.chorus.embed import (
    MINILM_DIM,
    Embedder,
    EmbedderError,
    MiniLMEmbedder,
    minilm_model_dir,
)
from choir.chorus.embedders import default_embedder

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "minilm_reference.npz"
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def reference() -> tuple[list[str], np.ndarray]:
    data = np.load(FIXTURE)
    return [str(s) for s in data["sentences"]], data["vectors"]


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_matches_sentence_transformers(batch_size: int, reference: tuple[list[str], np.ndarray]) -> None:
    # Several batch sizes: padding to the longest text of a batch must not move any vector.
    sentences, expected = reference
    got = MiniLMEmbedder(batch_size=batch_size).embed(sentences)
    assert got.dtype == np.float32
    assert got.shape == expected.shape == (len(sentences), MINILM_DIM)
    assert float(np.abs(got - expected).max()) <= TOLERANCE


def test_reference_includes_a_text_past_the_token_window(reference: tuple[list[str], np.ndarray]) -> None:
    # Guards the fixture itself: without such a text the 256-token truncation would go untested.
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(minilm_model_dir() / "tokenizer.json"))
    tokenizer.no_truncation()
    assert max(len(tokenizer.encode(s).ids) for s in reference[0]) > 256


def test_rows_are_unit_vectors_and_order_is_kept(embedder: MiniLMEmbedder) -> None:
    texts = ["a much longer text about staking and escrow accounts", "short", "medium length text"]
    together = embedder.embed(texts)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-6)
    for i, text in enumerate(texts):
        np.testing.assert_allclose(embedder.embed([text])[0], together[i], atol=1e-6)


def test_similar_texts_score_higher_than_unrelated(embedder: MiniLMEmbedder) -> None:
    a, b, c = embedder.embed(["How do I reset my password?", "I forgot my password", "Best pizza in Naples"])
    assert float(a @ b) > float(a @ c) + 0.3


def test_empty_input_gives_empty_matrix(embedder: MiniLMEmbedder) -> None:
    assert embedder.embed([]).shape == (0, MINILM_DIM)


def test_bad_input_is_refused(embedder: MiniLMEmbedder) -> None:
    with pytest.raises(TypeError, match="not a single str"):
        embedder.embed("a single string")
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        embedder.embed(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="batch_size"):
        MiniLMEmbedder(batch_size=0)


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EmbedderError, match=r"model\.safetensors"):
        MiniLMEmbedder(tmp_path).embed(["x"])


def test_concurrent_calls_agree(embedder: MiniLMEmbedder) -> None:
    texts = [f"message number {i} about threads and priors" for i in range(8)]
    expected = embedder.embed(texts)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            results.append(embedder.embed(texts))
        except BaseException as exc:  # surfaced below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    assert len(results) == 4
    for got in results:
        np.testing.assert_allclose(got, expected, atol=1e-6)


def test_one_model_per_process() -> None:
    assert default_embedder() is default_embedder()
    assert isinstance(default_embedder(), Embedder)
    # Two embedders over the same files share one copy of the weights.
    assert MiniLMEmbedder()._model() is MiniLMEmbedder()._model()


def test_sentence_transformers_backend_agrees(reference: tuple[list[str], np.ndarray]) -> None:
    # Runs where the `st` extra is installed (it brings torch, so not in the default environment).
    pytest.importorskip("sentence_transformers")
    from choir.chorus.embed import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    sentences, expected = reference
    assert embedder.dim == MINILM_DIM
    assert float(np.abs(embedder.embed(sentences) - expected).max()) <= TOLERANCE
