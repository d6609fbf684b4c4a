"""``clinforge serve``: an OpenAI-compatible server for one model (flags) or several (a config file). Thin."""

from __future__ import annotations

from pathlib import Path

import typer

from clinforge.cli.shared_options import NO_PROGRESS


def command(config: Path | None = typer.Argument(None, help="Server config YAML (models, guards, limits; see "
                                                             "docs/serve.md). Flags override its values."),
            model: str | None = typer.Option(None, "--model", help="Serve this model SPEC (hf:PATH_OR_NAME, "
                                                                    "openai:URL#MODEL, llamacpp:FILE.gguf...)."),
            served_name: str | None = typer.Option(None, "--served-name", help="Name clients use (default: from the "
                                                                                "SPEC)."),
            host: str | None = typer.Option(None, help="Address to listen on (default 127.0.0.1)."),
            port: int | None = typer.Option(None, help="Port (default 8000; 0 lets the OS choose, printed)."),
            api_key_env: str | None = typer.Option(None, "--api-key-env", help="Environment variable holding the API "
                                                                              "keys, comma-separated."),
            guards: str | None = typer.Option(None, help="Guards on every model: phi,crisis."),
            kb: str | None = typer.Option(None, "--kb", help="Knowledge base folder to ground chat answers in."),
            cove: str | None = typer.Option(None, "--cove", help="Chain-of-Verification variant (joint, two_step, "
                                                                  "factored, factor_revise)."),
            no_egress: bool = typer.Option(False, "--no-egress", help="Block every outbound connection (loopback "
                                                                     "only)."),
            audit_log: str | None = typer.Option(None, "--audit-log", help="JSONL audit log (hashes, no text)."),
            slots: int | None = typer.Option(None, help="Requests generating at once per model."),
            max_queue: int | None = typer.Option(None, "--max-queue", help="Requests waiting for a slot per model "
                                                                          "(default 256); more are a 503 at once."),
            no_progress: bool = NO_PROGRESS) -> None:
    """Serve models over an OpenAI-compatible API; SIGTERM drains and exits 0."""
    from clinforge.serve.serve_config import config_from_flags
    from clinforge.serve.serve_runner import run_server

    settings = config_from_flags(config, model=model, served_name=served_name, host=host, port=port,
                                 api_key_env=api_key_env, guards=guards, kb=kb, cove=cove, no_egress=no_egress,
                                 audit_log=audit_log, slots=slots, max_queue=max_queue)
    raise typer.Exit(run_server(settings))
