"""ROUGE-W/S/SU (hand-computed, Lin 2004), Distinct-n, accuracy CI, calibration, significance, BERTScore, METEOR."""

from __future__ import annotations

import os

import numpy as np
import pytest

from _metrics_data import iu_xray_pairs
from clinforge.core.errors import ClinforgeError
from clinforge.eval.metrics.accuracy import accuracy
from clinforge.eval.metrics.calibration import calibration
from clinforge.eval.metrics.distinct import distinct
from clinforge.eval.metrics.meteor import java_available, meteor
from clinforge.eval.metrics.rouge_s import rouge_s
from clinforge.eval.metrics.rouge_w import rouge_w, wlcs
from clinforge.eval.metrics.significance import mcnemar, paired_bootstrap, paired_bootstrap_corpus

# -- ROUGE-W: the paper's example (sect. 3.3): same LCS, consecutive matches rewarded
X = "a b c d e f g"
Y1 = "a b c d h i k"
Y2 = "a h b k c i d"


def test_rouge_w_paper_example():
    assert wlcs(X.split(), Y1.split()) == pytest.approx(4**1.2)
    assert wlcs(X.split(), Y2.split()) == pytest.approx(4.0)
    r1 = rouge_w([Y1], [[X]])
    r2 = rouge_w([Y2], [[X]])
    assert r1["rougeW_recall"] == pytest.approx(4 / 7)  # f^-1(4^1.2 / 7^1.2)
    assert r1["rougeW"] == pytest.approx(4 / 7)
    assert r2["rougeW_recall"] == pytest.approx(4 ** (1 / 1.2) / 7)  # f^-1(4 / 7^1.2)
    assert r1["rougeW"] > r2["rougeW"]


def test_rouge_w_paper_published_values_with_weight_two():
    # Lin (2004) illustrates ROUGE-W with f(k) = k^2 and reports 0.571 for Y1 and 0.286 for Y2
    assert rouge_w([Y1], [[X]], weight=2.0)["rougeW"] == pytest.approx(0.571, abs=5e-4)
    assert rouge_w([Y2], [[X]], weight=2.0)["rougeW"] == pytest.approx(0.286, abs=5e-4)


def test_rouge_w_unequal_lengths_and_weight_one_is_lcs():
    # weight 1: WLCS = LCS, so ROUGE-W = ROUGE-L F
    r = rouge_w(["a b x c"], [["a b c"]], weight=1.0)
    assert r["rougeW_precision"] == pytest.approx(3 / 4) and r["rougeW_recall"] == pytest.approx(1.0)
    assert r["rougeW"] == pytest.approx(2 * 0.75 / 1.75)
    # "a b" run then "c": WLCS = 2^1.2 + 1
    assert wlcs(["a", "b", "c"], ["a", "b", "x", "c"]) == pytest.approx(2**1.2 + 1)


def test_rouge_s_paper_examples():
    ref = [["police killed the gunman"]]
    s2 = rouge_s(["police kill the gunman"], ref, max_skip=None)
    s3 = rouge_s(["the gunman kill police"], ref, max_skip=None)
    s4 = rouge_s(["the gunman police killed"], ref, max_skip=None)
    assert s2["rougeS"] == pytest.approx(3 / 6)
    assert s3["rougeS"] == pytest.approx(1 / 6)
    assert s4["rougeS"] == pytest.approx(2 / 6)
    # Lin's reading of SU adds the 4 unigrams to the 6 skip-bigrams: S3 shares "the gunman" + police, the, gunman
    assert rouge_s(["the gunman kill police"], ref, max_skip=None, su_unigrams="all")["rougeSU"] == pytest.approx(4 / 10)


def test_rouge_su_counts_unigrams_as_the_rouge155_script():
    """ROUGE-1.5.5's createSkipBigram adds a unigram for every token but the last (loop ``$i<$#m_tokens``)."""
    ref = [["police killed the gunman"]]
    # ref units: 6 skip-bigrams + police, killed, the; candidate: 6 + the, gunman, kill; shared: "the gunman", "the"
    r = rouge_s(["the gunman kill police"], ref, max_skip=None)
    assert r["rougeSU"] == pytest.approx(2 / 9)
    assert r["rougeSU_precision"] == pytest.approx(2 / 9) and r["rougeSU_recall"] == pytest.approx(2 / 9)
    assert r["rouge_su_unigrams"] == "rouge155"
    # a one-token text has no SU unit in the script, so it scores 0 even against itself
    assert rouge_s(["effusion"], [["effusion"]])["rougeSU"] == 0.0
    assert rouge_s(["effusion"], [["effusion"]], su_unigrams="all")["rougeSU"] == 1.0
    # ROUGE-S itself is unaffected by the unigram rule
    assert r["rougeS"] == rouge_s(["the gunman kill police"], ref, max_skip=None, su_unigrams="all")["rougeS"]
    with pytest.raises(ClinforgeError, match="valid: rouge155, all"):
        rouge_s(["a"], [["a"]], su_unigrams="lin")


