"""Train a PHI tagger AND choose its gate on patients it never saw (``clinforge data deid-train --choose-gate``).

Two runs of ``train_deid_ner``:

1. a **probe**: the training patients are split again (``split_patients(sorted(patients), seed=split_seed)``); the
   model trains on the first part, with early stopping on the validation loss of the second, and its ungated
   entities joined to the rules are scored on the second part's notes for every gate of ``choose_gate``; the gate of
   highest recall wins whose precision is >= ``min_precision`` AND no more than ``max_precision_loss`` under the
   rules' own precision on those notes (none qualifies: the gate lets nothing through, the rules stay alone). The
   relative bar is there because an absolute one did not transfer: on probe notes where the rules stand at 0.91, a
   0.85 bar let through spans that cost 10 points of precision on unseen patients, where the rules stand at 0.81;
2. the **final** model: every training patient, for the probe's best number of epochs, with that gate saved in its
   ``deid_training.json``, which ``TransformersNerRecognizer`` (and ``clinforge data deid --ner-model``) applies.

The probe folder (``OUT.gate-probe``) is kept: an interrupted run resumes from it when its card matches the
settings, and ``gate_search.json`` there lists every gate tried with its recall and precision.

Example:
    >>> from clinforge.data.deid.ner_training import training_records  # doctest: +SKIP
    >>> card = train_gated_deid_ner(training_records("physionet-deid", "dev"), "models/deid-gated")  # doctest: +SKIP
    >>> card["gate"]["types"], card["gate"]["chosen_on"]["precision"]  # doctest: +SKIP
    (['LOCATION', 'NAME'], 0.87)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clinforge.core.errors import DataError, OutputExistsError
from clinforge.core.io import atomic_write_text
from clinforge.data.deid.ner_gate import GateScorer, NerGate, choose_gate
from clinforge.data.deid.ner_training import CARD_FILE, train_deid_ner
from clinforge.data.deid.phrase_score import split_patients

GATE_SEARCH_FILE = "gate_search.json"


def train_gated_deid_ner(records: Sequence, out: str | Path, *, split_seed: int = 1, min_precision: float = 0.85,
                         max_precision_loss: float | None = 0.01, epochs: int = 8, patience: int = 2,
                         overwrite: bool = False, progress: bool = True, source: str = "",
                         **train_options: Any) -> dict:
    """Probe run, gate choice, final run (see the module docstring); returns the final model's card.

    ``train_options`` go to both runs of ``train_deid_ner`` (seed, lr, keep_empty, phi_weight, freeze_layers,
    first_piece, threads, ...).
    """
    from clinforge.data.deid.ner import TransformersNerRecognizer

    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists; pass --overwrite to replace it")
    records = [r for r in records if r.meta.get("phi") is not None]
    patients = sorted({str(r.patient_id) for r in records}, key=lambda p: (len(p), p))
    if len(patients) < 4:
        raise DataError(f"choosing a gate needs at least 4 annotated patients (got {len(patients)}): the tagger is "
                        "scored on patients it did not train on", field="patient_id")
    fit_ids, gate_ids = split_patients(patients, seed=split_seed)
    fit = [r for r in records if str(r.patient_id) in fit_ids]
    held = [r for r in records if str(r.patient_id) in gate_ids]
    probe = out.with_name(out.name + ".gate-probe")
    settings = {"epochs": epochs, "first_piece": train_options.get("first_piece", True), **{
        k: v for k, v in train_options.items() if k in ("seed", "lr", "keep_empty", "phi_weight", "freeze_layers")}}
    train_options.setdefault("first_piece", True)
    if not _probe_matches(probe, fit_ids, gate_ids, settings):
        train_deid_ner(fit, probe, epochs=epochs, val_records=held, patience=patience, overwrite=True,
                       progress=progress, source=f"{source} gate probe: patients of split_patients(seed={split_seed}) "
                       "part 1", **train_options)
    probe_card = json.loads((probe / CARD_FILE).read_text(encoding="utf-8"))
    scorer = GateScorer(TransformersNerRecognizer(probe, gate=False), held)
    rules = scorer.summary(NerGate(types=()))
    bar = min_precision
    if max_precision_loss is not None:
        bar = max(bar, rules["precision_all"].value - max_precision_loss)
    gate, table = choose_gate(scorer.score, min_precision=bar)
    gate = gate or NerGate(types=())  # no gate reaches the precision: the tagger adds nothing
    chosen = scorer.summary(gate)
    chosen_on = {
        "patients": len(gate_ids), "notes": len(scorer.records), "split_seed": split_seed,
        "min_precision": min_precision, "max_precision_loss": max_precision_loss, "precision_bar": round(bar, 4),
        "probe_best_epoch": probe_card["best_epoch"],
        "recall": round(chosen["recall_all"].value, 4), "precision": round(chosen["precision_all"].value, 4),
        "rules_recall": round(rules["recall_all"].value, 4), "rules_precision": round(rules["precision_all"].value, 4),
        "by_group": {k: str(v) for k, v in chosen.items()},
    }
    atomic_write_text(probe / GATE_SEARCH_FILE, json.dumps({"chosen": gate.to_json(), "chosen_on": chosen_on,
                                                            "table": table}, indent=1) + "\n", overwrite=True)
    return train_deid_ner(records, out, epochs=probe_card["best_epoch"], gate={**gate.to_json(),
                          "chosen_on": chosen_on}, overwrite=overwrite, progress=progress, source=source,
                          **train_options)


def _probe_matches(probe: Path, fit_ids: set[str], gate_ids: set[str], settings: dict) -> bool:
    """Whether ``probe`` holds a finished probe run of these patients and settings (then it is reused)."""
    card_path = probe / CARD_FILE
    if not card_path.is_file():
        return False
    card = json.loads(card_path.read_text(encoding="utf-8"))
    same = set(card.get("patients", ())) == fit_ids and set(card.get("val_patients", ())) == gate_ids
    return same and all(card.get(k) == v for k, v in settings.items())
