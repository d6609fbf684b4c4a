"""Train a PHI tagger AND choose its gate on patients it never saw (``clinforge data deid-train --choose-gate``).

Three runs of ``train_deid_ner`` (two with ``cross_fit=False``):

1. **probes**: the training patients are split again (``split_patients(sorted(patients), seed=split_seed)``); one
   probe trains on the first part, with early stopping on the validation loss of the second, and (cross-fitting, the
   default) a second probe the other way round. Each probe's ungated entities joined to the rules are scored on the
   notes of the part it did not train on, pooled, for every gate of ``choose_gate``; the gate of highest recall
   wins whose precision is >= ``min_precision`` AND no more than ``max_precision_loss`` under the rules' own
   precision on those notes (none qualifies: the gate lets nothing through, the rules stay alone). The relative
   bar is there because an absolute one did not transfer: on probe notes where the rules stand at 0.91, a 0.85 bar
   let through spans that cost 10 points of precision on unseen patients, where the rules stand at 0.81.
   Cross-fitting doubles the notes a gate is chosen on: with one probe, a places gate chosen at 0.895 place
   precision on 21 patients gave 0.54 on 41 unseen ones;
2. the **final** model: every training patient, for the probes' best number of epochs (their mean, rounded down),
   with that gate saved in its ``deid_training.json``, which ``TransformersNerRecognizer`` (and ``clinforge data
   deid --ner-model``) applies.

The probe folders (``OUT.gate-probe``, ``OUT.gate-probe-2``) are kept: an interrupted run resumes from them when
their cards match the settings, and ``gate_search.json`` in the first lists every gate tried with its recall and
precision.

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
from types import SimpleNamespace
from typing import Any

from clinforge.core.errors import DataError, OutputExistsError
from clinforge.core.io import atomic_write_text
from clinforge.data.deid.ner_gate import GateScorer, NerGate, PooledGateScorer, choose_gate
from clinforge.data.deid.ner_training import CARD_FILE, card_patient_ids, train_deid_ner
from clinforge.data.deid.phrase_score import split_patients

GATE_SEARCH_FILE = "gate_search.json"


def train_gated_deid_ner(records: Sequence, out: str | Path, *, split_seed: int = 1, min_precision: float = 0.85,
                         max_precision_loss: float | None = 0.01, epochs: int = 8, patience: int = 2,
                         cross_fit: bool = True, overwrite: bool = False, progress: bool = True, source: str = "",
                         **train_options: Any) -> dict:
    """Probe run, gate choice, final run (see the module docstring); returns the final model's card.

    ``train_options`` go to every run of ``train_deid_ner`` (seed, lr, keep_empty, phi_weight, freeze_layers,
    first_piece, threads, augment, ...).
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
    probe = out.with_name(out.name + ".gate-probe")
    settings = {"epochs": epochs, "first_piece": train_options.get("first_piece", True),
                "augment": train_options.get("augment", 0), **{
        k: v for k, v in train_options.items() if k in ("seed", "lr", "keep_empty", "phi_weight", "freeze_layers")}}
    train_options.setdefault("first_piece", True)
    folds = [(probe, fit_ids, gate_ids, 1)]
    if cross_fit:
        folds.append((out.with_name(out.name + ".gate-probe-2"), gate_ids, fit_ids, 2))
    scorers, best_epochs = [], []
    for folder, train_ids, score_ids, part in folds:
        fit = [r for r in records if str(r.patient_id) in train_ids]
        held = [r for r in records if str(r.patient_id) in score_ids]
        if not _probe_matches(folder, train_ids, score_ids, settings):
            train_deid_ner(fit, folder, epochs=epochs, val_records=held, patience=patience, overwrite=True,
                           progress=progress, source=f"{source} gate probe: patients of split_patients(seed="
                           f"{split_seed}) part {part}", **train_options)
        best_epochs.append(json.loads((folder / CARD_FILE).read_text(encoding="utf-8"))["best_epoch"])
        scorers.append(GateScorer(TransformersNerRecognizer(folder, gate=False), held))
    scorer = PooledGateScorer(scorers)
    final_epochs = sum(best_epochs) // len(best_epochs)
    rules = scorer.summary(NerGate(types=()))
    bar = min_precision
    if max_precision_loss is not None:
        bar = max(bar, rules["precision_all"].value - max_precision_loss)
    gate, table = choose_gate(scorer.score, min_precision=bar)
    gate = gate or NerGate(types=())  # no gate reaches the precision: the tagger adds nothing
    chosen = scorer.summary(gate)
    chosen_on = {
        "patients": len(gate_ids) + (len(fit_ids) if cross_fit else 0), "notes": len(scorer.records),
        "split_seed": split_seed, "cross_fit": cross_fit,
        "min_precision": min_precision, "max_precision_loss": max_precision_loss, "precision_bar": round(bar, 4),
        "probe_best_epoch": final_epochs, "probe_best_epochs": best_epochs,
        "recall": round(chosen["recall_all"].value, 4), "precision": round(chosen["precision_all"].value, 4),
        "rules_recall": round(rules["recall_all"].value, 4), "rules_precision": round(rules["precision_all"].value, 4),
        "by_group": {k: str(v) for k, v in chosen.items()},
    }
    atomic_write_text(probe / GATE_SEARCH_FILE, json.dumps({"chosen": gate.to_json(), "chosen_on": chosen_on,
                                                            "table": table}, indent=1) + "\n", overwrite=True)
    return train_deid_ner(records, out, epochs=final_epochs, gate={**gate.to_json(),
                          "chosen_on": chosen_on}, overwrite=overwrite, progress=progress, source=source,
                          **train_options)


def _probe_matches(probe: Path, fit_ids: set[str], gate_ids: set[str], settings: dict) -> bool:
    """Whether ``probe`` holds a finished probe run of these patients and settings (then it is reused)."""
    card_path = probe / CARD_FILE
    if not card_path.is_file():
        return False
    card = json.loads(card_path.read_text(encoding="utf-8"))
    # the ids as a card lists them (pseudonyms when some looked like PHI: equal only under $CLINFORGE_DEID_KEY)
    fit_shown, gate_shown, _ = card_patient_ids([SimpleNamespace(patient_id=p) for p in fit_ids],
                                                [SimpleNamespace(patient_id=p) for p in gate_ids])
    same = set(card.get("patients", ())) == set(fit_shown) and set(card.get("val_patients", ())) == set(gate_shown)
    return same and all(card.get(k, 0 if k == "augment" else None) == v for k, v in settings.items())
