"""``contamination``: long n-gram overlap of training records with evaluation sets, reported per benchmark.

Definition (the GPT-3 paper, appendix C, and lm-evaluation-harness ``decontamination.janitor``, whose
normalisation is reproduced exactly: ASCII letters lower-cased, ``string.punctuation`` characters deleted, words split
on whitespace): a training record is **contaminated** by a benchmark when any word n-gram (``n = 13`` by default) of
any of its text fields also occurs among the n-grams of any text field of any benchmark item (question, options,
context, answer, ...). With ``min_words = n`` this is exactly what lm-eval's ``Janitor`` flags (a test proves it).
Our one extension: benchmark fields shorter than ``n`` words but at least ``min_words`` long (default 8) are used
whole, so a short question copied verbatim still counts; shorter fields (single options such as "Aspirin") are
ignored and counted in the report.

The matching is written here rather than calling ``Janitor`` because the Janitor answers "which spans to cut" for
one global n-gram set, while we need the benchmark and item behind each hit, several benchmarks at once, and
the short-field rule.

With ``action: remove`` contaminated records are dropped; with ``action: report`` (default) they pass through with
``meta["contamination"] = [benchmark names]`` and are counted. Benchmarks are read by any reader
(``{name, reader, path, options}``); a library caller may pass records directly with ``eval_records``.
"""

from __future__ import annotations

import string
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from pydantic import Field, model_validator

from clinforge.core.config import StrictModel
from clinforge.core.errors import ConfigError
from clinforge.data.records import Record
from clinforge.data.transforms.base import TRANSFORMS
from clinforge.data.transforms.options import OptionsTransform

_JANITOR_TABLE = str.maketrans(string.ascii_lowercase + string.ascii_uppercase, string.ascii_lowercase * 2,
                               string.punctuation)


def janitor_normalize(text: str) -> str:
    """lm-eval Janitor's normalisation: ASCII lower case, ``string.punctuation`` deleted (not replaced).

    Example:
        >>> janitor_normalize("BP 120/80, HR 72.")
        'bp 12080 hr 72'
    """
    return text.translate(_JANITOR_TABLE)


class Benchmark(StrictModel):
    """An evaluation set to check against: read with a registered reader."""

    name: str
    reader: str
    path: str
    options: dict[str, Any] = Field(default_factory=dict)
    on_error: Literal["skip", "fail"] = "fail"
    limit: int | None = Field(None, ge=1)


class ContaminationOptions(StrictModel):
    """Options of ``contamination``."""

    benchmarks: list[Benchmark] = Field(default_factory=list)
    n: int = Field(13, ge=3, le=50, description="n-gram length in words")
    min_words: int = Field(8, ge=1, description="benchmark fields shorter than n but this long are matched whole")
    action: Literal["report", "remove"] = "report"
    max_examples: int = Field(20, ge=0)

    @model_validator(mode="after")
    def _check(self) -> ContaminationOptions:
        if self.min_words > self.n:
            raise ValueError(f"min_words ({self.min_words}) must not exceed n ({self.n})")
        names = [b.name for b in self.benchmarks]
        if len(set(names)) != len(names):
            raise ValueError("benchmark names must be unique")
        return self


def ngrams(tokens: list[str], n: int) -> Iterator[str]:
    """Word n-grams of a token list as space-joined strings.

    Example:
        >>> list(ngrams(["a", "b", "c"], 2))
        ['a b', 'b c']
    """
    for i in range(len(tokens) - n + 1):
        yield " ".join(tokens[i : i + n])


class BenchmarkIndex:
    """The n-grams of one benchmark, each mapped to the first benchmark item that contains it.

    Benchmark text is normalised, then split (as the Janitor registers contaminants); training text is split on
    whitespace first and each window normalised (as the Janitor cleans), so a token made only of punctuation
    still occupies a position in a training window.

    Example:
        >>> q = Record(id="b1", kind="qa", question="a b c d e f g h i j k l m n", answer="x")
        >>> idx = BenchmarkIndex("bench", [q], n=13, min_words=8)
        >>> idx.find("z A b c d e f g h i j k l m!")
        'b1'
    """

    def __init__(self, name: str, records: Iterable[Record], *, n: int, min_words: int):
        self.name, self.n = name, n
        self.grams: dict[int, dict[str, list[str]]] = defaultdict(dict)  # length -> gram -> benchmark item ids
        self.items = 0
        self.short_fields_ignored = 0
        for rec in records:
            self.items += 1
            for field_text in rec.texts():
                tokens = janitor_normalize(field_text).split()
                if len(tokens) >= n:
                    for gram in ngrams(tokens, n):
                        self._add(n, gram, rec.id)
                elif len(tokens) >= min_words:
                    self._add(len(tokens), " ".join(tokens), rec.id)
                else:
                    self.short_fields_ignored += 1

    def _add(self, length: int, gram: str, item_id: str) -> None:
        ids = self.grams[length].setdefault(gram, [])
        if not ids or ids[-1] != item_id:
            ids.append(item_id)

    @property
    def size(self) -> int:
        return sum(len(g) for g in self.grams.values())

    def find(self, text: str, tokens: list[str] | None = None) -> str | None:
        """The id of a benchmark item sharing an n-gram (or a whole short field) with ``text``, else None.

        ``tokens`` (the normalised whitespace tokens of ``text``, empty strings kept) may be passed to save work.
        """
        if tokens is None:
            tokens = training_tokens(text)
        for length, grams in self.grams.items():
            for gram in ngrams(tokens, length):
                hit = grams.get(gram)
                if hit is not None:
                    return hit[0]
        return None


