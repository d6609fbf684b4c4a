"""Knowledge bases: versioned, verifiable folders of chunked documents with BM25, dense and hybrid retrieval.

The public surface is small so that the server, Chain-of-Verification and grounded answers can call it:
:func:`open_kb` (a folder) or :func:`open_pgvector` (PostgreSQL) give a :class:`Retriever` whose
``search(query, k, filters=...)`` returns :class:`ScoredChunk` objects (content-hash id, score, text, metadata);
:func:`build_kb`, :func:`update_kb` and :func:`verify_kb` manage the folder. Submodules import their heavy
libraries (faiss, bm25s, sentence-transformers, psycopg) only when used.

Example:
    >>> from clinforge.assist.kb import SourceSpec
    >>> SourceSpec.parse("folder:docs/").format
    'folder'
"""

from __future__ import annotations

from typing import Any

from clinforge.assist.kb.chunking import Chunk, Document, Section, chunk_document
from clinforge.assist.kb.kb_sources import SourceSpec
from clinforge.assist.kb.retriever import KnowledgeBase, Retriever, ScoredChunk, SearchSettings

_LAZY = {"build_kb": "kb_store", "update_kb": "kb_store", "verify_kb": "kb_store", "open_kb": "kb_store",
         "KBIntegrityError": "kb_store", "publish_pgvector": "pgvector_store", "open_pgvector": "pgvector_store",
         "evaluate_kb": "kb_eval", "questions_from": "kb_eval", "CrossEncoderReranker": "rerankers",
         "LoglikelihoodReranker": "rerankers", "RerankedRetriever": "rerankers"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"clinforge.assist.kb.{_LAZY[name]}"), name)
    raise AttributeError(name)


__all__ = ["Chunk", "Document", "KnowledgeBase", "Retriever", "ScoredChunk", "SearchSettings", "Section",
           "SourceSpec", "chunk_document", *_LAZY]
