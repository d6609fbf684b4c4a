"""``clinforge review``: the clinician review web app (serve; admin create; export). Thin: parse, call, print."""

from __future__ import annotations

from pathlib import Path

import typer

from clinforge.cli.shared_options import NO_PROGRESS

app = typer.Typer(no_args_is_help=True, help="Blinded clinician review of model outputs in a web app.")
admin_app = typer.Typer(no_args_is_help=True, help="Accounts from the command line.")
app.add_typer(admin_app, name="admin")

DB_OPT = typer.Option(None, "--db", help="Database: a SQLite path or postgresql://USER@HOST:PORT/DB URL "
                                         "(default: review.db in the current folder, or $CLINFORGE_REVIEW_DB).")


@app.command("serve")
def serve(db: str | None = DB_OPT,
          host: str = typer.Option("127.0.0.1", help="Address to listen on (loopback unless told otherwise)."),
          port: int = typer.Option(8080, help="Port (0: let the OS choose; the address is printed)."),
          data_root: list[Path] = typer.Option([], "--data-root",
                                               help="Folder admins may build studies from (repeatable; default: "
                                                    "the current folder)."),
          n_boot: int = typer.Option(1000, help="Bootstrap resamples for the results page's CIs."),
          no_progress: bool = NO_PROGRESS) -> None:
    """Serve the review app; SIGTERM finishes in-flight requests and exits 0."""
    from clinforge.apps.review.review_server import serve as run_server

    raise typer.Exit(run_server(db, host=host, port=port, data_roots=data_root or None, n_boot=n_boot))


@admin_app.command("create")
def admin_create(username: str = typer.Argument(..., help="The admin's username."),
                 password_env: str = typer.Option(..., "--password-env",
                                                  help="Name of the environment variable holding the password."),
                 db: str | None = DB_OPT, no_progress: bool = NO_PROGRESS) -> None:
    """Create an admin account (the first one, or more)."""
    from clinforge.apps.review.review_server import create_admin

    typer.echo(f"created admin {create_admin(db, username, password_env)}")


@app.command("export")
def export(study: int = typer.Argument(..., help="Study id (shown in the study's address)."),
           out: Path = typer.Option(..., "--out", "-o", help="New output folder."),
           overwrite: bool = typer.Option(False, help="Replace an existing --out."),
           db: str | None = DB_OPT, no_progress: bool = NO_PROGRESS) -> None:
    """Export a closed study in the exchange formats (single ratings; pairwise comparisons)."""
    from clinforge.apps.review.review_server import export as run_export

    manifest = run_export(db, study, out, overwrite=overwrite)
    typer.echo(f"wrote {manifest['n_rows']} rows to {out} ({', '.join(manifest['files'])})")
