"""``clinforge data catalog``: the datasets of the field, with type, licence, access and the reader that loads them."""

from __future__ import annotations

import typer

from clinforge.cli.shared_options import NO_PROGRESS


def register(app: typer.Typer) -> None:
    """Add the ``catalog`` command to the ``clinforge data`` group."""

    @app.command("catalog")
    def catalog(
        json_out: bool = typer.Option(False, "--json", help="Print the entries as JSON instead of a table."),
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

        from rich.console import Console
        from rich.table import Table

        from clinforge.data.catalog import filter_catalog, find_dataset

        if name is not None:
            entries = [find_dataset(name)]
        else:
            entries = filter_catalog(type=type_, access=access, reader=True if readable else None)
        if json_out:
            typer.echo(json.dumps([e.model_dump() for e in entries], indent=2, ensure_ascii=False))
            return
        console = Console()
        if name is not None:
            for key, value in entries[0].model_dump().items():
                console.print(f"[bold]{key}[/]: {value}", highlight=False)
            return
        table = Table(title=f"{len(entries)} datasets (reader \"-\": none yet; see clinforge data catalog NAME)")
        for col in ("name", "type", "modality", "size", "AI", "licence", "access", "reader"):
            # names and short codes stay whole (users grep them); long descriptions wrap
            table.add_column(col, no_wrap=col in ("name", "AI", "reader"), overflow="fold")
        for e in entries:
            table.add_row(e.name, e.type, e.modality, e.size, "yes" if e.ai_synthesised else "no", e.licence,
                          e.access, e.reader or "-")
        console.print(table)
