"""Options every command takes, defined once so they read and behave the same everywhere."""

from __future__ import annotations

import typer


def _silence(value: bool) -> bool:
    if value:
        from clinforge.core.progress import silence_all

        silence_all()
    return value


NO_PROGRESS = typer.Option(False, "--no-progress", callback=_silence, is_eager=True,
                           help="No progress bars or progress lines, including the libraries' loading bars (the "
                                "same as CLINFORGE_NO_PROGRESS=1).")
