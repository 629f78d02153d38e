"""The ONNX graph is built once into its cache, checked by its SHA-256 at every load, rebuilt when the
file was damaged, and gives the vectors the graph built in memory gives (cosine >= 0.99999)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from choir.chorus import onnx_minilm

TEXTS = ["Tomatoes need six hours of sun.", "A sourdough starter wants feeding twice a day.", "ok"]


@pytest.mark.timeout(240)
def test_the_cached_graph_is_built_once_checked_and_gives_the_same_vectors(tmp_path: Path) -> None:
    if not onnx_minilm.available():
        pytest.skip("onnxruntime is not installed")
    from choir.chorus.embed import minilm_model_dir

    model_dir = minilm_model_dir()
    path = onnx_minilm.cached_graph(model_dir, False, tmp_path)
    assert path.is_file() and path.with_suffix(".sha256").is_file()
    built_at = path.stat().st_mtime_ns
    assert onnx_minilm.cached_graph(model_dir, False, tmp_path) == path
    assert path.stat().st_mtime_ns == built_at  # loaded, not rebuilt
    with path.open("r+b") as f:  # a damaged cache is rebuilt, not loaded
        f.seek(1000)
        f.write(b"\x00" * 16)
    assert onnx_minilm.cached_graph(model_dir, False, tmp_path) == path
    assert onnx_minilm._file_digest(path) == path.with_suffix(".sha256").read_text().strip()

    import onnxruntime

    cached = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    in_memory = onnxruntime.InferenceSession(
        onnx_minilm.build_graph(model_dir).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    ids = np.array([[101, 7592, 2088, 102, 0, 0], [101, 2023, 2003, 1037, 3231, 102]], dtype=np.int64)
    mask = (ids != 0).astype(np.int64)
    a = cached.run(["embeddings"], {"input_ids": ids, "attention_mask": mask})[0]
    b = in_memory.run(["embeddings"], {"input_ids": ids, "attention_mask": mask})[0]
    assert float((a * b).sum(axis=1).min()) >= 0.99999


def test_the_embedder_with_a_cache_embeds_as_without(tmp_path: Path) -> None:
    if not onnx_minilm.available():
        pytest.skip("onnxruntime is not installed")
    with_cache = onnx_minilm.OnnxMiniLMEmbedder(cache_dir=tmp_path, threads=2).embed(TEXTS)
    without = onnx_minilm.OnnxMiniLMEmbedder(threads=3).embed(TEXTS)
    assert float((with_cache * without).sum(axis=1).min()) >= 0.99999
