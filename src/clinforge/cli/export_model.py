"""``clinforge export gguf``: write a trained llama-family model (LoRA adapters merged) as one GGUF file for
llama.cpp, verified by reloading it."""

from __future__ import annotations

from pathlib import Path

import typer

from clinforge.cli.shared_options import NO_PROGRESS

app = typer.Typer(no_args_is_help=True)


@app.command("gguf")
def gguf(
    model_dir: Path = typer.Argument(..., help="A Hugging Face model folder, or a LoRA adapter folder (merged first)."),
    out: Path = typer.Option(..., "--out", "-o", help="The GGUF file to write (FILE.gguf)."),
    outtype: str = typer.Option("f16", "--outtype", help="f16 (matrices in float16) or q8_0 (8-bit blocks)."),
    q8_scale: str = typer.Option("search", "--q8-scale",
                                 help="q8_0 block scales: search (least squared error per block, default) or rtn "
                                      "(llama.cpp's round-to-nearest, byte-identical to llama-quantize)."),
    verify: bool = typer.Option(True, "--verify/--no-verify",
                                help="Reload with transformers (and llama.cpp when installed) and compare logits "
                                     "before the file is put in place."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file."),
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Export MODEL_DIR to a GGUF file; prints the report (tensor types, tokenizer, verification) as JSON.

    Example: clinforge export gguf runs/sft/model --out runs/sft/model-q8_0.gguf --outtype q8_0
    """
    import json

    from clinforge.models.gguf_export import export_gguf

    report = export_gguf(model_dir, out, outtype=outtype, overwrite=overwrite, verify=verify,
                         q8_scale=q8_scale)
    typer.echo(json.dumps(report, indent=1))
