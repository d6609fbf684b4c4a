"""Ctrl-C and SIGTERM: a batch command stops, says what it saved and how to resume, and exits 130 or 143.

Schedulers (Slurm, Kubernetes, systemd) stop a job with SIGTERM and scripts stop it with Ctrl-C (SIGINT); both must
read as a failure (exit ``128 + signal number``), never as success. ``install_handlers`` makes SIGTERM raise
``Interrupted`` (a ``KeyboardInterrupt``) in the main thread, so the same clean-up code runs for both signals:
item logs are flushed, run records say ``interrupted``, temporary folders are removed. Library functions wrap
their work in ``resume_note`` to tell the user what was kept and the command that continues the run; the CLI
prints those notes after the interruption.

Example:
    >>> try:
    ...     with resume_note(lambda: "kept 3 scored items in runs/e", resume="clinforge eval ... --out runs/e"):
    ...         raise Interrupted(15)
    ... except KeyboardInterrupt as exc:
    ...     print(exit_status(exc), take_notes())
    143 (['kept 3 scored items in runs/e'], 'clinforge eval ... --out runs/e')
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

_NOTES: list[str] = []
_RESUME: list[str] = []
_RECEIVED: list[int] = []


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread when a stop signal arrives; ``signum`` is the signal's number."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def _raise(signum: int, frame: object) -> None:
    if _RECEIVED and signum == signal.SIGTERM:  # a repeated SIGTERM during clean-up: finish cleaning up
        return
    if not _RECEIVED:  # the first signal decides the exit status; a second Ctrl-C still stops a slow clean-up
        _RECEIVED.append(int(signum))
    raise Interrupted(signum)


def install_handlers() -> dict[int, object]:
    """Turn SIGINT and SIGTERM into ``Interrupted`` in the main thread (no-op elsewhere, where Python forbids it);
    returns the previous handlers, for ``restore_handlers``.

    Example:
        >>> restore_handlers(install_handlers())
    """
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, _raise) for sig in (signal.SIGINT, signal.SIGTERM)}


def restore_handlers(previous: dict[int, object]) -> None:
    """Put back the handlers ``install_handlers`` replaced (a CLI called in-process leaves its caller as it was)."""
    for sig, handler in previous.items():
        if handler is not None:
            signal.signal(sig, handler)  # type: ignore[arg-type]


def received_signal() -> int | None:
    """The number of the stop signal this process received, if any."""
    return _RECEIVED[0] if _RECEIVED else None


def interruption_in(exc: BaseException | None) -> KeyboardInterrupt | None:
    """The ``KeyboardInterrupt`` behind ``exc``: ``exc`` itself, or one that other code wrapped in another error.

    A signal handler raises wherever the main thread happens to be, and not every frame lets the exception through
    unchanged: Python 3.11 re-raises an error from a descriptor's ``__set_name__`` as ``RuntimeError`` (with the
    original as its cause), so a Ctrl-C that lands while a lazily imported module defines a pydantic model arrives
    as ``RuntimeError``. The run was still interrupted, and must say so and exit 130, not print a traceback.

    Example:
        >>> try:
        ...     try:
        ...         raise Interrupted(15)
        ...     except KeyboardInterrupt as exc:
        ...         raise RuntimeError("while defining a class") from exc
        ... except RuntimeError as wrapped:
        ...     interruption_in(wrapped).signum, interruption_in(ValueError("bad")) is None
        (15, True)
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def exit_status(exc: BaseException | None = None) -> int:
    """``128 + signal``: 130 for SIGINT (also a plain ``KeyboardInterrupt``), 143 for SIGTERM.

    Example:
        >>> exit_status(KeyboardInterrupt()), exit_status(Interrupted(15))
        (130, 143)
    """
    signum = getattr(interruption_in(exc), "signum", None) or received_signal() or int(signal.SIGINT)
    return 128 + signum


@contextmanager
def resume_note(describe: Callable[[], str], *, resume: str | None = None) -> Iterator[None]:
    """On an interruption inside the block, record ``describe()`` (what was saved) and ``resume`` (the command that
    continues the run), then re-raise.

    ``describe`` runs after the interruption, so it can count what reached disk. Blocks nest (``demo`` runs
    ``train`` runs a stage): every level's note is kept, and the outermost ``resume`` command is the one shown,
    since it is the command the user typed. Notes never quote data, only counts, paths and commands.
    """
    try:
        yield
    except BaseException as exc:
        note_if_interrupted(exc, describe, resume)
        raise


def note_if_interrupted(exc: BaseException, describe: Callable[[], str], resume: str | None = None) -> None:
    """When ``exc`` is (or wraps) an interruption, record ``describe()`` and ``resume`` as ``resume_note`` does; for
    an ``except BaseException`` block that cleans up (marks its run record failed, removes a half-written folder)
    before it re-raises. Other errors record nothing.

    Example:
        >>> note_if_interrupted(ValueError("bad row"), lambda: "nothing saved"); take_notes()
        ([], None)
        >>> note_if_interrupted(KeyboardInterrupt(), lambda: "3 of 9 items", "clinforge judge r.yaml"); take_notes()
        (['3 of 9 items'], 'clinforge judge r.yaml')
    """
    if interruption_in(exc) is None:
        return
    try:
        saved = describe()
    except Exception as failure:  # a note must never hide the interruption itself
        saved = f"(could not describe what was saved: {type(failure).__name__})"
    note_interrupted(saved, resume)


def note_interrupted(saved: str, resume: str | None = None) -> None:
    """Record what an interrupted run saved and the command that resumes it (for an ``except KeyboardInterrupt``
    block; ``resume_note`` is the context-manager form)."""
    _NOTES.append(saved)
    if resume is not None:
        _RESUME[:] = [resume]


def rerun_command(*, add: tuple[str, ...] = (), drop: tuple[str, ...] = (), argv: list[str] | None = None) -> str:
    """The command line of this process as the user would retype it, without the flags in ``drop`` and with those
    in ``add`` (e.g. ``--resume`` added, ``--overwrite`` dropped: a resume must not wipe what was saved).

    Example:
        >>> rerun_command(add=("--resume",), drop=("--overwrite",),
        ...               argv=["/usr/bin/clinforge", "train", "r.yaml", "--overwrite"])
        'clinforge train r.yaml --resume'
    """
    import shlex
    import sys

    args = [a for a in (sys.argv if argv is None else argv)[1:] if a not in drop]
    args += [a for a in add if a not in args]
    return shlex.join(["clinforge", *args])


def take_notes() -> tuple[list[str], str | None]:
    """The notes recorded so far (innermost first) and the command that resumes; clears them."""
    notes, resume = list(_NOTES), (_RESUME[0] if _RESUME else None)
    _NOTES.clear()
    _RESUME.clear()
    return notes, resume


__all__ = ["Interrupted", "install_handlers", "restore_handlers", "received_signal", "interruption_in", "exit_status", "resume_note", "note_if_interrupted", "note_interrupted", "rerun_command", "take_notes"]
