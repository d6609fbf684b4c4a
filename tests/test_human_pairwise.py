"""The pairwise human-evaluation exchange: Bradley-Terry equal to statsmodels' maximum-likelihood logistic fit
(with and without ties), undefined fits reported as such, win rates, import validation with file/line/field, and
the single-rating import of the review app's ``unsure`` column."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from clinforge.core.errors import DataError
from clinforge.eval.human import export_packets, import_ratings, load_candidates
from clinforge.eval.human_pairwise import KEY_FORMAT, bradley_terry, import_pairwise, pairwise_summary, win_rate

MODELS = ["m0", "m1", "m2", "m3"]


def _comparisons(n=300, seed=0, ties=False):
    rng = random.Random(seed)
    strength = {"m0": 0.0, "m1": 0.6, "m2": -0.4, "m3": 1.1}
    out = []
    for _ in range(n):
        a, b = rng.sample(MODELS, 2)
        p = 1 / (1 + np.exp(strength[b] - strength[a]))
        u = rng.random()
        winner = "tie" if ties and abs(u - p) < 0.1 else (a if u < p else b)
        out.append({"model_a": a, "model_b": b, "winner": winner, "unsure": False})
    return out


def _statsmodels_scores(comparisons):
    import statsmodels.api as sm

    x = np.zeros((len(comparisons), len(MODELS) - 1))
    y = np.zeros(len(comparisons))
    for i, c in enumerate(comparisons):
        ia, ib = MODELS.index(c["model_a"]), MODELS.index(c["model_b"])
        if ia:
            x[i, ia - 1] = 1
        if ib:
            x[i, ib - 1] = -1
        y[i] = 0.5 if c["winner"] == "tie" else float(c["winner"] == c["model_a"])
    fit = sm.GLM(y, x, family=sm.families.Binomial()).fit(tol=1e-12)
    scores = np.concatenate([[0.0], fit.params])
    return scores - scores.mean()


@pytest.mark.parametrize("ties", [False, True])
def test_bradley_terry_equals_statsmodels_mle(ties):
    comparisons = _comparisons(ties=ties)
    assert ties == any(c["winner"] == "tie" for c in comparisons)
    ours = bradley_terry(comparisons, MODELS)
    np.testing.assert_allclose(ours, _statsmodels_scores(comparisons), atol=1e-6)
    assert np.argmax(ours) == MODELS.index("m3")


def test_no_mle_when_a_model_never_loses_and_summary_says_so():
    comparisons = [{"model_a": "x", "model_b": "y", "winner": "x", "unsure": False}] * 3
    assert bradley_terry(comparisons, ["x", "y"]) is None
    summary = pairwise_summary(comparisons + [{"model_a": "x", "model_b": "y", "winner": None, "unsure": True}],
                               n_boot=20)
    assert not summary["estimable"] and summary["ranking"] == ["x", "y"]
    assert summary["n_missing"] == 1 and summary["n_unsure"] == 1
    assert summary["models"]["x"]["win_rate"]["value"] == 1.0 and summary["models"]["x"]["bt_score"]["value"] is None
    assert win_rate(comparisons, "y") == 0.0


def test_summary_cis_are_seeded_and_cover_the_estimate():
    comparisons = _comparisons(n=200, seed=4, ties=True)
    a = pairwise_summary(comparisons, seed=1, n_boot=200)
    assert a == pairwise_summary(comparisons, seed=1, n_boot=200)
    for block in a["models"].values():
        lo, hi = block["bt_score"]["ci"]
        assert lo <= block["bt_score"]["value"] <= hi


def _key(tmp_path):
    path = tmp_path / "key.json"
    path.write_text(json.dumps({"format": KEY_FORMAT, "codes": {
        "C00000001": {"item_id": "q1", "model_a": "m1", "model_b": "m2"},
        "C00000002": {"item_id": "q2", "model_a": "m1", "model_b": "m2"}}}))
    return path


@pytest.mark.parametrize(("row", "field"), [
    ("r1,C00000001,c,left,0,", "left"),
    ("r1,C00000001,a,better,0,", "choice"),
    ("r1,C00000009,a,left,0,", "code"),
    ("r1,C00000001,a,left,maybe,", "unsure"),
    (",C00000001,a,left,0,", "rater_id"),
])
def test_import_errors_name_file_line_and_field(tmp_path, row, field):
    path = tmp_path / "c.csv"
    path.write_text("rater_id,code,left,choice,unsure,comment\nr1,C00000002,a,tie,0,\n" + row + "\n")
    with pytest.raises(DataError, match=rf"c\.csv, line 3, field {field}"):
        import_pairwise([path], _key(tmp_path))


def test_import_unblinds_sides_and_unsure(tmp_path):
    path = tmp_path / "c.jsonl"
    rows = [{"rater_id": "r1", "code": "C00000001", "left": "b", "choice": "left", "unsure": 0},
            {"rater_id": "r1", "code": "C00000002", "left": "a", "choice": "left", "unsure": 1},
            {"rater_id": "r2", "code": "C00000002", "left": "b", "choice": "tie", "unsure": "false"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = import_pairwise([path], _key(tmp_path))
    assert [c["winner"] for c in out] == ["m2", None, "tie"]
    assert [c["left_model"] for c in out] == ["m2", "m1", "m2"]
    (tmp_path / "single_key.json").write_text(json.dumps({"seed": 0, "codes": {}}))
    with pytest.raises(DataError, match="not a pairwise key"):
        import_pairwise([path], tmp_path / "single_key.json")


def test_single_import_reads_the_unsure_column_as_missing(tmp_path):
    answers = tmp_path / "a.jsonl"
    answers.write_text(json.dumps({"id": "q1", "prompt": "Q?", "responses": {"m1": "A"}}) + "\n")
    export_packets(load_candidates(answers), tmp_path / "h", ["r1"])
    packet = (tmp_path / "h" / "packets" / "r1.csv").read_text().splitlines()
    header = packet[0] + ",unsure"
    cells = packet[1].split(",")
    cells[4] = "aligned"
    (tmp_path / "r1.csv").write_text(header + "\n" + ",".join(cells) + ",1\n")
    (rating,) = import_ratings([tmp_path / "r1.csv"], tmp_path / "h" / "key" / "blinding_key.json")
    assert rating["unsure"] is True and rating["consensus"] is None
    (tmp_path / "r2.csv").write_text(header + "\n" + ",".join(cells) + ",perhaps\n")
    with pytest.raises(DataError, match="r2.csv, line 2, field unsure"):
        import_ratings([tmp_path / "r2.csv"], tmp_path / "h" / "key" / "blinding_key.json")
