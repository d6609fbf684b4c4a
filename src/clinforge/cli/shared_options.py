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

NER_INT8 = typer.Option(False, "--ner-int8", help="Run the --ner-model tagger with int8 linear layers on the CPU: "
                                                    "~3.5x faster, not exact (docs/deid.md).")

NO_EGRESS = typer.Option(False, "--no-egress",
                         help="No network beyond loopback (and --egress-allow): offline Hugging Face variables, hub "
                              "ids refused, a socket and DNS guard that fails closed, checked by a self-test at "
                              "start (the same as CLINFORGE_NO_EGRESS=1). See docs/edge.md.")
EGRESS_ALLOW = typer.Option([], "--egress-allow",
                            help="With --no-egress: a host name, IP address or network (10.0.0.0/8) that may still "
                                 "be reached; repeatable.")


def apply_no_egress(no_egress: bool, allow: list[str]) -> None:
    """Switch no-egress mode on (with its self-test) when the flag is given; one line on stderr says so."""
    if not no_egress:
        return
    from clinforge.core.no_egress import start_no_egress

    report = start_no_egress(allow)
    typer.echo(f"no-egress: on (self-test {', '.join(f'{k} {v}' for k, v in report['checks'].items())}; "
               f"allowed beyond loopback: {', '.join(report['allow']) or 'nothing'})", err=True)
