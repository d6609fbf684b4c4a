"""Where knowledge-base documents come from: any registered reader's records, folders of text / Markdown / HTML, and
JSON Lines of passages.

A source is written ``FORMAT:PATH`` (``medquad:/data/medquad``, ``pubmedqa:ori_pqal.json``, ``folder:docs/``,
``kbjsonl:passages.jsonl``) or given as a :class:`SourceSpec`. Reader records become documents by kind: ``qa`` ->
the answer (the question is left out by default: it is what a user asks, and indexing it would make the
question -> passage evaluation trivially exact; ``index_questions=True`` keeps it), ``mcq`` with a context (PubMedQA)
-> the context, ``document`` / ``note`` / ``report`` -> the text. A record of another kind is an error naming it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from clinforge.assist.kb.chunking import Document, Section
from clinforge.core.errors import ConfigError, DataError
from clinforge.core.io import read_jsonl

#: licences of the built-in readers' data when a source gives none (MANIFEST.tsv of the shared data)
DEFAULT_LICENCES = {"medquad": "CC-BY-4.0", "pubmedqa": "MIT (labels); abstracts: PubMed text, publisher copyright"}
FOLDER_PATTERNS = ("*.md", "*.markdown", "*.txt", "*.html", "*.htm")


class SourceSpec(BaseModel):
    """One source of a knowledge base.

    Example:
        >>> SourceSpec.parse("medquad:/data/medquad").format
        'medquad'
    """

    model_config = ConfigDict(extra="forbid")
    format: str
    path: str
    licence: str | None = None  # overrides the documents' own licence and the reader default
    limit: int | None = Field(default=None, ge=1)  # first N documents (reader order); for tests and benchmarks
    options: dict[str, Any] = Field(default_factory=dict)  # reader options
    index_questions: bool = False

    @classmethod
    def parse(cls, text: str) -> SourceSpec:
        """``FORMAT:PATH`` -> SourceSpec (a Windows drive letter is not a format: formats have two letters or more)."""
        fmt, sep, path = text.partition(":")
        if not sep or len(fmt) < 2 or not path:
            raise ConfigError(f"source {text!r} must look like FORMAT:PATH, e.g. medquad:/data/medquad",
                              key="--source")
        return cls(format=fmt.strip(), path=path.strip())


def iter_documents(spec: SourceSpec) -> Iterator[Document]:
    """Documents of one source, in a stable order (files sorted, records in file order), at most ``spec.limit``.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "a.md").write_text("# Flu\\n\\n## Signs\\nFever.\\n")
        >>> doc = next(iter_documents(SourceSpec(format="folder", path=str(d))))
        >>> doc.title, [(s.heading, s.text) for s in doc.sections]
        ('Flu', [('Signs', 'Fever.')])
    """
    if spec.format == "folder":
        gen = _folder_documents(spec)
    elif spec.format == "kbjsonl":
        gen = _jsonl_documents(spec)
    else:
        gen = _reader_documents(spec)
    for n, doc in enumerate(gen):
        if spec.limit is not None and n >= spec.limit:
            return
        if spec.licence:
            doc.licence = spec.licence
        yield doc


def _reader_documents(spec: SourceSpec) -> Iterator[Document]:
    from clinforge.data.readers import get_reader

    reader = get_reader(spec.format, **spec.options)  # on_error="fail": a KB is not built from half a file
    licence = spec.licence or DEFAULT_LICENCES.get(spec.format)
    for rec in reader.read(spec.path):
        yield record_document(rec, licence=licence, index_questions=spec.index_questions)


def record_document(rec: Any, *, licence: str | None = None, index_questions: bool = False) -> Document:
    """One reader record as a document (see the module docstring for which field is the passage).

    Example:
        >>> from clinforge.data.records import Record
        >>> r = Record(id="q1", kind="qa", source="medquad", question="What is flu?", answer="A virus.",
        ...            meta={"focus": "Flu"})
        >>> d = record_document(r); (d.doc_id, d.title, d.sections[0].text)
        ('q1', 'Flu', 'A virus.')
    """
    meta = rec.meta or {}
    if rec.kind == "qa" and rec.answer:
        text = f"{rec.question}\n\n{rec.answer}" if index_questions else rec.answer
        title = meta.get("focus") or meta.get("title")
    elif rec.kind == "mcq" and rec.context:
        text, title = rec.context, meta.get("title") or (f"PMID {rec.id}" if rec.source == "pubmedqa" else None)
    elif rec.kind in ("document", "note", "report") and rec.text:
        text, title = rec.text, meta.get("title")
    else:
        raise DataError(f"a {rec.kind} record has no passage text for a knowledge base (qa answers, mcq contexts, "
                        "document/note/report texts are used)", record=rec.id, field="kind")
    date = meta.get("date") or meta.get("YEAR")
    keep = {k: meta[k] for k in ("qtype", "url", "source_subset", "final_decision") if meta.get(k) is not None}
    return Document(doc_id=rec.id, sections=[Section("", text)], source=rec.source or "records",
                    title=str(title) if title else None, date=str(date) if date else None,
                    licence=licence, meta=keep)


def _jsonl_documents(spec: SourceSpec) -> Iterator[Document]:
    """``{"text": ..., "id"?, "title"?, "date"?, "licence"?, "source"?, "meta"?}`` per line."""
    path = Path(spec.path)
    if not path.is_file():
        raise DataError("no such file (source kbjsonl)", file=str(path))
    for line, obj in read_jsonl(path):
        text = obj.get("text")
        if not isinstance(text, str) or not text.strip():
            raise DataError("missing or empty", file=str(path), line=line, field="text")
        for key in ("id", "title", "date", "licence", "source"):
            if obj.get(key) is not None and not isinstance(obj[key], str | int):
                raise DataError("expected a string", file=str(path), line=line, field=key)
        meta = obj.get("meta") or {}
        if not isinstance(meta, dict):
            raise DataError("expected an object", file=str(path), line=line, field="meta")
        yield Document(doc_id=str(obj.get("id", f"{path.stem}-{line}")), sections=[Section("", text)],
                       source=str(obj.get("source") or path.stem), title=obj.get("title"),
                       date=str(obj["date"]) if obj.get("date") else None, licence=obj.get("licence"), meta=meta)


def _folder_documents(spec: SourceSpec) -> Iterator[Document]:
    root = Path(spec.path)
    if not root.exists():
        raise DataError("no such file or folder (source folder)", file=str(root))
    files = [root] if root.is_file() else sorted(f for pat in FOLDER_PATTERNS for f in root.rglob(pat) if f.is_file())
    if not files:
        raise DataError(f"no file matching {', '.join(FOLDER_PATTERNS)} in this folder", file=str(root))
    for file in files:
        try:
            raw = file.read_text(encoding="utf-8-sig")  # -sig: a BOM would hide a Markdown title and sit in chunks
        except UnicodeDecodeError as exc:
            raise DataError(f"not valid UTF-8 at byte {exc.start}", file=str(file)) from None
        rel = str(file.relative_to(root)) if root.is_dir() else file.name
        suffix = file.suffix.lower()
        if suffix in (".html", ".htm"):
            title, date, sections = parse_html(raw)
        elif suffix in (".md", ".markdown"):
            title, date, sections = parse_markdown(raw)
        else:
            title, date, sections = None, None, [Section("", raw)]
        if not any(s.text.strip() for s in sections):
            raise DataError("no text", file=str(file), field="text")
        yield Document(doc_id=rel, sections=sections, source=root.name if root.is_dir() else file.parent.name,
                       title=title or file.stem, date=date, licence=spec.licence, meta={"file": rel})


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def parse_markdown(text: str) -> tuple[str | None, str | None, list[Section]]:
    """Title (first ``#`` heading), date (``date:`` in a ``---`` front matter) and sections by heading.

    Example:
        >>> parse_markdown("---\\ndate: 2024-05-01\\n---\\n# Asthma\\nIntro.\\n## Treatment\\nInhalers.")
        ('Asthma', '2024-05-01', [Section(heading='Asthma', text='Intro.'), Section(heading='Treatment', text='Inhalers.')])
    """
    date = None
    lines = text.splitlines()
    if lines and lines[0].strip() == "---" and "---" in (ln.strip() for ln in lines[1:]):
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == "---")
        for ln in lines[1:end]:
            key, _, value = ln.partition(":")
            if key.strip().lower() == "date":
                date = value.strip().strip("'\"") or None
        lines = lines[end + 1:]
    title, heading, buf, sections = None, "", [], []
    in_code = False
    for ln in lines:
        if ln.lstrip().startswith("```"):
            in_code = not in_code
        m = None if in_code else _HEADING.match(ln)
        if m:
            if "".join(buf).strip():
                sections.append(Section(heading, "\n".join(buf).strip()))
            heading, buf = m.group(2), []
            title = title or (heading if len(m.group(1)) == 1 else None)
        else:
            buf.append(ln)
    if "".join(buf).strip():
        sections.append(Section(heading, "\n".join(buf).strip()))
    return title, date, sections


class _HTMLSections(HTMLParser):
    _BLOCKS = {"p", "div", "li", "tr", "br", "section", "article", "table", "ul", "ol", "blockquote", "pre"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title: str | None = None
        self.date: str | None = None
        self.sections: list[Section] = []
        self._heading, self._buf, self._skip, self._in = "", [], 0, ""
        self._head_buf: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "nav", "footer", "noscript"):
            self._skip += 1
        elif tag == "meta":
            a = dict(attrs)
            if (a.get("name") or a.get("property") or "").lower() in ("date", "dc.date", "article:published_time"):
                self.date = self.date or (a.get("content") or None)
        elif tag in ("title", "h1", "h2", "h3", "h4", "h5", "h6"):
            self._in, self._head_buf = tag, []
        elif tag in self._BLOCKS:
            self._buf.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "nav", "footer", "noscript"):
            self._skip = max(0, self._skip - 1)
        elif tag == self._in:
            text = " ".join("".join(self._head_buf).split())
            if tag == "title":
                self.title = text or None
            else:
                self._close()
                self._heading = text
                if tag == "h1" and not self.title:
                    self.title = text or None
            self._in = ""

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        (self._head_buf if self._in else self._buf).append(data)

    def _close(self) -> None:
        text = re.sub(r"\n\s*\n\s*", "\n\n", "".join(self._buf)).strip()
        if text:
            self.sections.append(Section(self._heading, text))
        self._buf = []

    def result(self) -> tuple[str | None, str | None, list[Section]]:
        self._close()
        return self.title, self.date, self.sections


def parse_html(text: str) -> tuple[str | None, str | None, list[Section]]:
    """Title, date (``<meta name="date">``) and sections by ``<h1>``..``<h6>``; scripts, styles, nav dropped.

    Example:
        >>> parse_html("<title>Flu</title><h2>Signs</h2><p>Fever.</p><script>x()</script>")
        ('Flu', None, [Section(heading='Signs', text='Fever.')])
    """
    parser = _HTMLSections()
    parser.feed(text)
    parser.close()
    return parser.result()
