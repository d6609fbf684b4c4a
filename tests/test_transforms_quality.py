"""dedup, contamination and filter: behaviour and the counts that go into the data card."""

from __future__ import annotations

import pytest

from clinforge.core.errors import ConfigError
from clinforge.core.paths import samples_dir
from clinforge.data.load import load_records
from clinforge.data.records import Record
from clinforge.data.transforms import TRANSFORMS, get_transform
from clinforge.data.transforms.dedup import shingles
from clinforge.data.transforms.filters import is_english
from clinforge.data.transforms.text import record_text, words

NOTE = ("Patient admitted with community acquired pneumonia of the right lower lobe, started on ceftriaxone and "
        "azithromycin, oxygen weaned to room air by day three, discharged home in stable condition with follow up "
        "in the pulmonary clinic in two weeks and a repeat chest radiograph in six weeks.")


def note(i: str, text: str, kind: str = "note", **kw) -> Record:
    return Record(id=i, kind=kind, text=text, **kw)


def jaccard(a: Record, b: Record, k: int = 5) -> float:
    sa, sb = shingles(words(record_text(a)), k), shingles(words(record_text(b)), k)
    return len(sa & sb) / len(sa | sb)


def test_registry_lists_our_transforms():
    for name in ("dedup", "contamination", "filter", "chat_format", "split"):
        assert name in TRANSFORMS


def test_dedup_exact_after_normalisation_keeps_first():
    recs = [note("a", NOTE), note("b", NOTE.upper().replace(",", " ,  ")), note("c", "Febrile neutropenia, started cefepime.")]
    dd = get_transform("dedup", near=False)
    assert [r.id for r in dd.apply(recs)] == ["a", "c"]
    rep = dd.report()
    assert (rep["in"], rep["out"], rep["exact_removed"], rep["near_removed"]) == (3, 2, 1, 0)
    assert rep["examples"] == [{"removed": "b", "kept": "a", "how": "exact"}]


def test_dedup_kinds_never_collide():
    recs = [note("n", NOTE), Record(id="d", kind="document", text=NOTE)]
    dd = get_transform("dedup")
    assert len(list(dd.apply(recs))) == 2


def test_dedup_near_duplicates_on_sample_notes():
    recs = load_records(samples_dir() / "notes.jsonl", "jsonl")
    dd = get_transform("dedup", threshold=0.8)
    kept = {r.id for r in dd.apply(recs)}
    rep = dd.report()
    assert (rep["exact_removed"], rep["near_removed"]) == (2, 2)
    pairs = {(e["removed"], e["kept"], e["how"]) for e in rep["examples"]}
    assert pairs == {("note-033", "note-001", "exact"), ("note-034", "note-006", "exact"),
                     ("note-035", "note-004", "near"), ("note-036", "note-011", "near")}
    by_id = {r.id: r for r in recs}
    for removed, original, how in pairs:
        assert original in kept and removed not in kept
        if how == "near":  # the planted edit really is a near duplicate, not an exact one
            assert 0.8 <= jaccard(by_id[removed], by_id[original]) < 1.0
    # no other pair of distinct notes is that similar, so nothing else may go
    assert len(kept) == len(recs) - 4


def test_dedup_is_deterministic_and_verifies_candidates():
    recs = load_records(samples_dir() / "notes.jsonl", "jsonl")
    runs = [[r.id for r in get_transform("dedup", seed=7).apply(recs)] for _ in range(2)]
    assert runs[0] == runs[1]
    # at a threshold above the planted near duplicates' similarity, only exact duplicates go
    dd = get_transform("dedup", threshold=0.99)
    list(dd.apply(recs))
    assert (dd.report()["exact_removed"], dd.report()["near_removed"]) == (2, 0)


def test_dedup_rejects_unknown_option():
    with pytest.raises(ConfigError, match=r"dedup.treshold: unknown key \(did you mean .threshold.\?\); valid keys here: .*threshold"):
        get_transform("dedup", treshold=0.5)


# ------------------------------------------------------------------------------------------------ contamination
def test_contamination_finds_the_planted_overlap():
    train = load_records(samples_dir() / "mcq.jsonl", "jsonl")
    c = get_transform("contamination", action="remove", benchmarks=[
        {"name": "bench", "reader": "jsonl", "path": str(samples_dir() / "benchmark_mcq.jsonl")}])
    out = [r.id for r in c.apply(train)]
    rep = c.report()
    hit = {e["train_id"]: e["benchmark_id"] for e in rep["examples"]}
    assert hit == {"mcq-001": "bench-001", "mcq-003": "bench-002", "mcq-010": "bench-003", "mcq-017": "bench-004"}
    assert len(out) == 26 and not set(hit) & set(out)
    b = rep["benchmarks"]["bench"]
    assert (b["items"], b["train_records_hit"], b["benchmark_items_hit"]) == (10, 4, 4)
    assert (rep["contaminated"], rep["removed"]) == (4, 4)


