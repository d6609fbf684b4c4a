"""``clinforge data deid-train``: BIO labels from gold spans, a real (tiny) training run that must learn, the CLI, and
the dev/held-out patient parts on the real PhysioNet notes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clinforge.core.errors import ConfigError, DataError, OutputExistsError
from clinforge.data.deid.ner_training import (
    LABELS,
    bio_char_labels,
    encode_windows,
    train_deid_ner,
    training_records,
)
from clinforge.data.records import Record

SRC = str(Path(__file__).resolve().parents[1] / "src")
FIRST = ["hank", "suzette", "marisol", "bea", "tammi", "irma", "delia", "ezra", "ona", "quinn", "lupe", "fern"]


def _tiny_base(folder: Path) -> Path:
    """A tiny random BERT with a WordPiece vocabulary of letters, digits and a few words (no download)."""
    import torch
    from transformers import BertConfig, BertForTokenClassification, BertTokenizer

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "son", "called", "on", "pt", "stable", "seen", "by", "dr",
             "and", ".", "/", ","]
    pieces = list("abcdefghijklmnopqrstuvwxyz0123456789") + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    folder.mkdir(parents=True)
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(words + pieces)}, do_lower_case=True)
    assert tokenizer.is_fast and tokenizer.tokenize("son hank") == ["son", "h", "##a", "##n", "##k"]
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    BertForTokenClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _note(i: int) -> tuple[str, list[dict]]:
    name = FIRST[i % len(FIRST)].upper()
    date = f"{i % 12 + 1}/{i % 28 + 1}"
    text = f"PT STABLE. SON {name} CALLED ON {date}. SEEN BY DR AND PT STABLE."
    a = text.index(name)
    d = text.index(date)
    return text, [{"type": "RelativeProxyName", "start": a, "end": a + len(name), "phrase": name},
                  {"type": "Date", "start": d, "end": d + len(date), "phrase": date}]


def _records(n: int) -> list[Record]:
    out = []
    for i in range(n):
        text, phi = _note(i)
        out.append(Record(id=f"n{i}", kind="note", text=text, patient_id=str(2 * (i // 3) + 1),
                          meta={"note": i % 3 + 1, "phi": phi}))
    return out


def _physionet_folder(folder: Path, n: int) -> Path:
    """The same notes in the corpus's own format (id.text + id-phi.phrase), for the CLI."""
    folder.mkdir(parents=True)
    texts, lines = [], []
    for r in _records(n):
        texts.append(f"START_OF_RECORD={r.patient_id}||||{r.meta['note']}||||\n{r.text}\n||||END_OF_RECORD\n")
        for g in r.meta["phi"]:
            lines.append(f"{r.patient_id} {r.meta['note']} {g['start']} {g['end']} {g['type']} {g['phrase']}")
    (folder / "id.text").write_text("".join(texts))
    (folder / "id-phi.phrase").write_text("\n".join(lines) + "\n")
    return folder


def test_bio_labels_follow_the_gold_spans_and_leave_bare_years_out() -> None:
    text = "SON HANK ON 7/22 IN 2019"
    phi = [{"type": "RelativeProxyName", "start": 4, "end": 8}, {"type": "Date", "start": 12, "end": 16},
           {"type": "DateYear", "start": 20, "end": 24}]
    labels = bio_char_labels(text, phi)
    assert labels[4:8] == ["B-NAME"] + ["I-NAME"] * 3 and labels[12] == "B-DATE" and labels[15] == "I-DATE"
    assert set(labels[20:24]) == {"O"} and labels[0] == "O"
    with pytest.raises(DataError, match="unknown PHI type 'Zip'"):
        bio_char_labels(text, [{"type": "Zip", "start": 0, "end": 3}])


