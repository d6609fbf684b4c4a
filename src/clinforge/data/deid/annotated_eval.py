"""How well the de-identifier does on a team's own annotated notes (``clinforge data deid-eval``).

The measure is issue 7's, the one ``benchmarks/deid.py`` reports on PhysioNet (``phrase_score``): recall per gold
PHI instance (removed when the masked output holds fewer word-bounded occurrences of its phrase, by the number of
its instances), by group; precision of predicted spans (touching gold PHI); ordinary words kept; Wilson 95%
intervals; speed in UTF-8 MB per CPU second of detection. Notes without annotations are not scored (counted).

Example:
    >>> from clinforge.data.readers.deid_annotations import read_annotated  # doctest: +SKIP
    >>> records, _ = read_annotated("annotated/")  # doctest: +SKIP
    >>> evaluate_annotated(records)["recall"]["all"]["value"]  # doctest: +SKIP
    0.83
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clinforge.core.errors import ConfigError, DataError

DEFINITIONS: dict[str, str] = {
    "recall": "gold PHI instances removed / scored gold instances (a phrase is removed when the masked output holds "
              "fewer word-bounded, case-sensitive occurrences of it than the note, by at least its number of gold "
              "instances); DateYear and Unscored labels are not scored; Wilson 95% interval",
    "precision": "predicted spans touching a gold PHI span / predicted spans (spans touching only unscored gold are "
                 "left out); by the predicted span's type; Wilson 95% interval",
    "words_kept": "word tokens outside gold PHI that no predicted span touches / word tokens outside gold PHI",
    "mb_s": "UTF-8 MB of note text per CPU second of detection (process time, this process)",
}


def _rate(rate: Any) -> dict:
    lo, hi = rate.ci
    return {"value": round(rate.value, 4), "k": rate.k, "n": rate.n, "ci": [round(lo, 4), round(hi, 4)]}


def evaluate_annotated(records: Sequence, *, ner_model: str | Path | None = None, ner_int8: bool = False,
                       recognizers: Sequence[str] | None = None, progress: bool = True,
                       site_terms: str | Path | None = None) -> dict:
    """Score ``Deidentifier(mode="mask")`` (default recognizers, plus the tagger folder ``ner_model`` with its saved
    gate; ``ner_int8``: its linear layers in int8; ``site_terms``: a site list, ``site_terms.py``) on annotated
    ``records`` (``meta["phi"]`` gold spans); returns a JSON-ready dict (module docstring).

    Example:
        >>> from clinforge.data.records import Record
        >>> r = Record(id="n", kind="note", text="Seen by Dr Okafor on 7/22.", patient_id="1",
        ...            meta={"note": 1, "phi": [{"type": "HCPName", "start": 11, "end": 17, "phrase": "Okafor"}]})
        >>> evaluate_annotated([r])["recall"]["all"]["value"]
        1.0
    """
    from clinforge.data.deid.deidentifier import Deidentifier
    from clinforge.data.deid.phrase_score import score_records, summarize
    from clinforge.data.deid.recognizers import DEFAULT_RECOGNIZERS

    annotated = [r for r in records if r.meta.get("phi") is not None]
    if not annotated:
        raise DataError("no annotated note to score (every note lacks gold PHI annotations)", field="phi")
    if ner_int8 and ner_model is None:
        raise ConfigError("--ner-int8 needs --ner-model (the tagger it quantises)", key="--ner-int8")
    rules = list(recognizers or DEFAULT_RECOGNIZERS)
    gate = None
    if ner_model is not None:
        from clinforge.data.deid.ner import TransformersNerRecognizer

        tagger = TransformersNerRecognizer(ner_model, int8=ner_int8)
        gate = tagger.gate.to_json() if tagger.gate is not None else None
        deid = Deidentifier(mode="mask", recognizers=[*rules, tagger], site_terms=site_terms)
    else:
        deid = Deidentifier(mode="mask", recognizers=rules, site_terms=site_terms)
    from clinforge.core.progress import progress_bar

    bar = progress_bar(total=len(annotated), desc="deid-eval", unit="note", enabled=progress)

    def predict(text: str) -> list[tuple[int, int, str]]:
        bar.update(1)  # a tagger reads ~0.01 MB/s on one core: a large set takes minutes
        return [(s.start, s.end, s.entity_type) for s in deid.detect(text)]

    with bar:  # closed on an error too, so the terminal line is not left half drawn
        scores, cpu, nbytes = score_records(annotated, predict)
    summary = summarize(scores)
    return {
        "notes": len(annotated), "notes_without_annotations": len(records) - len(annotated),
        "patients": len({r.patient_id for r in annotated}),
        "recognizers": rules, "ner_model": None if ner_model is None else {"path": str(ner_model), "gate": gate,
                                                                   "int8": ner_int8},
        "site_terms": None if site_terms is None else str(site_terms),
        "recall": {k.removeprefix("recall_"): _rate(v) for k, v in summary.items() if k.startswith("recall_")},
        "precision": {k.removeprefix("precision_"): _rate(v) for k, v in summary.items()
                      if k.startswith("precision_")},
        "words_kept": _rate(summary["words_kept"]),
        "mb_s": round(nbytes / 1e6 / cpu, 4) if cpu > 0 else None, "cpu_s": round(cpu, 3),
        "definitions": DEFINITIONS,
    }