def test_rouge_s_skip_distance():
    ref = [["police killed the gunman"]]
    # max_skip=0: plain bigrams; only "the gunman" is shared out of 3
    assert rouge_s(["police kill the gunman"], ref, max_skip=0)["rougeS"] == pytest.approx(1 / 3)
    # max_skip=1 on "a b c d": pairs with gap <= 1: ab ac bc bd cd = 5
    r = rouge_s(["a b c d"], [["a c"]], max_skip=1)
    assert r["rougeS_precision"] == pytest.approx(1 / 5) and r["rougeS_recall"] == pytest.approx(1.0)
    # alpha weighting (ROUGE-1.5.5 -p): F = PR / ((1-a)P + aR)
    r = rouge_s(["a b c d"], [["a c"]], max_skip=1, alpha=0.9)
    assert r["rougeS"] == pytest.approx(0.2 * 1.0 / (0.1 * 0.2 + 0.9 * 1.0))


def test_rouge_ws_edge_cases_and_multiref():
    assert rouge_w([""], [["a"]])["rougeW"] == 0.0
    assert rouge_s(["a"], [[""]])["rougeSU"] == 0.0
    # best reference per example
    assert rouge_s(["a b"], [["x y", "a b"]])["rougeS"] == 1.0
    assert rouge_w(["a b"], [["x y", "a b"]])["rougeW"] == 1.0


def test_distinct_definitions():
    preds = ["a b a b", "a c"]
    r = distinct(preds)
    # distinct unigrams {a, b, c} = 3, distinct bigrams {ab, ba, ac} = 3, tokens = 6
    assert r["distinct1"] == 0.5 and r["distinct2"] == 0.5
    r = distinct(preds, denominator="ngrams")
    assert r["distinct1"] == 0.5 and r["distinct2"] == pytest.approx(3 / 4)  # bigrams: 3 + 1
    assert distinct([""])["distinct1"] == 0.0


def test_accuracy_bootstrap_is_seeded_and_matches_numpy():
    preds = ["A", "B", "C", "D"] * 25
    refs = [["A"], ["B"], ["A"], ["A"]] * 25
    r = accuracy(preds, refs, n_resamples=500, seed=3)
    assert r["acc"] == 0.5 and r["n"] == 100
    assert r == accuracy(preds, refs, n_resamples=500, seed=3)
    correct = np.array([1, 1, 0, 0] * 25, dtype=float)
    rng = np.random.default_rng(3)
    means = correct[rng.integers(0, 100, size=(500, 100))].mean(axis=1)
    assert r["acc_ci"] == pytest.approx(list(np.quantile(means, [0.025, 0.975])))
    assert r["acc_ci"][0] < 0.5 < r["acc_ci"][1]
    from clinforge.eval.metrics._common import bootstrap_ci

    values = np.random.default_rng(0).random(50)
    assert bootstrap_ci(values, seed=1) == bootstrap_ci(values, seed=1)
    assert bootstrap_ci(values, seed=1) != bootstrap_ci(values, seed=2)  # the seed matters


def test_accuracy_empty_prediction_is_wrong_and_counted():
    r = accuracy(["", " a "], [["a"], ["a"]])
    assert r["acc"] == 0.5 and r["n_empty"] == 1


def test_calibration_hand_values_and_sklearn():
    from sklearn.metrics import brier_score_loss

    probs = [[0.9, 0.1], [0.6, 0.4]]
    r = calibration(probs, [0, 1])
    assert r["ece"] == pytest.approx(0.5 * 0.1 + 0.5 * 0.6)
    assert r["brier"] == pytest.approx(0.37)
    assert r["brier"] == pytest.approx(2 * brier_score_loss([0, 1], [p[1] for p in probs]))
    # 0.7 belongs to (0.6, 0.7], not (0.7, 0.8] (float rounding of 0.7 * 10)
    r = calibration([[0.7, 0.3]], [0])
    assert r["bins"][6]["count"] == 1