def training_tokens(text: str) -> list[str]:
    """Whitespace tokens of ``text``, each normalised; tokens of pure punctuation stay as empty strings.

    Joining a window of these equals normalising the joined raw window, which is what the Janitor compares.

    Example:
        >>> training_tokens("Pain - 7/10.")
        ['pain', '', '710']
    """
    return [janitor_normalize(t) for t in text.split()]


@TRANSFORMS.register("contamination")
class Contamination(OptionsTransform):
    """Flag (or remove) training records that share a long n-gram with an evaluation set.

    Example:
        >>> stem = "A 54-year-old man presents with crushing substernal chest pain radiating to the left arm"
        >>> bench = [Record(id="b1", kind="mcq", question=stem, choices=["MI", "GERD"], answer="A")]
        >>> train = [Record(id="t1", kind="qa", question=stem + "?", answer="MI"),
        ...          Record(id="t2", kind="qa", question="What lowers LDL?", answer="Statins")]
        >>> c = Contamination(action="remove", eval_records={"toy": bench})
        >>> [r.id for r in c.apply(train)]
        ['t2']
        >>> c.report()["benchmarks"]["toy"]["train_records_hit"]
        1
    """

    deterministic = True  # seeded where it draws (see Transform.deterministic)

    name = "contamination"
    Options = ContaminationOptions

    def __init__(self, eval_records: dict[str, Iterable[Record]] | None = None, **options: Any):
        super().__init__(**options)
        self._eval_records = dict(eval_records or {})
        if not self.opts.benchmarks and not self._eval_records:
            raise ConfigError("contamination needs at least one benchmark", key="contamination.benchmarks")
        self.indexes: list[BenchmarkIndex] = []
        self.read_reports: dict[str, dict] = {}
        self.hits: dict[str, int] = defaultdict(int)
        self.items_hit: dict[str, set[str]] = defaultdict(set)
        self.examples: list[dict[str, str]] = []
        self.contaminated = 0
        self.removed = 0

    def input_paths(self) -> list[str]:
        """Benchmark paths, for the run record's input hashes."""
        paths = []
        for b in self.opts.benchmarks:
            paths += [b.path] + [v for k, v in b.options.items() if k == "ground_truth" and isinstance(v, str)]
        return paths

    def _build(self) -> None:
        from clinforge.data.load import read_records

        o = self.opts
        for name, recs in self._eval_records.items():
            self.indexes.append(BenchmarkIndex(name, recs, n=o.n, min_words=o.min_words))
        for bench in o.benchmarks:
            stream, reader = read_records(bench.path, bench.reader, on_error=bench.on_error, limit=bench.limit,
                                          **bench.options)
            self.indexes.append(BenchmarkIndex(bench.name, stream, n=o.n, min_words=o.min_words))
            self.read_reports[bench.name] = reader.report.as_dict()
        # one lookup per training n-gram for all benchmarks: length -> gram -> [(benchmark, item id), ...]
        self._combined: dict[int, dict[str, list[tuple[str, str]]]] = defaultdict(dict)
        for idx in self.indexes:
            for length, grams in idx.grams.items():
                table = self._combined[length]
                for gram, ids in grams.items():
                    table.setdefault(gram, []).extend((idx.name, i) for i in ids)

    def _hits(self, rec: Record) -> dict[str, set[str]]:
        """Benchmark name -> ids of its items sharing an n-gram (or a whole short field) with ``rec``."""
        found: dict[str, set[str]] = defaultdict(set)
        for text in rec.texts():
            tokens = training_tokens(text)
            for length, table in self._combined.items():
                for gram in ngrams(tokens, length):
                    for bench, item in table.get(gram, ()):
                        found[bench].add(item)
        return found

    def apply(self, records: Iterable[Record]) -> Iterator[Record]:
        if not self.indexes:
            self._build()
        for rec in records:
            self.n_in += 1
            found = self._hits(rec)
            flagged = [idx.name for idx in self.indexes if idx.name in found]
            for name in flagged:
                self.hits[name] += 1
                self.items_hit[name] |= found[name]
                if len(self.examples) < self.opts.max_examples:
                    self.examples.append({"train_id": rec.id, "benchmark": name, "benchmark_id": min(found[name])})
            if flagged:
                self.contaminated += 1
                if self.opts.action == "remove":
                    self.removed += 1
                    continue
                rec = rec.model_copy(update={"meta": {**rec.meta, "contamination": flagged}})
            self.n_out += 1
            yield rec

    def report(self) -> dict[str, Any]:
        """Per benchmark: items, n-grams indexed, training records hit, benchmark items hit; totals and examples."""
        per = {}
        for idx in self.indexes:
            per[idx.name] = {"items": idx.items, "ngrams": idx.size, "short_fields_ignored": idx.short_fields_ignored,
                             "train_records_hit": self.hits.get(idx.name, 0),
                             "benchmark_items_hit": len(self.items_hit.get(idx.name, ())),
                             **({"read": self.read_reports[idx.name]} if idx.name in self.read_reports else {})}
        return {"in": self.n_in, "out": self.n_out, "n": self.opts.n, "min_words": self.opts.min_words,
                "action": self.opts.action, "contaminated": self.contaminated, "removed": self.removed,
                "benchmarks": per, "examples": self.examples}
