"""A site's own lists (staff, patients, local places, KEEP words): the file, the matching rules, the engine, the
command lines, and what such a list does on the real PhysioNet notes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clinforge.core.errors import ConfigError
from clinforge.data.deid import Deidentifier
from clinforge.data.deid.site_terms import SiteTerms, SiteTermsRecognizer, ambiguous_name_word
from clinforge.data.transforms.deid import DeidTransform

SITE = """# staff directory, exported 2026-11-30
NAME\tJane Okafor
NAME: Bernard Foley
NAME\tVasquez-Theroux
LOCATION\tWexford 2
LOCATION: St. Brigid
KEEP\tFoley
"""


def _spans(recognizer: SiteTermsRecognizer, text: str) -> list[tuple[str, str]]:
    return [(s.entity_type, text[s.start:s.end]) for s in recognizer.analyze(text)]


def _site(tmp_path: Path, text: str = SITE, name: str = "site.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_the_file_reads_tab_colon_and_csv_forms(tmp_path: Path) -> None:
    terms = SiteTerms.from_file(_site(tmp_path))
    assert terms.phi == [("NAME", "Jane Okafor", 2), ("NAME", "Bernard Foley", 3), ("NAME", "Vasquez-Theroux", 4),
                         ("LOCATION", "Wexford 2", 5), ("LOCATION", "St. Brigid", 6)]
    assert terms.keep == {"foley"}
    csv_terms = SiteTerms.from_file(_site(tmp_path, "Type,Term\nname,Jane Okafor\nlocation,\"Wexford 2\"\n", "s.csv"))
    assert csv_terms.phi == [("NAME", "Jane Okafor", 2), ("LOCATION", "Wexford 2", 3)]


@pytest.mark.parametrize(("text", "line", "key", "words"), [
    ("NAME\tJane Okafor\nPERSON\tKreutzmann\n", 2, "type", "unknown type 'PERSON'"),
    ("NAME\tJane Okafor\nKreutzmann\n", 2, None, "expected TYPE<TAB>term"),
    ("NAME\t--\n", 1, "term", "no letter or digit"),
])
def test_a_bad_line_names_the_file_and_line_never_the_term(tmp_path: Path, text: str, line: int, key: str | None,
                                                           words: str) -> None:
    path = _site(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        SiteTerms.from_file(path)
    assert err.value.file == str(path) and err.value.line == line and err.value.key == key
    assert words in str(err.value) and "Kreutzmann" not in str(err.value)


def test_a_term_listed_as_phi_and_as_keep_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"site.txt:2: term: the term of this NAME line is also listed as KEEP"):
        SiteTermsRecognizer(_site(tmp_path, "KEEP: Okafor\nNAME: okafor\n"))
    with pytest.raises(ConfigError, match="type,term|type and term"):
        SiteTerms.from_file(_site(tmp_path, "kind,value\nNAME,Okafor\n", "s.csv"))
    with pytest.raises(ConfigError, match="needs a site-terms file"):
        Deidentifier(recognizers=["patterns", "site_terms"])


def test_matching_any_case_whole_words_and_separators() -> None:
    r = SiteTermsRecognizer(SiteTerms.from_mapping({
        "NAME": ["Jane Okafor", "Vasquez-Theroux", "J. Morrow"], "LOCATION": ["Wexford 2", "St. Brigid"]}))
    text = ("SEEN BY JANE OKAFOR. per okafor,jane; okafors unit. vasquez theroux aware. TO WEXFORD  2 from "
            "st.brigid; wexford 21 is not it. j morrow rrt.")
    assert _spans(r, text) == [
        ("NAME", "JANE OKAFOR"), ("NAME", "okafor,jane"), ("NAME", "vasquez theroux"), ("LOCATION", "WEXFORD  2"),
        ("LOCATION", "st.brigid"), ("NAME", "j morrow")]


def test_ambiguous_name_words_match_alone_only_after_a_title() -> None:
    assert ambiguous_name_word("foley") and ambiguous_name_word("jane") and ambiguous_name_word("al")
    assert not ambiguous_name_word("okafor")
    r = SiteTermsRecognizer(SiteTerms.from_mapping({"NAME": ["Bernard Foley", "Art White", "Hope", "Q"]}))
    text = ("foley to gravity; bernard foley crt; Dr. Foley called. white count up, per DR WHITE. hope for "
            "improvement; RN Hope aware. RN's foley. Q2H turns, dr q.")
    assert _spans(r, text) == [("NAME", "bernard foley"), ("NAME", "Foley"), ("NAME", "WHITE"), ("NAME", "Hope")]
    assert r.ambiguous == 2  # "Hope" and the initial "Q": a list entry that alone is no evidence


def test_the_engine_adds_the_list_and_keeps_keep_words(tmp_path: Path) -> None:
    note = "Pt seen. Labs to vasquez-theroux. transferred to WEXFORD 2. Kellerman aware.\n"
    plain = Deidentifier().deidentify(note).text
    assert "vasquez-theroux" in plain and "WEXFORD 2" in plain and "Kellerman" not in plain  # the rules alone
    site = _site(tmp_path, SITE + "KEEP\tKellerman\n")
    out = Deidentifier(site_terms=site).deidentify(note)
    assert out.text == "Pt seen. Labs to [NAME]. transferred to [LOCATION]. Kellerman aware.\n"
    explanations = [s.explanation for s in out.spans]
    assert explanations == ["listed in site.txt, line 4", "listed in site.txt, line 5"]
    # named in a recipe's recognizer list, it is built from the same argument, once
    d = Deidentifier(recognizers=["patterns", "site_terms"], site_terms=site)
    assert sum(isinstance(x, SiteTermsRecognizer) for x in d.recognizers) == 1


def test_the_recipe_transform_takes_the_file_and_hashes_it(tmp_path: Path) -> None:
    site = _site(tmp_path)
    t = DeidTransform(site_terms=str(site))
    assert t.input_paths() == [str(site)]
    with pytest.raises(ConfigError, match="site_term"):
        DeidTransform(site_term=str(site))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "clinforge", "--no-progress", "data", *args],
                          capture_output=True, text=True, timeout=300)


def test_the_command_line_uses_the_list_and_refuses_a_bad_one_without_quoting_it(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("JANE OKAFOR RN AT BEDSIDE. TO ST BRIGID IN AM. FOLEY DRAINING.\n", encoding="utf-8")
    site = _site(tmp_path, SITE + "NAME: Hope\n")
    done = _cli("deid", str(notes), "--out", str(tmp_path / "clean"), "--site-terms", str(site))
    assert done.returncode == 0, done.stderr[-2000:]
    assert (f"site terms {site}: 6 PHI terms, 1 KEEP; 1 one-word name is an ordinary word or an initial: found "
            "only after a title") in " ".join(done.stderr.split())
    assert "Hope" not in done.stderr and "Okafor" not in done.stderr
    assert (tmp_path / "clean" / "a.txt").read_text() == "[NAME] RN AT BEDSIDE. TO [LOCATION] IN AM. FOLEY DRAINING.\n"
    bad = _site(tmp_path, "NAME\tJane Okafor\nNAMES\tOkonkwo\n", "bad.txt")
    failed = _cli("deid", str(notes), "--out", str(tmp_path / "clean2"), "--site-terms", str(bad))
    assert failed.returncode != 0 and not (tmp_path / "clean2").exists()
    assert f"{bad}:2: type: unknown type 'NAMES'" in " ".join(failed.stderr.split())
    assert "Okonkwo" not in failed.stderr + failed.stdout


def _physionet(data_root: Path) -> list:
    from clinforge.data.readers import get_reader

    return list(get_reader("physionet_deid").read(data_root / "physionet-deid"))  # missing: an error, not a skip


NAME_TYPES = {"HCPName", "PTName", "PTNameInitial", "RelativeProxyName"}


def test_on_real_notes_a_list_of_the_names_removes_every_listed_instance(data_root: Path) -> None:
    """A stand-in for a site's directory: the names annotated in the shared half of the PhysioNet notes, less those
    that alone are no evidence (the corpus's surrogates are mostly common names and words: 148 of 317 remain).
    Every gold instance of a listed name is then removed, and the list adds at most a couple of false positives."""
    from clinforge.data.deid.phrase_score import score_records

    records = _physionet(data_root)
    listed = sorted({p["phrase"].strip() for r in records for p in r.meta["phi"] if p["type"] in NAME_TYPES})
    usable = [x for x in listed if len(re.findall(r"[^\W_]+", x)) > 1 or not ambiguous_name_word(x.lower())]
    assert 100 < len(usable) < len(listed)
    results = {}
    for label, site in (("rules", None), ("site", SiteTerms.from_mapping({"NAME": usable}))):
        d = Deidentifier(site_terms=site)
        scores, _, _ = score_records(records, lambda t, d=d: [(s.start, s.end, s.entity_type) for s in d.detect(t)])
        gold = [g for sc in scores for g in sc.gold if g.group == "name" and g.phrase.strip() in set(usable)]
        wrong = sum(1 for sc in scores for p in sc.pred if p.correct is False)
        results[label] = (sum(g.removed for g in gold), len(gold), wrong)
    (rules_hit, n, rules_wrong), (site_hit, n2, site_wrong) = results["rules"], results["site"]
    assert n == n2 > 150
    assert rules_hit < n  # the rules alone miss some of them (200 of 208 on 2026-12-04) ...
    assert site_hit == n  # ... the list, none
    assert site_wrong - rules_wrong <= 2, results


def test_deid_eval_reports_the_list_and_prints_no_term(data_root: Path, tmp_path: Path) -> None:
    records = _physionet(data_root)
    keep = {r.patient_id for r in records[:1]}
    names = sorted({p["phrase"] for r in records if r.patient_id in keep for p in r.meta["phi"]
                    if p["type"] in NAME_TYPES and not ambiguous_name_word(p["phrase"].lower())})
    assert names
    site = _site(tmp_path, "".join(f"NAME\t{n}\n" for n in names))
    done = _cli("deid-eval", str(data_root / "physionet-deid"), "--json", "--site-terms", str(site))
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["site_terms"] == str(site) and result["recall"]["name"]["n"] > 100
    assert not [n for n in names if re.search(rf"\b{re.escape(n)}\b", done.stderr + done.stdout)]
