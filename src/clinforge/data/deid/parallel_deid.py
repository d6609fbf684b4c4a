"""De-identification in several processes (``clinforge data deid --workers N``, the ``deid`` step's ``workers``):
a pool of spawned workers, each with its own de-identifier, fed in batches whose results come back in input order.

Why processes and not threads: the rules are pure-Python regex and dictionary work that holds the GIL. Why
batches with one in flight: the workers keep working while the main process writes the previous batch, and each
result is used in its input's place, so the output is the one a single process writes. In surrogate mode the workers
detect and the caller makes the surrogates in input order (``file_deid``): a surrogate depends on the same
patient's earlier texts, and the key stays in one process.

Example:
    >>> d = build_deidentifier("mask", 0, None, False, None)
    >>> items = [("a", ("Seen by Dr. Martha Collins on 3/4/2021.", None, ())), ("b", None)]
    >>> [(tag, r and r[0]) for tag, r in ordered_map(None, items, lambda p: p and deid_one(d, *p))]
    [('a', 'Seen by Dr. [NAME] on [DATE].'), ('b', None)]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

_WORKER: list[Any] = []  # what a pool worker process de-identifies with (a Deidentifier or a deid transform)


def build_deidentifier(mode: str, seed: int, ner_model: Path | None, ner_int8: bool, site_terms: Path | None, *,
                       tagger: bool = True) -> Any:
    """The de-identifier of ``clinforge data deid``'s options; ``tagger=False`` leaves out the ``--ner-model``
    (a main process whose workers tag needs only replacements and the site list)."""
    from clinforge.data.deid import Deidentifier

    recognizers = None
    if ner_model is not None and tagger:
        from clinforge.data.deid.ner import TransformersNerRecognizer
        from clinforge.data.deid.recognizers import DEFAULT_RECOGNIZERS

        recognizers = [*DEFAULT_RECOGNIZERS, TransformersNerRecognizer(model=ner_model, int8=ner_int8)]
    return Deidentifier(mode=mode, seed=seed, recognizers=recognizers, site_terms=site_terms)


def deid_one(deidentifier: Any, text: str, patient_id: str | None, names: Sequence[str], *,
             timed: bool = False) -> tuple[str, list, float]:
    """(de-identified text, spans, CPU seconds when ``timed``, else 0) of one text."""
    t0 = time.process_time() if timed else 0.0
    result = (deidentifier.deidentify_many([text], patient_id, known_names=names)[0] if names
              else deidentifier.deidentify(text, patient_id=patient_id))
    return result.text, result.spans, (time.process_time() - t0) if timed else 0.0


def _text_worker(settings: tuple) -> Any:
    return build_deidentifier(*settings)


def _record_worker(options: dict[str, Any]) -> Any:
    from clinforge.data.transforms.deid import DeidTransform

    return DeidTransform(**options, patient_ids="keep")  # pseudonyms are the main process's (its key)


def start_text_pool(workers: int, settings: tuple) -> Any:
    """``workers`` processes de-identifying texts (``deid_in_worker``) with the de-identifier of ``settings``
    (mode, seed, ner_model, ner_int8, site_terms)."""
    return _start_pool(workers, _text_worker, settings, tagger=settings[2] is not None)


def start_record_pool(workers: int, options: dict[str, Any]) -> Any:
    """``workers`` processes cleaning records (``clean_in_worker``) with a ``deid`` transform of ``options``."""
    return _start_pool(workers, _record_worker, options, tagger=options.get("ner_model") is not None)


def _start_pool(workers: int, make: Callable[[Any], Any], argument: Any, *, tagger: bool) -> Any:
    # spawned, not forked: a forked copy of a process holding torch threads or a tagger can deadlock
    import multiprocessing
    import os

    threads = max(1, (os.cpu_count() or 1) // workers)  # a tagger's torch threads: the cores shared out
    return multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker,
                                                     initargs=(make, argument, threads if tagger else 0))


def _init_worker(make: Callable[[Any], Any], argument: Any, threads: int) -> None:
    """A pool worker: leaves Ctrl-C to the main process (which stops the pool), gives a tagger its share of the
    cores (torch would take them all in every worker) and builds what it de-identifies with."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if threads:
        import torch

        torch.set_num_threads(threads)
    _WORKER[:] = [make(argument)]


def deid_in_worker(item: tuple[str, str | None, Sequence[str]] | None) -> tuple[str, list, float] | None:
    """``deid_one`` of (text, patient id, known names) in a text pool worker, its CPU time measured (the main
    process's own clock does not see it); None (a row without text) stays None."""
    return None if item is None else deid_one(_WORKER[0], *item, timed=True)


def clean_in_worker(record: Any) -> tuple[Any, dict[str, int], int, int]:
    """(cleaned record without pseudonym, PHI spans by type, fields changed, 1 if the record changed) of one
    record in a record pool worker, from its transform's counters."""
    t = _WORKER[0]
    phi, fields, changed = dict(t.phi), t.fields_changed, t.records_changed
    out = t._clean_record(record)
    delta = {k: v - phi.get(k, 0) for k, v in t.phi.items() if v != phi.get(k, 0)}
    return out, delta, t.fields_changed - fields, t.records_changed - changed


def detect_in_worker(record: Any) -> list[list[Any]]:
    """The detections (span lists, in the order the step makes them) of one record in a record pool worker whose
    step runs in mask mode: the main process replays them to make surrogates in input order."""
    t = _WORKER[0]
    t._recording = []
    try:
        t._clean_record(record)
        return t._recording
    finally:
        t._recording = None


def ordered_map(pool: Any, items: Iterable[tuple[Any, Any]], fn: Callable[[Any], Any], *,
                batch: int = 64) -> Iterator[tuple[Any, Any]]:
    """``(tag, fn(payload))`` for each ``(tag, payload)`` of ``items``, in input order. Without a pool, one at a
    time here (lazily: an item is read when its result is wanted); with one, ``fn`` (a module-level function)
    runs in the workers on batches of ``batch``, the next batch working while this one's results are used.
    """
    if pool is None:
        for tag, payload in items:
            yield tag, fn(payload)
        return
    in_flight: list[tuple[list, Any]] = []
    chunk: list[tuple[Any, Any]] = []

    def submit() -> None:
        payloads = [payload for _, payload in chunk]
        in_flight.append(([tag for tag, _ in chunk], pool.map_async(fn, payloads,
                                                                    chunksize=max(1, len(payloads) // 16))))

    for item in items:
        chunk.append(item)
        if len(chunk) >= batch:
            submit()
            chunk = []
            while len(in_flight) > 1:
                tags, result = in_flight.pop(0)
                yield from zip(tags, result.get(), strict=True)
    if chunk:
        submit()
    for tags, result in in_flight:
        yield from zip(tags, result.get(), strict=True)
