"""Notes with gold PHI annotations in the two formats clinical teams annotate in: brat standoff and i2b2 2014 XML.

Both readers yield what ``physionet_deid`` yields, so everything built on it works on a team's own notes:
``clinforge data deid-eval`` (the issue-7 measure), ``clinforge data deid-train`` (a tagger) and the patient-level
split. One ``note`` record per file: ``text``, ``patient_id``, ``meta["note"]`` (the file's name without its suffix)
and ``meta["phi"]``: ``{type, start, end, phrase, label}`` dicts with offsets into ``text``, where ``label`` is the
annotation's own label and ``type`` the PhysioNet type it maps to (``PHI_TYPE_OF_LABEL``: i2b2 2014's types and
subtypes and common brat label names; extend it with the ``label_map`` option).

* **brat** (``brat_deid``): ``NAME.txt`` with ``NAME.ann`` beside it; text-bound lines
  ``T1<TAB>LABEL START END[;START END...]<TAB>covered text`` (a discontinuous annotation gives one gold span per
  fragment); other lines (relations, notes, attributes) are ignored. Offsets count characters of the ``.txt`` as
  stored (a ``\\r\\n`` is two), so it is read without newline translation.
* **i2b2 2014** (``i2b2_deid``): ``NAME.xml`` holding ``<TEXT>`` (CDATA) and ``<TAGS>`` whose elements carry
  ``start``, ``end``, ``text`` and ``TYPE`` (``<NAME ... TYPE="DOCTOR"/>``). The 2006 format (PHI inline in the
  text) is not read.

Labels that name geography at or above a state, a profession or another non-Safe-Harbor attribute (i2b2's
``STATE``, ``COUNTRY``, ``PROFESSION``) map to ``Unscored``: kept for training context, not scored, like PhysioNet's
``DateYear``. An unknown label is a bad row naming file, line and field ``label`` (never the text).

Patients: ``patient_pattern`` (a regex on the file name without suffix; its first group, else the whole match) gives
``patient_id``; the default takes i2b2's ``110-01`` -> ``110`` and otherwise treats each file as its own patient.
Patient-level splits need it right: notes of one patient must not land on both sides.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "12-01.txt").write_text("Seen by Dr Okafor on 7/22.")
    >>> _ = (d / "12-01.ann").write_text("T1\\tDOCTOR 11 17\\tOkafor\\nT2\\tDATE 21 25\\t7/22\\n")
    >>> reader = BratDeidReader(patient_pattern=r"^(\\d+)-")  # file 12-01: patient 12, note 01
    >>> r = next(reader.read(d)); r.patient_id, [(p["type"], p["phrase"]) for p in r.meta["phi"]]
    ('12', [('HCPName', 'Okafor'), ('Date', '7/22')])
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from clinforge.core.errors import ConfigError, DataError
from clinforge.data.readers.base import READERS, Reader
from clinforge.data.readers.common import make_record, reason_of, resolve_files
from clinforge.data.records import Record

#: PhysioNet-type of each annotation label (upper case): i2b2 2014 types and subtypes, common brat names.
PHI_TYPE_OF_LABEL: dict[str, str] = {
    **dict.fromkeys(("PATIENT", "PTNAME"), "PTName"),
    **dict.fromkeys(("DOCTOR", "USERNAME", "HCPNAME", "STAFF", "PROVIDER", "CLINICIAN"), "HCPName"),
    **dict.fromkeys(("RELATIVE", "FAMILY", "RELATIVEPROXYNAME", "PROXY"), "RelativeProxyName"),
    **dict.fromkeys(("NAME", "PERSON", "PER"), "PTName"),
    "PTNAMEINITIAL": "PTNameInitial", "INITIALS": "PTNameInitial",
    **dict.fromkeys(("DATE", "DATETIME", "HOLIDAY"), "Date"),
    **dict.fromkeys(("HOSPITAL", "ROOM", "DEPARTMENT", "ORGANIZATION", "STREET", "CITY", "ZIP", "LOCATION-OTHER",
                     "LOCATION", "LOC", "ADDRESS", "FACILITY", "COUNTY", "GPE"), "Location"),
    **dict.fromkeys(("PHONE", "FAX", "PAGER", "TELEPHONE"), "Phone"),
    "AGE": "Age",
    **dict.fromkeys(("EMAIL", "URL", "IPADDR", "IPADDRESS", "SSN", "MEDICALRECORD", "MRN", "HEALTHPLAN", "ACCOUNT",
                     "LICENSE", "VEHICLE", "DEVICE", "BIOID", "IDNUM", "ID", "CONTACT", "OTHER"), "Other"),
    **dict.fromkeys(("STATE", "COUNTRY", "PROFESSION", "NATIONALITY", "DATEYEAR", "YEAR"), "Unscored"),
}
_PHYSIONET_TYPES = frozenset(PHI_TYPE_OF_LABEL.values())
_I2B2_PATIENT = r"^(\d+)-\d+$"


class _AnnotatedNotesReader(Reader):
    """What both formats share: label mapping, patient ids, the gold check and the report's counts."""

    allowed_options = frozenset({"label_map", "patient_pattern"})
    default_patient_pattern = ""

    def __init__(self, on_error="fail", **options):
        super().__init__(on_error, **options)
        extra = options.get("label_map") or {}
        if not isinstance(extra, dict) or any(v not in _PHYSIONET_TYPES for v in extra.values()):
            raise ConfigError(f"label_map must map labels to one of {', '.join(sorted(_PHYSIONET_TYPES))}",
                              key="label_map")
        self.type_of = {**PHI_TYPE_OF_LABEL, **{str(k).upper(): v for k, v in extra.items()}}
        pattern = options.get("patient_pattern") or self.default_patient_pattern
        try:
            self.patient_re = re.compile(pattern) if pattern else None
        except re.error as err:
            raise ConfigError(f"patient_pattern is no regular expression: {err}", key="patient_pattern") from None
        self.by_type: Counter = Counter()

    def patient_of(self, stem: str) -> str:
        m = self.patient_re.search(stem) if self.patient_re else None
        if m is None:
            return stem
        return m.group(1) if m.groups() and m.group(1) else m.group(0)

    def gold(self, label: str, start: int, end: int, text: str, covered: str | None, where: dict) -> dict:
        phi_type = self.type_of.get(label.upper())
        if phi_type is None:
            raise DataError(f"unknown PHI label {label!r}; map it to a PhysioNet type with the reader option "
                            f"label_map (command line: --label-map {label}=HCPName, or Location, Date, ...); known: "
                            "i2b2 2014 types and subtypes, see PHI_TYPE_OF_LABEL", **where, field="label")
        if not 0 <= start < end <= len(text):
            raise DataError(f"offsets {start}-{end} outside the note ({len(text)} characters)", **where,
                            field="start")
        if covered is not None and text[start:end] != covered:
            raise DataError("annotated text differs from the note text at start:end", **where, field="text")
        self.by_type[phi_type] += 1
        return {"type": phi_type, "start": start, "end": end, "phrase": text[start:end], "label": label}

    def note(self, file: Path, text: str, phi: list[dict]) -> Record:
        return make_record(file=str(file), id=f"{self.name}-{file.stem}", kind="note", source=self.name, text=text,
                           patient_id=self.patient_of(file.stem), meta={"note": file.stem, "phi": phi})

    def finish(self) -> None:
        self.report.notes["phi"] = sum(self.by_type.values())
        self.report.notes["phi_by_type"] = dict(self.by_type)


