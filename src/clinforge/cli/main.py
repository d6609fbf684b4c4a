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
from clinforge.core.errors import ClinforgeError

app = typer.Typer(name="clinforge", no_args_is_help=True, add_completion=False,
                  help="Build, evaluate and safely deploy medical LLMs and MLLMs on your own hardware.")

# (module under clinforge.cli, command or group name, help)
GROUPS = [
    ("data", "data", "Medical datasets: catalog, inspect, de-identify, prepare."),
    ("models", "models", "Build small offline models (tiny random LLMs with a trained tokenizer and chat template)."),
    ("judge", "judge", "AI judges: single, pairwise, rubric, jury; human-evaluation exchange."),
    ("review", "review", "Clinician review web app: blinded rating studies, agreement, exports."),
]
COMMANDS = [
    ("train", "train", "Train a model from a recipe: cpt, ift, sft, rm, rl, rlaif, dpo stages."),
    ("evaluate", "eval", "Evaluate a model on medical tasks."),
    ("score", "score", "Score prediction files against references with reference-identical metrics."),
    ("demo", "demo", "Run the main job end to end on embedded defaults (offline, CPU)."),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"clinforge {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """clinforge command line."""


def _register() -> None:
    for module, name, help_text in GROUPS:
        app.add_typer(importlib.import_module(f"clinforge.cli.{module}").app, name=name, help=help_text)
    for module, name, help_text in COMMANDS:
        app.command(name=name, help=help_text)(importlib.import_module(f"clinforge.cli.{module}").command)


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; a ClinforgeError prints one clear line and exits with status 2."""
    try:
        app(args=argv, standalone_mode=False)
    except ClinforgeError as exc:
        from rich.markup import escape

        # escaped: a path like "data/[v2]/x.csv" must print as given, not be read as console markup
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:  # click usage errors arrive here in standalone_mode=False
        import click

        # typer >= 0.20 raises its own vendored click's exceptions (typer._click), which are not click's classes
        click_errors = tuple({click.ClickException, *_typer_click_errors()})
        if isinstance(exc, click_errors):
            exc.show()
            sys.exit(exc.exit_code)
        raise


def _typer_click_errors() -> list[type]:
    try:
        from typer._click.exceptions import ClickException
    except ImportError:  # a typer that uses click itself
        return []
    return [ClickException]
