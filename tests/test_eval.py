"""Evaluation harness on the real data with a real tiny model: lm-eval-identical prompts, every task end to end,
strict extraction, circular mode, YAML tasks, groups, and a SIGKILLed `clinforge eval` that resumes exactly."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from clinforge.core.errors import ClinforgeError, ConfigError
from clinforge.eval.eval_runner import EvalConfig, evaluate
from clinforge.eval.extract import extract_choice
from clinforge.eval.tasks import GROUPS, TASKS
from clinforge.eval.tasks.mcq import rotate
from conftest import free_port

LM_EVAL_TASKS = Path(importlib.util.find_spec("lm_eval").origin).parent / "tasks"
ALL_TASKS = ["medqa", "medmcqa", "pubmedqa", "mmlu_anatomy", "mmlu_clinical_knowledge", "mmlu_college_biology",
             "mmlu_college_medicine", "mmlu_medical_genetics", "mmlu_professional_medicine", "medquad", "mts_dialog",
             "aci_bench", "medec", "iu_xray"]


@pytest.fixture(scope="session")
def backend(tiny_lm):
    from clinforge.models.backends import load_backend

    return load_backend(f"hf:{tiny_lm}", batch_size=4, device="cpu")


def _lm_eval_module(rel: str):
    spec = importlib.util.spec_from_file_location(rel.replace("/", "_"), LM_EVAL_TASKS / rel)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- prompts identical to lm-eval 0.4.13
def test_medqa_and_medmcqa_prompts_identical_to_lm_eval(data_root):
    medqa_fn = _lm_eval_module("medqa/preprocess_medqa.py").doc_to_text
    task = TASKS.get("medqa")
    raw = [json.loads(line) for line in (data_root / task.path).read_text(encoding="utf-8").splitlines()][:25]
    for rec, row in zip(task.records(data_root, 25), raw, strict=True):
        hf_doc = {"sent1": row["question"], **{f"ending{i}": row["options"][k] for i, k in enumerate("ABCD")}}
        assert task.context(rec, []) == medqa_fn(hf_doc)
        assert task.choices_for(rec) == ["A", "B", "C", "D"] and task.target_delimiter == " "
    medmcqa_fn = _lm_eval_module("medmcqa/utils_medmcqa.py").doc_to_text
    task = TASKS.get("medmcqa")
    raw = [json.loads(line) for line in (data_root / task.path).read_text(encoding="utf-8").splitlines()][:25]
    for rec, row in zip(task.records(data_root, 25), raw, strict=True):
        assert task.context(rec, []) == medmcqa_fn(row)
        assert rec.answer_index == row["cop"] - 1  # lm-eval's HF copy is 0-based, the raw file 1-based


def test_pubmedqa_prompt_identical_to_lm_eval(data_root):
    fn = _lm_eval_module("pubmedqa/preprocess_pubmedqa.py").doc_to_text
    task = TASKS.get("pubmedqa")
    raw = json.loads((data_root / task.path).read_text(encoding="utf-8"))
    records = task.records(data_root, None)
    assert len(records) == 500
    for rec in records[:25]:
        assert task.context(rec, []) == fn(raw[rec.id])
        assert task.choices_for(rec) == ["yes", "no", "maybe"]


def test_mmlu_prompts_identical_to_lm_eval(data_root):
    from lm_eval.utils import apply_template

    template = yaml.safe_load((LM_EVAL_TASKS / "mmlu/default/_default_template_yaml").read_text())["doc_to_text"]
    for subject in ("anatomy", "professional_medicine"):
        cfg = yaml.safe_load((LM_EVAL_TASKS / f"mmlu/default/mmlu_{subject}.yaml").read_text())
        task = TASKS.get(f"mmlu_{subject}")
        with open(data_root / task.path, encoding="utf-8", newline="") as fh:
            raw = list(csv.reader(fh))[:20]
        for rec, row in zip(task.records(data_root, 20), raw, strict=True):
            doc = {"question": row[0], "choices": row[1:5], "answer": "ABCD".index(row[5])}
            assert task.context(rec, []) == cfg["description"] + apply_template(template, doc)


def test_fewshot_format_and_seeded_sampling(data_root):
    task = TASKS.get("pubmedqa")
    records = task.records(data_root, 3)
    pool = task.fewshot_pool(data_root, exclude_ids={r.id for r in task.records(data_root, None)})
    assert len(pool) == 500 and not ({r.id for r in pool} & {r.id for r in records})
    shots = task.sample_fewshot(pool, 2, seed=1, record_id=records[0].id)
    assert shots == task.sample_fewshot(pool, 2, seed=1, record_id=records[0].id)
    assert shots != task.sample_fewshot(pool, 2, seed=2, record_id=records[0].id)
    ctx = task.context(records[0], shots)
    expected = "".join(task.doc_to_text(s) + " " + s.choices[s.answer_index] + "\n\n" for s in shots)
    assert ctx == expected + task.doc_to_text(records[0])
    with pytest.raises(ClinforgeError, match="few-shot source"):
        TASKS.get("medqa").fewshot_pool(data_root)  # no MedQA train split locally: an error, never the test set


# ----------------------------------------------------------------------------- extraction
@pytest.mark.parametrize("text,status,answer", [
    (" B", "ok", "B"), ("C. Aspirin", "ok", "C"), ("(D) because", "ok", "D"),
    ("Let me think. The answer is B.", "ok", "B"), ("reasoning... Answer: A\nAnswer: C", "ok", "C"),
    ("a patient with fever", "unparsed", None), ("", "unparsed", None), ("E", "unparsed", None),
    ("I don't know", "abstained", None), ("Cannot be determined from the data", "abstained", None),
    ("A 45-year-old man presents with chest pain", "unparsed", None), ("B\nbecause", "ok", "B"),
    ("D  ", "ok", "D"), ("C is tempting", "unparsed", None),
])
def test_strict_letter_extraction(text, status, answer):
    got = extract_choice(text, ["A", "B", "C", "D"])
    assert (got.status, got.answer) == (status, answer)


def test_word_extraction_and_cot_requires_final_line():
    assert extract_choice("Yes, it does", ["yes", "no", "maybe"]).answer == "yes"
    assert extract_choice("novel finding", ["yes", "no", "maybe"]).status == "unparsed"
    assert extract_choice("B is tempting", ["A", "B"], require_final=True).status == "unparsed"


def test_rotate_moves_gold_with_its_text():
    from clinforge.data.records import Record

    r = Record(id="q", kind="mcq", question="?", choices=["w", "x", "y", "z"], answer="C")
    for s in range(4):
        rot = rotate(r, s)
        assert rot.choices[rot.answer_index] == "y"


# ----------------------------------------------------------------------------- end to end
def test_every_task_runs_on_real_data(tmp_path, backend, data_root):
    summary = evaluate(EvalConfig(model="hf:tiny", tasks=ALL_TASKS, out=str(tmp_path / "run"), limit=2, seed=3,
                                   max_new_tokens=24),
                       backend=backend, progress=False)
    out = tmp_path / "run"
    for name in ALL_TASKS:
        res = summary["tasks"][name]
        assert res["n"] == 2, name
        rows = [json.loads(line) for line in (out / "items" / f"{name}.jsonl").read_text().splitlines()]
        assert [r["index"] for r in rows] == [0, 1] and all("prompt" in r and "gold" in r for r in rows)
        assert all(0.0 <= r["score"] <= 1.0 and "parsed" in r for r in rows), name  # every item has its score
    for name in ALL_TASKS[:9]:
        assert 0 <= summary["tasks"][name]["acc"] <= 1 and len(summary["tasks"][name]["acc_ci"]) == 2
        assert "acc_norm" in summary["tasks"][name] and "ece" in summary["tasks"][name]
    for name in ("medquad", "mts_dialog", "aci_bench", "iu_xray"):
        assert "rougeL" in summary["tasks"][name] and "bleu" in summary["tasks"][name]
    assert "bertscore_f1" in summary["tasks"]["medquad"]
    assert "chexpert" in json.dumps(summary["tasks"]["iu_xray"]).lower()
    for name, key in (("medquad", "bertscore_f1"), ("medquad", "bleu"), ("medquad", "rouge1"),
                      ("iu_xray", "chexpert_f1_14_micro"), ("medec", "correction_bleu")):
        lo, hi = summary["tasks"][name][f"{key}_ci"]  # every sample estimate of a text task has its CI
        assert lo <= hi, (name, key)
    assert "labels" not in summary["tasks"]["iu_xray"]  # per-report labels stay out of the summary
    assert {"flag_acc", "sentence_acc", "unparsed"} <= set(summary["tasks"]["medec"])
    group = summary["groups"]["multimedqa"]
    accs = [summary["tasks"][t]["acc"] for t in GROUPS["multimedqa"]]
    assert group["complete"] and group["acc_macro"] == pytest.approx(sum(accs) / len(accs))
    assert group["acc_micro"] == pytest.approx(sum(a * 2 for a in accs) / (2 * len(accs)))
    lo, hi = group["acc_macro_ci"]  # the macro score is a sample estimate too
    assert 0.0 <= lo <= group["acc_macro"] <= hi <= 1.0 and {"acc_macro_ci", "acc_micro_ci"} <= set(
        summary["definitions"])
    assert "fewshot_source" not in summary["tasks"]["medqa"]  # zero-shot: no few-shot file was used
    def no_nan(token):
        raise AssertionError(f"summary.json holds {token}: not valid JSON")

    written = json.loads((out / "summary.json").read_text(), parse_constant=no_nan)
    assert written["tasks"].keys() == summary["tasks"].keys()
    medqa = written["tasks"]["medqa"]
    assert len(medqa["ece_ci"]) == 2 and len(medqa["brier_ci"]) == 2 and medqa["calibration_ci"]["seed"] == 3
    assert any(b["accuracy"] is None for b in medqa["calibration_bins"])  # 2 items leave empty bins: null
    assert {"ece_ci", "brier_ci"} <= set(written["definitions"])
    from clinforge.eval.eval_runner import _TASK_INFO_KEYS, definition_of

    undefined = {k for res in written["tasks"].values() for k in res if k not in _TASK_INFO_KEYS
                 and not definition_of(k)}
    assert not undefined, f"summary figures without a definition: {sorted(undefined)}"
    assert json.loads((out / "run.json").read_text())["status"] == "ok"
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 2 and "http" not in html.split("<body>")[0]


def test_generate_and_circular_modes_count_everything(tmp_path, backend):
    gen = evaluate(EvalConfig(model="hf:tiny", tasks=["medqa", "pubmedqa"], out=str(tmp_path / "g"), limit=4,
                              mode="generate"), backend=backend, progress=False)
    for name in ("medqa", "pubmedqa"):
        res = gen["tasks"][name]
        assert res["parsed"] + res["unparsed"] + res["abstained"] == res["n"] == 4
        rows = [json.loads(x) for x in (tmp_path / "g" / "items" / f"{name}.jsonl").read_text().splitlines()]
        assert all(r["acc"] == 0.0 for r in rows if r["parse_status"] != "ok")  # never a default answer
    chat = evaluate(EvalConfig(model="hf:tiny", tasks=["medqa"], out=str(tmp_path / "chat"), limit=2,
                               mode="generate", chat=True, max_new_tokens=4), backend=backend, progress=False)
    assert chat["tasks"]["medqa"]["n"] == 2
    with pytest.raises(ClinforgeError, match="--chat"):
        evaluate(EvalConfig(model="hf:tiny", tasks=["medqa"], out=str(tmp_path / "c2"), chat=True), backend=backend)
    circ = evaluate(EvalConfig(model="hf:tiny", tasks=["mmlu_anatomy"], out=str(tmp_path / "c"), limit=5,
                               mode="circular"), backend=backend, progress=False)["tasks"]["mmlu_anatomy"]
    assert circ["acc_circular"] <= circ["acc"]
    rows = [json.loads(x) for x in (tmp_path / "c" / "items" / "mmlu_anatomy.jsonl").read_text().splitlines()]
    assert all(len(r["shifts"]) == 4 for r in rows)
    with pytest.raises(ClinforgeError, match="circular"):
        evaluate(EvalConfig(model="hf:tiny", tasks=["pubmedqa"], out=str(tmp_path / "p"), limit=1, mode="circular"),
                 backend=backend, progress=False)


def test_yaml_task_and_unknown_names(tmp_path, backend, data_root):
    data = tmp_path / "mine.jsonl"
    rows = [{"q": f"Is {w} a drug?", "opts": ["yes", "no"], "gold": "A" if i % 2 else "B"}
            for i, w in enumerate(["aspirin", "femur", "insulin"])]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task_file = tmp_path / "mine.yaml"
    task_file.write_text(yaml.safe_dump({
        "task": "mine", "type": "mcq", "reader": "jsonl", "path": str(data), "format": "template",
        "reader_options": {"kind": "mcq", "fields": {"question": "q", "choices": "opts", "answer": "gold"}},
        "prompt_template": "Q: {question}\n{options}Answer:"}))
    summary = evaluate(EvalConfig(model="hf:tiny", tasks=[str(task_file)], out=str(tmp_path / "y")), backend=backend,
                       progress=False)
    assert summary["tasks"]["mine"]["n"] == 3
    first = json.loads((tmp_path / "y" / "items" / "mine.jsonl").read_text().splitlines()[0])
    assert first["prompt"] == "Q: Is aspirin a drug?\nA. yes\nB. no\nAnswer:"
    qa_file = tmp_path / "qa_as_mcq.yaml"  # an mcq task whose reader yields qa records: named, never a guess
    qa_file.write_text(yaml.safe_dump({
        "task": "qa_as_mcq", "type": "mcq", "reader": "jsonl", "path": str(data), "format": "template",
        "reader_options": {"kind": "qa", "fields": {"question": "q", "answer": "gold"}}, "prompt_template": "{question}"}))
    with pytest.raises(ClinforgeError, match=r"record \S+, field kind: task qa_as_mcq needs multiple-choice records"):
        evaluate(EvalConfig(model="hf:tiny", tasks=[str(qa_file)], out=str(tmp_path / "qa")), backend=backend,
                 progress=False)
    with pytest.raises(ClinforgeError, match="unknown task nosuch; valid: .*medqa"):
        evaluate(EvalConfig(model="hf:tiny", tasks=["nosuch"], out=str(tmp_path / "z")), backend=backend)
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: b\nreader: jsonl\npath: x\nprompt: oops\n")
    with pytest.raises(ClinforgeError, match="bad.yaml:4: prompt: unknown key"):
        evaluate(EvalConfig(model="hf:tiny", tasks=[str(bad)], out=str(tmp_path / "b")), backend=backend)


def test_resume_refuses_a_different_config(tmp_path, backend):
    evaluate(EvalConfig(model="hf:tiny", tasks=["medqa"], out=str(tmp_path / "r"), limit=2), backend=backend,
             progress=False)
    with pytest.raises(ClinforgeError, match="different limit"):
        evaluate(EvalConfig(model="hf:tiny", tasks=["medqa"], out=str(tmp_path / "r"), limit=3), backend=backend)
    # adding a task to the run directory keeps the earlier task in summary.json (eval_config.json lists both)
    both = evaluate(EvalConfig(model="hf:tiny", tasks=["pubmedqa"], out=str(tmp_path / "r"), limit=2),
                    backend=backend, progress=False)
    assert set(both["tasks"]) == {"medqa", "pubmedqa"} and both["tasks"]["medqa"]["n"] == 2
    assert json.loads((tmp_path / "r" / "eval_config.json").read_text())["tasks"] == ["medqa", "pubmedqa"]


def _cli(args: list[str], tiny_lm: Path, **kw):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    cmd = [sys.executable, "-m", "clinforge", "eval", "--model", f"hf:{tiny_lm}", "--device", "cpu",
           "--no-progress", *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_loses_and_duplicates_nothing(tmp_path, tiny_lm):
    # batch 1 and 2-item checkpoints: ~120 checkpoints, so even a fast machine is caught mid-run
    args = ["--tasks", "medqa,mmlu_professional_medicine", "--limit", "60", "--batch-size", "1", "--chunk-items", "2"]
    proc = _cli([*args, "--out", str(tmp_path / "killed")], tiny_lm)
    log = tmp_path / "killed" / "items" / "medqa.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 4:
            break
        time.sleep(0.01)
    assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = len(_rows(log))
    assert 4 <= partial < 60
    assert not (tmp_path / "killed" / "summary.json").exists()
    resumed = _cli([*args, "--out", str(tmp_path / "killed")], tiny_lm)
    assert resumed.wait(timeout=300) == 0, resumed.stdout.read().decode()[-2000:]
    clean = _cli([*args, "--out", str(tmp_path / "clean")], tiny_lm)
    assert clean.wait(timeout=300) == 0, clean.stdout.read().decode()[-2000:]
    for task in ("medqa", "mmlu_professional_medicine"):
        a = _rows(tmp_path / "killed" / "items" / f"{task}.jsonl")
        b = _rows(tmp_path / "clean" / "items" / f"{task}.jsonl")
        assert len(a) == len(b) == 60 and len({r["id"] for r in a}) == 60
        assert [(r["id"], r["parsed"], r["gold"]) for r in a] == [(r["id"], r["parsed"], r["gold"]) for r in b]
        for x, y in zip(a, b, strict=True):
            assert x["loglikelihoods"] == pytest.approx(y["loglikelihoods"], abs=1e-5)
    s1 = json.loads((tmp_path / "killed" / "summary.json").read_text())
    s2 = json.loads((tmp_path / "clean" / "summary.json").read_text())
    assert s1["tasks"]["medqa"]["acc"] == s2["tasks"]["medqa"]["acc"]
    assert s1["tasks"]["medqa"]["n"] == 60


@pytest.mark.slow
def test_two_process_sharding_equals_one_process(tmp_path, tiny_lm):
    """`accelerate launch`/`torchrun` with 2 CPU processes: each rank takes a slice, rank 0 merges."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    common = ["-m", "clinforge", "eval", "--model", f"hf:{tiny_lm}", "--device", "cpu", "--no-progress",
              "--tasks", "medqa", "--limit", "8"]
    sharded = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                              "--master_port", str(free_port()), *common, "--out",
                              str(tmp_path / "sharded")], env=env, capture_output=True, text=True, timeout=300)
    assert sharded.returncode == 0, sharded.stdout[-2000:] + sharded.stderr[-2000:]
    single = subprocess.run([sys.executable, *common, "--out", str(tmp_path / "single")], env=env,
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    printed = json.loads(single.stdout[:single.stdout.rindex("}") + 1])  # the console summary shows the CIs
    assert printed["tasks"]["medqa"]["n"] == 8 and len(printed["tasks"]["medqa"]["acc_ci"]) == 2
    a = _rows(tmp_path / "sharded" / "items" / "medqa.jsonl")
    b = _rows(tmp_path / "single" / "items" / "medqa.jsonl")
    assert [r["id"] for r in a] == [r["id"] for r in b] and len(a) == 8
    assert [r["parsed"] for r in a] == [r["parsed"] for r in b]
    assert sorted((tmp_path / "sharded" / "items").iterdir()) == [tmp_path / "sharded" / "items" / "medqa.jsonl"]


def test_fewshot_run_uses_the_non_test_pool(tmp_path, backend):
    evaluate(EvalConfig(model="hf:tiny", tasks=["pubmedqa"], out=str(tmp_path / "f"), limit=2, num_fewshot=1),
             backend=backend, progress=False)
    summary = json.loads((tmp_path / "f" / "summary.json").read_text())
    assert summary["tasks"]["pubmedqa"]["fewshot_source"] == "pubmedqa/data/ori_pqal.json"
    rows = _rows(tmp_path / "f" / "items" / "pubmedqa.jsonl")
    test_ids = {r.id for r in TASKS.get("pubmedqa").records(None, None)}
    for row in rows:
        assert row["prompt"].count("Abstract: ") == 2 and row["prompt"].endswith("\nAnswer:")
        shot_question = row["prompt"].split("\nQuestion: ")[1].split("\n")[0]
        assert shot_question not in {r.question for r in TASKS.get("pubmedqa").records(None, None)}
    assert len(test_ids) == 500


def test_medec_reply_parsing_is_strict(data_root):
    task = TASKS.get("medec")
    records = task.records(data_root, 40)
    wrong = next(r for r in records if r.meta["error_flag"] == 1)
    right = next(r for r in records if r.meta["error_flag"] == 0)
    sid = int(float(wrong.meta["error_sentence_id"]))
    good = task.score(wrong, {}, [f"Error: yes\nSentence: {sid}\nCorrection: {wrong.meta['corrected_sentence']}"])
    assert (good["flag_acc"], good["sentence_acc"], good["parse_status"]) == (1.0, 1.0, "ok")
    assert task.score(right, {}, ["Error: no"])["sentence_acc"] == 1.0
    garbled = task.score(wrong, {}, ["The note looks fine to me."])
    assert (garbled["flag_acc"], garbled["sentence_acc"], garbled["parse_status"]) == (0.0, 0.0, "unparsed")
    no_id = task.score(wrong, {}, ["Error: yes\nSentence: the third one"])
    assert no_id["parse_status"] == "unparsed" and no_id["flag_acc"] == 1.0 and no_id["sentence_acc"] == 0.0


def test_unknown_backend_option_names_the_valid_ones(tmp_path, tiny_lm):
    with pytest.raises(ClinforgeError, match="unknown backend option nosuch for HFBackend; valid: .*dtype"):
        evaluate(EvalConfig(model=f"hf:{tiny_lm}", tasks=["medqa"], out=str(tmp_path / "o"), limit=1,
                            backend_options={"nosuch": 1}))


def test_limit_zero_evaluates_nothing_and_negative_limit_is_an_error(tmp_path, backend):
    summary = evaluate(EvalConfig(model="hf:tiny", tasks=["medqa", "medquad", "medec"], out=str(tmp_path / "z"),
                                  limit=0), backend=backend, progress=False)
    for name in ("medqa", "medquad", "medec"):
        assert summary["tasks"][name]["n"] == 0, name  # medquad used to evaluate one item
        assert "acc" not in summary["tasks"][name] and "rougeL" not in summary["tasks"][name]
        assert (tmp_path / "z" / "items" / f"{name}.jsonl").read_text() == ""
    assert summary["groups"] == {}
    for bad in ({"limit": -1}, {"num_fewshot": -2}):
        with pytest.raises(ConfigError, match="must be >= 0"):
            evaluate(EvalConfig(model="hf:tiny", tasks=["medqa"], out=str(tmp_path / "neg"), **bad), backend=backend)


class _CountingBackend:
    """The real tiny-model backend, counting the requests that reach it; dies (like a kill) on the call
    ``die_on_call`` to show what a resumed run recomputes."""

    def __init__(self, real, die_on_call: int | None = None):
        self.real, self.die_on_call, self.calls, self.requests = real, die_on_call, 0, 0

    def fingerprint(self):
        return "tiny-for-resume-test"

    def loglikelihood(self, requests):
        self.calls += 1
        if self.calls == self.die_on_call:
            raise KeyboardInterrupt("killed mid-run")
        self.requests += len(requests)
        return self.real.loglikelihood(requests)

    def generate(self, requests):
        self.calls += 1
        self.requests += len(requests)
        return self.real.generate(requests)


def test_resume_recomputes_nothing_already_done(tmp_path, backend):
    def run(be):
        return evaluate(EvalConfig(model="hf:tiny", tasks=["medqa"], out=str(tmp_path / "r"), limit=6,
                                   chunk_items=2), backend=be, progress=False)

    first = _CountingBackend(backend, die_on_call=2)  # chunk 1 scored and logged, dies inside chunk 2
    with pytest.raises(KeyboardInterrupt):
        run(first)
    assert len(_rows(tmp_path / "r" / "items" / "medqa.jsonl")) == 2 and first.requests == 2 * 4
    resumed = _CountingBackend(backend)
    summary = run(resumed)
    assert resumed.requests == 4 * 4  # only the 4 questions not yet done, 4 options each
    assert summary["tasks"]["medqa"]["n"] == 6
    # killed after the model answered but before the items were logged: the request cache answers, no model call
    log = tmp_path / "r" / "items" / "medqa.jsonl"
    full = _rows(log)
    log.write_text("".join(json.dumps(r) + "\n" for r in full[:1]))
    (tmp_path / "r" / "summary.json").unlink()
    cached = _CountingBackend(backend)
    again = run(cached)
    assert cached.calls == 0 and again["tasks"]["medqa"] == summary["tasks"]["medqa"]
    assert [r["loglikelihoods"] for r in _rows(log)] == [r["loglikelihoods"] for r in full]


def test_empty_prediction_scores_zero_and_is_counted(data_root):
    medquad = TASKS.get("medquad")
    recs = medquad.records(data_root, 2)
    rows = [medquad.score(r, {}, [out]) for r, out in zip(recs, ["   ", recs[1].answer], strict=True)]
    assert (rows[0]["score"], rows[0]["empty"]) == (0.0, True) and rows[1]["score"] == pytest.approx(1.0)
    agg = medquad.aggregate(rows, seed=0, mode="generate")
    assert agg["empty"] == 1 and agg["n"] == 2
    medqa = TASKS.get("medqa")
    rec = medqa.records(data_root, 1)[0]
    plan = medqa.build(rec, "generate", [], False)
    row = medqa.score(rec, plan, [""])
    assert (row["score"], row["acc"], row["parse_status"], row["empty"]) == (0.0, 0.0, "unparsed", True)
    agg = medqa.aggregate([row], seed=0, mode="generate")
    assert (agg["empty"], agg["unparsed"], agg["acc"]) == (1, 1, 0.0)


def test_yaml_generate_task_end_to_end_and_bad_definitions(tmp_path, backend):
    data = tmp_path / "qa.jsonl"
    data.write_text("".join(json.dumps({"q": f"What treats {d}?", "a": f"{t} treats {d}."}) + "\n" for d, t in
                            [("angina", "Nitroglycerin"), ("asthma", "Albuterol"), ("gout", "Colchicine")]))
    spec = {"task": "my_qa", "type": "generate", "reader": "jsonl", "path": str(data),
            "reader_options": {"kind": "qa", "fields": {"question": "q", "answer": "a"}},
            "prompt_template": "Question: {question}\nAnswer:", "metrics": ["rouge", "distinct", "gleu", "cider"],
            "max_new_tokens": 6}
    task_file = tmp_path / "my_qa.yaml"
    task_file.write_text(yaml.safe_dump(spec))
    summary = evaluate(EvalConfig(model="hf:tiny", tasks=[str(task_file)], out=str(tmp_path / "y")),
                       backend=backend, progress=False)
    res = summary["tasks"]["my_qa"]
    assert res["n"] == 3 and 0 <= res["rougeL"] <= 1 and "distinct1" in res and len(res["rougeL_ci"]) == 2
    assert "gleu" in res and "cider" in res
    from clinforge.eval.eval_runner import _TASK_INFO_KEYS, definition_of

    assert not [k for k in res if k not in _TASK_INFO_KEYS and not definition_of(k)]
    rows = _rows(tmp_path / "y" / "items" / "my_qa.jsonl")
    assert rows[0]["prompt"] == "Question: What treats angina?\nAnswer:" and rows[0]["gold"] == [
        "Nitroglycerin treats angina."]
    # an unknown metric is refused before any model call, naming the file, line, the closest and the valid ones
    task_file.write_text(yaml.safe_dump({**spec, "metrics": ["rouge", "rogue"]}))
    with pytest.raises(ConfigError, match=r"my_qa.yaml:\d+: metrics.1: unknown metric 'rogue' \(did you mean "
                                          r"'rouge'\?\); valid: .*bleu.*rouge"):
        evaluate(EvalConfig(model="hf:tiny", tasks=[str(task_file)], out=str(tmp_path / "m")), backend=None)
    # few-shot examples drawn from the evaluated file itself are refused
    task_file.write_text(yaml.safe_dump({**spec, "fewshot_path": str(data)}))
    with pytest.raises(ClinforgeError, match="few-shot examples would come from the test items"):
        evaluate(EvalConfig(model="hf:tiny", tasks=[str(task_file)], out=str(tmp_path / "f"), num_fewshot=1),
                 backend=backend, progress=False)
