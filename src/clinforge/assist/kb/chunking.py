"""Section-aware chunking: documents become passages of about ``size`` characters that keep their provenance.

A :class:`Document` is a list of sections (heading + text). Chunking packs whole paragraphs greedily, so a chunk
ends at a section or paragraph boundary when it can; a paragraph longer than ``size`` is cut at sentence ends (and a
sentence longer than ``size`` at a space). When a chunk ends inside a section, the next one starts with the last
whole sentences (at most ``overlap`` characters) of the previous one, so a fact that straddles the cut is whole in
at least one chunk. A chunk never carries text from two documents.

Every chunk keeps source, title, date, licence, document id and section, and has two hashes: ``text_sha256`` (its
text alone; what an embedding depends on, so ``kb update`` re-embeds a chunk only when this changes) and ``id``
(SHA-256 over text and provenance, so identical answers of two documents stay two chunks).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+(?=\S)")
_PARAGRAPHS = re.compile(r"\n\s*\n")


@dataclass
class Section:
    """A heading (may be empty) and its text."""

    heading: str
    text: str


@dataclass
class Document:
    """One source document: id unique in its source, sections in reading order, provenance."""

    doc_id: str
    sections: list[Section]
    source: str
    title: str | None = None
    date: str | None = None
    licence: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Chunk:
    """A passage of one document, with its provenance and content hashes (see the module docstring)."""

    id: str
    doc_id: str
    text: str
    source: str
    title: str | None
    date: str | None
    licence: str | None
    section: str | None
    position: int
    text_sha256: str
    meta: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def metadata(self) -> dict[str, Any]:
        """The fields a filter may test: provenance plus the document's ``meta`` (provenance wins a name clash)."""
        return {**self.meta, "doc_id": self.doc_id, "source": self.source, "title": self.title, "date": self.date,
                "licence": self.licence, "section": self.section}


def sha256_text(text: str) -> str:
    """Hex SHA-256 of UTF-8 text.

    Example:
        >>> sha256_text("")[:12]
        'e3b0c44298fc'
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def chunk_id(doc_id: str, position: int, text: str, source: str, title: str | None, date: str | None,
             licence: str | None, section: str | None) -> str:
    """Content hash of a chunk: SHA-256 of its canonical JSON (text and provenance).

    Example:
        >>> len(chunk_id("d1", 0, "Fever.", "medquad", "Flu", None, "CC-BY-4.0", None))
        64
    """
    payload = json.dumps([doc_id, position, text, source, title, date, licence, section], ensure_ascii=False)
    return sha256_text(payload)


def _split_long(text: str, size: int) -> list[str]:
    """Cut a paragraph longer than ``size`` into sentence groups (a sentence longer than ``size`` at spaces)."""
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        while len(sentence) > size:
            cut = sentence.rfind(" ", 0, size)
            cut = cut if cut > size // 2 else size  # no space in the second half: a hard cut beats a tiny piece
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            pieces.append(sentence)
    return pieces


def _tail(text: str, overlap: int) -> str:
    """The last whole sentences of ``text`` that fit in ``overlap`` characters ('' when none fits)."""
    if overlap <= 0:
        return ""
    out = ""
    for sentence in reversed(_SENTENCE_END.split(text)):
        candidate = f"{sentence} {out}".strip()
        if len(candidate) > overlap:
            break
        out = candidate
    return out


def chunk_document(doc: Document, size: int = 1000, overlap: int = 150) -> list[Chunk]:
    """Split ``doc`` into chunks of at most about ``size`` characters (see the module docstring).

    Example:
        >>> d = Document("d1", [Section("Symptoms", "Fever. Cough."), Section("Treatment", "Rest.")], "notes")
        >>> [(c.section, c.text) for c in chunk_document(d, size=60, overlap=0)]
        [('Symptoms', 'Fever. Cough.'), ('Treatment', 'Rest.')]
    """
    if size < 50:
        raise ValueError(f"chunk size {size} is below 50 characters")
    if not 0 <= overlap < size // 2:
        raise ValueError(f"overlap {overlap} must be between 0 and half the chunk size ({size // 2})")
    units: list[tuple[str, str]] = []  # (heading, piece with its separator: "\n" opens a paragraph, " " continues one)
    for sec in doc.sections:
        for para in _PARAGRAPHS.split(sec.text.strip()):
            para = " ".join(para.split())
            if not para:
                continue
            pieces = [para] if len(para) <= size else _split_long(para, size)
            units += [(sec.heading, ("\n" if i == 0 else " ") + p) for i, p in enumerate(pieces)]
    chunks: list[Chunk] = []
    cur: list[str] = []
    fresh = 0  # pieces in ``cur`` that are not the carried overlap (a chunk of overlap alone is never emitted)
    cur_heading: str | None = None

    def flush(carry: bool) -> None:
        nonlocal cur, fresh
        text = "".join(cur).strip()
        if text and fresh:
            _emit(doc, chunks, text, cur_heading)
        tail = _tail(text, overlap) if carry else ""
        cur, fresh = ([" " + tail] if tail else []), 0

    for heading, piece in units:
        new_section = heading != cur_heading
        if fresh and (new_section or len("".join(cur).strip()) + len(piece) > size):
            flush(carry=not new_section)
        if new_section:
            cur, cur_heading = [], heading
        cur.append(piece)
        fresh += 1
    flush(carry=False)
    return chunks


def _emit(doc: Document, chunks: list[Chunk], text: str, heading: str | None) -> None:
    pos = len(chunks)
    section = heading or None
    chunks.append(Chunk(id=chunk_id(doc.doc_id, pos, text, doc.source, doc.title, doc.date, doc.licence, section),
                        doc_id=doc.doc_id, text=text, source=doc.source, title=doc.title, date=doc.date,
                        licence=doc.licence, section=section, position=pos, text_sha256=sha256_text(text),
                        meta=dict(doc.meta)))