def test_calibration_intervals_equal_a_bootstrap_that_recomputes_everything():
    """ECE, Brier and accuracy are sample estimates: each gets a seeded percentile bootstrap CI over questions,
    equal to recomputing calibration() on every resample drawn by numpy.random.default_rng(seed)."""
    rng = np.random.default_rng(7)
    logits = rng.normal(size=(60, 4)) * 2
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    gold = [int(g) for g in rng.integers(0, 4, size=60)]
    r = calibration(probs.tolist(), gold, n_resamples=200, seed=3)
    draws = np.random.default_rng(3).integers(0, 60, size=(200, 60))
    for key in ("ece", "brier", "accuracy"):
        values = [calibration(probs[row].tolist(), [gold[i] for i in row], ci=False)[key] for row in draws]
        assert r[f"{key}_ci"] == pytest.approx(list(np.quantile(values, [0.025, 0.975])), abs=1e-12), key
        assert r[f"{key}_ci"][0] <= r[key] <= r[f"{key}_ci"][1]
    assert r["ci"]["seed"] == 3 and r["ci"]["n_resamples"] == 200
    assert "ece_ci" not in calibration(probs.tolist(), gold, ci=False)


def test_calibration_rejects_bad_rows():
    from clinforge.core.errors import DataError

    with pytest.raises(DataError, match="record 1"):
        calibration([[0.5, 0.5], [0.5, 0.6]], [0, 1])
    with pytest.raises(DataError, match="gold"):
        calibration([[0.5, 0.5]], [2])


def test_mcnemar_matches_statsmodels_and_scipy():
    from scipy.stats import binomtest, chi2

    try:
        from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
    except ImportError:  # statsmodels is optional: scipy alone still checks both branches below
        sm_mcnemar = None

    rng = np.random.default_rng(0)
    for n, p_flip in ((40, 0.2), (400, 0.15), (400, 0.3)):
        a = rng.random(n) < 0.7
        b = np.where(rng.random(n) < p_flip, ~a, a)
        ours = mcnemar(a, b)
        table = [[int(np.sum(a & b)), int(np.sum(a & ~b))], [int(np.sum(~a & b)), int(np.sum(~a & ~b))]]
        b, c = ours["b"], ours["c"]
        exact = b + c < 25
        if sm_mcnemar is not None:
            assert ours["p_value"] == pytest.approx(sm_mcnemar(table, exact=exact, correction=True).pvalue, rel=1e-9)
        if exact:
            assert ours["method"] == "exact binomial"
            assert ours["p_value"] == pytest.approx(binomtest(b, b + c, 0.5).pvalue, rel=1e-9)
        else:
            assert ours["method"] == "chi-square with continuity correction"
            assert ours["p_value"] == pytest.approx(chi2.sf((abs(b - c) - 1) ** 2 / (b + c), 1), rel=1e-9)
    assert mcnemar([1, 0], [1, 0])["p_value"] == 1.0


def test_paired_bootstrap():
    a = [1, 1, 1, 0] * 50
    b = [1, 0, 0, 0] * 50
    r = paired_bootstrap(a, b, n_resamples=300, seed=1)
    assert r["delta"] == pytest.approx(0.5) and r["p_value"] < 0.01 and r["win_rate"] == 1.0
    assert r == paired_bootstrap(a, b, n_resamples=300, seed=1)
    same = paired_bootstrap(a, a, n_resamples=100)
    assert same["delta"] == 0.0 and same["p_value"] == 1.0


def test_paired_bootstrap_corpus_bleu(data_root):
    from clinforge.eval.metrics.bleu import bleu

    preds, single, _ = iu_xray_pairs(data_root, 60)
    worse = [" ".join(p.split()[:2]) for p in preds]
    r = paired_bootstrap_corpus(preds, worse, single, lambda p, rr: bleu(p, rr)["bleu"], n_resamples=50)
    assert r["delta"] == pytest.approx(bleu(preds, single)["bleu"] - bleu(worse, single)["bleu"])
    assert r["delta_ci"][0] <= r["delta"] <= r["delta_ci"][1]


def test_bertscore_equals_bert_score_library(data_root):
    import bert_score

    from clinforge.eval.metrics.bertscore import bertscore, default_model_path

    preds, _, multi = iu_xray_pairs(data_root, 6)
    ours = bertscore(preds, multi)
    p, r, f = bert_score.score(preds, multi, model_type=default_model_path(), num_layers=6)
    assert ours["bertscore_f1"] == pytest.approx(float(f.mean()), abs=1e-6)
    assert ours["bertscore_precision"] == pytest.approx(float(p.mean()), abs=1e-6)
    assert ours["bertscore_layer"] == 6
    with_empty = bertscore(["", preds[0]], [multi[0], multi[0]])
    assert with_empty["bertscore_f1"] == pytest.approx(float(f[0]) / 2, abs=1e-6)
    assert with_empty["n_empty"] == 1


