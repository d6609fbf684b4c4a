"""``clinforge data catalog``: the datasets of the field, with type, licence, access and the reader that loads them."""

from __future__ import annotations

import typer

from clinforge.cli.shared_options import NO_PROGRESS


def register(app: typer.Typer) -> None:
    """Add the ``catalog`` command to the ``clinforge data`` group."""

    @app.command("catalog")
    def catalog(
        json_out: bool = typer.Option(False, "--json", help="Print the entries as JSON (every field) instead of a "
                                                            "table (a terminal) or TSV (a pipe)."),
        type_: str | None = typer.Option(None, "--type", help="Only this type, e.g. QA, VQA, EHR, dialogue."),
        access: str | None = typer.Option(None, "--access",
                                          help="Only this access level: open, registration, credentialed, "
                                               "data-use agreement, unknown."),
        readable: bool = typer.Option(False, "--readable", help="Only datasets a clinforge reader loads."),
        name: str | None = typer.Argument(None, help="Show one dataset (name or alias) in full."),
        no_progress: bool = NO_PROGRESS,
    ) -> None:
        """List the datasets of the field for medical LLMs and MLLMs.

        Each with type, modality, size, whether AI-synthesised, licence, access, source, language and the reader
        that loads it.
        """
        import json
        import sys

        from rich.console import Console

        from clinforge.data.catalog import catalog_tsv, filter_catalog, find_dataset

        if name is not None:
            entries = [find_dataset(name)]
        else:
            entries = filter_catalog(type=type_, access=access, reader=True if readable else None)
        if json_out:
            typer.echo(json.dumps([e.model_dump() for e in entries], indent=2, ensure_ascii=False))
            return
        console = Console(soft_wrap=name is not None)
        if name is not None:
            for key, value in entries[0].model_dump().items():
                console.print(f"[bold]{key}[/]: {value}", highlight=False)
            return
        if not sys.stdout.isatty():  # a pipe or a file: one dataset per line, every value whole
            sys.stdout.write(catalog_tsv(entries))
            return
        console.print(_table(entries, console.width))


def _table(entries: list, width: int):
    """One line per dataset within ``width`` columns: names and readers whole, long texts cut with an ellipsis."""
    from rich import box
    from rich.table import Table

    from clinforge.data.catalog import CATALOG_COLUMNS, catalog_rows

    rows = catalog_rows(entries)
    longest = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in CATALOG_COLUMNS}
    # most useful first; whole columns need their longest value, texts are cut to what is left (at least `least`)
    least = {"size": 20, "licence": 16, "modality": 12, "ai_synthesised": 3}
    columns: list[str] = []
    used = 0
    for col in ("name", "type", "access", "reader", "size", "licence", "modality", "ai_synthesised"):
        need = min(longest[col], least.get(col, longest[col])) + 2  # + the gap to the next column
        if used + need <= width:
            columns.append(col)
            used += need
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
                  caption=f"{len(entries)} datasets; reader -: none yet. Details: clinforge data catalog NAME; "
                          "all fields: --json; piped: TSV")
    widths = {c: min(longest[c], least.get(c, longest[c])) for c in columns}
    spare = width - used
    for col in [c for c in columns if c in least]:  # texts grow into what is left, in order, up to their longest
        grow = min(spare, longest[col] - widths[col])
        widths[col] += grow
        spare -= grow
    for col in columns:
        table.add_column("AI" if col == "ai_synthesised" else col, no_wrap=True, overflow="ellipsis",
                         width=widths[col])
    for r in rows:
        table.add_row(*(r[c] for c in columns))
    return table
