"""Knowledge bases: versioned, verifiable folders of chunked documents with BM25, dense and hybrid retrieval.

The public surface is small so that the server, Chain-of-Verification and grounded answers can call it:
:func:`open_kb` gives a :class:`Retriever` whose ``search(query, k, filters=...)`` returns :class:`ScoredChunk`
objects (id, score, text, metadata); :func:`build_kb`, :func:`update_kb` and :func:`verify_kb` manage the folder.
"""

from clinforge.assist.kb.chunking import Chunk, Document, Section, chunk_document

__all__ = ["Chunk", "Document", "Section", "chunk_document"]
