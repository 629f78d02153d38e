"""The Chorus: answering a question from the community's prior messages (DESIGN §6).

Building blocks the loop (`choir.chorus.loop`) is made of: embeddings, language models, phase prompts and
citations. The vector index they search lives in `choir.store.vectors`.
"""

from choir.chorus.citations import Citation, Prior, attribute_sentences, extract_markers, ground, resolve
from choir.chorus.embed import (
    Embedder,
    EmbedderError,
    MiniLMEmbedder,
    SentenceTransformerEmbedder,
)
from choir.chorus.embedders import default_embedder
from choir.chorus.llm import LLM, ExtractiveLLM, LlamaCppLLM, LLMError, OpenAICompatibleLLM
from choir.chorus.onnx_minilm import OnnxMiniLMEmbedder

__all__ = [
    "LLM",
    "Citation",
    "Embedder",
    "EmbedderError",
    "ExtractiveLLM",
    "LLMError",
    "LlamaCppLLM",
    "MiniLMEmbedder",
    "OnnxMiniLMEmbedder",
    "OpenAICompatibleLLM",
    "Prior",
    "SentenceTransformerEmbedder",
    "attribute_sentences",
    "default_embedder",
    "extract_markers",
    "ground",
    "resolve",
]
