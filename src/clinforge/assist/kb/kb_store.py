"""Knowledge-base folders: build, update (re-embedding only changed chunks), verify, open.

A KB folder holds three files, all listed with their SHA-256 in ``manifest.json``:

* ``chunks.jsonl`` — one chunk a line (content-hash id, text hash, text, source, title, date, licence, section);
* ``dense.faiss`` — an exact FAISS inner-product index of the normalised chunk embeddings, in chunk order;
* ``manifest.json`` — format, version (1 at build, +1 per update that changes something) with its history, the
  sources (format, path, options, a SHA-256 over their files), chunking and BM25 parameters, embedder (name,
  weights SHA-256, dimension, batch size), thread count, tool versions, file hashes, counts, and its own SHA-256
  over everything else (``manifest_sha256``).

Nothing in the folder depends on the clock or the output path, so a rebuild with the same sources, package versions
and thread count is byte-identical. A folder is written beside its target and renamed into place in one step. The
embedding, the slow part, is checkpointed in blocks beside the target: a build that was interrupted (Ctrl-C, a
killed job) resumes where it stopped when run again, and gives the same bytes as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as pkg_version
from pathlib import Path
from typing import Any

import numpy as np

from clinforge.assist.kb.chunking import Chunk, chunk_document, chunk_id, sha256_text
from clinforge.assist.kb.embedders import SentenceTransformerEmbedder
from clinforge.assist.kb.kb_sources import SourceSpec, iter_documents
from clinforge.assist.kb.retriever import FaissFlatIndex, KnowledgeBase, SearchSettings
from clinforge.core.errors import ClinforgeError, ConfigError, DataError
from clinforge.core.io import atomic_path, read_jsonl, sha256_file, sha256_tree
from clinforge.core.progress import progress_bar

FORMAT = "clinforge-kb/1"
FILES = ("chunks.jsonl", "dense.faiss")
TOOLS = ("clinforge", "faiss-cpu", "bm25s", "sentence-transformers", "transformers", "torch", "numpy")


class KBIntegrityError(ClinforgeError):
    """A knowledge-base file that does not match its manifest (tampered, truncated or foreign)."""


def tool_versions() -> dict[str, str | None]:
    """Versions of the packages whose output bytes the KB depends on."""
    out: dict[str, str | None] = {}
    for name in TOOLS:
        try:
            out[name] = pkg_version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _canonical(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _seal(manifest: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in manifest.items() if k != "manifest_sha256"}
    return {**body, "manifest_sha256": hashlib.sha256(_canonical(body).encode()).hexdigest()}


def _source_entry(spec: SourceSpec) -> dict[str, Any]:
    tree = sha256_tree(spec.path) if Path(spec.path).exists() else {}
    h = hashlib.sha256()
    root = Path(spec.path)
    for path, digest in sorted(tree.items()):  # relative names: the same data elsewhere hashes the same
        rel = os.path.relpath(path, root) if root.is_dir() else Path(path).name
        h.update(f"{rel}\0{digest}\n".encode())
    return {**spec.model_dump(), "files": len(tree), "files_sha256": h.hexdigest()}


def collect_chunks(sources: list[SourceSpec], size: int, overlap: int) -> tuple[list[Chunk], int]:
    """Every chunk of every source, in source order; a document id used twice is an error naming both sources."""
    chunks: list[Chunk] = []
    seen: dict[str, str] = {}
    n_docs = 0
    for spec in sources:
        for doc in iter_documents(spec):
            if doc.doc_id in seen:
                raise DataError(f"document id {doc.doc_id!r} appears twice (sources {seen[doc.doc_id]} and "
                                f"{spec.format}:{spec.path}); give the documents unique ids", field="id")
            seen[doc.doc_id] = f"{spec.format}:{spec.path}"
            n_docs += 1
            chunks += chunk_document(doc, size=size, overlap=overlap)
    return chunks, n_docs


BLOCK = 256  # texts embedded per checkpoint block (default)


def _embed(chunks: list[Chunk], embedder: Any, cache: dict[str, np.ndarray], checkpoint: Path | None = None,
           block_size: int = BLOCK) -> tuple[np.ndarray, int, int]:
    """Vectors in chunk order, embedding only texts whose hash is not in ``cache``; returns (vectors, embedded,
    blocks resumed from the checkpoint).

    The texts to embed are cut into fixed blocks of ``block_size`` (in chunk order); each finished block is saved under
    ``checkpoint``, so an interrupted build run again with the same sources skips the blocks it finished. Blocks are
    the same whether or not a run was interrupted, so a resumed build gives the same bytes as an uninterrupted one.
    """
    todo: dict[str, str] = {}
    for c in chunks:
        if c.text_sha256 not in cache and c.text_sha256 not in todo:
            todo[c.text_sha256] = c.text
    cache = dict(cache)
    keys = list(todo)
    if checkpoint is not None and keys:
        checkpoint.mkdir(parents=True, exist_ok=True)
    resumed = 0
    # embedding is the slow part of a build (minutes for a few thousand chunks on a CPU): show chunks done and ETA
    bar = progress_bar(total=len(keys), desc="embedding chunks", unit="chunk")
    for start in range(0, len(keys), block_size):
        block = keys[start:start + block_size]
        name = hashlib.sha256("\n".join(block).encode()).hexdigest()[:32]
        saved = checkpoint / f"{name}.npy" if checkpoint is not None else None
        if saved is not None and saved.exists():
            vecs = np.load(saved, allow_pickle=False)
            resumed += 1
        else:
            vecs = embedder.encode([todo[k] for k in block])
            if saved is not None:
                tmp = saved.with_suffix(".partial")  # a block killed mid-write is never read back
                with open(tmp, "wb") as fh:
                    np.save(fh, vecs, allow_pickle=False)
                os.replace(tmp, saved)
        cache.update(zip(block, vecs, strict=True))
        bar.update(len(block))
    bar.close()
    vectors = np.stack([cache[c.text_sha256] for c in chunks]) if chunks else np.zeros((0, embedder.dim), np.float32)
    return np.ascontiguousarray(vectors, dtype=np.float32), len(todo), resumed


def _checkpoint_dir(out: Path, embedder_sha: str, batch_size: int, threads: int, block_size: int) -> Path:
    """Where the embedding blocks of an unfinished build wait (beside the output; removed when the build ends)."""
    return out.parent / f".{out.name}.embedding-blocks-{embedder_sha[:16]}-b{batch_size}-t{threads}-n{block_size}"


def _write(out: Path, chunks: list[Chunk], vectors: np.ndarray, manifest: dict[str, Any], overwrite: bool) -> None:
    with atomic_path(out, overwrite=overwrite) as tmp:
        tmp.mkdir()
        with open(tmp / "chunks.jsonl", "w", encoding="utf-8") as fh:
            for c in chunks:
                fh.write(json.dumps(c.as_dict(), ensure_ascii=False, sort_keys=True) + "\n")
        FaissFlatIndex.from_vectors(vectors).write(str(tmp / "dense.faiss"))
        manifest["files"] = {name: sha256_file(tmp / name) for name in FILES}
        (tmp / "manifest.json").write_text(json.dumps(_seal(manifest), indent=2, ensure_ascii=False) + "\n",
                                           encoding="utf-8")


def build_kb(out: str | os.PathLike, sources: list[SourceSpec], *, embedder: str = "minilm", chunk_size: int = 1000,
             overlap: int = 150, threads: int = 1, batch_size: int = 32, bm25_k1: float = 1.5, bm25_b: float = 0.75,
             overwrite: bool = False, embed_block: int = BLOCK,
             _previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Build a knowledge-base folder at ``out`` from ``sources``; returns the manifest (and, outside it, under
    ``"resumed_blocks"``, how many embedding blocks an interrupted earlier run had finished).

    Example:
        >>> build_kb("kb/", [SourceSpec.parse("medquad:data/medquad/9_CDC_QA")])  # doctest: +SKIP
    """
    if not sources:
        raise ConfigError("a knowledge base needs at least one source", key="--source")
    out = Path(out)
    if out.exists() and not overwrite and _previous is None:
        raise ConfigError(f"{out} exists; pass --overwrite to rebuild it, or use kb update", key="out")
    chunks, n_docs = collect_chunks(sources, chunk_size, overlap)
    if not chunks:
        raise DataError("the sources yielded no text to index", field="sources")
    emb = SentenceTransformerEmbedder(embedder, batch_size=batch_size, threads=threads)
    cache: dict[str, np.ndarray] = {}
    if _previous is not None:
        if _previous["manifest"]["embedder"]["weights_sha256"] != emb.weights_sha256():
            raise ConfigError("the embedder's weights differ from the ones this KB was built with; rebuild it with "
                              "kb build --overwrite", key="embedder")
        cache = _previous["cache"]
    checkpoint = _checkpoint_dir(out, emb.weights_sha256(), batch_size, threads, embed_block)
    vectors, embedded, resumed = _embed(chunks, emb, cache, checkpoint, embed_block)
    prev_m = _previous["manifest"] if _previous else None
    version = prev_m["version"] + 1 if prev_m else 1
    history = list(prev_m.get("history", [])) if prev_m else []
    history.append({"version": version, "parent_manifest_sha256": prev_m["manifest_sha256"] if prev_m else None,
                    "chunks": len(chunks), "embedded": embedded, "reused": len({c.text_sha256 for c in chunks}) - embedded})
    manifest: dict[str, Any] = {
        "format": FORMAT, "version": version, "history": history,
        "sources": [_source_entry(s) for s in sources],
        "chunking": {"size": chunk_size, "overlap": overlap, "method": "section-aware greedy paragraphs"},
        "bm25": {"library": "bm25s", "method": "lucene", "k1": bm25_k1, "b": bm25_b, "stopwords": "en",
                 "tokenizer": "lowercase \\w+ words, no stemming"},
        "embedder": {"name": emb.name, "spec": embedder, "weights_sha256": emb.weights_sha256(), "dim": emb.dim,
                     "normalize": True, "batch_size": batch_size},
        "index": {"type": "faiss.IndexFlatIP", "metric": "inner product of L2-normalised vectors (cosine)"},
        "threads": threads, "tools": tool_versions(),
        "counts": {"documents": n_docs, "chunks": len(chunks)},
    }
    _write(out, chunks, vectors, manifest, overwrite=True)
    shutil.rmtree(checkpoint, ignore_errors=True)
    return {**read_manifest(out), "resumed_blocks": resumed}