@READERS.register("brat_deid")
class BratDeidReader(_AnnotatedNotesReader):
    """brat standoff: ``NAME.txt`` + ``NAME.ann`` per note (module docstring); a ``.txt`` without ``.ann`` is
    unannotated (``meta["phi"] = None``)."""

    name = "brat_deid"
    description = "brat standoff PHI annotations: NAME.txt + NAME.ann per note (T lines: LABEL START END)"

    def _read(self, path: str | os.PathLike) -> Iterator[Record]:
        for file in resolve_files(path, ["*.txt"], self.name):
            self.report.rows += 1
            self.report.files.append(str(file))
            try:
                with open(file, encoding="utf-8-sig", newline="") as f:
                    text = f.read()
            except UnicodeDecodeError as err:
                self.bad(DataError(f"not valid UTF-8 at byte {err.start}", file=str(file)), "not UTF-8")
                continue
            ann = file.with_suffix(".ann")
            try:
                phi = self._annotations(ann, text) if ann.is_file() else None
                rec = self.note(file, text, phi)
            except DataError as err:
                self.bad(err, reason_of(err))
                continue
            yield rec
        self.finish()

    def _annotations(self, ann: Path, text: str) -> list[dict]:
        self.report.files.append(str(ann))
        out: list[dict] = []
        with open(ann, encoding="utf-8-sig", newline="") as f:
            lines = f.read().split("\n")
        for lineno, line in enumerate(lines, start=1):
            line = line.rstrip("\r")
            if not line.startswith("T"):
                continue  # relations, events, attributes, notes: not spans
            where = {"file": str(ann), "line": lineno}
            parts = line.split("\t")
            if len(parts) < 2:
                raise DataError("expected 'T<id><TAB>LABEL START END<TAB>text'", **where, field="span")
            label, _, offsets = parts[1].partition(" ")
            fragments = []
            for piece in offsets.split(";"):
                bounds = piece.split()
                if len(bounds) != 2 or not all(b.isdigit() for b in bounds):
                    raise DataError("expected 'LABEL START END[;START END...]'", **where, field="span")
                fragments.append((int(bounds[0]), int(bounds[1])))
            # checked against the note for a single fragment (brat joins discontinuous fragments' text)
            covered = parts[2] if len(parts) > 2 and len(fragments) == 1 else None
            for start, end in fragments:
                out.append(self.gold(label, start, end, text, covered, where))
        return out


