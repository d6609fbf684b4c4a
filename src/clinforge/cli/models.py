"""``clinforge models``: build tiny offline models (``tiny``)."""

from __future__ import annotations

from pathlib import Path

import typer

from clinforge.cli.shared_options import NO_PROGRESS

app = typer.Typer(no_args_is_help=True)


@app.command("tiny")
def tiny(
    arch: str = typer.Option("llama", "--arch", help="llama | mistral | qwen2 | gpt2 | mamba | rwkv"),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the model to."),
    hidden: int = typer.Option(64, "--hidden", help="Hidden size."),
    layers: int = typer.Option(2, "--layers", help="Number of layers."),
    heads: int = typer.Option(4, "--heads", help="Attention heads (attention models)."),
    vocab: int = typer.Option(2048, "--vocab", help="Tokenizer vocabulary size (upper bound)."),
    corpus: Path | None = typer.Option(None, "--corpus", help="Text file or folder to train the tokenizer on "
                                                              "(default: the packaged medical corpus)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random initialisation."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing folder."),
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Build a randomly initialised tiny model with a BPE tokenizer and chat template (offline).

    Example: clinforge models tiny --arch llama --out runs/tiny-llama --hidden 64 --layers 2
    """
    from clinforge.models.tiny import build_tiny

    path = build_tiny(arch=arch, out_dir=out, vocab_size=vocab, hidden_size=hidden, num_layers=layers,
                      num_heads=heads, seed=seed, corpus=corpus, overwrite=overwrite)
    from transformers import AutoConfig

    n = AutoConfig.from_pretrained(path)
    typer.echo(f"wrote tiny {n.model_type} model to {path} (vocab {n.vocab_size})")