@pytest.mark.slow
@pytest.mark.skipif(not java_available() and not os.environ.get("CI"),
                    reason="METEOR needs Java (CI has it: a missing Java there fails the test instead of skipping)")
def test_meteor_equals_pycocoevalcap(data_root):
    from pycocoevalcap.meteor.meteor import Meteor

    preds, _, multi = iu_xray_pairs(data_root, 25)
    # pycocoevalcap deletes the jar's separator "|||" from a hypothesis ("heartsize"); empty and unicode texts too
    preds = [*preds, "heart|||size normal", "", "naïve  effusion"]
    multi = [*multi, ["heart size normal", "normal heart"], ["effusion"], ["naive effusion"]]
    scorer = Meteor()  # one JVM for both sides: starting METEOR 1.5 costs ~15 s
    expected, _ = scorer.compute_score({i: r for i, r in enumerate(multi)}, {i: [p] for i, p in enumerate(preds)})
    ours = meteor(preds, multi, scorer=scorer)
    del scorer
    assert ours["meteor"] == pytest.approx(expected, abs=1e-9)
    assert 0 < ours["meteor"] < 1


def test_bertscore_any_local_model_folder(tmp_path):
    """A local folder (here a tiny random BERT with MiniLM's tokenizer) works; its layer defaults to the last."""
    import shutil
    from pathlib import Path

    import bert_score
    import torch
    from transformers import BertConfig, BertModel

    from clinforge.eval.metrics.bertscore import bertscore, default_model_path

    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64)
    BertModel(config).save_pretrained(tmp_path)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(Path(default_model_path()) / name, tmp_path / name)
    preds = ["heart size is normal", "small left effusion"]
    refs = [["normal heart size"], ["left pleural effusion", "no effusion"]]
    ours = bertscore(preds, refs, model=str(tmp_path))
    assert ours["bertscore_layer"] == 2
    _, _, f = bert_score.score(preds, refs, model_type=str(tmp_path), num_layers=2)
    assert ours["bertscore_f1"] == pytest.approx(float(f.mean()), abs=1e-6)


def test_meteor_without_java_is_a_clear_error(monkeypatch):
    from clinforge.core.errors import ClinforgeError

    monkeypatch.setenv("PATH", "")  # no java on PATH
    with pytest.raises(ClinforgeError, match="METEOR needs Java"):
        meteor(["a"], [["a"]])


def _rouge155_skip_bigrams(tokens, skip_distance, unigram):
    """A literal transcription of ROUGE-1.5.5's createSkipBigram loops (``-2 skip_distance``, ``-u``), as the check."""
    grams, count = {}, 0
    last = len(tokens) - 1  # Perl's $#m_tokens
    i = 0
    while i < last:
        if unigram:
            grams[tokens[i]] = grams.get(tokens[i], 0) + 1
            count += 1
        j = i + 1
        while j <= last and (skip_distance < 0 or j <= i + skip_distance + 1):
            key = f"{tokens[i]} {tokens[j]}"
            grams[key] = grams.get(key, 0) + 1
            count += 1
            j += 1
        i += 1
    return grams, count


@pytest.mark.parametrize("skip", [0, 1, 4, -1])
def test_rouge_s_su_equal_the_rouge155_loops_on_random_texts(skip):
    import random

    from clinforge.eval.metrics.rouge import RougeTokenizer

    rng = random.Random(skip)
    tok = RougeTokenizer()
    words = ["the", "a", "lung", "heart", "effusion", "no", "normal", "size", "left", "right"]
    for _ in range(200):
        pred = " ".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
        ref = " ".join(rng.choice(words) for _ in range(rng.randint(0, 12)))
        ours = rouge_s([pred], [[ref]], max_skip=None if skip < 0 else skip)
        for name, unigram in (("rougeS", False), ("rougeSU", True)):
            model, n_model = _rouge155_skip_bigrams(list(tok.tokenize(ref)), skip, unigram)
            peer, n_peer = _rouge155_skip_bigrams(list(tok.tokenize(pred)), skip, unigram)
            hit = sum(min(c, peer[g]) for g, c in model.items() if g in peer)
            recall = hit / n_model if n_model else 0.0
            precision = hit / n_peer if n_peer else 0.0
            f = precision * recall / (0.5 * precision + 0.5 * recall) if precision and recall else 0.0
            assert ours[f"{name}_recall"] == pytest.approx(recall if n_peer else 0.0), (pred, ref, name)
            assert ours[f"{name}_precision"] == pytest.approx(precision if n_model else 0.0), (pred, ref, name)
            assert ours[name] == pytest.approx(f), (pred, ref, name)
