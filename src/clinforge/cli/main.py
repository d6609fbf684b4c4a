"""The ``clinforge`` command line: thin commands that parse arguments, call one library function and print.

Each command group lives in its own module under ``clinforge.cli`` and exposes ``app`` (a Typer group) or
``command`` (a single command). Modules import heavy libraries inside their functions, so ``--help`` is fast.
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

from clinforge import __version__
from clinforge.cli.shared_options import NO_PROGRESS
from clinforge.core.errors import ClinforgeError

app = typer.Typer(name="clinforge", no_args_is_help=True, add_completion=False,
                  help="Build, evaluate and safely deploy medical LLMs and MLLMs on your own hardware.")

# (module under clinforge.cli, command or group name, help)
GROUPS = [
    ("data", "data", "Medical datasets: catalog, inspect, de-identify, prepare."),
    ("models", "models", "Models offline: tiny random LLMs, registered pretrained models (fetch), GGUF import."),
    ("judge", "judge", "AI judges: single, pairwise, rubric, jury; human-evaluation exchange."),
    ("review", "review", "Clinician review web app: blinded rating studies, agreement, exports."),
    ("kb", "kb", "Knowledge bases: build, update, verify, search, eval, publish (BM25, dense, hybrid)."),
    ("export_model", "export", "Export models for edge deployment: gguf (llama.cpp), verified by reloading."),
]
COMMANDS = [
    ("train", "train", "Train a model from a recipe: cpt, ift, sft, rm, rl, rlaif, dpo stages."),
    ("evaluate", "eval", "Evaluate a model on medical tasks."),
    ("score", "score", "Score prediction files against references with reference-identical metrics."),
    ("compare", "compare", "Compare two or more eval runs in one report (CIs, paired tests, answer collapse)."),
    ("demo", "demo", "Run the main job end to end on embedded defaults (offline, CPU)."),
    ("serve", "serve", "Serve models over an OpenAI-compatible API with guards, retrieval and an audit log."),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"clinforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit."),
          no_progress: bool = NO_PROGRESS) -> None:
    """clinforge command line."""


def _register() -> None:
    for module, name, help_text in GROUPS:
        app.add_typer(importlib.import_module(f"clinforge.cli.{module}").app, name=name, help=help_text)
    for module, name, help_text in COMMANDS:
        app.command(name=name, help=help_text)(importlib.import_module(f"clinforge.cli.{module}").command)


_register()


def _interrupted(exc: BaseException | None = None) -> None:
    """Say which signal stopped the command, what was saved and how to resume; exit 130 (SIGINT) or 143 (SIGTERM)."""
    import signal

    from rich.markup import escape

    from clinforge.core.interrupts import exit_status, take_notes

    status = exit_status(exc)
    name = signal.Signals(status - 128).name
    console = Console(stderr=True, soft_wrap=True)
    notes, resume = take_notes()
    console.print(f"[bold red]interrupted[/] by {name}; exit status {status}", highlight=False)
    for note in notes:
        console.print(f"  saved: {escape(note)}", highlight=False)
    if not notes:
        console.print("  nothing of this command was kept; run it again", highlight=False)
    if resume:
        console.print(f"  to resume: {escape(resume)}", highlight=False)
    sys.exit(status)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; a ClinforgeError prints one clear line and exits with status 2; Ctrl-C or
    SIGTERM exits 130 or 143 after saying what was saved and how to resume."""
    from clinforge.core.interrupts import install_handlers, restore_handlers

    previous = install_handlers()
    try:
        _main(argv)
    finally:
        restore_handlers(previous)


def _main(argv: list[str] | None) -> None:
    from clinforge.core.interrupts import interruption_in, received_signal
    from clinforge.core.progress import progress_disabled, silence_all

    if progress_disabled():
        silence_all()  # CLINFORGE_NO_PROGRESS=1 also silences transformers', hub's and datasets' bars
    try:
        _no_egress_from_environment()
        status = app(args=argv, standalone_mode=False)
    except KeyboardInterrupt as exc:  # raised outside the command (typer turns one inside it into Exit(130))
        _interrupted(exc)
    except ClinforgeError as exc:
        from rich.markup import escape

        # escaped: a path like "data/[v2]/x.csv" must print as given, not be read as console markup
        # soft_wrap: one line however narrow the terminal or pipe, so the message greps and copies whole
        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False,
                                                   markup=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        if received_signal() is not None:
            _interrupted()
        sys.exit(1)
    except Exception as exc:  # click usage errors arrive here in standalone_mode=False
        if interruption_in(exc) is not None:  # a Ctrl-C that some frame wrapped in another error (interrupts.py)
            _interrupted(interruption_in(exc))
        import click

        # typer >= 0.20 raises its own vendored click's exceptions (typer._click), which are not click's classes
        click_errors = tuple({click.ClickException, *_typer_click_errors()})
        if isinstance(exc, click_errors):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    # typer turns a KeyboardInterrupt inside a command into the return value 130 (standalone_mode=False)
    if received_signal() is not None or status == 130:
        _interrupted()
    if isinstance(status, int) and status:
        sys.exit(status)


def _no_egress_from_environment() -> None:
    """CLINFORGE_NO_EGRESS=1 (set by the user, or inherited from a clinforge parent in no-egress mode) switches
    the mode on for every command, self-test included, before the command runs."""
    from clinforge.core.no_egress import enable_from_environment, self_test

    if enable_from_environment():
        self_test()


def _typer_click_errors() -> list[type]:
    try:
        from typer._click.exceptions import ClickException
    except ImportError:  # a typer that uses click itself
        return []
    return [ClickException]