def test_contamination_report_mode_flags_and_keeps():
    stem = "a 54 year old man presents with crushing substernal chest pain radiating to the left arm and jaw"
    bench = {"b1": [Record(id="q1", kind="mcq", question=stem.upper() + "!", choices=["MI", "GERD"], answer="A")],
             "b2": [Record(id="q9", kind="qa", question="Which vaccine schedule applies to adults over sixty five?")]}
    train = [note("t1", "Triage: " + stem + ". ECG ordered."), note("t2", "Routine visit, no complaints today.")]
    c = get_transform("contamination", eval_records=bench)
    out = list(c.apply(train))
    assert [r.id for r in out] == ["t1", "t2"]
    assert out[0].meta["contamination"] == ["b1"] and "contamination" not in out[1].meta
    rep = c.report()
    assert rep["benchmarks"]["b1"]["train_records_hit"] == 1 and rep["benchmarks"]["b2"]["train_records_hit"] == 0


def test_contamination_n_and_short_fields():
    ten = "metformin lowers hepatic glucose output and improves insulin sensitivity markedly"  # 10 words
    bench = [Record(id="q", kind="qa", question=ten, answer="yes")]
    train = [note("t", "We know that " + ten + " in most adults.")]
    # shorter than n=13 but >= min_words: matched whole
    c = get_transform("contamination", eval_records={"b": bench})
    assert len(list(c.apply(train))) == 1 and c.report()["contaminated"] == 1
    # min_words above the field length: ignored (and counted), so no hit
    c = get_transform("contamination", min_words=11, eval_records={"b": bench})
    list(c.apply(train))
    assert c.report()["contaminated"] == 0
    assert c.report()["benchmarks"]["b"]["short_fields_ignored"] == 2  # the question and the answer "yes"
    # a partial overlap of 8 words is found with n=8, not with n=13
    partial = [note("p", "metformin lowers hepatic glucose output and improves insulin in short")]
    assert get_transform("contamination", n=8, min_words=8, eval_records={"b": bench}).apply(partial).__next__()
    c13 = get_transform("contamination", eval_records={"b": bench})
    list(c13.apply(partial))
    assert c13.report()["contaminated"] == 0


@pytest.mark.parametrize("n", [8, 13])
def test_contamination_equals_lm_eval_janitor(n):
    """With min_words = n the check is exactly lm-evaluation-harness's Janitor, on the samples and on edge text."""
    from lm_eval.decontamination.janitor import Janitor, word_ngrams_indices

    bench = load_records(samples_dir() / "benchmark_mcq.jsonl", "jsonl") + [
        Record(id="edge", kind="qa", question="BP 120/80 - HR 72, SpO2 98% (RA); pt's K+ 3.1 -> repleted w/ KCl 40 mEq PO "
                                              "x1 and recheck in the AM")]
    train = (load_records(samples_dir() / "mcq.jsonl", "jsonl") + load_records(samples_dir() / "qa.jsonl", "jsonl") + [
        note("t-punct", "Vitals: bp 12080 - hr 72 spo2 98 ra pts k 31 repleted w kcl 40 meq po x1 and recheck"),
        note("t-dash", "BP 120/80 — HR 72, SpO2 98% (RA); pt's K+ 3.1 -> repleted w/ KCl 40 mEq PO x1 and recheck"),
        note("t-case", "bp 120/80 - hr 72, spo2 98% (ra); PT'S k+ 3.1 -> REPLETED w/ kcl 40 meq po x1 and recheck")])
    janitor = Janitor(ngram_n=n)
    for rec in bench:
        for text in rec.texts():
            janitor.register_contaminant_python(text)
    expected = {r.id for r in train if any(janitor.normalize_string(g) in janitor.dirt_ngrams
                                           for t in r.texts() for g, _ in word_ngrams_indices(t, n))}
    c = get_transform("contamination", n=n, min_words=n, action="remove", eval_records={"b": bench})
    kept = {r.id for r in c.apply(train)}
    assert {r.id for r in train} - kept == expected
    assert {"mcq-001", "mcq-003", "mcq-010", "mcq-017", "t-punct"} <= expected
    # the Janitor's quirk, kept for parity: a punctuation-only training token ("-", "->") still takes a position
    if n == 13:  # (with n=8 a run of 8 tokens without punctuation-only ones exists)
        assert "t-dash" not in expected


