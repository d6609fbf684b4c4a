"""``clinforge score`` end to end on real files written from IU X-ray reports."""

from __future__ import annotations

import json

import pytest

from _metrics_data import iu_xray_pairs
from clinforge.cli.main import main
from clinforge.eval.metrics.bleu import bleu
from clinforge.eval.metrics.rouge import rouge


@pytest.fixture(scope="module")
def files(data_root, tmp_path_factory):
    preds, single, multi = iu_xray_pairs(data_root, 120)
    preds = list(preds)
    preds[5] = ""  # an empty prediction: scored 0 and counted
    d = tmp_path_factory.mktemp("score")
    (d / "pred.txt").write_text("\n".join(p.replace("\n", " ") for p in preds) + "\n")
    (d / "ref1.txt").write_text("\n".join(r[0].replace("\n", " ") for r in multi) + "\n")
    (d / "ref2.txt").write_text("\n".join(r[1].replace("\n", " ") for r in multi) + "\n")
    (d / "short.txt").write_text("one\ntwo\n")
    preds = [p.replace("\n", " ") for p in preds]
    refs = [[r[0].replace("\n", " "), r[1].replace("\n", " ")] for r in multi]
    return d, preds, refs


def _run(capsys, *args):
    main(["score", *map(str, args)])
    return capsys.readouterr().out


def test_json_keys_and_values(files, capsys):
    d, preds, refs = files
    out = json.loads(_run(capsys, "--pred", d / "pred.txt", "--ref", d / "ref1.txt", "--ref", d / "ref2.txt",
                          "--json"))
    for key in ("bleu", "bleu1", "bleu2", "bleu3", "bleu4", "rouge1", "rouge2", "rougeL", "rougeLsum", "rougeW",
                "rougeS", "rougeSU", "gleu", "distinct1", "distinct2", "cider"):
        assert key in out
    assert out["n"] == 120 and out["n_empty_predictions"] == 1
    assert out["bleu"] == pytest.approx(bleu(preds, refs)["bleu"], abs=1e-9)
    assert out["rougeL"] == pytest.approx(rouge(preds, refs)["rougeL"], abs=1e-9)


def test_metric_selection_and_table(files, capsys):
    d, _, _ = files
    out = json.loads(_run(capsys, "--pred", d / "pred.txt", "--ref", d / "ref1.txt", "--metrics", "rougeL,bleu4",
                          "--json"))
    assert set(out) == {"rougeL", "bleu4", "rougeL_ci", "bleu4_ci", "ci", "n", "n_empty_predictions"}
    assert out["rougeL_ci"][0] <= out["rougeL"] <= out["rougeL_ci"][1]
    assert out["ci"] == {"method": "percentile bootstrap over examples", "n_resamples": 1000, "seed": 0, "alpha": 0.05}
    plain = json.loads(_run(capsys, "--pred", d / "pred.txt", "--ref", d / "ref1.txt", "--metrics", "rougeL",
                            "--json", "--no-ci"))
    assert set(plain) == {"rougeL", "n", "n_empty_predictions"}
    table = _run(capsys, "--pred", d / "pred.txt", "--ref", d / "ref1.txt", "--metrics", "gleu")
    assert "gleu" in table and "120 examples" in table


def test_length_mismatch_names_both_counts(files, capsys):
    d, _, _ = files
    with pytest.raises(SystemExit) as exc:
        _run(capsys, "--pred", d / "pred.txt", "--ref", d / "short.txt")
    assert exc.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "120 predictions" in err and "2 references" in err


def test_unknown_metric_lists_valid(files, capsys):
    d, _, _ = files
    with pytest.raises(SystemExit):
        _run(capsys, "--pred", d / "pred.txt", "--ref", d / "ref1.txt", "--metrics", "bleurt")
    err = " ".join(capsys.readouterr().err.split())
    assert "unknown metric 'bleurt'" in err and "rougeLsum" in err


