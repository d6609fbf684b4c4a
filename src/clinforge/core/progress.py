"""One progress mechanism for every command: tqdm bars with counts, rate and ETA on stderr, redrawn in place on a
terminal and written line by line (one line every ``PIPE_INTERVAL_S`` seconds) when stderr is a pipe or a log file;
``--no-progress`` or ``CLINFORGE_NO_PROGRESS=1`` silences all of it, including the loading bars of transformers,
huggingface_hub and datasets.

Example:
    >>> import os; os.environ["CLINFORGE_NO_PROGRESS"] = "1"
    >>> with progress_bar(total=3, desc="scoring", unit="item") as bar:
    ...     bar.update(3)
    >>> bar.disable
    True
    >>> del os.environ["CLINFORGE_NO_PROGRESS"]
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any

ENV = "CLINFORGE_NO_PROGRESS"
PIPE_INTERVAL_S = 10.0  # a log line every 10 s is enough to see a job is alive without flooding the log


def progress_disabled() -> bool:
    """Whether the user asked for no progress output (``--no-progress`` sets ``CLINFORGE_NO_PROGRESS=1``).

    Example:
        >>> import os; _ = os.environ.pop("CLINFORGE_NO_PROGRESS", None); progress_disabled()
        False
    """
    return os.environ.get(ENV, "").strip().lower() not in ("", "0", "false", "no")


def silence_all() -> None:
    """Turn off every progress bar of this process and of the libraries it uses (also those imported later, and
    child processes, through their environment variables).

    Example:
        >>> silence_all(); progress_disabled()
        True
        >>> import os; del os.environ["CLINFORGE_NO_PROGRESS"]
    """
    os.environ[ENV] = "1"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # huggingface_hub, and transformers' "Loading weights" bars
    os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    os.environ["TQDM_DISABLE"] = "1"  # any other tqdm bar that does not set disable= itself
    if "transformers" in sys.modules:  # read once at import: tell an already imported library too
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()


class _LineWriter:
    """A stream for tqdm that turns its in-place redraws (``\\r``) into whole lines, for pipes and log files."""

    def __init__(self, stream: Any):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip("\n")
        if text.strip():
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable: Iterable[Any] | None = None, *, total: float | None = None, desc: str = "",
                 unit: str = "it", enabled: bool = True, initial: float = 0, **kwargs: Any) -> Any:
    """A tqdm bar on stderr (counts, rate and, with a ``total``, ETA); silent when ``enabled`` is False or progress
    is disabled. On a terminal it redraws in place; otherwise it writes a line at most every 10 s and at the end.
    """
    from tqdm.auto import tqdm

    disable = not enabled or progress_disabled()
    stream = sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()
    options: dict[str, Any] = {"file": stream} if tty else {"file": _LineWriter(stream), "mininterval": PIPE_INTERVAL_S,
                                                              "ncols": 100, "ascii": True}
    options.update(kwargs)
    return tqdm(iterable, total=total, desc=desc, unit=unit, disable=disable, initial=initial, dynamic_ncols=tty,
                **options)


def say(message: str) -> None:
    """One status line on stderr (``step 2/6 dedup: ...``), unless progress is disabled. Never put data in it."""
    if not progress_disabled():
        print(message, file=sys.stderr, flush=True)


__all__ = ["progress_bar", "progress_disabled", "silence_all", "say", "ENV", "PIPE_INTERVAL_S"]
