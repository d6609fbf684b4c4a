"""Judges end to end: pairwise both-orders logic, bias diagnostics, juries, rubric (HealthBench) scoring, self-
preference, resumable runs through the CLI, and real backends.

The HTTP tests start a real OpenAI-compatible server on 127.0.0.1 inside the test (``tests/_judge_server.py``):
it answers chat completions with rule-based but real JSON verdicts over a real HTTP exchange, so clinforge's real
``openai`` backend client and the whole judge pipeline run; only the judging model is replaced by rules. One test
also runs a real tiny random-weight transformers model through the ``hf`` backend.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from _judge_server import JudgeServer
from clinforge.core.errors import ConfigError
from clinforge.judges import (
    JUDGES,
    Jury,
    PairwiseJudge,
    RubricJudge,
    SingleAnswerJudge,
    healthbench_aggregate,
    healthbench_raw_score,
    load_rubric,
    model_family,
)
from clinforge.judges.bias import (
    pairwise_length_bias,
    pearson,
    position_consistency,
    self_preference,
    spearman,
)
from clinforge.judges.judge_runner import run_judging
from clinforge.judges.jury import aggregate_scores, aggregate_winners
from clinforge.judges.pairwise import PairwiseResult, final_winner
from clinforge.judges.single import ScoreResult
from clinforge.models.backends import load_backend


@pytest.fixture(scope="module")
def server():
    with JudgeServer() as srv:
        yield srv


def _cli(args: list[str]) -> int:
    """Run the real console entry point; returns its exit status."""
    from clinforge.cli.main import main

    try:
        main(args)
    except SystemExit as exc:
        return exc.code or 0
    return 0


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_final_winner_both_orders():
    assert final_winner("A", "A") == ("A", True)
    assert final_winner("tie", "tie") == ("tie", True)
    assert final_winner("A", "B") == ("tie", False)  # position flip -> tie, reported inconsistent
    assert final_winner("B", "tie") == ("tie", False)
    assert final_winner(None, "A") == (None, None)  # unparsable order -> no verdict, not a tie


def test_position_consistency_and_length_bias_on_constructed_set():
    rows = [("w w w w", "w", "A", "A"),  # d = 0.6, s = 1
            ("w", "w w w", "B", "B"),  # d = -0.5, s = 0
            ("w w", "w w", "A", "B"),  # d = 0, s = 0.5 (inconsistent)
            ("w w w", "w", "tie", "tie")]  # d = 0.5, s = 0.5
    pc = position_consistency([(ab, ba) for *_, ab, ba in rows], n_boot=200)
    assert pc["value"] == 0.75 and pc["n"] == 4
    assert 0 <= pc["ci"][0] <= 0.75 <= pc["ci"][1] <= 1
    lb = pairwise_length_bias(rows, n_boot=200, seed=1)
    expected = stats.pearsonr([0.6, -0.5, 0.0, 0.5], [1, 0, 0.5, 0.5]).statistic
    assert lb["correlation"]["value"] == pytest.approx(expected, abs=1e-12)
    assert lb["longer_wins_rate"]["value"] == 1.0 and lb["longer_wins_rate"]["n"] == 2
    # the same seed gives the same CI; CIs are reported with the number of resamples used
    assert pairwise_length_bias(rows, n_boot=200, seed=1) == lb
    assert lb["correlation"]["n_boot"] + lb["correlation"]["n_undefined"] == 200


def test_correlations_match_scipy():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 40), rng.normal(size=40)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert pearson([1, 1, 1], [1, 2, 3]) is None  # undefined, not 0


def test_jury_aggregation_rules():
    s = [ScoreResult(8.0, True, ""), ScoreResult(8.0, True, ""), ScoreResult(2.0, True, ""),
         ScoreResult(None, False, "")]
    assert aggregate_scores(s, "mean") == (6.0, False)
    assert aggregate_scores(s, "majority") == (8.0, False)
    assert aggregate_scores([ScoreResult(None, False, "")], "mean") == (None, False)

    def pw(w):
        return PairwiseResult(w, w is not None, True, w, w, "", "")

    assert aggregate_winners([pw("A"), pw("B"), pw("B"), pw(None)], "majority") == "B"
    assert aggregate_winners([pw("A"), pw("B")], "majority") == "tie"
    assert aggregate_winners([pw("A"), pw("tie"), pw("B"), pw("A")], "mean") == "A"
    assert aggregate_winners([pw(None)], "mean") is None


def test_model_family_and_self_preference_flag(tmp_path):
    assert model_family("openai:http://h/v1#Meta-Llama-3.1-8B-Instruct") == "llama"
    assert model_family("BioMistral/BioMistral-7B") == "mistral"
    assert model_family("Qwen/Qwen2.5-7B-Instruct") == "qwen"
    assert model_family("gpt-4o-2024-08-06") == "openai-gpt"
    assert model_family("claude-3-5-sonnet") == "anthropic-claude"
    assert model_family("my-own-model") is None
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "qwen2"}')
    assert model_family(f"hf:{folder}") == "qwen"  # config.json model_type wins over the (meaningless) name
    assert self_preference("qwen", ["qwen", "llama"])["flag"] is True
    assert self_preference("qwen", ["llama", "mistral"])["flag"] is False
    assert self_preference("qwen", ["llama", None])["flag"] is None  # an unknown family cannot be ruled out


def test_healthbench_score_definition():
    # simple-evals' own test case: points 7, 5, 10, -6; met 7, 10, -6 -> (7 + 10 - 6) / 22
    assert healthbench_raw_score([7, 5, 10, -6], [True, False, True, True]) == pytest.approx(11 / 22)
    assert healthbench_raw_score([5, -4], [False, True]) == pytest.approx(-0.8)  # unclipped per example
    assert healthbench_raw_score([-3], [True]) is None  # no positive points: undefined
    assert healthbench_aggregate([1.0, 0.1, -0.4]) == pytest.approx(0.7 / 3)  # clip(mean), not mean(clip)
    assert healthbench_aggregate([-0.5, 0.2]) == 0.0


def test_default_rubric_and_bad_rubric_names_file_and_line(tmp_path):
    rubric = load_rubric()
    assert {c.id for c in rubric.criteria} >= {"accuracy", "safety", "harm", "hallucination", "scope_referral",
                                               "clarity"}
    assert rubric.max_points == 25
    assert any(c.points < 0 for c in rubric.criteria)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ncriteria:\n  - criterion: ok\n    points: 0\n")
    with pytest.raises(ConfigError, match=r"bad.yaml:4: criteria.0.points"):
        load_rubric(bad)
    bad.write_text("name: x\ncriteria:\n  - criterion: ok\n    points: 1\n    pts: 2\n")
    with pytest.raises(ConfigError, match="unknown key"):
        load_rubric(bad)


def test_registry_lists_kinds():
    assert {"single", "pairwise", "rubric", "jury", "axes"} <= set(JUDGES.names())
    assert JUDGES.get("pairwise") is PairwiseJudge
    with pytest.raises(Exception, match="valid: axes, jury, pairwise, rubric, rubric_loglik, single"):
        JUDGES.get("nope")


def test_pairwise_over_http_both_orders(server):
    judge = PairwiseJudge(load_backend(server.spec("judge")), max_new_tokens=64)
    before = server.requests
    results = judge.compare_many([
        {"prompt": "Q1", "response_a": "good good answer", "response_b": "answer"},
        {"prompt": "Q2", "response_a": "meh", "response_b": "good"},
        {"prompt": "Q3", "response_a": "same", "response_b": "same too"},  # position-biased -> flip -> tie
        {"prompt": "Q4", "response_a": "GARBLE", "response_b": "x"},
        {"prompt": "Q5", "response_a": "good REGEX", "response_b": "no"},
    ])
    assert server.requests - before == 10  # every pair judged in both orders
    assert [r.winner for r in results] == ["A", "B", "tie", None, "A"]
    assert [r.consistent for r in results] == [True, True, False, None, True]
    assert (results[2].verdict_ab, results[2].verdict_ba) == ("A", "B")
    assert not results[3].parsed and "AB" in results[3].error and "BA" in results[3].error
    assert (results[4].method_ab, results[4].method_ba) == ("regex", "regex")


def test_pairwise_run_summary_and_self_preference(server, tmp_path):
    items = _write_jsonl(tmp_path / "pairs.jsonl", [
        {"id": "p1", "prompt": "Q1", "response_a": "good good answer", "response_b": "answer",
         "model_a": "Meta-Llama-3-8B-Instruct", "model_b": "Qwen2-7B"},
        {"id": "p2", "prompt": "Q2", "response_a": "meh", "response_b": "good"},
        {"id": "p3", "prompt": "Q3", "response_a": "same", "response_b": "same too"},
        {"id": "p4", "prompt": "Q4", "response_a": "GARBLE", "response_b": "x"},
        {"id": "p5", "prompt": "Q5", "response_a": "good REGEX", "response_b": "no"},
    ])
    spec = server.spec("llama-3-70b-judge")
    summary = run_judging("pairwise", [spec], items, tmp_path / "run", n_boot=100, progress=False)
    block = summary["judges"][spec]
    assert (block["n"], block["n_parsed"], block["n_unparsable"]) == (5, 4, 1)
    assert block["wins"] == {"A": 2, "B": 1, "tie": 1}
    assert block["n_inconsistent_counted_as_tie"] == 1
    assert block["position_consistency"]["value"] == 0.75
    # decisive single-order verdicts: p1 A,A (first: yes, no), p2 B,B (no, yes), p3 A,B (yes, yes), p5 A,A (yes, no)
    assert block["first_position_win_rate"]["value"] == pytest.approx(5 / 8)
    assert block["win_rate_a"]["value"] == pytest.approx((1 + 0 + 0.5 + 1) / 4)
    assert block["self_preference"]["flag"] is True and block["self_preference"]["shared"] == ["llama"]
    assert block["parse_methods"] == {"json": 6, "regex": 2}
    rows = [json.loads(line) for line in (tmp_path / "run" / "items.jsonl").read_text().splitlines()]
    assert rows[3]["judges"][spec]["winner"] is None and rows[3]["judges"][spec]["raw_ab"]
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "ok"
    from clinforge.eval.judge_report_html import write_judge_report

    html_text = write_judge_report(tmp_path / "run").read_text()
    assert "alt='position consistency'" in html_text and "alt='length scatter'" in html_text
    assert "0.7500 [" in html_text  # position consistency with its CI in the table


def test_jury_of_two_http_judges(server, tmp_path):
    items = _write_jsonl(tmp_path / "single.jsonl", [
        {"id": "s1", "prompt": "Q", "response": "good good"},  # 3 vs contrarian 8
        {"id": "s2", "prompt": "Q", "response": "GARBLE"},  # both unparsable
        {"id": "s3", "prompt": "Q", "response": "good REGEX FENCE"},  # regex: 2 vs 9
        {"id": "s4", "prompt": "Q", "response": "OUTOFSCALE good"},  # 99 -> outside the scale -> unparsable
    ])
    specs = [server.spec("judge-one"), server.spec("contrarian-judge")]
    summary = run_judging("single", specs, items, tmp_path / "jury", aggregation="mean", n_boot=50, progress=False)
    assert summary["judges"][specs[0]]["n_unparsable"] == 2
    assert summary["judges"][specs[0]]["mean_score"]["value"] == pytest.approx(2.5)
    assert summary["judges"][specs[1]]["mean_score"]["value"] == pytest.approx(8.5)
    jury = summary["jury"]
    assert (jury["n"], jury["n_parsed"], jury["n_unparsable"]) == (4, 2, 2)
    assert jury["mean_score"]["value"] == pytest.approx(5.5)
    rows = [json.loads(line) for line in (tmp_path / "jury" / "items.jsonl").read_text().splitlines()]
    assert rows[0]["jury"]["value"] == 5.5 and rows[1]["jury"]["value"] is None
    # majority jury with the API: two judges disagree -> no verdict (counted), never a default
    jury_api = Jury([SingleAnswerJudge(load_backend(s), max_new_tokens=32) for s in specs], "majority")
    result = jury_api.run([{"prompt": "Q", "response": "good good"}])[0]
    assert result.value is None and result.no_majority and result.n_parsed == 2
    assert {r.score for r in result.per_judge.values()} == {3.0, 8.0}


def test_rubric_over_http_healthbench_scoring(server, tmp_path):
    rubric_path = tmp_path / "r.yaml"
    rubric_path.write_text("name: mi\ncriteria:\n"
                           "  - {id: asa, criterion: Mentions aspirin, points: 5}\n"
                           "  - {id: ems, criterion: Advises calling emergency services, points: 5}\n"
                           "  - {id: bad, criterion: Recommends warfarin, points: -4}\n")
    judge = RubricJudge(load_backend(server.spec("judge")), load_rubric(rubric_path), max_new_tokens=64)
    full = judge.grade("Chest pain?", "Chew aspirin and call emergency services.")
    assert (full.score, full.raw_score, full.parsed) == (1.0, 1.0, True)
    assert [c.met for c in full.per_criterion] == [True, True, False]
    partial = judge.grade("Chest pain?", "Take warfarin and aspirin.")
    assert partial.raw_score == pytest.approx(0.1)
    negative = judge.grade("Chest pain?", "Take warfarin.")
    assert negative.raw_score == pytest.approx(-0.4) and negative.score == 0.0
    garbled = judge.grade("Chest pain?", "GARBLE")
    assert garbled.score is None and not garbled.parsed and garbled.n_unparsable == 3

    items = _write_jsonl(tmp_path / "rub.jsonl", [
        {"id": "a", "prompt": "Chest pain?", "response": "Chew aspirin and call emergency services."},
        {"id": "b", "prompt": "Chest pain?", "response": "Take warfarin and aspirin."},
        {"id": "c", "prompt": "Chest pain?", "response": "Take warfarin."},
        {"id": "d", "prompt": "Chest pain?", "response": "GARBLE"},
        {"id": "e", "prompt": [{"role": "user", "content": "Tired?"}], "response": "Get some rest",
         "rubric": [{"criterion": "Advises rest", "points": 2}]},  # per-item rubric, as HealthBench
    ])
    spec = server.spec("judge")
    summary = run_judging("rubric", [spec], items, tmp_path / "rrun", rubric=rubric_path, n_boot=50,
                          progress=False)
    block = summary["judges"][spec]
    assert (block["n_parsed"], block["n_unparsable"], block["criteria_verdicts_unparsable"]) == (4, 1, 3)
    assert block["healthbench_score"]["value"] == pytest.approx((1.0 + 0.1 - 0.4 + 1.0) / 4)
    assert block["mean_score"]["value"] == pytest.approx((1.0 + 0.1 + 0.0 + 1.0) / 4)
    assert block["per_criterion"]["bad"] == {"points": -4.0, "met": 2, "not_met": 1, "unparsable": 1,
                                             "met_rate": pytest.approx(2 / 3)}


def test_cli_resume_skips_done_items_and_redoes_a_cut_row(server, tmp_path):
    items = _write_jsonl(tmp_path / "in.jsonl", [{"id": f"i{i}", "prompt": "Q", "response": "good " * i}
                                                 for i in range(1, 4)])
    out = tmp_path / "run"
    spec = server.spec("judge")
    args = ["judge", "single", "--judge", spec, "--input", str(items), "--out", str(out), "--seed", "3"]
    assert _cli(args) == 0
    first = json.loads((out / "summary.json").read_text())
    assert first["judges"][spec]["n_parsed"] == 3 and first["seed"] == 3
    n_requests = server.requests
    assert _cli(args) == 0
    assert server.requests == n_requests  # nothing redone
    again = json.loads((out / "summary.json").read_text())
    assert again["judges"] == first["judges"] and again["resumed_items"] == 3
    report = (out / "report.html").read_text()
    assert spec in report and "data:image/png;base64," in report and "length bias" in report
    assert "good good" not in report  # no item texts in the HTML report
    # a crash in the middle of writing the last row: it is dropped and judged again, nothing duplicated
    lines = (out / "items.jsonl").read_text().splitlines(keepends=True)
    (out / "items.jsonl").write_text("".join(lines[:2]) + lines[2][: len(lines[2]) // 2])
    assert _cli(args) == 0
    assert server.requests == n_requests + 1
    ids = [json.loads(line)["id"] for line in (out / "items.jsonl").read_text().splitlines()]
    assert sorted(ids) == ["i1", "i2", "i3"]
    # a run killed before its first batch (run.json only) resumes too
    (out / "items.jsonl").unlink()
    (out / "summary.json").unlink()
    assert _cli(args) == 0
    assert server.requests == n_requests + 4
    # resuming with another judge is refused (exit status 2 with a clear message)
    assert _cli(["judge", "single", "--judge", server.spec("other"), "--input", str(items), "--out", str(out)]) == 2


def test_bad_input_rows_name_file_line_and_field(tmp_path):
    from clinforge.core.errors import DataError
    from clinforge.judges.judge_runner import load_items

    path = _write_jsonl(tmp_path / "bad.jsonl", [{"id": 1, "prompt": "Q", "response_a": "x"}])
    with pytest.raises(DataError, match=r"bad.jsonl, line 1, field response_b: missing"):
        load_items(path, "pairwise")
    path = _write_jsonl(tmp_path / "dup.jsonl", [{"id": 1, "prompt": "Q", "response": "x"}] * 2)
    with pytest.raises(DataError, match=r"line 2, field id"):
        load_items(path, "single")


def test_real_tiny_hf_model_unparsable_verdicts_are_counted(data_root, tmp_path_factory, tiny_lm):
    """A real random-weight transformers model through the hf backend: its verdicts are noise, so each one must be
    counted as unparsable and no score may appear."""
    model_dir = tiny_lm  # conftest: built once per test run
    tmp = tmp_path_factory.mktemp("hfjudge")
    items = _write_jsonl(tmp / "in.jsonl", [
        {"id": "a", "prompt": "What is the first-line drug for hypertension?", "response": "A thiazide diuretic."},
        {"id": "b", "prompt": "Dose of aspirin in MI?", "response": "162 to 325 mg chewed."},
    ])
    spec = f"hf:{model_dir}"
    summary = run_judging("single", [spec], items, tmp / "run", max_new_tokens=8, n_boot=20, progress=False)
    block = summary["judges"][spec]
    assert (block["n"], block["n_parsed"], block["n_unparsable"]) == (2, 0, 2)
    assert block["mean_score"]["value"] is None and block["unparsable_rate"] == 1.0
    assert block["judge"]["family"] == "llama"  # from config.json model_type
    rows = [json.loads(line) for line in (tmp / "run" / "items.jsonl").read_text().splitlines()]
    assert all(r["judges"][spec]["score"] is None and r["judges"][spec]["error"] for r in rows)


def test_rubric_jury_majority_per_criterion(server):
    rubric = [{"criterion": "Mentions aspirin", "points": 4}, {"criterion": "Recommends warfarin", "points": -2}]
    judges = [RubricJudge(load_backend(server.spec(name)), rubric, max_new_tokens=32)
              for name in ("j-a", "j-b", "j-c")]
    result = Jury(judges, "majority").run([{"prompt": "Q", "response": "aspirin and warfarin"}])[0]
    assert result.parsed and result.value == pytest.approx(0.5) and result.raw_score == pytest.approx(0.5)
    assert len(result.per_judge) == 3
    mean = Jury(judges, "mean").run([{"prompt": "Q", "response": "GARBLE"}])[0]
    assert not mean.parsed and mean.value is None and mean.n_unparsable == 3


def test_cli_rubric_default_and_pairwise_jury(server, tmp_path):
    items = _write_jsonl(tmp_path / "r.jsonl", [
        {"id": "1", "prompt": "Q", "response": "Call emergency services; it warrants it.", "model": "qwen2.5-7b"}])
    out = tmp_path / "rub"
    assert _cli(["judge", "rubric", "--judge", server.spec("qwen-judge"), "--input", str(items), "--out",
                 str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    block = summary["judges"][server.spec("qwen-judge")]
    assert block["n_parsed"] == 1 and set(block["per_criterion"]) >= {"accuracy", "harm", "clarity"}
    assert block["self_preference"]["flag"] is True
    assert json.loads((out / "run.json").read_text())["config"]["rubric"] is None  # the packaged default
    pairs = _write_jsonl(tmp_path / "p.jsonl", [{"id": "1", "prompt": "Q", "response_a": "good", "response_b": "x"},
                                                {"id": "2", "prompt": "Q", "response_a": "y", "response_b": "good"}])
    specs = [server.spec("j1"), server.spec("j2"), server.spec("contrarian-j3")]
    args = ["judge", "pairwise", "--input", str(pairs), "--out", str(tmp_path / "pw")]
    for spec in specs:
        args += ["--judge", spec]
    assert _cli(args) == 0
    summary = json.loads((tmp_path / "pw" / "summary.json").read_text())
    assert summary["jury"]["wins"] == {"A": 1, "B": 1, "tie": 0} and summary["jury"]["aggregation"] == "majority"
    assert summary["judges"][specs[2]]["wins"] == {"A": 1, "B": 1, "tie": 0}
    rows = [json.loads(line) for line in (tmp_path / "pw" / "items.jsonl").read_text().splitlines()]
    assert rows[0]["judges"][specs[2]]["winner"] == "B" and rows[0]["jury"]["value"] == "A"


def test_healthbench_rows_and_bad_item_rubric(server, tmp_path):
    from clinforge.core.errors import DataError
    from clinforge.judges.judge_runner import load_items

    rows = [{"prompt_id": "hb1", "prompt": [{"role": "user", "content": "Dizzy after standing?"}],
             "rubrics": [{"criterion": "Advises slow rising", "points": 5, "tags": ["axis:completeness"]},
                         {"criterion": "Diagnoses a stroke", "points": -6, "tags": []}],
             "response": "Try slow rising and drink water."}]
    items = _write_jsonl(tmp_path / "hb.jsonl", rows)
    assert load_items(items, "rubric")[0]["id"] == "hb1"
    spec = server.spec("judge")
    assert _cli(["judge", "rubric", "--judge", spec, "--input", str(items), "--out", str(tmp_path / "o"),
                 "--no-system-prompt"]) == 0
    assert server.roles[-1] == ["user"]  # no system turn was sent
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["judges"][spec]["healthbench_score"]["value"] == pytest.approx(1.0)
    rows[0]["rubrics"][1]["points"] = 0
    bad = _write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError, match=r"bad.jsonl, line 1, field rubric.1.points"):
        load_items(bad, "rubric")


def test_rubric_without_positive_points_is_refused_at_load(tmp_path):
    """HealthBench divides by the positive points; a penalty-only rubric cannot grade anything, so it is an input
    error naming the file (or the item's line), not a run where every item is counted as unparsable."""
    from clinforge.core.errors import DataError
    from clinforge.judges.judge_runner import load_items

    bad = tmp_path / "neg.yaml"
    bad.write_text("name: x\ncriteria:\n  - criterion: Invents a study\n    points: -3\n")
    with pytest.raises(ConfigError, match=r"neg.yaml.*positive points"):
        load_rubric(bad)
    rows = [{"id": "1", "prompt": "Dose?", "response": "1 g", "rubric": [{"criterion": "Invents", "points": -2}]}]
    with pytest.raises(DataError, match=r"neg.jsonl, line 1, field rubric: .*positive points"):
        load_items(_write_jsonl(tmp_path / "neg.jsonl", rows), "rubric")


def test_open_weight_openai_models_share_the_gpt_family(tmp_path):
    """gpt-oss (OpenAI's open-weight model, often the local judge) must be flagged against GPT-4o candidates."""
    from clinforge.judges.bias import model_family, self_preference

    assert model_family("openai:http://127.0.0.1:8000/v1#gpt-oss-20b") == "openai-gpt"
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt_oss"}))
    assert model_family(f"hf:{tmp_path}") == "openai-gpt"
    assert self_preference(model_family("gpt-oss-120b"), [model_family("gpt-4o-mini")])["flag"] is True


def test_unknown_aggregation_is_a_config_error_listing_the_valid_ones(tmp_path):
    """A typo in --aggregation stops before any judge is called, with the valid names, not a ValueError traceback."""
    from clinforge.core.errors import ConfigError

    items = _write_jsonl(tmp_path / "i.jsonl", [{"id": "1", "prompt": "Q?", "response": "A"}])
    specs = ["openai:http://127.0.0.1:9/v1#a", "openai:http://127.0.0.1:9/v1#b"]
    for judges in (specs, specs[:1]):
        with pytest.raises(ConfigError, match="unknown aggregation 'median'; valid: mean, majority"):
            run_judging("single", judges, items, tmp_path / "o", aggregation="median")
