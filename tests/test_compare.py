"""``clinforge compare`` (issue 11 item 7), run as a user runs it (a subprocess) on eval run directories in the
format ``clinforge eval`` writes: scores with CIs side by side, paired tests equal to statsmodels, disagreements,
answer collapse, chance level, only the definitions of the figures shown, no ``None`` or raw dicts on the page.
(tests/test_demo.py checks the same report on the demo's real base and trained runs.)"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from clinforge.eval.metrics.accuracy import accuracy_from_correct

SRC = Path(__file__).resolve().parent.parent / "src"
LETTERS = "ABCD"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    # a wide terminal, so that error messages are not wrapped inside the paths they name
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "COLUMNS": "400"}
    return subprocess.run([sys.executable, "-m", "clinforge", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def write_mcq_run(path: Path, model: str, gold: list[str], answers: list[str | None], task: str = "medqa",
                  seed: int = 0, num_fewshot: int = 0) -> Path:
    """An eval run directory as clinforge eval writes it for a loglikelihood multiple-choice task."""
    rows = [{"task": task, "id": f"q{i}", "index": i, "mode": "loglikelihood", "prompt": "...", "gold": g,
             "choices": list(LETTERS), "parsed": a, "acc": float(a == g), "score": float(a == g)}
            for i, (g, a) in enumerate(zip(gold, answers, strict=True))]
    acc = accuracy_from_correct([r["acc"] for r in rows], seed=seed)
    (path / "items").mkdir(parents=True)
    (path / "items" / f"{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = {"model": model, "seed": seed, "num_fewshot": num_fewshot, "limit": None, "mode": None, "cot": False,
               "tasks": {task: {"acc": acc["acc"], "acc_ci": acc["acc_ci"], "n": acc["n"], "mode": "loglikelihood"}},
               "groups": {}}
    (path / "summary.json").write_text(json.dumps(summary))
    return path


def write_text_run(path: Path, model: str, scores: list[float], task: str = "notes") -> Path:
    rows = [{"task": task, "id": f"n{i}", "index": i, "mode": "generate", "prompt": "...", "gold": ["ref"],
             "output": f"out {i} {s}", "parsed": f"out {i} {s}", "empty": False, "score": s}
            for i, s in enumerate(scores)]
    (path / "items").mkdir(parents=True)
    (path / "items" / f"{task}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    mean = sum(scores) / len(scores)
    summary = {"model": model, "seed": 0, "num_fewshot": 0, "limit": 20, "mode": None, "cot": False,
               "tasks": {task: {"rougeL": mean, "rougeL_ci": [mean - 0.1, mean + 0.1], "n": len(scores)}}}
    (path / "summary.json").write_text(json.dumps(summary))
    return path


@pytest.fixture
def base_and_collapsed(tmp_path):
    gold = [LETTERS[(i * 7) % 4] for i in range(50)]
    base_answers = [g if i % 3 == 0 else LETTERS[(i + 1) % 4] for i, g in enumerate(gold)]
    write_mcq_run(tmp_path / "base", "hf:runs/base", gold, base_answers)
    write_mcq_run(tmp_path / "tuned", "hf:runs/tuned", gold, ["A"] * 50)  # "A" to every question
    return tmp_path, gold, base_answers


def test_compare_report_side_by_side_with_paired_tests_and_collapse(base_and_collapsed):
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    tmp, gold, base_answers = base_and_collapsed
    out = tmp / "cmp"
    proc = run_cli("compare", str(tmp / "base"), str(tmp / "tuned"), "--out", str(out), "--labels", "base,tuned")
    assert proc.returncode == 0, proc.stderr
    # the console shows each run's score with its CI, the paired tests and the collapse warning
    assert re.search(r"base: 0\.\d{3} \(95% CI 0\.\d{3}-0\.\d{3}\), n=50", proc.stdout)
    assert re.search(r"tuned - base: [+-]0\.\d{3} \(95% CI .+\), McNemar p = ", proc.stdout)
    assert "tuned answers 'A' to 50 of 50 medqa items" in proc.stdout

    summary = json.loads((out / "summary.json").read_text())
    task = summary["tasks"]["medqa"]
    base_right = [float(a == g) for a, g in zip(base_answers, gold, strict=True)]
    tuned_right = [float(g == "A") for g in gold]
    assert task["scores"]["base"]["value"] == pytest.approx(sum(base_right) / 50)
    assert task["chance"] == 0.25 and task["majority"]["value"] == max(gold.count(x) for x in LETTERS) / 50
    assert task["answers"]["tuned"] == {"A": 50} and task["collapse"]["tuned"]["share"] == 1.0
    assert "base" not in task["collapse"]
    paired = task["paired"]["tuned"]
    assert paired["delta"] == pytest.approx((sum(tuned_right) - sum(base_right)) / 50)
    assert paired["delta_ci"][0] <= paired["delta"] <= paired["delta_ci"][1]
    b = sum(1 for t, r in zip(tuned_right, base_right, strict=True) if t and not r)
    c = sum(1 for t, r in zip(tuned_right, base_right, strict=True) if r and not t)
    assert (paired["only_run_right"], paired["only_reference_right"]) == (b, c)
    exact = b + c < 25
    table = [[0, b], [c, 0]]
    assert paired["p_mcnemar"] == pytest.approx(sm_mcnemar(table, exact=exact, correction=True).pvalue)
    differing = [i for i, a in enumerate(base_answers) if a != "A"]
    lines = (out / "disagreements" / "medqa.jsonl").read_text().splitlines()
    assert [json.loads(x)["id"] for x in lines] == [f"q{i}" for i in differing]
    assert task["disagreements"] == len(differing)

    page = html.unescape((out / "report.html").read_text())
    visible = re.sub(r"<img[^>]*>", "", page)
    assert "None" not in visible and "{'" not in visible and "[0." not in visible
    assert "chance 0.250" in page and "McNemar" in page and "tuned answers 'A' to 50 of 50" in page
    assert "data:image/png;base64," in page  # the scores plot with its chance line
    # only the definitions of the figures on the page: no BLEU, ROUGE, calibration or MEDEC entries
    shown = re.findall(r"<tr><th>([a-z_]+)</th><td>", page.split("<h2>Definitions</h2>")[1])
    assert set(shown) == set(summary["definitions"]) and len(shown) <= 16
    assert {"acc", "chance", "p_mcnemar", "delta_ci", "collapse"} <= set(shown)
    assert not {"bleu", "rougeL", "ece", "flag_acc", "acc_norm"} & set(shown)
    assert json.loads((out / "run.json").read_text())["status"] == "ok"


def test_compare_text_task_uses_the_paired_bootstrap_only(tmp_path):
    write_text_run(tmp_path / "a", "hf:a", [0.2, 0.4, 0.1, 0.3] * 5)
    write_text_run(tmp_path / "b", "hf:b", [0.3, 0.5, 0.1, 0.6] * 5)
    proc = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "c"))
    assert proc.returncode == 0, proc.stderr
    task = json.loads((tmp_path / "c" / "summary.json").read_text())["tasks"]["notes"]
    assert task["metric"] == "rougeL" and "p_mcnemar" not in task["paired"]["b"] and "chance" not in task
    assert task["paired"]["b"]["delta"] == pytest.approx(0.125)  # mean of 0.1, 0.1, 0, 0.3
    assert task["disagreements"] == 15  # the items whose scores differ
    page = (tmp_path / "c" / "report.html").read_text()
    assert "out 1" not in page  # generated texts may hold PHI: scores only


def test_compare_warns_when_settings_differ_and_pairs_shared_items_only(tmp_path):
    gold = ["A", "B", "C", "D"] * 5
    write_mcq_run(tmp_path / "zero", "hf:m", gold, gold)
    write_mcq_run(tmp_path / "five", "hf:m", gold[:12], ["B"] * 12, num_fewshot=5)
    proc = run_cli("compare", str(tmp_path / "zero"), str(tmp_path / "five"), "--out", str(tmp_path / "c"))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "c" / "summary.json").read_text())
    assert summary["tasks"]["medqa"]["paired"]["five"]["n_shared"] == 12
    assert any("differ in num_fewshot (zero 0, five 5)" in w for w in summary["warnings"])
    assert "paired tests use the 12 shared items" in proc.stdout


def test_compare_errors_name_the_problem(tmp_path):
    gold = ["A", "B"] * 6
    write_mcq_run(tmp_path / "a", "hf:a", gold, gold)
    (tmp_path / "half").mkdir()
    proc = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "half"), "--out", str(tmp_path / "c"))
    assert proc.returncode == 2 and f"{tmp_path / 'half' / 'summary.json'} not found" in proc.stderr
    proc = run_cli("compare", str(tmp_path / "a"), "--out", str(tmp_path / "c"))
    assert proc.returncode == 2 and "at least two" in proc.stderr
    write_mcq_run(tmp_path / "b", "hf:b", gold, gold)
    proc = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "c"),
                   "--labels", "x")
    assert proc.returncode == 2 and "1 labels for 2 run directories" in proc.stderr
    assert run_cli("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "c")).returncode == 0
    proc = run_cli("compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "c"))
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
