"""Knowledge-base pieces that need no embedder: chunking, sources, fusion arithmetic, filters, BM25, metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest

from clinforge.assist.kb.chunking import Document, Section, chunk_document, chunk_id, sha256_text
from clinforge.assist.kb.fusion import rrf, weighted
from clinforge.assist.kb.kb_eval import retrieval_metrics
from clinforge.assist.kb.kb_sources import SourceSpec, iter_documents, parse_html, parse_markdown
from clinforge.assist.kb.retriever import BM25Index, filter_mask
from clinforge.core.errors import ConfigError, DataError


def test_chunks_respect_size_sections_and_overlap():
    body = " ".join(f"Sentence {i} says something about asthma." for i in range(60))
    doc = Document("d1", [Section("Symptoms", body), Section("Treatment", "Inhaled steroids.")], "notes",
                   title="Asthma", date="2024-01-02", licence="CC-BY-4.0")
    chunks = chunk_document(doc, size=400, overlap=100)
    assert all(len(c.text) <= 400 + 100 for c in chunks)
    sym = [c for c in chunks if c.section == "Symptoms"]
    assert len(sym) >= 5 and chunks[-1].section == "Treatment" and chunks[-1].text == "Inhaled steroids."
    # overlap: each cut inside a section repeats the previous chunk's last whole sentence(s)
    for a, b in zip(sym, sym[1:], strict=False):
        last = a.text.split(". ")[-1].rstrip(".")
        assert last in b.text[:120]
    # every sentence survives, none is cut in the middle
    joined = " ".join(c.text for c in sym)
    assert all(f"Sentence {i} says something about asthma." in joined for i in range(60))
    c = chunks[0]
    assert (c.source, c.title, c.date, c.licence, c.doc_id) == ("notes", "Asthma", "2024-01-02", "CC-BY-4.0", "d1")
    assert c.text_sha256 == sha256_text(c.text)
    assert c.id == chunk_id("d1", 0, c.text, "notes", "Asthma", "2024-01-02", "CC-BY-4.0", "Symptoms")


def test_same_text_in_two_documents_gives_two_ids_one_text_hash():
    a = chunk_document(Document("a", [Section("", "Drink fluids.")], "s"))[0]
    b = chunk_document(Document("b", [Section("", "Drink fluids.")], "s"))[0]
    assert a.id != b.id and a.text_sha256 == b.text_sha256


def test_chunk_parameters_are_checked():
    with pytest.raises(ValueError, match="overlap"):
        chunk_document(Document("a", [Section("", "x")], "s"), size=100, overlap=60)


def test_markdown_and_html_sections():
    title, date, secs = parse_markdown("---\ntitle: x\ndate: 2023-03-01\n---\n# Gout\nIntro text.\n\n"
                                       "```\n# not a heading\n```\n## Diet\nLess purine.\n")
    assert (title, date) == ("Gout", "2023-03-01")
    assert [s.heading for s in secs] == ["Gout", "Diet"] and "# not a heading" in secs[0].text
    title, date, secs = parse_html('<html><head><title>Flu</title><meta name="date" content="2020-10-01">'
                                   "<style>p{}</style></head><body><nav>menu</nav><h1>Influenza</h1><p>A virus."
                                   "</p><h2>Signs</h2><ul><li>Fever</li><li>Cough</li></ul><script>x()</script>"
                                   "</body></html>")
    assert (title, date) == ("Flu", "2020-10-01")
    assert [(s.heading, s.text.split()) for s in secs] == [("Influenza", ["A", "virus."]),
                                                          ("Signs", ["Fever", "Cough"])]


def test_folder_and_jsonl_sources(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Asthma\nWheeze.\n", encoding="utf-8")
    (tmp_path / "docs" / "b.html").write_text("<title>Gout</title><p>Toe pain.</p>", encoding="utf-8")
    (tmp_path / "docs" / "c.txt").write_text("Plain note.", encoding="utf-8")
    docs = list(iter_documents(SourceSpec(format="folder", path=str(tmp_path / "docs"), licence="internal")))
    assert [(d.doc_id, d.title, d.licence) for d in docs] == [("a.md", "Asthma", "internal"),
                                                             ("b.html", "Gout", "internal"), ("c.txt", "c", "internal")]
    p = tmp_path / "p.jsonl"
    p.write_text(json.dumps({"id": "x1", "text": "Rest.", "date": "2021"}) + "\n" + json.dumps({"id": "x2"}) + "\n")
    with pytest.raises(DataError, match=r"p.jsonl, line 2, field text"):
        list(iter_documents(SourceSpec(format="kbjsonl", path=str(p))))
    with pytest.raises(ConfigError, match="FORMAT:PATH"):
        SourceSpec.parse("nocolon")


def test_folder_files_with_a_byte_order_mark(tmp_path):
    # Windows editors save UTF-8 with a BOM: it hid the Markdown title and sat at the start of the first chunk
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_bytes("\ufeff# Asthma\nWheeze.\n".encode())
    (tmp_path / "docs" / "b.txt").write_bytes("\ufeffPlain note.".encode())
    docs = list(iter_documents(SourceSpec(format="folder", path=str(tmp_path / "docs"))))
    assert [(d.title, d.sections[0].text) for d in docs] == [("Asthma", "Wheeze."), ("b", "Plain note.")]


def test_reader_sources_on_real_data(data_root):
    med = list(iter_documents(SourceSpec(format="medquad", path=str(data_root / "medquad"), limit=3)))
    assert len(med) == 3 and med[0].licence == "CC-BY-4.0" and med[0].title
    # the question is not indexed by default (it is the query of the evaluation)
    from clinforge.data.readers import get_reader

    rec = next(get_reader("medquad").read(data_root / "medquad"))
    assert med[0].doc_id == rec.id and med[0].sections[0].text == rec.answer and rec.question not in rec.answer
    pq = list(iter_documents(SourceSpec(format="pubmedqa", path=str(data_root / "pubmedqa/data/ori_pqal.json"),
                                        limit=2)))
    raw = json.loads((data_root / "pubmedqa/data/ori_pqal.json").read_text())
    first = next(iter(raw))
    assert pq[0].doc_id == first and pq[0].sections[0].text == "\n".join(raw[first]["CONTEXTS"])
    assert pq[0].date == str(raw[first]["YEAR"])
    with pytest.raises(DataError, match="no passage text"):
        list(iter_documents(SourceSpec(format="medqa", path=str(
            data_root / "mirage/rawdata/medqa/data_clean/questions/US/4_options/phrases_no_exclude_test.jsonl"),
            limit=1)))


def test_rrf_by_hand():
    # bm25 ranks: a=1, b=2, c=3; dense ranks: c=1, a=2, d=3; k=60
    fused = dict(rrf([["a", "b", "c"], ["c", "a", "d"]], k=60))
    assert fused["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert fused["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert fused["b"] == pytest.approx(1 / 62) and fused["d"] == pytest.approx(1 / 63)
    assert [k for k, _ in rrf([["a", "b", "c"], ["c", "a", "d"]], k=60)] == ["a", "c", "b", "d"]
    # k matters: a is 1st and 10th, b is 3rd twice; k=0: a = 1 + 1/10 > b = 2/3; k=60: a = 1/61 + 1/70 < b = 2/63
    one, two = ["a", "p", "b"], ["r", "s", "b", "t", "u", "v", "w", "x", "y", "a"]
    assert rrf([one, two], k=0)[0][0] == "a" and rrf([one, two], k=60)[0][0] == "b"
    w = dict(rrf([["a"], ["b"]], k=10, weights=[2.0, 1.0]))
    assert w == {"a": pytest.approx(2 / 11), "b": pytest.approx(1 / 11)}


def test_weighted_fusion_by_hand():
    out = dict(weighted([[("a", 8.0), ("b", 4.0), ("c", 2.0)], [("c", 0.9), ("a", 0.5)]], weights=[0.3, 0.7]))
    # bm25 normalised: a=1, b=(4-2)/6=1/3, c=0; dense normalised: c=1, a=0
    assert out["a"] == pytest.approx(0.3)
    assert out["b"] == pytest.approx(0.3 / 3)
    assert out["c"] == pytest.approx(0.7)


def test_filter_mask():
    metas = [{"source": "medquad", "date": "2001", "qtype": "symptoms"}, {"source": "pubmedqa", "date": "2012"},
             {"source": "pubmedqa", "date": None}, {"source": "medquad", "date": "2019", "qtype": "treatment"}]
    assert filter_mask(metas, None) is None
    assert filter_mask(metas, {"source": "pubmedqa"}).tolist() == [False, True, True, False]
    assert filter_mask(metas, {"qtype": ["symptoms", "treatment"]}).tolist() == [True, False, False, True]
    assert filter_mask(metas, {"date": {"gte": "2010", "lt": "2019"}}).tolist() == [False, True, False, False]
    with pytest.raises(ConfigError, match="range operator"):
        filter_mask(metas, {"date": {"after": "2010"}})


def test_bm25_matches_the_lucene_formula_by_hand():
    texts = ["fever cough fever", "cough rash", "headache"]
    ix = BM25Index(texts, k1=1.5, b=0.75)
    # Lucene BM25: idf = ln(1 + (N - df + 0.5) / (df + 0.5)); tf part = tf / (tf + k1 (1 - b + b dl / avgdl))
    n, avgdl = 3, (3 + 2 + 1) / 3
    idf_fever = np.log(1 + (n - 1 + 0.5) / (1 + 0.5))
    expected = idf_fever * 2 / (2 + 1.5 * (1 - 0.75 + 0.75 * 3 / avgdl))
    scores = ix.scores("Fever?")
    assert scores[0] == pytest.approx(expected, rel=1e-5) and scores[1] == 0 and scores[2] == 0
    assert ix.scores("the of and").tolist() == [0, 0, 0]  # stopwords only


def test_retrieval_metrics_by_hand():
    m = retrieval_metrics([1, 2, 6, None, 11], seed=3, n_boot=200)
    assert m["recall@1"]["value"] == pytest.approx(1 / 5)
    assert m["recall@5"]["value"] == pytest.approx(2 / 5)
    assert m["recall@10"]["value"] == pytest.approx(3 / 5)
    assert m["mrr@10"]["value"] == pytest.approx((1 + 1 / 2 + 1 / 6) / 5)
    lo, hi = m["recall@5"]["ci"]
    assert 0 <= lo <= 0.4 <= hi <= 1
    assert retrieval_metrics([1, 2, 6, None, 11], seed=3, n_boot=200)["mrr@10"]["ci"] == m["mrr@10"]["ci"]
