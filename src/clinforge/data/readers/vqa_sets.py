"""SLAKE and PathVQA, read from local copies in the layout of their public releases.

* **SLAKE** (Liu et al. 2021; the BMAD release): a folder with ``train.json``, ``validate.json``, ``test.json``
  (JSON lists; fields ``qid``, ``img_id``, ``img_name`` such as ``xmlab102/source.jpg``, ``question``, ``answer``,
  ``q_lang`` (``en``/``zh``), ``answer_type`` (OPEN/CLOSED), ``content_type``, ``location``, ``modality``,
  ``base_type``) and the images under ``imgs/``. Option ``lang`` (default ``en``; ``all`` keeps both) filters on
  ``q_lang``; rows of the other language are skipped and counted. ``meta["image_organ"]`` is ``location`` and
  ``meta["question_type"]`` is ``content_type``, so VQA breakdowns read the same keys as VQA-RAD.
* **PathVQA** (He et al. 2020): the ``split`` folder of the release, ``qas/{train,val,test}/{split}_qa.pkl`` (a
  pickled list of ``{"image": "val_0261", "question", "answer"}``) and ``images/{split}/{image}.jpg``. Pickles can
  run code, so they are read with an unpickler that accepts only plain lists, dicts, strings and numbers. PathVQA's
  closed questions are its yes/no questions: ``answer_type`` is CLOSED when the answer is ``yes`` or ``no``.

A missing image file is a bad row naming the file, the record and the image field.

Example:
    >>> import tempfile, pathlib, json
    >>> d = pathlib.Path(tempfile.mkdtemp()); (d / "imgs" / "xmlab1").mkdir(parents=True)
    >>> _ = (d / "imgs" / "xmlab1" / "source.jpg").write_bytes(b"x")
    >>> row = {"qid": 1, "img_name": "xmlab1/source.jpg", "question": "Which organ?", "answer": "Lung",
    ...        "q_lang": "en", "answer_type": "OPEN", "location": "Lung", "content_type": "Organ", "modality": "CT"}
    >>> _ = (d / "test.json").write_text(json.dumps([row, {**row, "qid": 2, "q_lang": "zh"}]))
    >>> r = SlakeReader(split="test"); [x.answer for x in r.read(d)], dict(r.report.skipped)
    (['Lung'], {'other language': 1})
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from clinforge.core.errors import ConfigError, DataError
from clinforge.data.readers.base import READERS, Reader
from clinforge.data.readers.common import get_field, iter_json_records, make_record, reason_of
from clinforge.data.records import Record

SLAKE_SPLITS = {"train": "train.json", "validate": "validate.json", "test": "test.json"}
PATHVQA_SPLITS = ("train", "val", "test")


def _answer_type(raw: Any, where: dict) -> str:
    value = str(raw or "").strip().upper()
    if value not in ("CLOSED", "OPEN"):
        raise DataError("not CLOSED or OPEN", **where, field="answer_type")
    return value


@READERS.register("slake")
class SlakeReader(Reader):
    """SLAKE (see the module docstring); options ``split`` (train, validate, test), ``lang`` (en, zh, all)."""

    name = "slake"
    description = "SLAKE bilingual radiology VQA (JSON + imgs/)"
    allowed_options = frozenset({"split", "lang", "images"})

    def _read(self, path: str | os.PathLike) -> Iterator[Record]:
        p = Path(path)
        split = self.options.get("split")
        lang = self.options.get("lang", "en")
        if split is not None and split not in SLAKE_SPLITS:
            raise ConfigError(f"split must be one of {', '.join(SLAKE_SPLITS)}", key="split")
        if p.is_dir():
            files = [(p / name, s) for s, name in SLAKE_SPLITS.items() if split in (None, s)]
            files = [(f, s) for f, s in files if f.is_file()]
            if not files:
                raise DataError(f"no SLAKE split file ({', '.join(SLAKE_SPLITS.values())})", file=str(p))
        else:
            files = [(p, split or p.stem)]
        for file, split_name in files:
            self.report.files.append(str(file))
            image_dir = Path(self.options.get("images") or file.parent / "imgs").resolve()
            for line, number, row in iter_json_records(self, file):
                where = {"file": str(file), "line": line, "record": number if line is None else None}
                if lang != "all" and row.get("q_lang", "en") != lang:
                    self.skip("other language")
                    continue
                try:
                    image = image_dir / get_field(row, "img_name", **where)
                    if not image.is_file():
                        raise DataError(f"image file not found: {image}", **where, field="img_name")
                    qid = get_field(row, "qid", **where, kind=(str, int))
                    meta = {"answer_type": _answer_type(row.get("answer_type"), where), "qid": qid,
                            "question_type": row.get("content_type"), "image_organ": row.get("location"),
                            "modality": row.get("modality"), "q_lang": row.get("q_lang"),
                            "base_type": row.get("base_type"), "image_name": row["img_name"]}
                    answer = get_field(row, "answer", **where, kind=(str, int, float))
                    yield make_record(**where, id=f"slake-{split_name}-{qid}", kind="vqa", source=self.name,
                                      split=split_name, question=get_field(row, "question", **where),
                                      answer=str(answer), images=[str(image)], meta=meta)
                except DataError as err:
                    self.bad(err, reason_of(err))


class _PlainUnpickler(pickle.Unpickler):
    """Refuses every global: a list of dicts of strings needs none, and a global is how a pickle runs code."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only plain data is accepted)")


