"""``clinforge score``: score a prediction file against one or more reference files (one example per line)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from clinforge.cli.shared_options import NO_PROGRESS


def command(
    pred: Path = typer.Option(..., "--pred", help="Predictions, one example per line (UTF-8)."),
    ref: list[Path] = typer.Option(..., "--ref", help="References, one per line; repeat --ref for more references."),
    metrics: list[str] = typer.Option(
        None, "--metrics",
        help="Comma-separated metric names or output keys (bleu, bleu_coco, rouge, rouge_w, rouge_s, gleu, distinct, "
             "cider, meteor, bertscore, chexpert, or keys like rougeL, bleu4; 'all'). Default: the lexical ones."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
    rouge_stemmer: bool = typer.Option(False, "--rouge-stemmer", help="Porter stemming for ROUGE (rouge-score's "
                                       "use_stemmer)."),
    bleu_tokenize: str = typer.Option("13a", "--bleu-tokenize", help="sacrebleu tokenizer for `bleu`: 13a (default), "
                                      "intl, zh (Chinese), char, none, ... (sacrebleu's -tok)."),
    bleu_lowercase: bool = typer.Option(False, "--bleu-lowercase", help="Case-insensitive `bleu` (sacrebleu's -lc)."),
    bertscore_model: str = typer.Option(None, "--bertscore-model", help="Local model folder for BERTScore "
                                        "(default: the offline MiniLM)."),
    bertscore_layers: int = typer.Option(None, "--bertscore-layers", help="Layer for BERTScore (default: see docs)."),
    chexpert_rules: Path = typer.Option(None, "--chexpert-rules", help="Folder with CheXpert phrases/ (default: "
                                        "$CLINFORGE_DATA/chexpert-labeler or the packaged copy)."),
    details: bool = typer.Option(False, "--details", help="With --json, add each metric's extra figures."),
    ci: bool = typer.Option(True, "--ci/--no-ci", help="Percentile bootstrap interval of each figure "
                            "(resampling examples)."),
    n_resamples: int = typer.Option(1000, "--n-resamples", help="Bootstrap resamples."),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap."),
    alpha: float = typer.Option(0.05, "--alpha", help="1 - confidence level of the intervals."),
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Score text files with reference-identical metrics (sacrebleu, rouge-score, NLTK, pycocoevalcap, bert-score)."""
    from rich.console import Console
    from rich.table import Table

    from clinforge.core.progress import progress_bar
    from clinforge.eval.metrics.scoring import resolve_metric_names, score_files

    requested = [m for raw in (metrics or []) for m in raw.split(",") if m.strip()]
    options: dict[str, dict] = {"rouge": {"use_stemmer": rouge_stemmer}, "rouge_w": {"use_stemmer": rouge_stemmer},
                                "rouge_s": {"use_stemmer": rouge_stemmer},
                                "bleu": {"tokenize": bleu_tokenize, "lowercase": bleu_lowercase}}
    if bertscore_model or bertscore_layers:
        options["bertscore"] = {"model": bertscore_model, "num_layers": bertscore_layers}
    if chexpert_rules:
        options["chexpert"] = {"rules_dir": chexpert_rules}
    steps = len(resolve_metric_names(requested)) + (1 if ci else 0)  # per metric, then the bootstrap intervals
    with progress_bar(total=steps, desc="scoring", unit="step") as bar:
        begun: list[str] = []

        def on_metric(name: str, n: int) -> None:
            if begun:  # the previous metric is done
                bar.update(1)
            begun.append(name)
            bar.set_description(f"{name} on {n} examples")  # redraws: one line per step in a pipe

        result = score_files(pred, ref, requested, options=options, ci=ci, n_resamples=n_resamples, seed=seed,
                             alpha=alpha, on_metric=on_metric)
        bar.update(steps - len(begun) + 1 if begun else steps)
    console = Console(stderr=True)
    extra = result.pop("details")
    untokenized = extra.get("rouge", {}).get("n_texts_without_rouge_tokens", 0)
    if untokenized:
        console.print(f"[yellow]warning:[/] {untokenized} example(s) have text with no ROUGE token (rouge-score keeps "
                      "only a-z and 0-9, so e.g. Chinese scores 0); see --details", highlight=False)
    if as_json:
        if details:
            result["details"] = extra
        typer.echo(json.dumps(result, indent=None, default=float))
        return
    table = Table(caption=f"{result['n']} examples, {len(ref)} reference file(s), "
                          f"{result['n_empty_predictions']} empty prediction(s)")
    table.add_column("metric")
    table.add_column("value", justify="right")
    if ci:
        table.add_column(f"{100 * (1 - alpha):g}% CI (bootstrap, seed {seed})", justify="right")
    for key, value in result.items():
        if key in ("n", "n_empty_predictions", "ci") or key.endswith("_ci"):
            continue
        row = [key, f"{value:.4f}"]
        if ci:
            interval = result.get(f"{key}_ci")
            row.append(f"[{interval[0]:.4f}, {interval[1]:.4f}]" if interval else "-")
        table.add_row(*row)
    Console().print(table)
