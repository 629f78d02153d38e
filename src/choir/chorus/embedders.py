"""The process-wide default embedder: all-MiniLM-L6-v2 in onnxruntime (`chorus.onnx_minilm`), or on
numpy (`chorus.embed`) when onnxruntime is not installed. Both give the same vectors (to 1e-5)."""

from __future__ import annotations

import threading
from pathlib import Path

from choir.chorus import onnx_minilm
from choir.chorus.embed import Embedder, MiniLMEmbedder

_default: Embedder | None = None
_default_lock = threading.Lock()


def default_embedder(cache_dir: Path | None = None) -> Embedder:
    """One per process (its weights load lazily, on first use or on `load()`); its ONNX graph kept in
    ``cache_dir`` (the first caller's) once built."""
    global _default
    with _default_lock:
        if _default is None:
            _default = (
                onnx_minilm.OnnxMiniLMEmbedder(cache_dir=cache_dir)
                if onnx_minilm.available()
                else MiniLMEmbedder()
            )
        return _default