def test_contamination_needs_a_benchmark():
    with pytest.raises(ConfigError, match="at least one benchmark"):
        get_transform("contamination")


# ------------------------------------------------------------------------------------------------------ filter
def test_filter_counts_by_reason_on_samples():
    recs = load_records(samples_dir() / "notes.jsonl", "jsonl")
    f = get_transform("filter", min_words=3)
    kept = {r.id for r in f.apply(recs)}
    rep = f.report()
    assert rep["removed_by_reason"] == {"too_short": 1, "boilerplate": 1, "not_english": 1}
    assert {e["id"]: e["reason"] for e in rep["examples"]} == {
        "note-037": "too_short", "note-038": "boilerplate", "note-039": "not_english"}
    assert rep["in"] == len(recs) and rep["out"] == len(kept) == len(recs) - 3


def test_filter_length_bounds_and_kinds():
    recs = [note("a", "one two three four five"), note("b", " ".join(["word"] * 50)),
            Record(id="q", kind="qa", question="Dose?", answer="5 mg")]
    from clinforge.data.prepare import only_kinds

    f = get_transform("filter", min_words=4, max_words=20, boilerplate=[])
    assert [r.id for r in only_kinds(recs, f, {"note"})] == ["a", "q"]
    assert f.report()["removed_by_reason"] == {"too_long": 1} and f.kinds_passed_through == 1
    with pytest.raises(ConfigError, match="filter.kinds: unknown key"):  # one way to restrict kinds: the step's
        get_transform("filter", kinds=["note"])
    f = get_transform("filter", min_words=None, min_chars=30, language=None, boilerplate=[])
    assert [r.id for r in f.apply(recs)] == ["b"]
    assert f.report()["removed_by_reason"] == {"too_short": 2}


def test_filter_boilerplate_is_a_share_not_a_mention():
    recs = [note("a", NOTE + " Click here to view a diagram of the lung."), note("b", "Click here to continue. " + "x" * 5),
            note("c", "All rights reserved.\nPage 3 of 7")]
    f = get_transform("filter", language=None)
    assert [r.id for r in f.apply(recs)] == ["a"]
    assert f.report()["removed_by_reason"] == {"boilerplate": 2}


def test_filter_custom_boilerplate():
    recs = [note("a", "Electronically signed by the attending physician. Template v2."), note("b", NOTE)]
    f = get_transform("filter", boilerplate=[r"electronically signed"])
    assert [r.id for r in f.apply(recs)] == ["b"]


@pytest.mark.parametrize(("text", "english"), [
    (NOTE, True),
    ("Pt 67M c/o CP x2h, radiating L arm. ECG STE II III aVF. ASA 325 mg, heparin gtt, cath lab activated. "
     "Trop 2.3. BP 150/90 HR 98 SpO2 96% RA. Hx HTN DM2 HLD.", True),  # telegraphic, nearly no function words
    ("Le patient est admis pour une douleur thoracique depuis deux heures avec une irradiation dans le bras "
     "gauche et il est traité par aspirine et héparine dans le service de cardiologie.", False),
    ("Der Patient wurde mit Brustschmerzen aufgenommen und es wurde eine Behandlung mit Aspirin und Heparin "
     "begonnen, die auch nach der Aufnahme auf der Station fortgesetzt wird.", False),
    ("Пациент поступил с болью в груди, начато лечение аспирином и гепарином в отделении кардиологии сегодня.", False),
])
def test_english_heuristic(text, english):
    assert is_english(text) is english


def test_filter_rejects_unsupported_language():
    with pytest.raises(ConfigError, match="filter.language"):
        get_transform("filter", language="fr")


def test_dedup_keeps_same_question_about_different_images():
    """VQA sets ask the same question of many images: those are different examples, not duplicates."""
    recs = [Record(id=f"v{i}", kind="vqa", question="Is there a fracture?", answer="no", images=[f"img{i}.jpg"])
            for i in range(3)] + [Record(id="v0-again", kind="vqa", question="Is there a fracture?", answer="no",
                                         images=["img0.jpg"])]
    dd = get_transform("dedup")
    assert [r.id for r in dd.apply(recs)] == ["v0", "v1", "v2"]
    assert dd.report()["exact_removed"] == 1


def test_dedup_exact_copy_of_a_near_duplicate_names_the_kept_record():
    near = NOTE.replace("six weeks", "6 weeks")
    recs = [note("a", NOTE), note("b", near), note("c", near)]
    dd = get_transform("dedup", threshold=0.8)
    assert [r.id for r in dd.apply(recs)] == ["a"]
    assert {(e["removed"], e["kept"]) for e in dd.report()["examples"]} == {("b", "a"), ("c", "a")}