def test_empty_prediction_file_is_an_error(tmp_path, capsys):
    (tmp_path / "p.txt").write_text("")
    (tmp_path / "r.txt").write_text("")
    with pytest.raises(SystemExit):
        _run(capsys, "--pred", tmp_path / "p.txt", "--ref", tmp_path / "r.txt")
    assert "no examples" in " ".join(capsys.readouterr().err.split())


def test_json_values_equal_the_reference_libraries(tmp_path, capsys):
    """Every --json key against its reference library directly, with two reference files, unicode and CRLF lines."""
    import contextlib
    import io

    import sacrebleu
    from nltk.translate.gleu_score import corpus_gleu
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from rouge_score.rouge_scorer import RougeScorer

    preds = ["No acute cardiopulmonary disease .", "Größe normal, no effusion", "", "heart size normal 😀",
             "mild cardiomegaly without edema", "l'œdème pulmonaire"]
    ref1 = ["No acute disease .", "normal size , no effusion", "clear lungs", "heart size is normal",
            "cardiomegaly , no edema", "pas d'œdème"]
    ref2 = ["no acute cardiopulmonary abnormality", "no pleural effusion", "lungs are clear", "normal heart",
            "mild cardiomegaly", "œdème"]
    (tmp_path / "p.txt").write_text("\r\n".join(preds) + "\r\n", encoding="utf-8")
    (tmp_path / "r1.txt").write_text("\n".join(ref1) + "\n", encoding="utf-8")
    (tmp_path / "r2.txt").write_text("\n".join(ref2), encoding="utf-8")
    out = json.loads(_run(capsys, "--pred", tmp_path / "p.txt", "--ref", tmp_path / "r1.txt", "--ref",
                          tmp_path / "r2.txt", "--json", "--no-ci"))
    refs = [list(r) for r in zip(ref1, ref2, strict=True)]
    assert out["n"] == 6 and out["n_empty_predictions"] == 1
    reference_bleu = sacrebleu.corpus_bleu(preds, [ref1, ref2]).score
    # the fixture must give sacrebleu a score above 1, so that a 0-1 scale on our side could not pass the parity check
    assert reference_bleu > 1
    assert out["bleu"] == pytest.approx(reference_bleu, abs=1e-9)
    with contextlib.redirect_stdout(io.StringIO()):
        coco, _ = Bleu(4).compute_score(dict(enumerate(refs)), {i: [p] for i, p in enumerate(preds)})
    assert [out[f"bleu{k}"] for k in range(1, 5)] == pytest.approx(coco, abs=1e-9)
    scorer = RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"])
    rows = [scorer.score_multi(r, p) for p, r in zip(preds, refs, strict=True)]
    for key in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        assert out[key] == pytest.approx(sum(row[key].fmeasure for row in rows) / len(rows), abs=1e-9)
        assert 0 <= out[key] <= 1
    assert out["gleu"] == pytest.approx(corpus_gleu([[r.split() for r in rs] for rs in refs],
                                                    [p.split() for p in preds]), abs=1e-9)
    cider, _ = Cider().compute_score(dict(enumerate(refs)), {i: [p] for i, p in enumerate(preds)})
    assert out["cider"] == pytest.approx(float(cider), abs=1e-9)
    tokens = [t for p in preds for t in p.split()]
    assert out["distinct1"] == pytest.approx(len(set(tokens)) / len(tokens))


def test_byte_order_mark_is_not_part_of_the_first_example(tmp_path, capsys):
    """Files saved by spreadsheet tools start with a UTF-8 BOM; it must not become part of the first prediction."""
    (tmp_path / "bom.txt").write_text("\ufeffthe heart is normal\nno effusion\n", encoding="utf-8")
    (tmp_path / "plain.txt").write_text("the heart is normal\nno effusion\n", encoding="utf-8")
    args = ("--ref", tmp_path / "plain.txt", "--metrics", "bleu,bleu_coco,cider,gleu", "--json", "--no-ci")
    with_bom = json.loads(_run(capsys, "--pred", tmp_path / "bom.txt", *args))
    assert with_bom["bleu"] == pytest.approx(100.0) and with_bom["bleu4"] == pytest.approx(1.0, abs=1e-6)
    assert with_bom["gleu"] == 1.0


