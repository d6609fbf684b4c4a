"""De-identification in several processes for ``clinforge data deid --workers N``: a pool of spawned workers,
each with its own de-identifier, fed in batches whose results come back in input order.

Why a pool of processes and not threads: the rules are pure-Python regex and dictionary work that holds the GIL.
Why batches with one in flight: the workers keep working while the main process writes the previous batch, and
each text's result is written in its place, so the output is the one a single process writes. Surrogate mode is
not parallel: a surrogate depends on the same patient's earlier texts.

Example:
    >>> d = build_deidentifier("mask", 0, None, False, None)
    >>> got = []; batches = OrderedBatches(d, pool=None, workers=1)
    >>> batches.add(("Seen by Dr. Martha Collins on 3/4/2021.", None, ()), lambda r: got.append(r[0]))
    >>> batches.add(None, lambda r: got.append(r)); batches.finish(); got
    ['Seen by Dr. [NAME] on [DATE].', None]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any


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


def deid_one(deidentifier: Any, text: str, patient_id: str | None, names: Sequence[str]) -> tuple[str, list, float]:
    """(de-identified text, spans, CPU seconds) of one text."""
    t0 = time.process_time()
    result = (deidentifier.deidentify_many([text], patient_id, known_names=names)[0] if names
              else deidentifier.deidentify(text, patient_id=patient_id))
    return result.text, result.spans, time.process_time() - t0


_WORKER: list[Any] = []  # the de-identifier of a pool worker process


def start_pool(workers: int, settings: tuple) -> Any:
    """``workers`` spawned processes, each building the de-identifier of ``settings`` (mode, seed, ner_model,
    ner_int8, site_terms). Spawned, not forked: a forked copy of a process holding torch threads or a tagger can
    deadlock."""
    import multiprocessing
    import os

    threads = max(1, (os.cpu_count() or 1) // workers)  # a tagger's torch threads: the cores shared out
    return multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker, initargs=(*settings, threads))


def _init_worker(mode: str, seed: int, ner_model: Path | None, ner_int8: bool, site_terms: Path | None,
                 threads: int) -> None:
    """A pool worker: leaves Ctrl-C to the main process (which stops the pool), gives a tagger its share of the
    cores (torch would take them all in every worker) and builds its de-identifier."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if ner_model is not None:
        import torch

        torch.set_num_threads(threads)
    _WORKER[:] = [build_deidentifier(mode, seed, ner_model, ner_int8, site_terms)]


def _deid_in_worker(item: tuple[str, str | None, Sequence[str]]) -> tuple[str, list, float]:
    return deid_one(_WORKER[0], *item)


class OrderedBatches:
    """Texts de-identified here, one at a time, or in a pool, in batches with one batch in flight while the
    previous one is written (the workers never wait for the writer); each text's callback runs in input order.

    ``add(item, callback)``: ``item`` is (text, patient id, known names), or None for a row without text (its
    callback gets None, in its place); ``finish()`` runs every callback still waiting.
    """

    def __init__(self, deidentifier: Any, pool: Any, workers: int):
        self.deidentifier, self.pool, self.workers = deidentifier, pool, workers
        self.size = 32 * workers  # texts a batch: ~8 chunks of ~4 texts for each worker
        self.pending: list[tuple[tuple[str, str | None, Sequence[str]] | None, Callable]] = []
        self.in_flight: list[tuple[list, Any]] = []

    def add(self, item: tuple[str, str | None, Sequence[str]] | None, callback: Callable) -> None:
        if self.pool is None:
            callback(None if item is None else deid_one(self.deidentifier, *item))
            return
        self.pending.append((item, callback))
        if len(self.pending) >= self.size:
            self._submit()

    def _submit(self) -> None:
        items = [item for item, _ in self.pending if item is not None]
        result = self.pool.map_async(_deid_in_worker, items, chunksize=max(1, len(items) // (8 * self.workers)))
        self.in_flight.append((self.pending, result))
        self.pending = []
        while len(self.in_flight) > 1:
            self._drain()

    def _drain(self) -> None:
        entries, result = self.in_flight.pop(0)
        results = iter(result.get())
        for item, callback in entries:
            callback(None if item is None else next(results))

    def finish(self) -> None:
        if self.pending:
            self._submit()
        while self.in_flight:
            self._drain()


def start_record_pool(workers: int, options: dict[str, Any]) -> Any:
    """``workers`` spawned processes, each holding a ``deid`` transform of ``options`` (for ``data prepare``'s deid
    step with ``workers``)."""
    import multiprocessing
    import os

    threads = max(1, (os.cpu_count() or 1) // workers)
    return multiprocessing.get_context("spawn").Pool(workers, initializer=_init_record_worker,
                                                     initargs=(options, threads))


_RECORD_WORKER: list[Any] = []  # the deid transform of a record pool worker


def _init_record_worker(options: dict[str, Any], threads: int) -> None:
    import signal

    from clinforge.data.transforms.deid import DeidTransform

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if options.get("ner_model") is not None:
        import torch

        torch.set_num_threads(threads)
    _RECORD_WORKER[:] = [DeidTransform(**options, patient_ids="keep")]


def _clean_in_worker(record: Any) -> tuple[Any, dict[str, int], int, int]:
    """(cleaned record without pseudonym, PHI spans by type, fields changed, 1 if the record changed) of one
    record, from this worker's transform's counters."""
    t = _RECORD_WORKER[0]
    phi, fields, changed = dict(t.phi), t.fields_changed, t.records_changed
    out = t._clean_record(record)
    delta = {k: v - phi.get(k, 0) for k, v in t.phi.items() if v != phi.get(k, 0)}
    return out, delta, t.fields_changed - fields, t.records_changed - changed


def ordered_map(pool: Any, items: Iterable[Any], batch: int) -> Iterator[tuple[Any, Any]]:
    """``(item, result)`` of ``_clean_in_worker`` over ``items`` in input order, in batches, with the next batch
    working while this one is consumed.

    Example:
        >>> list(ordered_map(None, [], 4))
        []
    """
    in_flight: list[tuple[list, Any]] = []
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= batch:
            in_flight.append((chunk, pool.map_async(_clean_in_worker, chunk)))
            chunk = []
            while len(in_flight) > 1:
                done, result = in_flight.pop(0)
                yield from zip(done, result.get(), strict=True)
    if chunk:
        in_flight.append((chunk, pool.map_async(_clean_in_worker, chunk)))
    for done, result in in_flight:
        yield from zip(done, result.get(), strict=True)
