"""Medical VQA tasks: ``vqa_rad`` (published split 1,798 train / 450 test), ``slake``, ``pathvqa``, and their
``*_llava_med_legacy`` twins.

Each item is one generation request carrying the record's image(s) (``GenerationRequest.images``; the hf and openai
backends send them to the model). Prompt (clinforge's, zero-shot): ``{question}\\nAnswer with a single word or
phrase.``, the short-answer instruction LLaVA-1.5 uses for VQA benchmarks. Scoring definitions are in
:mod:`clinforge.eval.metrics.vqa_scoring`; the summary has, besides ``n``:

* ``closed_acc`` (+ ``_ci``): normalised exact match over the closed answer vocabulary (every closed gold answer
  of the data set's train and test files); ``closed_unparsed``: closed outputs matching no vocabulary entry
  (scored wrong);
* ``open_exact``, ``open_f1``, ``open_recall`` (+ ``_ci`` each) and ``open_pred_len`` / ``open_gold_len`` (mean
  normalised tokens);
* ``acc`` (+ ``_ci``): all items, closed correct or open exact;
* ``by_question_type`` and ``by_organ``: the same figures per ``meta["question_type"]`` (a multi-label type such
  as ``"ATTRIB, PRES"`` counts under each label) and per ``meta["image_organ"]``.

CIs are 95% percentile bootstraps over items (1000 resamples, the run's seed). The ``_llava_med_legacy`` tasks send
the same requests (a second task costs no model calls: the request cache answers) and report LLaVA-Med's numbers,
labelled ``scoring: llava-med-legacy``: ``legacy_closed_acc`` over its shrunken denominator (``legacy_closed_n``,
``legacy_closed_dropped``) and ``legacy_open_recall``. They exist to reproduce published tables, not to compare
models.

Example:
    >>> from clinforge.eval.tasks import TASKS
    >>> TASKS.get("vqa_rad").reader, TASKS.get("vqa_rad").reader_options
    ('vqa_rad', {'split': 'test'})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clinforge.data.records import Record
from clinforge.eval.eval_runner import DEFINITIONS
from clinforge.eval.metrics.vqa_scoring import closed_vocabulary, llava_med_legacy, score_closed, score_open
from clinforge.eval.tasks.base import TASKS, Task
from clinforge.models.backends.base import GenerationRequest

VQA_PROMPT = "{question}\nAnswer with a single word or phrase."
VQA_DEFINITIONS = {
    "scoring": "VQA: clinforge (closed-vocabulary exact match, open exact/token F1/recall) or llava-med-legacy "
               "(LLaVA-Med run_eval.py, labelled; not comparable)",
    "n_closed": "VQA: closed questions (answer_type CLOSED)", "n_open": "VQA: open questions",
    "closed_acc": "VQA: share of closed questions whose output parses to the gold answer over the closed answer "
                  "vocabulary (normalised exact match; unparsable = wrong)",
    "closed_unparsed": "VQA: closed outputs matching no closed-vocabulary entry (scored wrong, counted)",
    "open_exact": "VQA: share of open questions whose normalised output equals the normalised gold answer",
    "open_f1": "VQA: mean token F1 of open answers (normalised word tokens, multiset overlap, SQuAD's definition)",
    "open_recall": "VQA: mean token recall of open answers (gold tokens found in the output); rewards long outputs, "
                   "read with open_pred_len",
    "open_pred_len": "VQA: mean normalised tokens of the open outputs", "open_gold_len": "VQA: same of the gold",
    "by_question_type": "VQA: the figures per question_type label (a multi-label type counts under each label)",
    "by_organ": "VQA: the figures per image_organ",
    "legacy_closed_acc": "llava-med-legacy: hits / closed questions kept (a wrong answer containing 'yes' or 'no' "
                         "is dropped from the denominator; 'no' inside 'normal'/'unknown' is a hit)",
    "legacy_closed_n": "llava-med-legacy: closed questions kept in its denominator",
    "legacy_closed_dropped": "llava-med-legacy: closed questions its script leaves out (wrong yes/no answers)",
    "legacy_open_recall": "llava-med-legacy: LLaVA-Med's open 'recall' (its calculate_f1score recall)",
    "legacy_open_f1": "llava-med-legacy: its calculate_f1score F1",
    "legacy_open_exact": "llava-med-legacy: its calculate_exactmatch (gold word types present / predicted words)",
}
DEFINITIONS.update(VQA_DEFINITIONS)  # written into summary.json["definitions"] beside the other tasks' keys


@dataclass
class VqaTask(Task):
    """A VQA task over ``vqa`` records (question, answer, images, meta answer_type / question_type / image_organ).

    ``vocabulary_options``: reader options for the files whose closed answers form the vocabulary (default: the
    whole folder, all splits). ``scoring``: ``"clinforge"`` or ``"llava-med-legacy"``.
    """

    prompt_template: str = VQA_PROMPT
    scoring: str = "clinforge"
    vocabulary_options: dict[str, Any] = field(default_factory=dict)
    modes: tuple[str, ...] = ("generate",)
    default_mode: str = "generate"
    max_new_tokens: int = 32
    stop: list[str] = field(default_factory=lambda: ["\n"])

    def vocabulary(self, data_root: Any = None) -> set[str]:
        """The closed answer vocabulary (computed once per task object)."""
        if getattr(self, "_vocabulary", None) is None:
            from clinforge.data.load import load_records

            records = load_records(self.resolve(self.path, data_root), self.reader, **self.vocabulary_options)
            self._vocabulary = closed_vocabulary(r.answer or "" for r in records
                                                 if r.meta.get("answer_type") == "CLOSED")
        return self._vocabulary

    def records(self, data_root: Any = None, limit: int | None = None) -> list[Record]:
        records = super().records(data_root, limit)
        if self.scoring == "clinforge":
            self.vocabulary(data_root)
        return records

    def prompt(self, record: Record, shots: list[Record], cot: bool = False) -> str:
        parts = [self.prompt_template.format(question=s.question) + " " + (s.answer or "") + "\n\n" for s in shots]
        text = self.prompt_template.format(question=record.question)
        return "".join(parts) + (("Think step by step, then give the answer.\n" + text) if cot else text)

    def build(self, record: Record, mode: str, shots: list[Record], cot: bool = False) -> dict[str, Any]:
        prompt = self.prompt(record, shots, cot)
        images = [img for s in shots for img in s.images] + list(record.images)
        req = GenerationRequest(prompt=prompt, max_new_tokens=self.max_new_tokens, stop=list(self.stop),
                                images=images)
        return {"kind": "generate", "prompt": prompt, "requests": [req]}

    def score(self, record: Record, plan: dict[str, Any], results: list[Any], cot: bool = False) -> dict[str, Any]:
        output = results[0]
        gold = record.answer or ""
        answer_type = record.meta.get("answer_type", "OPEN")
        row: dict[str, Any] = {"output": output, "gold": gold, "answer_type": answer_type,
                               "question_type": record.meta.get("question_type"),
                               "organ": record.meta.get("image_organ"), "empty": not output.strip()}
        if self.scoring == "llava-med-legacy":
            legacy = llava_med_legacy(output, gold, answer_type)
            row.update({f"legacy_{k}": v for k, v in legacy.items()})
            row["score"] = float(legacy.get("closed_hit") or 0) if answer_type == "CLOSED" else legacy["recall"]
            return row
        if answer_type == "CLOSED":
            closed = score_closed(output, gold, self.vocabulary())
            row.update(parsed=closed["parsed"], parse_status=closed["parse_status"], correct=closed["correct"])
            row["score"] = float(closed["correct"])
        else:
            opened = score_open(output, gold)
            row.update(parsed=output.strip(), **{f"open_{k}": v for k, v in opened.items()})
            row["score"] = float(opened["exact"])
        return row

    def aggregate(self, rows: list[dict[str, Any]], seed: int, mode: str) -> dict[str, Any]:
        if self.scoring == "llava-med-legacy":
            return _legacy_summary(rows)
        out: dict[str, Any] = {"scoring": "clinforge", **vqa_figures(rows, seed, with_ci=True),
                               "empty": sum(1 for r in rows if r["empty"])}
        out["by_question_type"] = {k: vqa_figures(v, seed) for k, v in _groups(rows, "question_type").items()}
        out["by_organ"] = {k: vqa_figures(v, seed) for k, v in _groups(rows, "organ").items()}
        return out


def _groups(rows: list[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        labels = [x.strip() for x in str(r.get(key) or "").split(",") if x.strip()] or ["(none)"]
        for label in labels:
            groups.setdefault(label, []).append(r)
    return dict(sorted(groups.items()))


def vqa_figures(rows: list[dict[str, Any]], seed: int, *, with_ci: bool = False) -> dict[str, Any]:
    """Closed/open/overall figures of scored VQA rows (``_ci`` bootstrap intervals when ``with_ci``).

    Example:
        >>> rows = [{"answer_type": "CLOSED", "correct": True, "parse_status": "ok", "score": 1.0},
        ...         {"answer_type": "OPEN", "open_exact": False, "open_f1": 0.5, "open_recall": 1.0,
        ...          "open_pred_len": 2, "open_gold_len": 1, "score": 0.0}]
        >>> f = vqa_figures(rows, 0); f["closed_acc"], f["open_f1"], f["acc"]
        (1.0, 0.5, 0.5)
    """
    from clinforge.eval.metrics.accuracy import accuracy_from_correct

    closed = [r for r in rows if r["answer_type"] == "CLOSED"]
    opened = [r for r in rows if r["answer_type"] != "CLOSED"]
    out: dict[str, Any] = {"n": len(rows), "n_closed": len(closed), "n_open": len(opened)}

    def put(name: str, values: list[float]) -> None:
        if not values:
            out[name] = None
            return
        res = accuracy_from_correct(values, seed=seed) if with_ci else None
        out[name] = sum(values) / len(values)
        if res is not None:
            out[f"{name}_ci"] = res["acc_ci"]

    put("closed_acc", [float(r["correct"]) for r in closed])
    out["closed_unparsed"] = sum(1 for r in closed if r["parse_status"] == "unparsed")
    put("open_exact", [float(r["open_exact"]) for r in opened])
    put("open_f1", [float(r["open_f1"]) for r in opened])
    put("open_recall", [float(r["open_recall"]) for r in opened])
    out["open_pred_len"] = sum(r["open_pred_len"] for r in opened) / len(opened) if opened else None
    out["open_gold_len"] = sum(r["open_gold_len"] for r in opened) / len(opened) if opened else None
    put("acc", [float(r["score"]) for r in rows])
    return out


def _legacy_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    closed = [r for r in rows if r["answer_type"] == "CLOSED"]
    kept = [r["legacy_closed_hit"] for r in closed if r["legacy_closed_hit"] is not None]
    opened = [r for r in rows if r["answer_type"] != "CLOSED"]
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    return {"scoring": "llava-med-legacy (reproduces LLaVA-Med run_eval.py; its closed denominator drops wrong "
                       "yes/no answers: not comparable with clinforge scoring)",
            "n": len(rows), "n_closed": len(closed), "n_open": len(opened),
            "legacy_closed_acc": mean(kept), "legacy_closed_n": len(kept),
            "legacy_closed_dropped": len(closed) - len(kept),
            "legacy_open_recall": mean([r["legacy_recall"] for r in opened]),
            "legacy_open_f1": mean([r["legacy_f1"] for r in opened]),
            "legacy_open_exact": mean([r["legacy_exact"] for r in opened])}


def _register(name: str, reader: str, path: str, split: str, prompt_source: str, **extra: Any) -> None:
    for suffix, scoring in (("", "clinforge"), ("_llava_med_legacy", "llava-med-legacy")):
        TASKS.register(name + suffix, VqaTask(
            name=name + suffix, reader=reader, path=path, reader_options={"split": split, **extra},
            vocabulary_options=dict(extra), scoring=scoring, prompt_source=prompt_source,
            description="", max_new_tokens=32))


_register("vqa_rad", "vqa_rad", "vqa-rad", "test", "clinforge (LLaVA-1.5 short-answer prompt), VQA-RAD test 450")
_register("slake", "slake", "slake", "test", "clinforge (LLaVA-1.5 short-answer prompt), SLAKE English test",
          lang="en")
_register("pathvqa", "pathvqa", "pathvqa/split", "test", "clinforge (LLaVA-1.5 short-answer prompt), PathVQA test")