def test_bleu_tokenizer_and_case_options_follow_sacrebleu(tmp_path, capsys):
    """Chinese medical QA needs sacrebleu's zh tokenizer: --bleu-tokenize/--bleu-lowercase are sacrebleu's -tok/-lc."""
    import sacrebleu

    preds = ["患者有发热和咳嗽", "No Effusion."]
    refs = ["患者发热咳嗽三天", "no effusion ."]
    (tmp_path / "p.txt").write_text("\n".join(preds) + "\n", encoding="utf-8")
    (tmp_path / "r.txt").write_text("\n".join(refs) + "\n", encoding="utf-8")
    base = ("--pred", tmp_path / "p.txt", "--ref", tmp_path / "r.txt", "--metrics", "bleu", "--json")
    out = json.loads(_run(capsys, *base, "--bleu-tokenize", "zh", "--bleu-lowercase"))
    expected = sacrebleu.corpus_bleu(preds, [refs], tokenize="zh", lowercase=True)
    assert out["bleu"] == pytest.approx(expected.score, abs=1e-9)
    lo, hi = out["bleu_ci"]
    assert lo <= out["bleu"] <= hi
    default = json.loads(_run(capsys, *base))
    assert default["bleu"] == pytest.approx(sacrebleu.corpus_bleu(preds, [refs]).score, abs=1e-9)
    assert default["bleu"] != out["bleu"]
    with pytest.raises(SystemExit) as exit_info:
        _run(capsys, *base, "--bleu-tokenize", "chinese")
    assert exit_info.value.code == 2
    assert "unknown sacrebleu tokenizer 'chinese'; valid: none, zh" in capsys.readouterr().err.replace("\n", "")


def test_rouge_zero_on_text_without_latin_tokens_is_counted_and_warned(tmp_path, capsys):
    """rouge-score tokenises [a-z0-9] only: Chinese scores 0 (the reference's number), counted and warned about."""
    from rouge_score.rouge_scorer import RougeScorer

    (tmp_path / "p.txt").write_text("患者有发热\nno effusion\n", encoding="utf-8")
    (tmp_path / "r.txt").write_text("患者有发热\nno effusion\n", encoding="utf-8")
    main(["score", "--pred", str(tmp_path / "p.txt"), "--ref", str(tmp_path / "r.txt"), "--metrics", "rouge",
          "--json", "--details", "--no-ci"])
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["rouge1"] == pytest.approx(RougeScorer(["rouge1"]).score("患者有发热", "患者有发热")["rouge1"].fmeasure / 2
                                          + 0.5)
    assert out["details"]["rouge"]["n_texts_without_rouge_tokens"] == 1
    assert "1 example(s) have text with no ROUGE token" in captured.err.replace("\n", " ")


def test_undecodable_reference_names_its_line(tmp_path):
    from clinforge.core.errors import DataError
    from clinforge.core.io import read_lines

    bad = tmp_path / "refs.txt"
    bad.write_bytes("no effusion\nheart normal\nGr\xf6\xdfe normal\n".encode().replace(b"\xc3\xb6", b"\xf6"))
    with pytest.raises(DataError, match=r"refs.txt, line 3: not UTF-8"):
        read_lines(bad)


@pytest.mark.parametrize(("option", "value"), [("--n-resamples", "0"), ("--alpha", "1.5"), ("--alpha", "0")])
def test_bad_bootstrap_settings_are_refused(tmp_path, capsys, option, value):
    (tmp_path / "p.txt").write_text("a b\nc d\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["score", "--pred", str(tmp_path / "p.txt"), "--ref", str(tmp_path / "p.txt"), "--json", option, value])
    assert exit_info.value.code == 2
    assert "n_resamples >= 1 and 0 < alpha < 1" in capsys.readouterr().err.replace("\n", "")
