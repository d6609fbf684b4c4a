"""``clinforge data deid --workers N``: texts de-identified in N processes give the output of one process, in the
same order; Ctrl-C to the whole process group (a terminal's) stops them and the run resumes; a bad row stops all."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clinforge.core.errors import ConfigError, DataError
from clinforge.data.deid import file_deid as fd
from clinforge.data.deid.patient_ids import KEY_ENV
from test_deid_resume import _inputs, _long_inputs, _wait_for


def _read(path: Path) -> dict[str, bytes] | bytes:
    if path.is_dir():
        return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    return path.read_bytes()


@pytest.mark.parametrize("kind", ["jsonl", "csv", "folder"])
def test_two_workers_write_what_one_process_writes(tmp_path: Path, kind: str, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, "a site key")  # pseudonyms equal across the two runs
    src = _inputs(tmp_path / "in", 150)[kind]
    options = {"patient_column": "mrn"} if kind != "folder" else {}
    one, two = io.StringIO(), io.StringIO()
    a = fd.deidentify_file(src, tmp_path / f"one.{kind}", json_out=True, progress=False, stdout=one, **options)
    b = fd.deidentify_file(src, tmp_path / f"two.{kind}", json_out=True, progress=False, stdout=two, workers=2,
                           **options)
    assert _read(tmp_path / f"two.{kind}") == _read(tmp_path / f"one.{kind}")
    assert two.getvalue() == one.getvalue() and len(one.getvalue().splitlines()) == 150
    assert (b["items"], b["bytes"], b["phi"], b["workers"]) == (a["items"], a["bytes"], a["phi"], 2)
    assert b["cpu_s"] > 0.5 * a["cpu_s"]  # the workers' CPU time is counted, not only this process's


def test_name_columns_and_rows_without_text_keep_their_place(tmp_path: Path) -> None:
    src = tmp_path / "rows.jsonl"
    rows = []
    for i in range(90):
        row = {"id": i, "patient_name": "Quenvaro Dastrelik" if i % 2 else "Ilse Marwick", "text": None}
        if i % 4:  # every fourth row has no text (null): written in its place all the same
            row["text"] = f"pt {row['patient_name'].split()[0].lower()} seen, bp 120/80, call 617-555-{i:04d}."
        rows.append(json.dumps(row))
    src.write_text("\n".join(rows) + "\n", encoding="utf-8")
    for workers in (1, 3):
        fd.deidentify_file(src, tmp_path / f"o{workers}.jsonl", name_columns=["patient_name"], progress=False,
                           workers=workers)
    got = (tmp_path / "o3.jsonl").read_text(encoding="utf-8")
    assert got == (tmp_path / "o1.jsonl").read_text(encoding="utf-8")
    assert [json.loads(line)["id"] for line in got.splitlines()] == list(range(90))
    assert "quenvaro" not in got.lower() and "marwick" not in got.lower()


@pytest.mark.parametrize("kind", ["jsonl", "csv", "folder"])
def test_surrogates_in_workers_are_those_of_one_process(tmp_path: Path, kind: str, monkeypatch) -> None:
    # the workers detect, this process makes the surrogates in input order (a word keeps the role it took in a full
    # name of the same patient earlier, so the order matters); one key for both runs
    monkeypatch.setenv(KEY_ENV, "a site key")
    src = _inputs(tmp_path / "in", 120)[kind]
    if kind == "jsonl":  # name cells too: replaced before their row's text, as one process does
        rows = [json.loads(line) for line in src.read_text().splitlines()]
        names = ["Quenvaro Dastrelik", "Ilse Marwick", "Martha Collins"]
        for i, row in enumerate(rows):
            row["patient_name"] = names[i % 3]
            # the next row of this patient (mrn M{i % 7}) names a relative whose full name only that row's cell has
            row["text"] += f" {row['patient_name'].split()[0].lower()} ambulating; {names[(i + 7) % 3].split()[0].upper()} aware."
        src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    options = {"patient_column": "mrn"} if kind != "folder" else {}
    if kind == "jsonl":
        options["name_columns"] = ["patient_name"]
    one, two = io.StringIO(), io.StringIO()
    a = fd.deidentify_file(src, tmp_path / f"one.{kind}", mode="surrogate", json_out=True, progress=False,
                           stdout=one, **options)
    b = fd.deidentify_file(src, tmp_path / f"two.{kind}", mode="surrogate", json_out=True, progress=False,
                           stdout=two, workers=2, **options)
    assert _read(tmp_path / f"two.{kind}") == _read(tmp_path / f"one.{kind}")
    assert two.getvalue() == one.getvalue()
    assert (b["items"], b["phi"], b["name_cells"]) == (a["items"], a["phi"], a["name_cells"])
    written = _read(tmp_path / f"two.{kind}")
    text = b"".join(written.values()) if isinstance(written, dict) else written
    assert b"Collins" not in text and b"617-555" not in text and b"[NAME]" not in text  # surrogates, not masks


def test_bad_counts_are_refused(tmp_path: Path) -> None:
    src = _inputs(tmp_path / "in", 5)["jsonl"]
    with pytest.raises(ConfigError, match="--workers: must be 1 or more"):
        fd.deidentify_file(src, tmp_path / "o.jsonl", workers=0, progress=False)


def test_a_bad_row_stops_every_worker_and_leaves_nothing(tmp_path: Path) -> None:
    src = _inputs(tmp_path / "in", 300)["jsonl"]
    lines = src.read_text(encoding="utf-8").splitlines()
    lines[211] = json.dumps({"id": 211, "text": 42})
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 212.*text"):
        fd.deidentify_file(src, tmp_path / "o.jsonl", workers=2, progress=False)
    assert not (tmp_path / "o.jsonl").exists() and not (tmp_path / ".o.jsonl.partial").exists()


def test_ctrl_c_to_the_process_group_stops_the_workers_and_the_run_resumes(tmp_path: Path) -> None:
    src = _long_inputs(tmp_path / "in", "jsonl")
    ref = tmp_path / "ref.jsonl"
    fd.deidentify_file(src, ref, progress=False)
    out = tmp_path / "out.jsonl"
    command = [sys.executable, "-m", "clinforge", "--no-progress", "data", "deid", str(src), "-o", str(out), "-j", "2"]
    # its own session: the signal goes to the command and its workers, as a terminal's Ctrl-C does
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    _wait_for(tmp_path / ".out.jsonl.partial" / "out.jsonl", min_bytes=64_000)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "saved: " in err and "to resume: clinforge --no-progress data deid" in err
    deadline = time.monotonic() + 15  # multiprocessing's resource tracker leaves when the command's pipe closes
    while (left := subprocess.run(["pgrep", "-a", "-s", str(proc.pid)], capture_output=True, text=True).stdout.strip()):
        assert time.monotonic() < deadline, f"processes outlived the command: {left}"
        time.sleep(0.1)
    again = subprocess.run(command[:-2] + ["-j", "1"], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert "resumed after" in again.stderr
    assert out.read_bytes() == ref.read_bytes()


def test_workers_with_a_tagger_write_what_one_process_writes(tmp_path: Path) -> None:
    # a tiny random BERT tagger whose labels vary from word to word: every worker loads it and must decide the same
    import torch
    from transformers import BertConfig, BertForTokenClassification, BertTokenizerFast

    folder = tmp_path / "tagger"
    folder.mkdir()
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "dr", "saw", "on", "call", "bp", "spots", "."]
    (folder / "vocab.txt").write_text("\n".join(words + list("abcdefghijklmnopqrstuvwxyz0123456789")) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    labels = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, num_labels=len(labels),
                        id2label=dict(enumerate(labels)), label2id={lab: i for i, lab in enumerate(labels)})
    torch.manual_seed(3)
    model = BertForTokenClassification(config)
    with torch.no_grad():  # confident, word-dependent decisions: some words a name, some a place, most nothing
        model.classifier.weight.mul_(40.0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)

    src = _inputs(tmp_path / "in", 40)["jsonl"]
    one, two = io.StringIO(), io.StringIO()
    fd.deidentify_file(src, tmp_path / "one.jsonl", ner_model=folder, json_out=True, progress=False, stdout=one)
    fd.deidentify_file(src, tmp_path / "two.jsonl", ner_model=folder, json_out=True, progress=False, stdout=two,
                       workers=2)
    assert (tmp_path / "two.jsonl").read_bytes() == (tmp_path / "one.jsonl").read_bytes()
    assert two.getvalue() == one.getvalue()
    assert "NER label" in one.getvalue()  # the tagger did add spans


@pytest.mark.parametrize("mode", ["mask", "surrogate"])
def test_the_deid_step_in_workers_gives_the_records_and_report_of_one_process(data_root: Path, monkeypatch,
                                                                               mode: str) -> None:
    # real ACI-Bench dialogues with their name metadata (cleaned with every field) and patient ids, in 2 workers;
    # in surrogate mode the workers detect and the step makes the surrogates in input order from their detections
    from clinforge.data.load import load_records
    from clinforge.data.transforms.deid import DeidTransform

    monkeypatch.setenv(KEY_ENV, "a site key")
    records = load_records(data_root / "aci-bench" / "challenge_data" / "clef_taskC_test3.csv", "aci_bench")
    records = [r.model_copy(update={"patient_id": f"P{i % 9}"}) for i, r in enumerate(records)]
    one, two = DeidTransform(mode=mode), DeidTransform(mode=mode, workers=2)
    a, b = list(one.apply(records)), list(two.apply(records))
    assert [r.model_dump() for r in b] == [r.model_dump() for r in a]
    assert two.report() == one.report() and one.report()["phi_total"] > 100
    assert b[0].patient_id.startswith("pt-") and b[0].patient_id == a[0].patient_id
    if mode == "surrogate":
        assert "[NAME]" not in json.dumps([r.model_dump() for r in b])
    with pytest.raises(ConfigError, match="workers must be a whole number"):
        DeidTransform(workers=0)


def test_data_prepare_with_a_deid_step_in_workers_writes_the_same_dataset(tmp_path: Path, monkeypatch) -> None:
    import yaml

    from clinforge.data.prepare import load_prepared, load_recipe, prepare
    from test_prepare import sample_recipe

    monkeypatch.setenv(KEY_ENV, "a site key")  # the same patient pseudonyms in both runs
    datasets = {}
    for workers in (1, 2):
        (tmp_path / f"w{workers}").mkdir()
        path = sample_recipe(tmp_path / f"w{workers}", drop=())
        recipe = yaml.safe_load(path.read_text())
        for step in recipe["steps"]:
            if step["transform"] == "deid":
                step["options"]["workers"] = workers
        path.write_text(yaml.safe_dump(recipe, sort_keys=False))
        card = prepare(load_recipe(path), tmp_path / f"run{workers}", recipe_file=str(path), progress=False)
        deid = next(s for s in card["steps"] if s["transform"] == "deid")
        datasets[workers] = ({name: [r.model_dump() for r in split] for name, split in
                              load_prepared(tmp_path / f"run{workers}").items()},
                             deid["report"])
    assert datasets[2] == datasets[1]
    assert datasets[1][1]["phi_total"] > 100 and sum(len(rows) for rows in datasets[1][0].values()) > 50