@READERS.register("i2b2_deid")
class I2b2DeidReader(_AnnotatedNotesReader):
    """i2b2 / n2c2 2014 de-identification XML: one ``NAME.xml`` per note, ``<TEXT>`` and ``<TAGS>`` (module
    docstring)."""

    name = "i2b2_deid"
    description = "i2b2/n2c2 2014 de-identification XML: <TEXT> with <TAGS> (start, end, text, TYPE) per note"
    default_patient_pattern = _I2B2_PATIENT

    def _read(self, path: str | os.PathLike) -> Iterator[Record]:
        for file in resolve_files(path, ["*.xml"], self.name):
            self.report.rows += 1
            self.report.files.append(str(file))
            try:
                rec = self._note(file)
            except DataError as err:
                self.bad(err, reason_of(err))
                continue
            yield rec
        self.finish()

    def _note(self, file: Path) -> Record:
        try:
            root = ET.parse(file).getroot()
        except ET.ParseError as err:
            raise DataError(f"not well-formed XML ({err.msg})", file=str(file), line=err.position[0]) from None
        node = root.find("TEXT")
        if node is None:
            raise DataError("no <TEXT> element", file=str(file), field="TEXT")
        text = node.text or ""
        tags = root.find("TAGS")
        phi = None
        if tags is not None:
            phi = []
            for i, tag in enumerate(tags, start=1):
                where = {"file": str(file), "record": f"TAGS element {i} ({tag.tag})"}
                label = tag.get("TYPE") or tag.tag
                try:
                    start, end = int(tag.get("start", "")), int(tag.get("end", ""))
                except ValueError:
                    raise DataError("start and end must be integers", **where, field="start") from None
                phi.append(self.gold(label, start, end, text, tag.get("text"), where))
        return self.note(file, text, phi)


FORMATS: dict[str, str] = {"physionet": "physionet_deid", "brat": "brat_deid", "i2b2": "i2b2_deid"}


def detect_format(path: str | os.PathLike) -> str:
    """``physionet``, ``brat`` or ``i2b2`` for an annotated-notes folder or file, from the files it holds.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()); _ = (d / "a.xml").write_text("<deIdi2b2/>"); detect_format(d)
        'i2b2'
    """
    p = Path(path)
    if p.is_file():
        return {".text": "physionet", ".xml": "i2b2", ".txt": "brat", ".ann": "brat"}.get(p.suffix, "physionet")
    if not p.is_dir():
        raise DataError("no such file or folder", file=str(p))
    if (p / "id.text").is_file():
        return "physionet"
    found = [f for f in ("i2b2", "brat") if next(p.rglob("*.xml" if f == "i2b2" else "*.ann"), None) is not None]
    if len(found) != 1:
        what = "both .xml and .ann files" if found else "no id.text, .ann or .xml file"
        raise DataError(f"cannot tell the annotation format ({what}); pass the format (physionet, brat, i2b2)",
                        file=str(p))
    return found[0]


def read_annotated(path: str | os.PathLike, fmt: str = "auto", **options) -> tuple[list[Record], str]:
    """Every note of an annotated folder (PhysioNet deid, brat or i2b2 2014; ``auto`` detects it) and the reader's
    name. ``options`` go to the brat / i2b2 readers (``label_map``, ``patient_pattern``); a bad row stops the read
    with an error naming file, line and field.

    Example:
        >>> recs, reader = read_annotated("data/physionet-deid")  # doctest: +SKIP
        >>> reader, len(recs)  # doctest: +SKIP
        ('physionet_deid', 1450)
    """
    from clinforge.data.readers import get_reader

    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt not in FORMATS:
        raise ConfigError(f"unknown annotation format {fmt!r}; valid: auto, {', '.join(FORMATS)}", key="format")
    options = {k: v for k, v in options.items() if v}
    if fmt == "physionet" and options:
        raise ConfigError(f"{', '.join(sorted(options))}: only for brat and i2b2 annotations", key=sorted(options)[0])
    reader = get_reader(FORMATS[fmt], **options)
    return list(reader.read(path)), reader.name
