"""``clinforge data``: one group; each sub-command lives in its own module (``data_*.py``) with a ``register``."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(no_args_is_help=True)

for _module in ("data_catalog", "data_inspect", "data_deid", "data_deid_train", "data_deid_eval", "data_prepare"):
    importlib.import_module(f"clinforge.cli.{_module}").register(app)