def read_manifest(kb_dir: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a KB folder (an error naming the file when it is missing or not JSON)."""
    path = Path(kb_dir) / "manifest.json"
    if not path.is_file():
        raise DataError("no manifest.json: not a knowledge-base folder", file=str(path))
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise KBIntegrityError(f"{path}: not valid JSON (line {exc.lineno})") from None
    if manifest.get("format") != FORMAT:
        raise DataError(f"format {manifest.get('format')!r} is not {FORMAT}", file=str(path), field="format")
    return manifest


def read_chunks(kb_dir: str | os.PathLike) -> list[Chunk]:
    """The chunks of a KB folder, in index order."""
    path = Path(kb_dir) / "chunks.jsonl"
    try:
        return [Chunk(**obj) for _, obj in read_jsonl(path)]
    except TypeError as exc:
        raise KBIntegrityError(f"{path}: a line does not have the chunk fields ({exc})") from None


def update_kb(kb_dir: str | os.PathLike, sources: list[SourceSpec] | None = None, *,
              threads: int | None = None) -> dict[str, Any]:
    """Re-read the sources (the manifest's, or ``sources``), re-embed only chunks whose text is new, bump the version.

    Returns ``{"changed", "version", "embedded", "reused", "added", "removed", "chunks"}``; nothing is written when
    the chunks are the same as before.

    Example:
        >>> update_kb("kb/")["embedded"]  # doctest: +SKIP
        3
    """
    kb_dir = Path(kb_dir)
    verify_kb(kb_dir)  # never extend a tampered base
    m = read_manifest(kb_dir)
    specs = sources or [SourceSpec(**{k: v for k, v in s.items() if k in SourceSpec.model_fields})
                        for s in m["sources"]]
    old = read_chunks(kb_dir)
    vectors = FaissFlatIndex.read(str(kb_dir / "dense.faiss")).vectors()
    cache = {c.text_sha256: vectors[i] for i, c in enumerate(old)}
    new, _ = collect_chunks(specs, m["chunking"]["size"], m["chunking"]["overlap"])
    old_ids, new_ids = {c.id for c in old}, {c.id for c in new}
    summary = {"added": len(new_ids - old_ids), "removed": len(old_ids - new_ids), "chunks": len(new)}
    same_sources = [_source_entry(s) for s in specs] == m["sources"]
    if [c.id for c in new] == [c.id for c in old] and same_sources:
        return {"changed": False, "version": m["version"], "embedded": 0, "reused": 0, **summary}
    e = m["embedder"]
    out = build_kb(kb_dir, specs, embedder=e["spec"], chunk_size=m["chunking"]["size"],
                   overlap=m["chunking"]["overlap"], threads=threads or m["threads"], batch_size=e["batch_size"],
                   bm25_k1=m["bm25"]["k1"], bm25_b=m["bm25"]["b"], overwrite=True,
                   _previous={"manifest": m, "cache": cache})
    last = out["history"][-1]
    return {"changed": True, "version": out["version"], "embedded": last["embedded"], "reused": last["reused"],
            **summary}


def verify_kb(kb_dir: str | os.PathLike) -> dict[str, Any]:
    """Check every file of a KB folder against its manifest; raises :class:`KBIntegrityError` naming the first bad file.

    Checks: the manifest's own hash; each listed file's SHA-256; no unlisted file; every chunk's id and text hash
    recomputed from its content; as many vectors as chunks. Returns ``{"ok": True, "files": n, "chunks": n}``.

    Example:
        >>> verify_kb("kb/")  # doctest: +SKIP
        {'ok': True, 'files': 3, 'chunks': 812}
    """
    kb_dir = Path(kb_dir)
    m = read_manifest(kb_dir)
    if _seal(m)["manifest_sha256"] != m.get("manifest_sha256"):
        raise KBIntegrityError(f"{kb_dir / 'manifest.json'}: edited after it was written (its SHA-256 does not match)")
    listed = set(m.get("files", {})) | {"manifest.json"}
    extra = sorted(str(p.relative_to(kb_dir)) for p in kb_dir.rglob("*") if p.is_file()
                   and str(p.relative_to(kb_dir)) not in listed)
    if extra:
        raise KBIntegrityError(f"{kb_dir / extra[0]}: a file the manifest does not list")
    for name, digest in m["files"].items():
        path = kb_dir / name
        if not path.is_file():
            raise KBIntegrityError(f"{path}: missing")
        if sha256_file(path) != digest:
            raise KBIntegrityError(f"{path}: SHA-256 differs from the manifest (tampered or corrupted)")
    chunks = read_chunks(kb_dir)
    for n, c in enumerate(chunks, start=1):
        if sha256_text(c.text) != c.text_sha256 or chunk_id(c.doc_id, c.position, c.text, c.source, c.title, c.date,
                                                           c.licence, c.section) != c.id:
            raise KBIntegrityError(f"{kb_dir / 'chunks.jsonl'}, line {n}: chunk {c.id[:12]} does not hash to its id")
    ntotal = FaissFlatIndex.read(str(kb_dir / "dense.faiss")).index.ntotal
    if ntotal != len(chunks) or len(chunks) != m["counts"]["chunks"]:
        raise KBIntegrityError(f"{kb_dir / 'dense.faiss'}: {ntotal} vectors for {len(chunks)} chunks")
    return {"ok": True, "files": len(listed), "chunks": len(chunks)}


def load_embedder(manifest: dict[str, Any], where: str) -> SentenceTransformerEmbedder:
    """The manifest's embedder, refusing one whose weights differ from those the vectors were made with."""
    e = manifest["embedder"]
    emb = SentenceTransformerEmbedder(e["spec"], batch_size=e["batch_size"], threads=manifest.get("threads"))
    if emb.weights_sha256() != e["weights_sha256"]:
        raise KBIntegrityError(f"{where}: built with embedder weights {e['weights_sha256'][:12]}, but "
                               f"{emb.folder} has {emb.weights_sha256()[:12]}; rebuild the KB")
    return emb


def open_kb(kb_dir: str | os.PathLike, *, settings: SearchSettings | None = None,
            verify: bool = True) -> KnowledgeBase:
    """Open a KB folder for search (verified first unless ``verify=False``).

    Example:
        >>> kb = open_kb("kb/")  # doctest: +SKIP
        >>> kb.search("symptoms of asthma", k=3)[0].metadata["source"]  # doctest: +SKIP
        'medquad'
    """
    kb_dir = Path(kb_dir)
    if verify:
        verify_kb(kb_dir)
    m = read_manifest(kb_dir)
    dense = FaissFlatIndex.read(str(kb_dir / "dense.faiss"))
    return KnowledgeBase(read_chunks(kb_dir), dense, lambda: load_embedder(m, str(kb_dir)), manifest=m,
                         settings=settings)


def search_kb(kb: str | os.PathLike, query: str, *, k: int = 5, filters: dict[str, Any] | None = None,
              settings: SearchSettings | None = None, table: str | None = None) -> list[dict[str, Any]]:
    """Open a KB (a folder, or a PostgreSQL DSN with ``table``) and search it once; results as dicts.

    Example:
        >>> search_kb("kb/", "asthma inhaler", k=1)[0]["metadata"]["source"]  # doctest: +SKIP
        'medquad'
    """
    if table is not None:
        from clinforge.assist.kb.pgvector_store import open_pgvector

        base = open_pgvector(str(kb), table, settings=settings)
    else:
        base = open_kb(kb, settings=settings)
    return [{"id": h.id, "score": h.score, "metadata": h.metadata, "scores": h.scores, "text": h.text}
            for h in base.search(query, k=k, filters=filters)]
