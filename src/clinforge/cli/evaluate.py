"""``clinforge eval``: evaluate a model on medical tasks; rerunning on the same --out resumes."""

from __future__ import annotations

import typer

from clinforge.cli.shared_options import EGRESS_ALLOW, NO_EGRESS, NO_PROGRESS, apply_no_egress


def command(
    model: str = typer.Option(..., "--model", help="hf:PATH_OR_ID, openai:BASE_URL#MODEL, vllm:PATH_OR_ID or llamacpp:FILE.gguf."),
    tasks: str = typer.Option(..., "--tasks", help="Comma-separated task or group names, or task YAML files "
                                                  "(e.g. medqa,pubmedqa or multimedqa)."),
    out: str = typer.Option(..., "--out", "-o", help="Run directory (rerun on the same one to resume)."),
    limit: int = typer.Option(None, "--limit", help="Evaluate only the first N items of each task."),
    num_fewshot: int = typer.Option(0, "--num-fewshot", help="Few-shot examples per item (from a train/dev split)."),
    seed: int = typer.Option(0, "--seed", help="Seed of few-shot sampling and bootstrap CIs."),
    batch_size: int = typer.Option(8, "--batch-size", help="Requests per forward pass (hf backend)."),
    mode: str = typer.Option(None, "--mode", help="loglikelihood | generate | circular (default: each task's own)."),
    cot: bool = typer.Option(False, "--cot", help="Chain-of-thought prompting (generate mode)."),
    chat: bool = typer.Option(False, "--chat", help="Generate mode: send prompts through the chat template."),
    device: str = typer.Option("auto", "--device", help="hf backend device: auto, cpu, cuda:0..."),
    backend_option: list[str] = typer.Option([], "--backend-option",
                                             help="KEY=VALUE passed to the backend, repeatable (e.g. --backend-option "
                                                  "concurrency=8 --backend-option dtype=bfloat16)."),
    max_new_tokens: int = typer.Option(None, "--max-new-tokens", help="Override each task's generation budget."),
    chunk_items: int = typer.Option(64, "--chunk-items", help="Items scored between two checkpoints of the item log."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Discard an existing run in --out."),
    no_egress: bool = NO_EGRESS,
    egress_allow: list[str] = EGRESS_ALLOW,
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Evaluate a model; writes DIR/summary.json, DIR/items/TASK.jsonl, DIR/report.html and DIR/run.json.

    Example: clinforge eval --model hf:runs/tiny --tasks medqa,pubmedqa --out runs/eval --limit 50
    """
    import json

    apply_no_egress(no_egress, egress_allow)  # before anything loads a model or opens a connection

    from clinforge.core.errors import ClinforgeError
    from clinforge.eval.eval_runner import EvalConfig, evaluate
    from clinforge.models.backends import parse_spec

    scheme, target = parse_spec(model)  # an unknown SCHEME: is a ConfigError listing the valid ones
    if not target:
        raise ClinforgeError(f"model SPEC {model!r} names no model; e.g. hf:runs/tiny/model")
    names = [t.strip() for t in tasks.split(",") if t.strip()]
    if not names:
        raise ClinforgeError("--tasks is empty")
    options: dict = {"device": device} if scheme == "hf" else {}
    for item in backend_option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ClinforgeError(f"--backend-option {item!r}: expected KEY=VALUE")
        try:
            options[key] = json.loads(value)  # numbers, true/false, null
        except ValueError:
            options[key] = value
    config = EvalConfig(model=model, tasks=names, out=out, limit=limit, num_fewshot=num_fewshot, seed=seed,
                        batch_size=batch_size, mode=mode, cot=cot, chunk_items=chunk_items,
                        max_new_tokens=max_new_tokens, chat=chat,
                        backend_options=options)
    summary = evaluate(config, overwrite=overwrite)
    if summary:
        # numbers and their 95% CIs (a score without its interval invites over-reading a tiny difference)
        brief = {name: {k: v for k, v in res.items() if (isinstance(v, (int, float)) and not isinstance(v, bool))
                        or (k.endswith("_ci") and isinstance(v, list))}
                 for name, res in summary["tasks"].items()}
        typer.echo(json.dumps({"tasks": brief, "groups": summary.get("groups", {})}, indent=1))
        typer.echo(f"wrote {out}/summary.json, {out}/items/, {out}/report.html")