def test_windows_label_word_pieces_and_restart_an_entity_in_a_new_window(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(_tiny_base(tmp_path / "base"))
    text = "son hank przy called"
    phi = [{"type": "RelativeProxyName", "start": 4, "end": 13}]  # one gold span over two words
    (window,) = encode_windows(tokenizer, text, phi, max_length=64)
    tokens = tokenizer.convert_ids_to_tokens(window["input_ids"])
    labelled = [(t, LABELS[i]) for t, i in zip(tokens, window["labels"], strict=True) if i >= 0]
    # the second word continues the same entity: one span, one B
    assert labelled == [("son", "O"), ("h", "B-NAME"), *[(t, "I-NAME") for t in ("##a", "##n", "##k", "p", "##r",
                                                                                  "##z", "##y")], ("called", "O")]
    assert window["labels"][0] == -100 and window["labels"][-1] == -100 and window["phi"]
    short = encode_windows(tokenizer, text, phi, max_length=8, stride=2)
    assert len(short) > 1
    second = [LABELS[i] for i in short[1]["labels"] if i >= 0]
    assert second[0] == "B-NAME"  # a window opening inside the span starts the entity again


def test_training_learns_and_the_model_joins_the_rules(tmp_path: Path) -> None:
    from clinforge.data.deid import Deidentifier
    from clinforge.data.deid.ner import TransformersNerRecognizer

    base = _tiny_base(tmp_path / "base")
    out = tmp_path / "model"
    card = train_deid_ner(_records(36), out, base=base, seed=0, epochs=12, lr=3e-3, batch_size=8,
                          freeze_layers=-1, progress=False, source="test")
    losses = card["loss_by_epoch"]
    assert len(losses) == 12 and losses[-1] < 0.25 * losses[0], losses  # it learns, by a stated factor
    assert card["patients"] == [str(p) for p in range(1, 24, 2)] and card["frozen"] == []
    saved = json.loads((out / "deid_training.json").read_text())
    assert saved["seed"] == 0 and saved["windows_with_phi"] == 36
    runs = [train_deid_ner(_records(6), tmp_path / f"again{i}", base=base, seed=0, epochs=2, batch_size=4,
                           progress=False)["loss_by_epoch"] for i in range(2)]
    assert runs[0] == runs[1]  # same data and seed: the same run
    with pytest.raises(OutputExistsError):
        train_deid_ner(_records(3), out, base=base, progress=False)

    ner = TransformersNerRecognizer(model=out)
    text = "PT STABLE. SON QUINN CALLED ON 3/9. SEEN BY DR AND PT STABLE. QUINN, 3/9."
    found = {(text[s.start:s.end], s.entity_type) for s in ner.analyze(text)}
    assert ("QUINN", "NAME") in found  # a name never seen in training, by its context
    assert all(t not in ("STABLE", "SEEN", "CALLED") for t, _ in found)
    assert Deidentifier(recognizers=["patterns", "names", "notes", ner]).deidentify(text).text.count("QUINN") == 0


def test_training_refuses_unannotated_records_and_missing_models(tmp_path: Path) -> None:
    plain = Record(id="x", kind="note", text="no gold here", meta={"phi": None})
    with pytest.raises(DataError, match="no record has gold PHI"):
        train_deid_ner([plain], tmp_path / "m", base=_tiny_base(tmp_path / "base"), progress=False)
    with pytest.raises(ConfigError, match="not a local model folder"):
        train_deid_ner(_records(3), tmp_path / "m2", base=tmp_path / "nowhere", progress=False)
    with pytest.raises(ConfigError, match="unknown part"):
        training_records(tmp_path, "train")


def test_ner_spans_widen_to_words_and_reach_other_occurrences(tmp_path: Path) -> None:
    from clinforge.data.deid.ner import TransformersNerRecognizer, _widen

    assert _widen("SON HANK PRZYBYLO CALLED", 10, 14) == (9, 17)
    assert _widen("dr o'brien.", 5, 7) == (3, 10)
    train_deid_ner(_records(3), tmp_path / "m", base=_tiny_base(tmp_path / "base"), epochs=1, progress=False)
    ner = TransformersNerRecognizer(model=tmp_path / "m")
    text = "son Przybylo called; przybylo and PRZYBYLO came. Stable."
    first = ner.span(4, 12, "NAME", 0.9, "NER label NAME")
    more = ner.propagated(text, [first, ner.span(49, 55, "LOCATION", 0.9, "NER label LOC")])
    assert [(text[s.start:s.end], s.entity_type) for s in more] == [("przybylo", "NAME"), ("PRZYBYLO", "NAME")]


def test_cli_trains_then_deid_uses_the_model(tmp_path: Path) -> None:
    folder = _physionet_folder(tmp_path / "corpus", 12)
    base = _tiny_base(tmp_path / "base")
    out = tmp_path / "model"
    env = {**os.environ, "PYTHONPATH": SRC, "CLINFORGE_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "clinforge", "data", "deid-train", str(folder), "--out", str(out), "--base", str(base),
           "--part", "all", "--epochs", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "trained on 12 notes of 4 patients" in done.stderr and (out / "deid_training.json").is_file()
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode != 0 and "--overwrite" in again.stderr
    note = tmp_path / "note.txt"
    note.write_text("Seen by Dr. Graves on 03/04/2021.")
    used = subprocess.run([sys.executable, "-m", "clinforge", "data", "deid", str(note), "--ner-model", str(out)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert used.returncode == 0, used.stderr[-2000:]
    assert "Graves" not in used.stdout and "03/04/2021" not in used.stdout


def test_training_parts_are_the_benchmark_split_of_the_real_notes(data_root: Path) -> None:
    from clinforge.data.deid.phrase_score import split_patients

    dev = training_records(data_root / "physionet-deid", "dev")
    held = training_records(data_root / "physionet-deid", "held-out")
    every = training_records(data_root / "physionet-deid", "all")
    dev_ids, held_ids = split_patients([r.patient_id for r in every], seed=0)
    assert {r.patient_id for r in dev} == dev_ids and {r.patient_id for r in held} == held_ids
    assert len(dev) + len(held) == len(every) == 1450 and not dev_ids & held_ids


def test_the_library_defaults_are_the_cli_defaults():
    """``train_deid_ner`` called from Python trains as ``clinforge data deid-train`` does (they once differed: the
    library's 2 epochs / 5% empty windows / PHI weight 3 / 2 frozen layers were not the settings that learned)."""
    import inspect

    import typer

    from clinforge.cli.main import app

    command = typer.main.get_command(app).commands["data"].commands["deid-train"]
    cli = {p.name: p.default for p in command.params}
    library = inspect.signature(train_deid_ner).parameters
    for name in ("epochs", "lr", "keep_empty", "phi_weight", "freeze_layers", "seed"):
        assert cli[name] == library[name].default, name


def test_patient_ids_that_look_like_phi_are_pseudonymized_in_the_model_card(tmp_path: Path, monkeypatch) -> None:
    # brat/i2b2 patient ids come from file names, which hospital exports build from MRNs and dates; a model folder
    # is made to be passed on, so its card must not list them
    from clinforge.data.deid.patient_ids import KEY_ENV, PatientPseudonymizer

    monkeypatch.setenv(KEY_ENV, "hospital secret")
    base = _tiny_base(tmp_path / "base")
    records = [r.model_copy(update={"patient_id": f"{4456700 + int(r.patient_id)}_2021-03-14"}) for r in _records(6)]
    card = train_deid_ner(records, tmp_path / "model", base=base, seed=0, epochs=1, batch_size=4, progress=False)
    saved = (tmp_path / "model" / "deid_training.json").read_text()
    assert "4456" not in saved and "2021-03-14" not in saved
    ids = PatientPseudonymizer()
    assert card["patients"] == sorted({ids.pseudonym(r.patient_id) for r in records}, key=lambda p: (len(p), p))
    assert card["patient_ids"].startswith("pseudonymized: HMAC-SHA256 with $CLINFORGE_DEID_KEY")
