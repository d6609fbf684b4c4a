"""Score prediction/reference texts with several metrics at once (what ``clinforge score`` runs).

The output keys are those of issue 4: ``bleu`` (sacrebleu corpus BLEU, 0-100), ``bleu1``..``bleu4`` (COCO
cumulative), ``rouge1``, ``rouge2``, ``rougeL``, ``rougeLsum`` (mean F1, 0-1), ``rougeW``, ``rougeS``, ``rougeSU``,
``gleu`` (corpus), ``distinct1``, ``distinct2``, ``cider``, ``meteor``, ``bertscore_f1``, and for ``chexpert`` the
``chexpert_f1_*`` keys; plus ``n`` (examples) and ``n_empty_predictions`` (empty predictions, scored as they are:
every metric gives them 0). Multi-reference semantics follow each reference library (see each module).

With ``ci=True`` (the default) each figure that is a sample estimate also gets ``KEY_ci`` = [lo, hi], a percentile
bootstrap over examples (:mod:`clinforge.eval.metrics.ci`; ``n_resamples`` 1000, ``seed`` 0, ``alpha`` 0.05,
recorded under ``ci``).

Example:
    >>> r = score_texts(["a b c d"], [["a b c d"]], ["bleu", "rouge"])
    >>> round(r["bleu"], 6), r["rouge1"], r["n"]
    (100.0, 1.0, 1)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from clinforge.core.errors import ConfigError
from clinforge.core.registry import UnknownComponentError
from clinforge.eval.metrics import METRICS
from clinforge.eval.metrics._common import DEFAULT_ALPHA, DEFAULT_N_RESAMPLES, DEFAULT_SEED, check_inputs

#: metric name -> the keys it contributes to the summary
TEXT_METRIC_KEYS: dict[str, tuple[str, ...]] = {
    "bleu": ("bleu",),
    "bleu_coco": ("bleu1", "bleu2", "bleu3", "bleu4"),
    "rouge": ("rouge1", "rouge2", "rougeL", "rougeLsum"),
    "rouge_w": ("rougeW",),
    "rouge_s": ("rougeS", "rougeSU"),
    "gleu": ("gleu",),
    "distinct": ("distinct1", "distinct2"),
    "cider": ("cider",),
    "meteor": ("meteor",),
    "bertscore": ("bertscore_f1",),
    "chexpert": ("chexpert_f1_14_micro", "chexpert_f1_14_macro", "chexpert_f1_5_micro", "chexpert_f1_5_macro"),
}
#: computed when no metric list is given: the lexical metrics that need neither Java nor a neural model
DEFAULT_METRICS = ("bleu", "bleu_coco", "rouge", "rouge_w", "rouge_s", "gleu", "distinct", "cider")
#: metrics that can return per-example statistics (``per_example=True``) for bootstrap intervals
CI_METRICS = frozenset({"bleu", "bleu_coco", "rouge", "rouge_w", "rouge_s", "gleu", "cider", "bertscore", "chexpert"})
_PER_EXAMPLE_FIELDS = ("per_example", "segment_stats", "labels")
#: an output key may be asked for directly (``--metrics rougeL,bleu4``)
KEY_TO_METRIC = {key: name for name, keys in TEXT_METRIC_KEYS.items() for key in keys}


def resolve_metric_names(names: Sequence[str] | None) -> list[str]:
    """Metric names (or output keys, or ``all``) -> the ordered list of metric modules to run.

    Example:
        >>> resolve_metric_names(["rougeL", "bleu4", "bleu"])
        ['rouge', 'bleu_coco', 'bleu']
    """
    if not names:
        return list(DEFAULT_METRICS)
    out: list[str] = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        if name == "all":
            targets = list(TEXT_METRIC_KEYS)
        elif name in TEXT_METRIC_KEYS:
            targets = [name]
        elif name in KEY_TO_METRIC:
            targets = [KEY_TO_METRIC[name]]
        else:
            valid = ", ".join(dict.fromkeys(["all", *TEXT_METRIC_KEYS, *KEY_TO_METRIC]))
            raise UnknownComponentError(f"unknown metric {name!r}; valid: {valid}")
        out.extend(t for t in targets if t not in out)
    return out


def score_texts(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    metrics: Sequence[str] | None = None,
    *,
    options: dict[str, dict] | None = None,
    on_metric: Callable[[str], None] | None = None,
    ci: bool = True,
    n_resamples: int = DEFAULT_N_RESAMPLES,
    seed: int = DEFAULT_SEED,
    alpha: float = DEFAULT_ALPHA,
) -> dict:
    """Run each metric and merge its summary keys; ``options[name]`` are keyword options of metric ``name``.

    Output keys asked for one by one (``["rougeL", "bleu4"]``) restrict the result to those keys.

    Example:
        >>> score_texts([""], [["a"]], ["gleu"])["n_empty_predictions"]
        1
    """
    n = check_inputs(predictions, references)
    if ci and (int(n_resamples) < 1 or not 0 < alpha < 1):
        raise ConfigError(f"bootstrap needs n_resamples >= 1 and 0 < alpha < 1 (got {n_resamples}, {alpha})",
                          key="--n-resamples" if int(n_resamples) < 1 else "--alpha")
    names = resolve_metric_names(metrics)
    options = options or {}
    result: dict = {}
    details: dict = {}
    outputs: dict = {}
    for name in names:
        if on_metric:
            on_metric(name)
        kwargs = dict(options.get(name, {}))
        if ci and name in CI_METRICS:
            kwargs["per_example"] = True
        out = METRICS.get(name)(predictions, references, **kwargs)
        outputs[name] = out
        for key in TEXT_METRIC_KEYS[name]:
            result[key] = out[key]
        details[name] = {k: v for k, v in out.items()
                         if k not in TEXT_METRIC_KEYS[name] and k not in _PER_EXAMPLE_FIELDS}
    if ci:
        from clinforge.eval.metrics.ci import bootstrap_cis

        if on_metric:
            on_metric("bootstrap intervals")
        sacrebleu_options = {k: v for k, v in options.get("bleu", {}).items() if k != "per_example"}
        intervals = bootstrap_cis(outputs, n, n_resamples=n_resamples, seed=seed, alpha=alpha,
                                  sacrebleu_options=sacrebleu_options)
        for key in list(result):
            if key in intervals:
                result[f"{key}_ci"] = intervals[key]
    if metrics and any(m.strip() in KEY_TO_METRIC and m.strip() not in TEXT_METRIC_KEYS for m in metrics):
        # output keys asked one by one (``rougeL``) keep only those; a metric name or ``all`` keeps all its keys
        wanted = set()
        for m in (m.strip() for m in metrics):
            if m == "all":
                wanted.update(KEY_TO_METRIC)
            elif m in TEXT_METRIC_KEYS:
                wanted.update(TEXT_METRIC_KEYS[m])
            elif m in KEY_TO_METRIC:
                wanted.add(m)
        result = {k: v for k, v in result.items() if k in wanted or (k.endswith("_ci") and k[:-3] in wanted)}
    result["n"] = n
    result["n_empty_predictions"] = sum(1 for p in predictions if not p.strip())
    if ci:
        result["ci"] = {"method": "percentile bootstrap over examples", "n_resamples": n_resamples, "seed": seed,
                        "alpha": alpha}
    result["details"] = details
    return result


def score_files(pred: str | os.PathLike, refs: Sequence[str | os.PathLike], metrics: Sequence[str] | None = None, *,
                options: dict[str, dict] | None = None, on_metric: Callable[[str, int], None] | None = None,
                **kwargs: Any) -> dict:
    """``score_texts`` on a prediction file and one or more reference files (one example per line, UTF-8); what
    ``clinforge score`` runs. Files of different lengths, an empty prediction file and an unknown metric or
    sacrebleu tokenizer are errors naming the file or the option; ``on_metric(name, n_examples)`` is called as
    each metric starts.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "p").write_text("a b c d\\n"); _ = (d / "r").write_text("a b c d\\n")
        >>> score_files(d / "p", [d / "r"], ["rouge"], ci=False)["rouge1"]
        1.0
    """
    from pathlib import Path

    from sacrebleu.metrics.bleu import BLEU

    from clinforge.core.errors import DataError
    from clinforge.core.io import read_lines

    tokenizer = (options or {}).get("bleu", {}).get("tokenize", "13a")
    if tokenizer not in BLEU.TOKENIZERS:
        raise ConfigError(f"unknown sacrebleu tokenizer {tokenizer!r}; valid: {', '.join(BLEU.TOKENIZERS)}",
                          key="--bleu-tokenize")
    requested = list(metrics or [])
    names = resolve_metric_names(requested)  # fails early, listing the valid names
    predictions = read_lines(Path(pred))
    if not predictions:
        raise DataError("no examples: the prediction file is empty", file=str(pred))
    columns = [read_lines(Path(r)) for r in refs]
    for path, column in zip(refs, columns, strict=False):
        if len(column) != len(predictions):
            raise DataError(f"{len(predictions)} predictions in {pred} but {len(column)} references in {path}; "
                            "every file needs one line per example")
    references = [list(r) for r in zip(*columns, strict=False)]
    notify = (lambda name: on_metric(name, len(predictions))) if on_metric else None
    return score_texts(predictions, references, requested or names, options=options, on_metric=notify, **kwargs)
