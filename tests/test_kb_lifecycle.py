"""Knowledge-base folders over their life: update re-embeds only changed chunks, verify catches tampering (naming the
file), a rebuild is byte-identical, bad models are refused, and the CLI does all of it in a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clinforge.assist.kb import SearchSettings, SourceSpec
from clinforge.assist.kb.chunking import chunk_document
from clinforge.assist.kb.kb_sources import iter_documents
from clinforge.assist.kb.kb_store import KBIntegrityError, build_kb, open_kb, read_manifest, update_kb, verify_kb
from clinforge.core.errors import ConfigError

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _docs(folder: Path, data_root: Path) -> None:
    """Three real MedQuAD answers as Markdown pages (sections = question types) plus one HTML page."""
    from clinforge.data.readers import get_reader

    recs = []
    for r in get_reader("medquad").read(data_root / "medquad" / "9_CDC_QA"):
        recs.append(r)
        if len(recs) == 6:
            break
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(3):
        a, b = recs[2 * i], recs[2 * i + 1]
        (folder / f"page{i}.md").write_text(f"# {a.meta['focus']}\n\n## {a.meta['qtype']}\n{a.answer}\n\n"
                                            f"## {b.meta['qtype']}\n{b.answer}\n", encoding="utf-8")
    (folder / "note.html").write_text("<title>Hand hygiene</title><h2>When</h2><p>Wash hands before and after "
                                      "every patient contact.</p>", encoding="utf-8")


@pytest.fixture(scope="module")
def built(data_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("life")
    _docs(root / "docs", data_root)
    spec = SourceSpec(format="folder", path=str(root / "docs"), licence="CC-BY-4.0")
    build_kb(root / "kb", [spec], chunk_size=500, overlap=100, threads=1)
    return root, spec


def test_rebuild_is_byte_identical(built):
    root, spec = built
    build_kb(root / "kb2", [spec], chunk_size=500, overlap=100, threads=1)
    for name in ("manifest.json", "chunks.jsonl", "dense.faiss"):
        assert (root / "kb" / name).read_bytes() == (root / "kb2" / name).read_bytes(), name
    with pytest.raises(ConfigError, match="--overwrite"):
        build_kb(root / "kb2", [spec], chunk_size=500, overlap=100)


def test_update_reembeds_only_changed_chunks(built):
    root, spec = built
    kb = root / "kb-upd"
    shutil.copytree(root / "kb", kb)
    docs = root / "docs-upd"
    shutil.copytree(root / "docs", docs)
    # the manifest names the original folder; update with the edited copy as the source
    spec2 = spec.model_copy(update={"path": str(docs)})
    old_texts = {c.text_sha256 for d in iter_documents(spec2) for c in chunk_document(d, 500, 100)}
    page = docs / "page1.md"
    page.write_text(page.read_text(encoding="utf-8").replace("\n## ", "\nUpdated guidance, May 2026.\n\n## ", 1),
                    encoding="utf-8")
    (docs / "new.md").write_text("# Measles\n\nMeasles spreads through the air; two MMR doses protect.\n",
                                 encoding="utf-8")
    new_texts = {c.text_sha256 for d in iter_documents(spec2) for c in chunk_document(d, 500, 100)}
    expected = len(new_texts - old_texts)
    assert 2 <= expected < len(new_texts) // 2  # a few changed chunks, most kept
    r = update_kb(kb, [spec2])
    assert r["changed"] and r["version"] == 2
    assert r["embedded"] == expected and r["reused"] == len(new_texts) - expected
    verify_kb(kb)
    m = read_manifest(kb)
    assert m["history"][-1]["parent_manifest_sha256"] == read_manifest(root / "kb")["manifest_sha256"]
    base = open_kb(kb)
    hit = base.search("MMR doses measles", k=1, settings=SearchSettings(mode="dense"))[0]
    assert hit.doc_id == "new.md"
    again = update_kb(kb, [spec2])
    assert not again["changed"] and again["embedded"] == 0 and read_manifest(kb)["version"] == 2
    # vectors reused by update equal freshly computed ones: a full rebuild gives the same index bytes
    build_kb(root / "kb-fresh", [spec2], chunk_size=500, overlap=100, threads=1)
    assert (kb / "dense.faiss").read_bytes() == (root / "kb-fresh" / "dense.faiss").read_bytes()


@pytest.mark.parametrize("tamper", ["chunk_text", "faiss_byte", "manifest_edit", "extra_file", "missing_file",
                                    "consistent_chunk_edit"])
def test_verify_names_the_tampered_file(built, tmp_path, tamper):
    root, _ = built
    kb = tmp_path / "kb"
    shutil.copytree(root / "kb", kb)
    verify_kb(kb)
    if tamper == "chunk_text":
        p = kb / "chunks.jsonl"
        p.write_text(p.read_text(encoding="utf-8").replace("the", "teh", 1), encoding="utf-8")
        target = "chunks.jsonl"
    elif tamper == "faiss_byte":
        p = kb / "dense.faiss"
        data = bytearray(p.read_bytes())
        data[-5] ^= 0x01
        p.write_bytes(bytes(data))
        target = "dense.faiss"
    elif tamper == "manifest_edit":
        p = kb / "manifest.json"
        m = json.loads(p.read_text())
        m["embedder"]["spec"] = "/somewhere/else"
        p.write_text(json.dumps(m, indent=2))
        target = "manifest.json"
    elif tamper == "extra_file":
        (kb / "notes.txt").write_text("x")
        target = "notes.txt"
    elif tamper == "missing_file":
        (kb / "dense.faiss").unlink()
        target = "dense.faiss"
    else:  # change a chunk's text AND fix the file hash in the manifest: the chunk's own hash still catches it
        import hashlib

        p = kb / "chunks.jsonl"
        lines = p.read_text(encoding="utf-8").splitlines()
        obj = json.loads(lines[1])
        obj["text"] = "Take 10 times the usual dose."
        lines[1] = json.dumps(obj, sort_keys=True)
        p.write_text("\n".join(lines) + "\n", encoding="utf-8")
        mp = kb / "manifest.json"
        m = json.loads(mp.read_text())
        m["files"]["chunks.jsonl"] = hashlib.sha256(p.read_bytes()).hexdigest()
        body = {k: v for k, v in m.items() if k != "manifest_sha256"}
        m["manifest_sha256"] = hashlib.sha256(json.dumps(body, ensure_ascii=False, sort_keys=True,
                                                         separators=(",", ":")).encode()).hexdigest()
        mp.write_text(json.dumps(m, indent=2))
        target = "chunks.jsonl, line 2"
    with pytest.raises(KBIntegrityError, match=target.replace(".", r"\.")):
        verify_kb(kb)
    with pytest.raises(KBIntegrityError):
        open_kb(kb)


def test_pickle_models_are_refused(tmp_path):
    from clinforge.assist.kb.embedders import resolve_model_folder
    from clinforge.assist.kb.rerankers import CrossEncoderReranker

    bad = tmp_path / "model"
    bad.mkdir()
    (bad / "model.safetensors").write_bytes(b"")
    (bad / "head.joblib").write_bytes(b"x")
    with pytest.raises(ConfigError, match=r"pickle-based file\(s\) head\.joblib"):
        resolve_model_folder(str(bad))
    with pytest.raises(ConfigError, match="pickle"):
        CrossEncoderReranker(str(bad))
    (bad / "head.joblib").unlink()
    (bad / "pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(ConfigError, match="pytorch_model.bin"):
        build_kb(tmp_path / "kb", [SourceSpec(format="kbjsonl", path=str(_one_line(tmp_path)))], embedder=str(bad))


def _one_line(tmp_path: Path) -> Path:
    p = tmp_path / "one.jsonl"
    p.write_text(json.dumps({"id": "a", "text": "Some text."}) + "\n")
    return p


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "clinforge", "kb", *args], capture_output=True, text=True,
                          env=env, timeout=600)


def test_cli_build_search_verify_eval(built, tmp_path, data_root):
    root, _ = built
    kb = tmp_path / "kb"
    pq = f"pubmedqa:{data_root / 'pubmedqa/data/ori_pqal.json'}"
    r = _cli("build", str(kb), "--source", pq, "--limit", "4", "--threads", "1")
    assert r.returncode == 0, r.stderr
    assert "4 documents" in r.stdout
    r = _cli("build", str(kb), "--source", pq, "--limit", "4")
    assert r.returncode == 2 and "--overwrite" in r.stderr
    r = _cli("search", str(kb), "lace plant programmed cell death mitochondria", "-k", "2", "--json",
             "--filter", "final_decision=[yes, maybe]")
    assert r.returncode == 0, r.stderr
    hits = json.loads(r.stdout)
    assert len(hits) == 2 and all(h["metadata"]["final_decision"] in ("yes", "maybe") for h in hits)
    r = _cli("eval", str(kb), "--questions", pq, "--limit", "4", "--modes", "bm25", "--n-boot", "50",
             "--out", str(tmp_path / "eval.json"))
    assert r.returncode == 0, r.stderr
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["scored"] == 4 and "recall@5" in ev["modes"]["bm25"] and "bm25" in r.stdout
    r = _cli("verify", str(kb))
    assert r.returncode == 0 and "ok" in r.stdout
    with open(kb / "chunks.jsonl", "a", encoding="utf-8") as fh:
        fh.write("\n")
    r = _cli("verify", str(kb))
    assert r.returncode != 0 and "chunks.jsonl" in r.stderr


def test_interrupted_build_resumes_with_the_same_bytes(built, tmp_path):
    """A real SIGKILL during embedding (nothing gets to clean up); the rerun reuses the finished blocks and equals an
    uninterrupted build. (SIGKILL rather than SIGINT: a job started in the background inherits SIGINT ignored.)"""
    import signal
    import time

    root, spec = built
    out = tmp_path / "kb"
    args = ["build", str(out), "--source", f"folder:{spec.path}", "--licence", "CC-BY-4.0", "--chunk-size", "500",
            "--overlap", "100", "--threads", "1", "--embed-block", "1"]
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "clinforge", "kb", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 500
    while time.time() < deadline and proc.poll() is None:
        if any(tmp_path.glob(".kb.embedding-blocks-*/*.npy")):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.communicate(timeout=120)
    assert proc.returncode != 0, "the build finished before it could be interrupted"
    assert not out.exists()
    done = len(list(tmp_path.glob(".kb.embedding-blocks-*/*.npy")))
    assert done >= 1
    r = _cli(*args)
    assert r.returncode == 0, r.stderr
    assert f"({done} embedding blocks resumed from an interrupted run)" in r.stdout
    assert not list(tmp_path.glob(".kb.embedding-blocks-*"))  # checkpoint removed once the KB is written
    clean = build_kb(tmp_path / "clean", [spec], chunk_size=500, overlap=100, threads=1, embed_block=1)
    assert clean["resumed_blocks"] == 0
    for name in ("manifest.json", "chunks.jsonl", "dense.faiss"):
        assert (out / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name
