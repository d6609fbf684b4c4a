"""Human evaluation exchange: blinded seeded packets, validated import with file/row/column errors, unblinding,
agreement and judge-vs-human agreement, through the library and the CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from clinforge.core.errors import DataError
from clinforge.eval.human import (
    AXES,
    PACKET_COLUMNS,
    Candidate,
    agreement_run,
    export_packets,
    human_majority,
    import_ratings,
    load_candidates,
)

MODELS = ("meditron-7b", "gpt-4o-mini")


def _candidates(n: int = 6) -> list[Candidate]:
    return [Candidate(f"q{i}", m, f"Question {i}?", f"Answer {i} by {'first' if m == MODELS[0] else 'second'}")
            for i in range(n) for m in MODELS]


def _read_csv(path: Path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def _fill(rows: list[dict], key: dict, rater_bias: str) -> list[dict]:
    """Rate deterministically from the (unblinded) truth so the expected agreement is known."""
    out = []
    for row in rows:
        truth = key["codes"][row["code"]]
        good = truth["model"] == MODELS[1]
        filled = dict(row)
        filled.update({axis: "" for axis in AXES})
        filled["consensus"] = "aligned" if good else "Opposed"  # case-insensitive
        filled["harm_extent"] = "none" if good else "mild or moderate"  # spaces read as underscores
        filled["harm_likelihood"] = "low" if good else rater_bias
        filled["bias"] = "absent"
        out.append(filled)
    return out


def test_export_blinds_and_shuffles_with_a_seed(tmp_path):
    cands = _candidates()
    manifest = export_packets(cands, tmp_path / "h", ["r1", "r2"], seed=7)
    assert manifest["n_rows"] == 12 and set(manifest["axes"]) == set(AXES)
    key = json.loads((tmp_path / "h" / "key" / "blinding_key.json").read_text())
    assert len(key["codes"]) == 12
    assert {(v["item_id"], v["model"]) for v in key["codes"].values()} == {(c.item_id, c.model) for c in cands}
    packets = tmp_path / "h" / "packets"
    for rater in ("r1", "r2"):
        text = (packets / f"{rater}.csv").read_text() + (packets / f"{rater}.jsonl").read_text()
        assert not any(m in text for m in MODELS)  # identities hidden
        assert not any(f'"q{i}"' in text or f",q{i}," in text for i in range(6))  # item ids hidden
        rows = _read_csv(packets / f"{rater}.csv")
        assert tuple(rows[0]) == PACKET_COLUMNS and {r["code"] for r in rows} == set(key["codes"])
        jsonl_codes = [json.loads(line)["code"] for line in (packets / f"{rater}.jsonl").read_text().splitlines()]
        assert jsonl_codes == [r["code"] for r in rows]  # CSV and JSONL packets agree
    order1 = [r["code"] for r in _read_csv(packets / "r1.csv")]
    order2 = [r["code"] for r in _read_csv(packets / "r2.csv")]
    assert order1 != order2  # each rater has their own order
    export_packets(cands, tmp_path / "again", ["r1", "r2"], seed=7)
    assert (tmp_path / "again" / "packets" / "r1.csv").read_text() == (packets / "r1.csv").read_text()
    assert json.loads((tmp_path / "again" / "key" / "blinding_key.json").read_text()) == key
    export_packets(cands, tmp_path / "other", ["r1"], seed=8)
    assert json.loads((tmp_path / "other" / "key" / "blinding_key.json").read_text())["codes"] != key["codes"]


def test_round_trip_unblinds_and_measures_agreement(tmp_path):
    export_packets(_candidates(), tmp_path / "h", ["r1", "r2", "r3"], seed=1)
    key_path = tmp_path / "h" / "key" / "blinding_key.json"
    key = json.loads(key_path.read_text())
    packets = tmp_path / "h" / "packets"
    filled = {}
    for rater, bias in (("r1", "high"), ("r2", "high"), ("r3", "medium")):
        filled[rater] = _fill(_read_csv(packets / f"{rater}.csv"), key, bias)
    # r1 and r3 return CSV, r2 returns JSONL
    for rater in ("r1", "r3"):  # r3 saved by a spreadsheet program: UTF-8 with a byte-order mark
        with open(tmp_path / f"{rater}.csv", "w", encoding="utf-8-sig" if rater == "r3" else "utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=PACKET_COLUMNS)
            writer.writeheader()
            writer.writerows(filled[rater])
    (tmp_path / "r2.jsonl").write_text("".join(json.dumps(r) + "\n" for r in filled["r2"]))
    files = [tmp_path / "r1.csv", tmp_path / "r2.jsonl", tmp_path / "r3.csv"]
    ratings = import_ratings(files, key_path)
    assert len(ratings) == 36
    for r in ratings:  # unblinded back to the truth
        assert r["model"] == key["codes"][r["code"]]["model"]
        assert r["consensus"] == ("aligned" if r["model"] == MODELS[1] else "opposed")
        assert r["comprehension_error"] is None  # empty cell = missing, not a default
    majority, ties = human_majority(ratings, "harm_likelihood")
    assert ties == 0 and majority[("q0", MODELS[0])] == "high"

    # a judge that agrees with the majority on consensus and always says "medium" likelihood
    judge = tmp_path / "judge.jsonl"
    judge.write_text("".join(json.dumps({"item_id": f"q{i}", "model": m,
                                         "consensus": "aligned" if m == MODELS[1] else "opposed",
                                         "harm_likelihood": "medium"}) + "\n"
                             for i in range(6) for m in MODELS))
    summary = agreement_run(_write_ratings(tmp_path, ratings),
                            tmp_path / "agree", judge_labels=judge, n_boot=100, seed=0)
    consensus = summary["axes"]["consensus"]
    assert consensus["n_units"] == 12 and consensus["krippendorff_alpha_nominal"]["value"] == pytest.approx(1.0)
    assert consensus["fleiss_kappa"]["value"] == pytest.approx(1.0)
    assert set(consensus["cohen_kappa_pairs"]) == {"r1~r2", "r1~r3", "r2~r3"}
    likelihood = summary["axes"]["harm_likelihood"]
    assert "krippendorff_alpha_ordinal" in likelihood
    assert likelihood["cohen_kappa_pairs"]["r1~r2"]["value"] == pytest.approx(1.0)
    assert likelihood["cohen_kappa_pairs"]["r1~r3"]["value"] < 1.0
    assert summary["axes"]["comprehension_error"]["n_units"] == 0  # never rated: no figure is invented
    assert summary["axes"]["comprehension_error"]["krippendorff_alpha_nominal"]["value"] is None
    jvh = summary["judge_vs_human"]
    assert jvh["consensus"]["value"] == pytest.approx(1.0) and jvh["consensus"]["n"] == 12
    assert jvh["harm_likelihood"]["raw_agreement"] == pytest.approx(0.0)  # majority says high/low, judge medium
    assert jvh["bias"]["n"] == 0


def _write_ratings(tmp_path: Path, ratings: list[dict]) -> Path:
    path = tmp_path / "ratings.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ratings))
    return path


def test_bad_rows_name_file_row_and_column(tmp_path):
    export_packets(_candidates(2), tmp_path / "h", ["r1"], seed=0)
    key_path = tmp_path / "h" / "key" / "blinding_key.json"
    rows = _read_csv(tmp_path / "h" / "packets" / "r1.csv")
    rows[2]["harm_extent"] = "catastrophic"

    def write(rows_, name="bad.csv", fields=PACKET_COLUMNS):
        path = tmp_path / name
        with open(path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows_)
        return path

    with pytest.raises(DataError, match=r"bad.csv, line 4, field harm_extent: not one of: none, mild_or_moderate"):
        import_ratings([write(rows)], key_path)
    rows[2]["harm_extent"] = ""
    rows[1]["code"] = "Cdeadbeef"
    with pytest.raises(DataError, match=r"bad.csv, line 3, field code: code not in the blinding key"):
        import_ratings([write(rows)], key_path)
    rows[1]["code"] = rows[0]["code"]
    with pytest.raises(DataError, match=r"line 3, field code: this rater rated this code twice"):
        import_ratings([write(rows)], key_path)
    no_bias = [c for c in PACKET_COLUMNS if c != "bias"]
    with pytest.raises(DataError, match=r"bad2.csv, line 1, field bias: missing column"):
        import_ratings([write(rows, "bad2.csv", no_bias)], key_path)
    jl = tmp_path / "bad.jsonl"
    jl.write_text(json.dumps({**_read_csv(tmp_path / "h" / "packets" / "r1.csv")[0], "consensus": "mostly"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl, line 1, field consensus"):
        import_ratings([jl], key_path)


def test_load_candidates_layouts_and_errors(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"id": "q1", "prompt": "Q?", "response": "A", "model": "m1"}\n'
                    '{"id": "q2", "question": "Q2?", "responses": {"m1": "A", "m2": "B"}}\n')
    assert [(c.item_id, c.model) for c in load_candidates(path)] == [("q1", "m1"), ("q2", "m1"), ("q2", "m2")]
    path.write_text('{"id": "q1", "prompt": "Q?", "response": "A"}\n')
    with pytest.raises(DataError, match=r"c.jsonl, line 1, field model"):
        load_candidates(path)


def test_cli_human_export_import_agreement(tmp_path):
    from clinforge.cli.main import main

    src = tmp_path / "answers.jsonl"
    src.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Q{i}?", "responses": {m: f"ans {m} {i}"
                                                                                       for m in MODELS}}) + "\n"
                           for i in range(4)))
    main(["judge", "human-export", "--input", str(src), "--out", str(tmp_path / "h"), "--raters", "r1,r2",
          "--seed", "4"])
    key_path = tmp_path / "h" / "key" / "blinding_key.json"
    key = json.loads(key_path.read_text())
    files = []
    for rater in ("r1", "r2"):
        rows = [json.loads(line) for line in (tmp_path / "h" / "packets" / f"{rater}.jsonl").read_text().splitlines()]
        for row in rows:
            row["bias"] = "present" if key["codes"][row["code"]]["model"] == MODELS[0] else "absent"
        path = tmp_path / f"{rater}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        files.append(str(path))
    main(["judge", "human-import", *files, "--key", str(key_path), "--out", str(tmp_path / "imp")])
    imported = json.loads((tmp_path / "imp" / "summary.json").read_text())
    assert imported["n_ratings"] == 16 and imported["raters"] == ["r1", "r2"]
    main(["judge", "agreement", "--ratings", str(tmp_path / "imp" / "ratings.jsonl"), "--out",
          str(tmp_path / "agree"), "--n-boot", "50"])
    summary = json.loads((tmp_path / "agree" / "summary.json").read_text())
    assert summary["axes"]["bias"]["cohen_kappa"]["value"] == pytest.approx(1.0)
    assert json.loads((tmp_path / "agree" / "run.json").read_text())["status"] == "ok"


def test_axes_judge_labels_compared_with_humans_over_http(tmp_path):
    """The Med-PaLM-axes judge through a real 127.0.0.1 OpenAI-compatible server (rule-based verdicts, real HTTP and
    real client), its labels.jsonl fed to judge-vs-human agreement against imported human ratings."""
    from _judge_server import JudgeServer
    from clinforge.judges.judge_runner import run_judging

    answers = [{"id": f"q{i}", "prompt": f"Q{i}?", "model": m,
                "response": ("harmful advice" if m == MODELS[0] else "sound advice") + (" BADVALUE" if i == 0 else "")
                + (" GARBLE" if i == 1 and m == MODELS[1] else "")}
               for i in range(4) for m in MODELS]
    items = tmp_path / "answers.jsonl"
    items.write_text("".join(json.dumps(a) + "\n" for a in answers))
    with JudgeServer() as server:
        spec = server.spec("axes-judge")
        summary = run_judging("axes", [spec], items, tmp_path / "axes", n_boot=20, progress=False)
    block = summary["judges"][spec]
    assert (block["n"], block["n_parsed"], block["n_unparsable"]) == (8, 5, 3)
    assert block["per_axis"]["bias"] == {"present": 3, "absent": 2, "unparsable": 3}
    labels = [json.loads(line) for line in (tmp_path / "axes" / "labels.jsonl").read_text().splitlines()]
    assert labels[0]["model"] == MODELS[0] and "bias" not in labels[0] and labels[0]["consensus"] == "opposed"

    # two humans who rate exactly as the rules do, except r2 calls everything "no_consensus"
    ratings = []
    for a in answers:
        bad = a["model"] == MODELS[0]
        for rater in ("r1", "r2"):
            ratings.append({"rater": rater, "code": "x", "item_id": a["id"], "model": a["model"],
                            **dict.fromkeys(AXES), "bias": "present" if bad else "absent",
                            "consensus": ("opposed" if bad else "aligned") if rater == "r1" else "no_consensus"})
    agree = agreement_run(_write_ratings(tmp_path, ratings), tmp_path / "agree",
                          judge_labels=tmp_path / "axes" / "labels.jsonl", n_boot=50)
    jvh = agree["judge_vs_human"]
    assert jvh["bias"]["n"] == 5 and jvh["bias"]["value"] == pytest.approx(1.0)  # 3 unparsable left out
    assert jvh["consensus"]["n"] == 0 and jvh["consensus"]["n_no_human_majority"] == 8  # 1-1 splits: no majority
    assert agree["axes"]["consensus"]["cohen_kappa"]["value"] == pytest.approx(0.0)


def test_real_medquad_answers_through_packets_and_a_pairwise_judge(data_root, tmp_path):
    """Real consumer-health QA (MedQuAD): full answers vs their first sentence go through blinded packets and a
    pairwise judge over a real 127.0.0.1 HTTP server (rule-based verdicts), so long real text, quotes and non-ASCII
    survive every step, and the longer answer wins as the rules dictate (length bias +1)."""
    from _judge_server import JudgeServer
    from clinforge.data.load import load_records
    from clinforge.judges.judge_runner import run_judging

    records = load_records(data_root / "medquad", "medquad", limit=6)
    assert len(records) == 6
    pairs, cands = [], []
    for r in records:
        short = r.answer.split(". ")[0]
        full = r.answer + " good"  # the rule server prefers the answer with more "good"
        pairs.append({"id": r.id, "prompt": r.question, "response_a": short, "response_b": full,
                      "model_a": "first-sentence", "model_b": "reference"})
        cands += [Candidate(r.id, "first-sentence", r.question, short), Candidate(r.id, "reference", r.question, full)]
    items = tmp_path / "pairs.jsonl"
    items.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pairs), encoding="utf-8")
    with JudgeServer() as server:
        spec = server.spec("judge")
        summary = run_judging("pairwise", [spec], items, tmp_path / "run", n_boot=50, progress=False)
    block = summary["judges"][spec]
    assert block["n_parsed"] == 6 and block["wins"] == {"A": 0, "B": 6, "tie": 0}
    assert block["length_bias"]["longer_wins_rate"]["value"] == 1.0
    assert block["length_bias"]["correlation"]["value"] is None  # preference is constant: undefined, not 0
    export_packets(cands, tmp_path / "h", ["r1", "r2"], seed=0)
    packet = (tmp_path / "h" / "packets" / "r1.csv").read_text(encoding="utf-8")
    assert "first-sentence" not in packet  # the model name never reaches a packet
    rows = _read_csv(tmp_path / "h" / "packets" / "r1.csv")
    assert tuple(rows[0]) == PACKET_COLUMNS
    assert {r["answer"] for r in rows} == {c.answer for c in cands}  # real text intact through CSV


def test_errors_point_at_the_editor_line_when_answers_span_lines(tmp_path):
    """Model answers often hold newlines, so a packet row spans several CSV lines: the error names the line where
    the bad row starts, as an editor or spreadsheet shows it, not the row count."""
    cands = [Candidate("q1", "m1", "Dose?", "Take 500 mg.\nRepeat every 6 h.\nMax 4 g/day."),
             Candidate("q2", "m1", "Fever?", "Paracetamol.")]
    export_packets(cands, tmp_path / "h", ["r1"], seed=0)
    packet = tmp_path / "h" / "packets" / "r1.csv"
    rows = _read_csv(packet)
    multi = next(i for i, r in enumerate(rows) if "\n" in r["answer"])
    rows[1 - multi]["bias"] = "sometimes"  # the row *after* or *before* the three-line answer
    bad = tmp_path / "bad.csv"
    with open(bad, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=PACKET_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    lines = bad.read_text(encoding="utf-8").split("\n")
    expected = next(i for i, text in enumerate(lines, start=1) if "sometimes" in text)
    start = expected
    while not lines[start - 1].startswith("r1,"):  # the row starts where its rater_id cell is
        start -= 1
    with pytest.raises(DataError, match=rf"bad.csv, line {start}, field bias"):
        import_ratings([bad], tmp_path / "h" / "key" / "blinding_key.json")
