"""``clinforge data deid-eval``: measure the de-identifier on your own annotated notes (PhysioNet deid, brat, i2b2).

The work is ``clinforge.data.deid.annotated_eval.evaluate_annotated`` on the notes of
``clinforge.data.readers.deid_annotations.read_annotated``. Only figures and counts are printed: no note text and
no PHI phrase reaches the terminal or the output file.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from clinforge.cli.shared_options import NER_INT8, NO_PROGRESS

FORMAT_HELP = "Annotation format: auto (from the files), physionet (id.text + id-phi.phrase), brat (.txt + .ann), i2b2 (2014 XML)."
PATTERN_HELP = ("brat / i2b2: regex on a file's name (no suffix) whose first group is the patient id (default: i2b2 "
                "'NNN-NN' -> NNN; brat: each file its own patient). Patient-level splits need it right.")
LABEL_MAP_HELP = ("brat / i2b2: LABEL=TYPE for a label the built-in table lacks; TYPE is one of HCPName, PTName, "
                  "PTNameInitial, RelativeProxyName, Date, Location, Phone, Age, Other, Unscored (repeatable).")


def parse_label_map(pairs: list[str] | None) -> dict[str, str]:
    """``["NURSE=HCPName"]`` -> ``{"NURSE": "HCPName"}``; a pair without ``=`` is an error naming it.

    Example:
        >>> parse_label_map(["NURSE=HCPName", "WARD=Location"])
        {'NURSE': 'HCPName', 'WARD': 'Location'}
    """
    from clinforge.core.errors import ConfigError

    out: dict[str, str] = {}
    for pair in pairs or []:
        label, sep, kind = pair.partition("=")
        if not sep or not label.strip() or not kind.strip():
            raise ConfigError(f"--label-map takes LABEL=TYPE, got {pair!r}", key="label-map")
        out[label.strip()] = kind.strip()
    return out


def register(app: typer.Typer) -> None:
    """Add the ``deid-eval`` command to the ``clinforge data`` group."""

    @app.command("deid-eval")
    def deid_eval(
        input: Path = typer.Argument(..., exists=True, help="Annotated notes: a folder (or file) in PhysioNet deid, "
                                                            "brat standoff or i2b2 2014 XML format."),
        fmt: str = typer.Option("auto", "--format", help=FORMAT_HELP),
        ner_model: Path | None = typer.Option(None, "--ner-model", help="Also join this local tagger folder (e.g. "
                                              "from `clinforge data deid-train`) to the rules, with its saved gate."),
        ner_int8: bool = NER_INT8,
        site_terms: Path | None = typer.Option(None, "--site-terms", exists=True, dir_okay=False,
                                               help="Also use the site's own list (TYPE<TAB>term a line), as "
                                               "`clinforge data deid --site-terms` does."),
        patient_pattern: str | None = typer.Option(None, "--patient-pattern", help=PATTERN_HELP),
        label_map: list[str] | None = typer.Option(None, "--label-map", help=LABEL_MAP_HELP),
        json_out: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
        out: Path | None = typer.Option(None, "--out", "-o", help="Also write the result (JSON) to this file."),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing --out file."),
        no_progress: bool = NO_PROGRESS,
    ) -> None:
        """Score the de-identifier on annotated notes: recall by PHI group, precision, words kept (Wilson 95% CIs).

        Example: clinforge data deid-eval annotated/ --format brat --patient-pattern '^(\\d+)_' --out deid-eval.json
        """
        from rich.console import Console
        from rich.table import Table

        from clinforge.core.errors import OutputExistsError
        from clinforge.core.io import atomic_write_text
        from clinforge.data.deid.annotated_eval import evaluate_annotated
        from clinforge.data.readers.deid_annotations import read_annotated

        if out is not None and out.exists() and not overwrite:
            raise OutputExistsError(f"{out} exists; pass --overwrite to replace it")
        records, reader = read_annotated(input, fmt, label_map=parse_label_map(label_map),
                                         patient_pattern=patient_pattern)
        result = {"input": str(input), "reader": reader,
                  **evaluate_annotated(records, ner_model=ner_model, ner_int8=ner_int8,
                                        progress=not no_progress, site_terms=site_terms)}
        text = json.dumps(result, indent=1) + "\n"
        if out is not None:
            atomic_write_text(out, text, overwrite=True)
        if json_out:
            typer.echo(text, nl=False)
            return
        table = Table(title=f"de-identification on {result['notes']} annotated notes of {result['patients']} "
                            f"patients ({reader})")
        for col in ("measure", "value", "95% CI", "k / n"):
            table.add_column(col)
        rows = [(f"recall {k}", v) for k, v in result["recall"].items()]
        rows += [(f"precision {k}", v) for k, v in result["precision"].items()]
        rows.append(("words kept", result["words_kept"]))
        for name, r in rows:
            table.add_row(name, f"{r['value']:.3f}", f"[{r['ci'][0]:.3f}, {r['ci'][1]:.3f}]", f"{r['k']} / {r['n']}")
        console = Console()
        console.print(table)
        console.print(f"speed {result['mb_s']} MB per CPU second; recognizers {', '.join(result['recognizers'])}"
                      + (f" + tagger {ner_model}" + (" (int8)" if ner_int8 else "") if ner_model else "")
                      + (f" + site terms {site_terms}" if site_terms else "") + (f"; written to {out}" if out else ""),
                      highlight=False)
