"""The PhysioNet de-identification gold standard (``deid``: real ICU nursing notes, every PHI instance annotated).

Files (both in one folder):

* ``id.text``: records ``START_OF_RECORD=<patient>||||<note>||||`` then a newline, the note text, and
  ``||||END_OF_RECORD`` (the text is everything between that newline and the end marker, offsets count from it);
* ``id-phi.phrase``: one PHI instance a line, ``<patient> <note> <start> <end> <TYPE> <phrase>`` where the phrase
  may contain spaces and equals ``text[start:end]``.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from clinforge.core.errors import DataError
from clinforge.data.readers.base import READERS, Reader
from clinforge.data.readers.common import make_record, reason_of, resolve_files
from clinforge.data.records import Record

PHI_TYPES: tuple[str, ...] = ("HCPName", "PTName", "PTNameInitial", "RelativeProxyName", "Date", "DateYear",
                              "Location", "Phone", "Age", "Other")
_HEADER = re.compile(r"START_OF_RECORD=(\d+)\|\|\|\|(\d+)\|\|\|\|\n")
_END = "||||END_OF_RECORD"


def _gold(phrase_file: Path) -> tuple[dict[tuple[int, int], list[dict]], int]:
    """Gold PHI per (patient, note) from ``id-phi.phrase``, and the number of lines read."""
    out: dict[tuple[int, int], list[dict]] = {}
    n = 0
    for lineno, line in enumerate(phrase_file.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        n += 1
        parts = line.split(" ", 5)
        if len(parts) < 6 or not all(p.isdigit() for p in parts[:4]):
            raise DataError("expected 'patient note start end TYPE phrase'", file=str(phrase_file), line=lineno)
        patient, note, start, end = (int(p) for p in parts[:4])
        if parts[4] not in PHI_TYPES:
            raise DataError(f"unknown PHI type (valid: {', '.join(PHI_TYPES)})", file=str(phrase_file), line=lineno,
                            field="TYPE")
        out.setdefault((patient, note), []).append(
            {"type": parts[4], "start": start, "end": end, "phrase": parts[5], "line": lineno})
    return out, n


@READERS.register("physionet_deid")
class PhysioNetDeidReader(Reader):
    """PhysioNet deid gold standard: one ``note`` record per note, gold PHI in ``meta["phi"]``.

    ``path`` is the folder holding ``id.text`` (and ``id-phi.phrase``), or ``id.text`` itself. Each record has
    ``patient_id`` (the corpus's patient number), ``meta["note"]`` (note number within the patient) and
    ``meta["phi"]``: ``{type, start, end, phrase}`` dicts, offsets into ``text``. A gold line whose phrase differs
    from ``text[start:end]``, or that names a note absent from ``id.text``, is a bad row naming the line; a folder
    without ``id-phi.phrase`` yields notes with ``meta["phi"] = None`` (unannotated text).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "id.text").write_text("START_OF_RECORD=3||||1||||\\nSEEN BY DR SMITH 7/22.\\n||||END_OF_RECORD\\n")
        >>> _ = (d / "id-phi.phrase").write_text("3 1 11 16 HCPName SMITH\\n3 1 17 21 Date 7/22\\n")
        >>> r = next(PhysioNetDeidReader().read(d)); (r.id, r.patient_id, [p["phrase"] for p in r.meta["phi"]])
        ('physionet-deid-3-1', '3', ['SMITH', '7/22'])
    """

    name = "physionet_deid"
    description = "PhysioNet deid gold standard: ICU nursing notes with every PHI instance (id.text, id-phi.phrase)"
    allowed_options = frozenset()

    def _read(self, path: str | os.PathLike) -> Iterator[Record]:
        file = resolve_files(path, ["id.text"], self.name)[0]
        self.report.files.append(str(file))
        phrase_file = file.with_name("id-phi.phrase")
        gold: dict[tuple[int, int], list[dict]] | None = None
        if phrase_file.is_file():
            self.report.files.append(str(phrase_file))
            gold, self.report.notes["phi_lines"] = _gold(phrase_file)
        raw = file.read_text(encoding="utf-8")
        seen: set[tuple[int, int]] = set()
        by_type: Counter = Counter()
        pos = 0
        while True:
            m = _HEADER.search(raw, pos)
            if m is None:
                if raw[pos:].strip():
                    self.report.rows += 1
                    self.bad(DataError("text after the last record", file=str(file),
                                       line=raw.count("\n", 0, pos) + 1), "text outside a record")
                break
            self.report.rows += 1
            line = raw.count("\n", 0, m.start()) + 1
            if raw[pos:m.start()].strip():
                self.bad(DataError("text between records", file=str(file), line=line), "text outside a record")
            end = raw.find(_END, m.end())
            if end < 0:
                self.bad(DataError("record without ||||END_OF_RECORD", file=str(file), line=line),
                         "unterminated record")
                break
            patient, note = int(m.group(1)), int(m.group(2))
            text = raw[m.end():end]
            pos = end + len(_END)
            where = {"file": str(file), "line": line, "record": f"{patient}/{note}"}
            try:
                if (patient, note) in seen:
                    raise DataError("duplicate patient/note", **where, field="START_OF_RECORD")
                seen.add((patient, note))
                phi = None
                if gold is not None:
                    phi = [self._check(g, text, phrase_file) for g in gold.get((patient, note), [])]
                    by_type.update(g["type"] for g in phi)
                rec = make_record(**where, id=f"physionet-deid-{patient}-{note}", kind="note", source=self.name,
                                  text=text, patient_id=str(patient), meta={"note": note, "phi": phi})
            except DataError as err:
                self.bad(err, reason_of(err))
                continue
            yield rec
        if gold is not None:
            orphans = sorted(set(gold) - seen)
            if orphans:
                g = gold[orphans[0]][0]
                self.bad(DataError(f"PHI for a note not in id.text ({len(orphans)} notes)", file=str(phrase_file),
                                   line=g["line"]), "PHI for a missing note")
            self.report.notes["phi"] = sum(by_type.values())
            self.report.notes["phi_by_type"] = dict(by_type)

    @staticmethod
    def _check(g: dict, text: str, phrase_file: Path) -> dict:
        if not (0 <= g["start"] < g["end"] <= len(text)) or text[g["start"]:g["end"]] != g["phrase"]:
            raise DataError("phrase differs from the note text at start:end", file=str(phrase_file), line=g["line"],
                            field="phrase")
        return {k: g[k] for k in ("type", "start", "end", "phrase")}
