"""``clinforge data inspect``: read a dataset with a named reader and show counts, fields, a sample and problems."""

from __future__ import annotations

from pathlib import Path

import typer

from clinforge.cli.shared_options import NO_PROGRESS


def _parse_options(items: list[str]) -> dict:
    """``key=value`` reader options; values are YAML (``fields={text: body}``, ``answer_base=0``)."""
    import yaml

    from clinforge.core.errors import ConfigError

    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"reader option {item!r} must look like key=value", key="--option")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"reader option {key.strip()!r}: value is not valid YAML ({exc})",
                              key="--option") from None
    return out


def register(app: typer.Typer) -> None:
    """Add the ``inspect`` command to the ``clinforge data`` group."""

    @app.command("inspect")
    def inspect(
        path: str = typer.Argument(..., help="File or folder to read (or a hub id with --format hf)."),
        format: str = typer.Option(..., "--format", "-f",
                                   help="Reader name, e.g. medqa, mts_dialog, jsonl; or dicom / nifti for volumes."),
        limit: int | None = typer.Option(None, "--limit", "-n", min=0, help="Stop after this many records."),
        on_error: str = typer.Option("skip", "--on-error",
                                     help="skip: count bad rows by reason and go on; fail: stop at the first."),
        option: list[str] = typer.Option([], "--option",
                                         help="Reader option key=value (YAML value), repeatable: --option kind=qa "
                                              "--option 'fields={question: Q, answer: A}'."),
        json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
        sample: bool = typer.Option(True, "--sample/--no-sample",
                                    help="Show one (truncated) record; --no-sample for data you must not print."),
        no_progress: bool = NO_PROGRESS,
    ) -> None:
        """Read a dataset with a reader: counts, fields, a sample, and the problems found.

        Counts records by kind and split, shows how often each field is filled, one truncated sample record, and
        the problems: skipped rows by reason and the first errors with file, line and field.
        """
        import json

        from rich.console import Console

        from clinforge.core.errors import ConfigError, DataError
        from clinforge.core.progress import progress_bar
        from clinforge.data.inspection import empty_reason, inspect_source

        if format in ("dicom", "nifti"):  # volumes, not records: one line per series or volume
            from clinforge.data.images.volume_inspection import inspect_volumes

            report = inspect_volumes(path, format, limit=limit)
            if json_out:
                typer.echo(json.dumps(report, indent=2, default=str))
            else:
                _print_volumes(report, Console())
            return
        if on_error not in ("skip", "fail"):
            raise ConfigError(f"--on-error must be skip or fail, not {on_error!r}", key="--on-error")
        options = _parse_options(option)
        with progress_bar(desc=f"reading {path}", unit="rec") as bar:
            summary = inspect_source(path, format, limit=limit, on_error=on_error,
                                     on_record=lambda n: bar.update(n - bar.n) if n % 500 == 0 else None, **options)
        if not sample:
            summary["sample"] = None
        if json_out:
            typer.echo(json.dumps(summary, indent=2, ensure_ascii=False, default=str))
        else:
            _print(summary, Console())
        reason = empty_reason(summary)
        if reason:  # the summary above shows the problems; the exit status must not say "read fine"
            raise DataError(reason, file=path)


def _print(summary: dict, console) -> None:
    import json

    from rich.markup import escape
    from rich.table import Table

    # every interpolated value is escaped: file names and field names such as "[v2]" or "history[0]" are not markup
    console.print(f"[bold]{escape(str(summary['path']))}[/] read as [bold]{escape(summary['format'])}[/]: "
                  f"{summary['count']} records from {summary['rows_read']} rows"
                  + (f" (limit {summary['limit']})" if summary["limit"] is not None else ""), highlight=False)
    counts = Table(title="records")
    counts.add_column("by kind")
    counts.add_column("n", justify="right")
    for kind, n in summary["by_kind"].items():
        counts.add_row(escape(str(kind)), str(n))
    for split, n in summary["by_split"].items():
        counts.add_row(escape(f"split {split}"), str(n))
    console.print(counts)
    fields = Table(title="fields filled (share of records)")
    fields.add_column("field")
    fields.add_column("filled", justify="right")
    for name, share in summary["fields"].items():
        fields.add_row(escape(name), f"{share:.1%}")
    for name, share in list(summary["meta_fields"].items())[:25]:
        fields.add_row(escape(f"meta.{name}"), f"{share:.1%}")
    console.print(fields)
    console.print(f"mean characters per record, all text fields together: {summary['mean_text_chars']}")
    if summary["reader_notes"]:
        console.print(f"[bold]reader notes[/]: {escape(json.dumps(summary['reader_notes'], default=str))}",
                      highlight=False)
    problems = summary["problems"]
    if problems["skipped_total"]:
        table = Table(title=f"problems: {problems['skipped_total']} rows skipped")
        table.add_column("reason")
        table.add_column("rows", justify="right")
        for reason, n in problems["skipped"].items():
            table.add_row(escape(reason), str(n))
        console.print(table)
        for example in problems["error_examples"]:
            console.print(f"  [red]•[/] {escape(example)}", highlight=False, markup=True)
    else:
        console.print("problems: none")
    if summary["sample"] is not None:
        console.print("[bold]sample record[/] (truncated):")
        console.print_json(json.dumps(summary["sample"], ensure_ascii=False, default=str))
    files = summary.get("files") or []
    if len(files) > 1:
        console.print(f"files read: {len(files)} ({escape(str(Path(files[0]).parent))} ...)", highlight=False)


def _print_volumes(report: dict, console) -> None:
    from rich.markup import escape

    kind = "series" if report["format"] == "dicom" else "volume(s)"
    console.print(f"[bold]{escape(report['path'])}[/]: {report['count']} {report['format']} {kind}", highlight=False)
    # one plain line per volume (a table wraps unreadably in narrow terminals and logs)
    for v in report["volumes"]:
        console.print(f"- {escape(v['source'])}: modality {escape(v['modality'] or 'unknown')}, "
                      f"D x H x W {' x '.join(map(str, v['shape']))}, spacing (dz x dy x dx) "
                      f"{' x '.join(f'{s:g}' for s in v['spacing'])} mm, {v['files']} file(s), "
                      f"PHI fields removed: {escape(', '.join(v['phi_removed']) or 'none')}"
                      + (f", notes: {escape(str(v['notes']))}" if v["notes"] else ""), highlight=False, soft_wrap=True)