def load_plain_pickle(file: Path) -> Any:
    """A pickle holding only plain data (lists, dicts, str, numbers); anything else is an error naming the file.

    Example:
        >>> import tempfile, pathlib, pickle
        >>> f = pathlib.Path(tempfile.mkdtemp()) / "q.pkl"; _ = f.write_bytes(pickle.dumps([{"a": 1}]))
        >>> load_plain_pickle(f)
        [{'a': 1}]
    """
    try:
        return _PlainUnpickler(io.BytesIO(file.read_bytes())).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DataError(f"not a plain-data pickle ({exc})", file=str(file)) from None


@READERS.register("pathvqa")
class PathVQAReader(Reader):
    """PathVQA (see the module docstring); option ``split`` (train, val, test) or a ``*_qa.pkl`` file as path."""

    name = "pathvqa"
    description = "PathVQA pathology VQA (qas/*_qa.pkl + images/)"
    allowed_options = frozenset({"split", "images"})

    def _files(self, p: Path) -> list[tuple[Path, str]]:
        split = self.options.get("split")
        if split is not None and split not in PATHVQA_SPLITS:
            raise ConfigError(f"split must be one of {', '.join(PATHVQA_SPLITS)}", key="split")
        if p.is_file():
            return [(p, split or p.name.split("_")[0])]
        files = [(p / "qas" / s / f"{s}_qa.pkl", s) for s in PATHVQA_SPLITS if split in (None, s)]
        found = [(f, s) for f, s in files if f.is_file()]
        if not found:
            raise DataError("no PathVQA qas/<split>/<split>_qa.pkl", file=str(p))
        return found

    def _read(self, path: str | os.PathLike) -> Iterator[Record]:
        for file, split in self._files(Path(path)):
            self.report.files.append(str(file))
            rows = load_plain_pickle(file)
            if not isinstance(rows, list):
                raise DataError(f"expected a list of QA dicts, got {type(rows).__name__}", file=str(file))
            root = file.parent.parent.parent  # split/qas/<split>/x.pkl -> split/
            image_dir = Path(self.options.get("images") or root / "images" / split).resolve()
            for number, row in enumerate(rows, start=1):
                where = {"file": str(file), "record": number}
                try:
                    if not isinstance(row, dict):
                        raise DataError("not a dict", **where)
                    image_id = str(get_field(row, "image", **where))
                    image = image_dir / (image_id if image_id.lower().endswith((".jpg", ".png")) else image_id + ".jpg")
                    if not image.is_file():
                        raise DataError(f"image file not found: {image}", **where, field="image")
                    answer = str(get_field(row, "answer", **where, kind=(str, int, float)))
                    kind = "CLOSED" if answer.strip().lower() in ("yes", "no") else "OPEN"
                    meta = {"answer_type": kind, "image_name": image.name, "question_type": None, "image_organ": None}
                    yield make_record(**where, id=f"pathvqa-{split}-{number}", kind="vqa", source=self.name,
                                      split=split, question=get_field(row, "question", **where), answer=answer,
                                      images=[str(image)], meta=meta)
                except DataError as err:
                    self.bad(err, reason_of(err))
