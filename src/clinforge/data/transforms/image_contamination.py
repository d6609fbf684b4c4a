"""``image_contamination``: training records whose images near-duplicate an evaluation set's images.

The text ``contamination`` step misses the same radiograph under a new question. This step indexes every image of
each benchmark (read with a registered reader, e.g. ``vqa_rad`` with ``split: test``) by perceptual hash
(:class:`clinforge.data.images.image_contamination.ImageHashIndex`: pHash and dHash within ``max_distance`` bits,
byte-identical files first) and checks each image of each training record. ``action: report`` (default) keeps the
records with ``meta["image_contamination"] = [benchmark names]``; ``action: remove`` drops them from the
*training* data. Benchmarks are never modified: a published split is reported as it is.

Example:
    >>> from PIL import Image; import tempfile, pathlib
    >>> from clinforge.data.records import Record
    >>> d = pathlib.Path(tempfile.mkdtemp()); Image.new("L", (40, 40), 7).save(d / "x.png")
    >>> bench = [Record(id="b1", kind="vqa", question="q", images=[str(d / "x.png")])]
    >>> t = ImageContamination(action="remove", eval_records={"toy": bench})
    >>> list(t.apply([Record(id="t1", kind="vqa", question="other q", images=[str(d / "x.png")])]))
    []
    >>> t.report()["benchmarks"]["toy"]["train_records_hit"]
    1
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from pydantic import Field

from clinforge.core.config import StrictModel
from clinforge.core.errors import ConfigError
from clinforge.data.records import Record
from clinforge.data.transforms.base import TRANSFORMS
from clinforge.data.transforms.contamination import Benchmark
from clinforge.data.transforms.options import OptionsTransform


class ImageContaminationOptions(StrictModel):
    """Options of ``image_contamination``."""

    benchmarks: list[Benchmark] = Field(default_factory=list)
    max_distance: int = Field(6, ge=0, le=32, description="Hamming distance (of 64 bits) for pHash and dHash")
    action: Literal["report", "remove"] = "report"
    max_examples: int = Field(20, ge=0)


@TRANSFORMS.register("image_contamination")
class ImageContamination(OptionsTransform):
    """Flag (or remove) training records with an image that near-duplicates a benchmark image (module docstring)."""

    deterministic = True  # seeded where it draws (see Transform.deterministic)

    name = "image_contamination"
    Options = ImageContaminationOptions

    def __init__(self, eval_records: dict[str, Iterable[Record]] | None = None, **options: Any):
        super().__init__(**options)
        self._eval_records = dict(eval_records or {})
        if not self.opts.benchmarks and not self._eval_records:
            raise ConfigError("image_contamination needs at least one benchmark",
                              key="image_contamination.benchmarks")
        self.indexes: dict[str, Any] = {}
        self.hits: dict[str, int] = defaultdict(int)
        self.items_hit: dict[str, set[str]] = defaultdict(set)
        self.examples: list[dict[str, Any]] = []
        self.contaminated = self.removed = 0

    def input_paths(self) -> list[str]:
        """Benchmark paths, for the run record's input hashes."""
        return [b.path for b in self.opts.benchmarks]

    def _build(self) -> None:
        from clinforge.data.images.image_contamination import ImageHashIndex
        from clinforge.data.load import read_records

        sources: dict[str, Iterable[Record]] = dict(self._eval_records)
        for bench in self.opts.benchmarks:
            stream, _ = read_records(bench.path, bench.reader, on_error=bench.on_error, limit=bench.limit,
                                     **bench.options)
            sources[bench.name] = stream
        for name, records in sources.items():
            items = [(img, rec.id) for rec in records for img in rec.images]
            self.indexes[name] = ImageHashIndex(items, max_distance=self.opts.max_distance)

    def apply(self, records: Iterable[Record]) -> Iterator[Record]:
        from clinforge.data.images.image_contamination import image_hashes

        if not self.indexes:
            self._build()
        cache: dict[str, dict[str, Any]] = {}  # VQA sets repeat one image under many questions: hash it once
        for rec in records:
            self.n_in += 1
            flagged: list[str] = []
            for img in rec.images:
                if img not in cache:
                    cache[img] = image_hashes(img, record=rec.id)
                hashes = cache[img]
                for name, index in self.indexes.items():
                    hit = index.find(img, hashes=hashes)
                    if hit is None:
                        continue
                    if name not in flagged:
                        flagged.append(name)
                        self.hits[name] += 1
                    self.items_hit[name].add(hit["owner"])
                    if len(self.examples) < self.opts.max_examples:
                        self.examples.append({"train_id": rec.id, "benchmark": name, "benchmark_id": hit["owner"],
                                              "exact": hit["exact"], "phash_distance": hit["phash_distance"]})
            if flagged:
                self.contaminated += 1
                if self.opts.action == "remove":
                    self.removed += 1
                    continue
                rec = rec.model_copy(update={"meta": {**rec.meta, "image_contamination": flagged}})
            self.n_out += 1
            yield rec

    def report(self) -> dict[str, Any]:
        """Per benchmark: distinct images indexed, training records hit, benchmark records hit; totals, examples."""
        per = {name: {"images": len(index), "train_records_hit": self.hits.get(name, 0),
                      "benchmark_records_hit": len(self.items_hit.get(name, ()))}
               for name, index in self.indexes.items()}
        return {"in": self.n_in, "out": self.n_out, "max_distance": self.opts.max_distance,
                "action": self.opts.action, "contaminated": self.contaminated, "removed": self.removed,
                "benchmarks": per, "examples": self.examples}
