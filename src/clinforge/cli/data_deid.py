"""``clinforge data deid``: de-identify a text file, a folder of text files, or a JSONL/CSV text column.

Nothing but the de-identified output (and, with ``--json``, span offsets/types/scores) reaches stdout; the
summary on stderr holds counts only. The work is ``clinforge.data.deid.file_deid.deidentify_file``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from clinforge.cli.shared_options import NER_INT8, NO_PROGRESS


def register(app: typer.Typer) -> None:
    """Add the ``deid`` command to the ``clinforge data`` group."""

    @app.command("deid")
    def deid(
        input: Path = typer.Argument(...,
                                     help="A text file, a folder of text files, a JSONL/CSV file, or - (one text "
                                     "on standard input)."),
        out: Path | None = typer.Option(None, "--out", "-o",
                                        help="Output file (or folder for a folder input). Default: stdout."),
        mode: str = typer.Option("mask", "--mode", "-m", help="mask ([NAME] tags), redact (***), or surrogate."),
        json_out: bool = typer.Option(False, "--json",
                                      help="Print spans (type, offsets, score, explanation) as JSON lines."),
        text_column: str = typer.Option("text", "--text-column", help="Column/key holding the text (JSONL/CSV)."),
        patient_column: str | None = typer.Option(None, "--patient-column",
                                                  help="Column/key with a patient id (surrogate consistency)."),
        name_columns: list[str] | None = typer.Option(None, "--name-column", help="Column/key holding a person's "
                                                      "name (JSONL/CSV; repeatable): replaced as a NAME, and searched "
                                                      "for in that row's text in any case."),
        patient_ids: str = typer.Option("pseudonymize", "--patient-ids", help="What the --patient-column becomes "
                                        "in the output: pseudonymize (keyed HMAC pseudonyms, key from "
                                        "$CLINFORGE_DEID_KEY or random per run) or keep."),
        seed: int = typer.Option(0, "--seed", help="Seed of surrogates and per-patient date offsets (keyed by $CLINFORGE_DEID_KEY or a per-run key)."),
        ner_model: Path | None = typer.Option(None, "--ner-model", help="Local token-classification model folder "
                                              "(e.g. from `clinforge data deid-train`) added to the rules; the "
                                              "score gate saved with it (deid_training.json) is applied."),
        ner_int8: bool = NER_INT8,
        site_terms: Path | None = typer.Option(None, "--site-terms", exists=True, dir_okay=False,
                                               help="The site's own list (TYPE<TAB>term a line: staff and patient "
                                               "NAMEs, LOCATIONs, ..., and KEEP words): found in any case "
                                               "(docs/deid.md, 'Site lists')."),
        file_names: str = typer.Option("check", "--file-names", help="A folder input: the output keeps its file "
                                       "and folder names. check (default) refuses a folder where a name holds what "
                                       "looks like PHI (an MRN, a date, a name); pseudonymize writes keyed names "
                                       "(f-...; $CLINFORGE_DEID_KEY keeps them across runs); keep writes them as "
                                       "they are."),
        workers: int = typer.Option(1, "--workers", "-j", help="Processes de-identifying in parallel (the output "
                                    "is the same as with one; in surrogate mode they detect and this process "
                                    "makes the surrogates)."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing output (and discard the unfinished "
                                       "run of other input or options that a rerun would otherwise resume)."),
        no_progress: bool = NO_PROGRESS,
    ) -> None:
        """De-identify free text: the 18 HIPAA Safe Harbor identifiers, masked, redacted or replaced.

        A folder or a JSONL/CSV file into --out is resumable: stopped (Ctrl-C, SIGTERM), it keeps what it finished
        and the same command continues from there (mask and redact modes; surrogate mode and per-run pseudonyms
        start again, since their state holds PHI or a key that is never stored).

        Example: clinforge data deid notes.csv --text-column note --mode surrogate --patient-column mrn -o clean.csv
        """
        from rich.console import Console

        from clinforge.data.deid.file_deid import deidentify_file

        if str(input) != "-" and not input.exists():  # (checked here: click's check refuses "-" in this typer)
            raise typer.BadParameter(f"path {str(input)!r} does not exist.", param_hint="'INPUT'")

        s = deidentify_file(input, out, mode=mode, json_out=json_out, text_column=text_column,
                            patient_column=patient_column, seed=seed, overwrite=overwrite,
                            ner_model=ner_model, ner_int8=ner_int8, patient_ids=patient_ids,
                            site_terms=site_terms, name_columns=name_columns or (), workers=workers,
                            file_names=file_names)
        found = ", ".join(f"{k} {v}" for k, v in sorted(s["phi"].items())) or "none"
        # one line each, never wrapped: the paths in them stay whole for copying and for grep
        err = Console(stderr=True, soft_wrap=True, highlight=False)
        err.print(f"de-identified {s['items']} text(s), {s['bytes'] / 1e6:.2f} MB in {s['cpu_s']:.1f} s "
                  f"CPU ({mode} mode{f', {workers} workers' if workers > 1 else ''}); PHI found: {found}" + (f"; written to {out}" if out else "")
                  + (f" (resumed after {s['resumed_after']} done by an interrupted run)" if s["resumed_after"] else ""))
        if s["patient_ids"]:
            err.print(f"patient column {patient_column!r}: {s['patient_ids']}")
        if s["file_names"] == "pseudonymize":
            err.print(f"file and folder names: {s['file_names_key']}")
        if s["surrogate_key"]:
            err.print(f"surrogates and date offsets: HMAC-SHA256 with {s['surrogate_key']}"
                      + ("; set $CLINFORGE_DEID_KEY (kept secret) for surrogates that agree across runs"
                         if s["surrogate_key"].startswith("random") else ""))
        if s["site_terms"]:
            err.print(f"site terms {site_terms}: {s['site_terms']}")
        if s["name_cells"] or name_columns:
            err.print(f"name column(s) {', '.join(repr(c) for c in name_columns or [])}: "
                      f"{s['name_cells']} cell(s) replaced and searched for in their row's text")
        if s["kept_columns"]:  # column names only: only the text column was de-identified
            err.print("written as they came (not de-identified): column(s) "
                      + ", ".join(repr(c) for c in s["kept_columns"]))
