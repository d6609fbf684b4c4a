"""A stopped ``clinforge data prepare`` keeps the records its deid step finished; the same command continues.

The slow part of a preparation is nearly always de-identification (about 1 MB of notes a second a core): a
hospital export takes hours, and a scheduler's SIGTERM at 90% must not cost them again. The step that resumes is
the recipe's first ``deid`` step (any transform that is ``one_to_one`` and has the methods used below), wherever it
stands, when its surrogates and patient pseudonyms, if any, come from ``$CLINFORGE_DEID_KEY`` and every step before
it is ``deterministic`` (all built-in steps are: a filter or a dedup put first to spare the de-identifier work).
The records that step yields are also written, as they come, to ``.prefix.jsonl.partial/`` inside the run
directory, with a checkpoint (records and bytes written, the step's counts) every 30 s and when the run stops, by a
signal or an error. The same command then reads the sources and runs the steps before it again (cheap, and their
counts come out whole), skips the records the step already did (one record out per record in, in order, so its
k-th output belongs to its k-th input), replays the saved ones in front of the new ones, and runs the later steps
(dedup, split, ...) over the whole stream as before: the dataset and the data card's counts are those of an
uninterrupted run (tested). The later steps are cheap by comparison and run again in full.

The checkpoint holds a fingerprint (the sources with their files' sizes and times, the options of the steps up to
the resumed one and their input files, its tagger folder and site list, a tag of the pseudonym and surrogate keys,
clinforge's version): another recipe or other input meets the unfinished run with an error naming what differs, and
``--overwrite`` discards it. The records saved are the step's output (de-identified), the same content the dataset
will hold; nothing else is written.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from clinforge.core.errors import OutputExistsError
from clinforge.core.partial_output import CHECKPOINT_S, PartialOutput, file_fingerprint
from clinforge.data.records import Record
from clinforge.data.transforms.base import Transform

SPILL = "prefix.jsonl"


def resumable_step(steps: list[tuple[str, Transform]]) -> int | None:
    """The index of the step a stopped run continues at: the first that yields one record per record in
    (``one_to_one``) and saves its counts (``progress_state``), i.e. the first ``deid`` step; ``None`` without one.

    Example:
        >>> from clinforge.data.transforms import get_transform
        >>> resumable_step([("1:filter", get_transform("filter")), ("2:deid", get_transform("deid"))])
        1
    """
    return next((i for i, (_, t) in enumerate(steps)
                 if getattr(t, "one_to_one", False) and hasattr(t, "progress_state")), None)


def resume_blocker(steps: list[tuple[str, Transform]]) -> str | None:
    """Why a run of these steps cannot resume mid-way (``None`` when it can): it needs a step that can continue
    where it stopped (``resumable_step``), every step before that one ``deterministic`` (they run again on a resume
    and must give it the same records), and no reason of that step's own (``resume_blocker``: a per-run key).

    Example:
        >>> from clinforge.data.transforms import get_transform
        >>> resume_blocker([("1:deid", get_transform("deid", mode="mask", patient_ids="keep"))]) is None
        True
        >>> resume_blocker([("1:dedup", get_transform("dedup"))])
        'no step of it can continue where it stopped (a deid step can)'
    """
    if not steps:
        return "it has no steps"
    k = resumable_step(steps)
    if k is None:
        return "no step of it can continue where it stopped (a deid step can)"
    unsure = [label for label, t in steps[:k] if not getattr(t, "deterministic", False)]
    if unsure:
        return (f"step {unsure[0]} comes before {steps[k][0]} and does not declare that it gives the same records "
                "in every run (Transform.deterministic)")
    label, step = steps[k]
    own = step.resume_blocker() if hasattr(step, "resume_blocker") else None
    return None if own is None else f"its step {label}: {own}"


def _source_fingerprint(source: Any) -> dict[str, Any]:
    from clinforge.data.prepare import PATH_KEYS  # (here: prepare imports this module)

    paths = {"path": source.path, **{k: v for k, v in source.options.items() if k in PATH_KEYS}}
    files = {k: file_fingerprint(v) if isinstance(v, str) and Path(v).exists() else v for k, v in paths.items()}
    return {"source": source.model_dump(mode="json"), "files": files}


class PrefixResume:
    """The saved output of a run's resumable (deid) step in ``run_dir`` (see the module docstring).

    ``check()`` before the run directory is prepared (it may refuse); ``begin()`` after; ``skip``, ``tee`` and
    ``replay`` wrap the record streams in ``run_pipeline``; ``add_replayed_kinds()`` when the stream is exhausted;
    ``save()`` when the run stops; ``discard()`` when it succeeded.
    """

    def __init__(self, run_dir: Path, recipe: Any, steps: list[tuple[str, Transform]], *, overwrite: bool = False):
        from clinforge import __version__

        self.blocker = resume_blocker(steps)
        self.index = resumable_step(steps) if self.blocker is None else None
        self.label, self.step = steps[self.index] if self.index is not None else ("", None)
        fingerprint: dict[str, Any] = {"clinforge": __version__}
        if self.index is not None:
            # the steps before the resumed one run again on a resume: their options and input files count too
            before = [path for _, t in steps[:self.index] for path in getattr(t, "input_paths", list)()]
            fingerprint.update(
                sources=[_source_fingerprint(s) for s in recipe.sources],
                steps=[s.model_dump(mode="json") for s in recipe.steps[:self.index + 1]], seed=recipe.seed,
                inputs_before=[file_fingerprint(p) if Path(p).exists() else p for p in before],
                step_inputs=self.step.resume_fingerprint() if hasattr(self.step, "resume_fingerprint") else None)
        self.partial = PartialOutput(run_dir / SPILL, fingerprint, overwrite=overwrite)
        self.saved: dict[str, Any] | None = None
        self.snapshot: dict[str, Any] = {"records": 0, "bytes": 0, "step": {}}
        self.replayed_kinds: Counter[str] = Counter()
        self._sink: Any = None
        self._last_save = time.monotonic()

    @property
    def active(self) -> bool:
        """Whether this run's progress is being saved."""
        return self.blocker is None

    def check(self) -> bool:
        """Whether the run directory holds progress of this very run to continue. An unfinished run with other
        input or options, or one that this run could not continue, is refused unless ``overwrite`` (then the
        caller's fresh start removes it)."""
        saved = self.partial.saved_state()
        if saved is None:
            return False
        if self.active and saved.get("fingerprint") == self.partial.fingerprint and self.partial.path.exists():
            return True
        if self.partial.overwrite:
            return False
        if not self.active:
            raise OutputExistsError(f"{self.partial.folder.parent} holds records of an unfinished run, which this "
                                    f"run cannot continue: {self.blocker}; run the earlier recipe again to resume "
                                    "it, or pass --overwrite to discard it and start again")
        old, new = saved.get("fingerprint") or {}, self.partial.fingerprint
        differ = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise OutputExistsError(f"{self.partial.folder.parent} holds an unfinished run with other input or options "
                                f"(differing: {', '.join(differ) or 'none'}); run that recipe again to resume it, "
                                "or pass --overwrite to discard it and start again")

    def begin(self) -> int:
        """Open the saved progress (or an empty one); returns how many records the resumed step had finished."""
        if not self.active:
            return 0
        self.saved = self.partial.start()
        if self.saved:
            self.snapshot = self.saved
            # the step's counts continue from the saved ones, so that each later snapshot holds the run's total
            self.step.add_progress(self.saved["step"])
            with open(self.partial.path, "r+b") as fh:  # what an interrupted run wrote after its checkpoint goes
                fh.truncate(self.saved["bytes"])
        else:
            self.partial.path.write_bytes(b"")
        return self.snapshot["records"]

    def skip(self, records: Iterable[Record]) -> Iterator[Record]:
        """The records entering the resumed step after those it finished (they are read and pass the steps before
        it, so the readers' and those steps' counts stay those of the whole input)."""
        n = self.snapshot["records"] if self.saved else 0
        for i, rec in enumerate(records):
            if i >= n:
                yield rec

    def replay(self) -> Iterator[Record]:
        """The saved output of the resumed step, in order."""
        if not self.saved:
            return
        with open(self.partial.path, encoding="utf-8") as fh:
            for _, line in zip(range(self.saved["records"]), fh, strict=False):
                rec = Record.model_validate_json(line)
                self.replayed_kinds[rec.kind] += 1
                yield rec

    def tee(self, records: Iterable[Record], kinds: list[str] | None = None) -> Iterator[Record]:
        """Pass the resumed step's new output through, appending each record to the saved output; the snapshot that
        counts it is one assignment (an interruption in between is cut off on resume), saved every 30 s.

        ``kinds``: the step's ``kinds``. A record of another kind passed through it, and goes out just AFTER the step
        made its next output (``prepare.only_kinds``), whose counts it already holds: the step's counts are read
        only when one of its own outputs goes out, when they cover exactly the records written."""
        done, size = self.snapshot["records"], self.snapshot["bytes"]
        step_state = self.step.progress_state()  # read before any new record: what was restored, or nothing
        own = set(kinds) if kinds else None
        with open(self.partial.path, "a", encoding="utf-8") as fh:
            self._sink = fh
            for rec in records:
                line = rec.model_dump_json() + "\n"
                fh.write(line)
                done += 1
                size += len(line.encode("utf-8"))
                if own is None or rec.kind in own:
                    step_state = self.step.progress_state()
                self.snapshot = {"records": done, "bytes": size, "step": step_state}
                if time.monotonic() - self._last_save > CHECKPOINT_S:
                    self.save()
                yield rec
            self._sink = None

    def save(self) -> None:
        """Flush what was written, then save the snapshot that counts it."""
        if not self.active or not self.partial.folder.exists():
            return
        if self._sink is not None and not self._sink.closed:
            self._sink.flush()
            os.fsync(self._sink.fileno())
        snapshot = self.snapshot
        if hasattr(self.step, "checkpoint_state"):  # what the step's counts only mark (a memory) is written now
            snapshot = {**snapshot, "step": self.step.checkpoint_state(snapshot["step"])}
        self.partial.checkpoint(snapshot)
        self._last_save = time.monotonic()

    def add_replayed_kinds(self, only_kinds: list[str] | None) -> None:
        """Give the pipeline's per-kind counts of the resumed step (which it sets up afresh) the kinds of the replayed
        records; the step's own counts were restored in ``begin``."""
        if not self.saved:
            return
        if only_kinds:
            kinds = set(only_kinds)
            for kind, n in self.replayed_kinds.items():
                if kind in kinds:
                    self.step.kinds_processed[kind] += n
                else:
                    self.step.kinds_passed_through += n
                    self.step.passed_through_by_kind[kind] += n
        else:
            self.step.kinds_processed.update(self.replayed_kinds)

    def describe(self) -> str:
        """What was kept, for the interruption note (counts and a folder; never data)."""
        return (f"{self.snapshot['records']} records through step {self.label} are kept in {self.partial.folder}; "
                "the same command continues from there")

    def discard(self) -> None:
        """Remove the saved progress (the run finished)."""
        self.partial.discard()
