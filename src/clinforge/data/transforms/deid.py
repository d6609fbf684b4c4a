"""The ``deid`` transform: de-identify every free-text field of every Record (Safe Harbor, see data/deid).

Fields rewritten in place: ``text``, ``question``, ``context``, ``answer`` (not of MCQ records: a letter),
``target``, ``chosen``, ``rejected``, every ``choices`` item, every ``messages`` and ``prompt`` turn — the fields
``Record.texts()`` lists — and, with ``meta="deid"`` (default), every string inside ``meta`` (readers keep source
columns there, which may hold names); a meta key that names its value (``patient_firstname``, ``mrn``, ``dob``,
``phone``, ...) has its whole value replaced even without context. ``record.patient_id`` keys surrogate consistency and the date offset.
The report gives counts only (records, fields changed, PHI spans by type), never the text.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from clinforge.core.errors import ConfigError
from clinforge.data.deid import Deidentifier, Span
from clinforge.data.deid.patient_ids import KEY_ENV, PATIENT_ID_MODES, PatientPseudonymizer
from clinforge.data.deid.phi_in_names import phi_in_name
from clinforge.data.deid.recognizers import DEFAULT_RECOGNIZERS
from clinforge.data.records import Message, Record
from clinforge.data.transforms.base import TRANSFORMS, Transform

META_MODES = ("deid", "keep", "drop")
RECORD_ID_MODES = ("keep", "pseudonymize")
# A meta key that says its whole value is one identifier ("patient_firstname": "Brian"): no context is needed.
META_KEY_TYPES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?:patient|doctor|physician|provider|author|nurse|attending|first|last|family|given|middle|sur|"
                r"maiden|full|person|contact|guardian|relative)_?name$", re.I), "NAME"),
    (re.compile(r"(?:^|_)(?:mrn|medical_record(?:_number)?)$", re.I), "MRN"),
    (re.compile(r"(?:^|_)ssn$", re.I), "SSN"),
    # hospital visit and billing numbers (MIMIC's hadm_id, Epic's CSN, a FIN): "any other unique identifying number"
    (re.compile(r"(?:^|_)(?:encounter|visit|admission|hadm|csn|fin|accession|account|acct)_?(?:id|num(?:ber)?|no)?$",
                re.I), "ID"),
    (re.compile(r"(?:^|_)(?:dob|birth_?date|date_of_birth)$", re.I), "DATE"),
    (re.compile(r"(?:^|_)(?:phone|fax|mobile|telephone)(?:_number)?$", re.I), "PHONE"),
    (re.compile(r"(?:^|_)e_?mail$", re.I), "EMAIL"),
    (re.compile(r"(?:^|_)(?:street_)?address$", re.I), "ADDRESS"),
)


@TRANSFORMS.register("deid")
class DeidTransform(Transform):
    """De-identify records.

    Options: ``mode`` (mask | redact | surrogate, default mask), ``seed`` (0), ``meta`` (deid | keep | drop,
    default deid), ``patient_ids`` (pseudonymize | keep, default pseudonymize), ``ner_model`` (a local PHI tagger
    folder, e.g. from ``clinforge data deid-train``, joined to the rules with the gate saved in it, as
    ``clinforge data deid --ner-model`` does), ``ner_int8`` (true: that tagger with int8 linear layers, faster and
    not exact, as ``--ner-int8``), and any ``Deidentifier`` keyword (``entities``, ``min_score``,
    ``allow``, ``redact_with``, ``site_terms``: the path of a site list, as ``--site-terms``).

    ``patient_ids: pseudonymize`` replaces ``record.patient_id`` (often an MRN, itself an identifier) with
    ``pt-`` + the first 16 hex digits of HMAC-SHA256(key, id). The key is ``$CLINFORGE_DEID_KEY`` when set (ids stay
    linkable across runs by whoever holds the key), else a random key made for this transform and never written
    anywhere (ids are consistent within the run, so patient-level splits still work, and unlinkable across runs). A
    plain hash would not do: MRNs are short, and hashing every possible MRN takes seconds.

    ``record_ids`` (keep | pseudonymize, default keep): a record id goes into the dataset as it came, and exports
    often build it from an MRN, a date or a name (``4456781_2021-03-14``). The step counts the ids in which the rules
    find PHI (report ``record_ids_with_phi``; ``clinforge data prepare`` warns); ``pseudonymize`` replaces every id
    with ``rec-`` + a keyed pseudonym under the patient-id key (set ``$CLINFORGE_DEID_KEY`` for ids, and a split
    anchored on them, that agree across runs).

    Example:
        >>> t = DeidTransform(mode="mask")
        >>> out = list(t.apply([Record(id="n1", kind="note", text="Dr. Graves saw Martha Collins on 03/04/2021.")]))
        >>> out[0].text
        'Dr. [NAME] saw [NAME] on [DATE].'
        >>> t.report()["phi_by_type"]
        {'DATE': 1, 'NAME': 2}
    """

    name = "deid"
    one_to_one = True  # one record out per record in, in order (see Transform.one_to_one)
    deterministic = True  # under a stored key; a per-run key is this step's resume_blocker

    def __init__(self, **options: Any):
        super().__init__(**options)
        opts = dict(options)
        self.meta_mode = opts.pop("meta", "deid")
        if self.meta_mode not in META_MODES:
            raise ConfigError(f"deid option meta={self.meta_mode!r} is not one of {', '.join(META_MODES)}",
                              key="meta")
        if "surrogate_key" in opts:  # a recipe is copied into run.json and the data card
            raise ConfigError(f"a surrogate key does not belong in a recipe (it is written to the run record); set "
                              f"${KEY_ENV} instead", key="surrogate_key")
        self.patient_ids = opts.pop("patient_ids", "pseudonymize")
        if self.patient_ids not in PATIENT_ID_MODES:
            raise ConfigError(f"deid option patient_ids={self.patient_ids!r} is not one of "
                              f"{', '.join(PATIENT_ID_MODES)}", key="patient_ids")
        self.record_ids = opts.pop("record_ids", "keep")
        if self.record_ids not in RECORD_ID_MODES:
            raise ConfigError(f"deid option record_ids={self.record_ids!r} is not one of "
                              f"{', '.join(RECORD_ID_MODES)}", key="record_ids")
        self.record_ids_with_phi = 0  # record ids in which the rules find PHI (an MRN, a date, a name)
        self._id_phi: dict[str, bool] = {}
        self._ids = PatientPseudonymizer()
        self.workers = opts.pop("workers", 1)
        if not isinstance(self.workers, int) or isinstance(self.workers, bool) or self.workers < 1:
            raise ConfigError(f"deid option workers must be a whole number >= 1, not {self.workers!r}", key="workers")
        # what a worker needs to build the same step (patient ids stay here: their key is this process's). In
        # surrogate mode the workers only detect (in mask mode) and this process makes the surrogates from their
        # detections, in input order: a surrogate depends on the patient's earlier records, and on the key.
        self._worker_options = {k: v for k, v in options.items() if k not in ("workers", "patient_ids", "record_ids")}
        self._surrogates_here = self.workers > 1 and opts.get("mode", "mask") == "surrogate"
        if self._surrogates_here:
            self._worker_options["mode"] = "mask"
        self._recording: list[list[Span]] | None = None
        self._replaying: Iterator[list[Span]] | None = None
        self.ner_model = opts.pop("ner_model", None)
        self.site_terms = opts.get("site_terms")
        self.ner_int8 = opts.pop("ner_int8", False)
        if not isinstance(self.ner_int8, bool):
            raise ConfigError(f"deid option ner_int8 must be true or false, not {self.ner_int8!r}", key="ner_int8")
        if self.ner_int8 and self.ner_model is None:
            raise ConfigError("deid option ner_int8 needs ner_model (the tagger it quantises)", key="ner_int8")
        from clinforge.data.deid.deidentifier import check_recognizer_options

        check_recognizer_options(opts.get("recognizers") or DEFAULT_RECOGNIZERS, {
            k: v for k, v in opts.items() if k not in ("mode", "seed", "recognizers", "entities", "min_score", "allow",
                                                        "redact_with", "mask_format")},
            also_valid=("meta", "patient_ids", "record_ids", "ner_model", "ner_int8", "workers"))
        if self.ner_model is not None:  # the rules plus the tagger, the union removed (docs/deid.md)
            from clinforge.data.deid.ner import TransformersNerRecognizer

            opts["recognizers"] = [*DEFAULT_RECOGNIZERS, TransformersNerRecognizer(model=str(self.ner_model),
                                                                                       int8=self.ner_int8)]
        self.deid = Deidentifier(mode=opts.pop("mode", "mask"), seed=int(opts.pop("seed", 0)), **opts)
        self.phi: Counter[str] = Counter()
        self.fields_changed = 0
        self.records_changed = 0

    def input_paths(self) -> list[str]:
        """The tagger folder (``ner_model``) and the site list (``site_terms``), for the run record's input hashes."""
        return [str(p) for p in (self.ner_model, self.site_terms) if p is not None]

    def _count(self, result) -> None:
        if result.spans:
            self.phi.update(s.entity_type for s in result.spans)
            self.fields_changed += 1

    def _meta_names(self, value: Any, key: str = "") -> list[str]:
        """Values of meta keys that name a person (``patient_firstname``): known names of the record."""
        if isinstance(value, dict):
            return [n for k, v in value.items() for n in self._meta_names(v, str(k))]
        if isinstance(value, list):
            return [n for v in value for n in self._meta_names(v, key)]
        if isinstance(value, str) and value.strip() and META_KEY_TYPES[0][0].search(key):
            return [value.strip()]
        return []

    def _clean_meta(self, value: Any, patient_id: str | None, known: list[str], key: str = "") -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool) and key and any(
                pattern.search(key) for pattern, _ in META_KEY_TYPES):
            value = str(value)  # a number under an identifier key (hadm_id: 123) is the identifier
        if isinstance(value, str):
            if not value.strip():
                return value
            etype = next((t for pattern, t in META_KEY_TYPES if pattern.search(key)), None)
            if etype is not None:
                original = value.strip()
                self.phi[etype] += 1
                self.fields_changed += 1
                span = Span(0, len(original), etype, 1.0, f"meta key {key}", "meta")
                return self.deid.replacement(span, original, patient_id)
            (result,) = self._deidentify(([value]), patient_id, known)
            self._count(result)
            return result.text
        if isinstance(value, dict):
            return {k: self._clean_meta(v, patient_id, known, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._clean_meta(v, patient_id, known, key) for v in value]
        return value

    def apply_one(self, record: Record) -> Record:
        """De-identify one record (returns a new Record; the input is not modified).

        All free-text fields of the record are cleaned together (``Deidentifier.deidentify_many``), so a name
        found in one field, or given by a name column in ``meta``, is removed from every field.
        """
        return self._with_ids(record, self._clean_record(record))

    def _with_ids(self, record: Record, cleaned: Record) -> Record:
        """The cleaned record with the step's patient pseudonym and record id (made in the main process, under its
        key); counts record ids that hold PHI."""
        update: dict[str, Any] = {}
        if record.patient_id is not None and self.patient_ids == "pseudonymize":
            update["patient_id"] = self.pseudonym(record.patient_id)
        if record.id not in self._id_phi:
            if len(self._id_phi) > 100_000:  # ids rarely repeat; the cache only spares repeated detection
                self._id_phi.clear()
            self._id_phi[record.id] = bool(phi_in_name(record.id, self.deid))
        self.record_ids_with_phi += self._id_phi[record.id]
        if self.record_ids == "pseudonymize":
            update["id"] = self._ids.pseudonym(record.id, prefix="rec-")
        return cleaned.model_copy(update=update) if update else cleaned

    def _deidentify(self, texts: list[str], patient_id: str | None, known: list[str]) -> list[Any]:
        """``Deidentifier.deidentify_many``, with its detections recorded (``_recording``: a surrogate-mode worker,
        which detects in mask mode) or replayed (``_replaying``: the main process, which makes the surrogates in
        input order from a worker's detections)."""
        if self._replaying is not None:
            spans = next(self._replaying)
        else:
            spans = self.deid.detect_many(texts, known)
            if self._recording is not None:
                self._recording.append(spans)
        return [self.deid.apply_spans(t, found, patient_id) for t, found in zip(texts, spans, strict=True)]

    def _clean_record(self, record: Record) -> Record:
        """``apply_one`` without the patient pseudonym (what a worker process does)."""
        pid = record.patient_id
        before = self.fields_changed
        # (field, index or None, text) for every free-text slot of the record
        slots: list[tuple[str, int | None, str]] = []
        for field in ("text", "question", "context", "target", "chosen", "rejected"):
            value = getattr(record, field)
            if value:
                slots.append((field, None, value))
        if record.answer and record.kind != "mcq":
            slots.append(("answer", None, record.answer))
        for i, choice in enumerate(record.choices or []):
            if choice:
                slots.append(("choices", i, choice))
        for field in ("messages", "prompt"):
            for i, turn in enumerate(getattr(record, field) or []):
                if turn.content:
                    slots.append((field, i, turn.content))
        known = self._meta_names(record.meta) if self.meta_mode != "keep" else []
        results = self._deidentify([t for _, _, t in slots], pid, known)
        update: dict[str, Any] = {}
        if record.choices:
            update["choices"] = list(record.choices)
        for field in ("messages", "prompt"):
            if getattr(record, field):
                update[field] = [Message(role=m.role, content=m.content) for m in getattr(record, field)]
        for (field, index, _), result in zip(slots, results, strict=True):
            self._count(result)
            if index is None:
                update[field] = result.text
            elif field == "choices":
                update["choices"][index] = result.text
            else:
                update[field][index] = Message(role=update[field][index].role, content=result.text)
        if self.meta_mode == "drop":
            update["meta"] = {}
        elif self.meta_mode == "deid" and record.meta:
            update["meta"] = self._clean_meta(record.meta, pid, known)
        self.records_changed += self.fields_changed > before
        return record.model_copy(update=update)

    @property
    def per_run_patient_ids(self) -> bool:
        """Whether this step's patient pseudonyms change from run to run (random key; a later ``split`` then
        anchors groups on record ids, see ``clinforge.data.transforms.split``)."""
        return self.patient_ids == "pseudonymize" and self._ids.per_run

    def pseudonym(self, patient_id: str) -> str:
        """The keyed pseudonym of a patient id (see the class docstring)."""
        return self._ids.pseudonym(patient_id)

    def apply(self, records: Iterable[Record]) -> Iterator[Record]:
        if self.workers > 1:
            yield from self._apply_in_workers(records)
            return
        for record in records:
            self.n_in += 1
            out = self.apply_one(record)
            self.n_out += 1
            yield out

    def _apply_in_workers(self, records: Iterable[Record]) -> Iterator[Record]:
        """``apply`` with ``workers`` processes cleaning the records (``parallel_deid.ordered_map``: in input order,
        the same records and counts as one process); the pseudonyms are made here, under this step's key."""
        from clinforge.data.deid.parallel_deid import (
            clean_in_worker,
            detect_in_worker,
            ordered_map,
            start_record_pool,
        )

        def counted(it: Iterable[Record]) -> Iterator[Record]:
            for record in it:
                self.n_in += 1
                yield record

        pool = start_record_pool(self.workers, self._worker_options)
        try:
            # (no unparsed-date count to carry: only surrogate mode has one, and it does not run in workers)
            work = detect_in_worker if self._surrogates_here else clean_in_worker
            for record, result in ordered_map(pool, ((r, r) for r in counted(records)), work,
                                              batch=32 * self.workers):
                if self._surrogates_here:  # the same record again, its detections replayed, surrogates made here
                    self._replaying = iter(result)
                    try:
                        cleaned = self._clean_record(record)
                    finally:
                        self._replaying = None
                else:
                    cleaned, phi, fields, changed = result
                    self.phi.update(phi)
                    self.fields_changed += fields
                    self.records_changed += changed
                cleaned = self._with_ids(record, cleaned)
                self.n_out += 1
                yield cleaned
        except BaseException:
            pool.terminate()
            raise
        pool.close()
        pool.join()

    # ---- resuming a stopped ``data prepare`` (``clinforge.data.prepare_resume``): nothing here holds PHI
    def resume_blocker(self) -> str | None:
        """Why this step's progress cannot be saved for a resume (``None`` when it can): a per-run surrogate or
        pseudonym key is never stored (a resumed run would give the same patient two sets of surrogates or
        pseudonyms). Surrogate mode's memory of the roles names took is saved as keyed tags, never as names."""
        if self.deid.surrogates is not None and self.deid.surrogates.per_run:
            return (f"surrogates are drawn under a random per-run key, which is never stored; set ${KEY_ENV} to make "
                    "the run resumable")
        if self.per_run_patient_ids:
            return (f"patient ids are pseudonymised under a random per-run key, which is never stored; set "
                    f"${KEY_ENV} (or patient_ids: keep) to make the run resumable")
        if self.record_ids == "pseudonymize" and self._ids.per_run:
            return (f"record ids are pseudonymised under a random per-run key, which is never stored; set "
                    f"${KEY_ENV} to make the run resumable")
        return None

    def resume_fingerprint(self) -> dict[str, Any]:
        """What besides the options decides this step's output: the tagger folder, the site list's content and a
        tag of the pseudonym key (``PatientPseudonymizer.key_check``, not the key)."""
        from clinforge.core.partial_output import content_hash, file_fingerprint

        return {"ner_model": file_fingerprint(self.ner_model) if self.ner_model is not None else None,
                "site_terms": content_hash(self.site_terms) if self.site_terms is not None else None,
                "patient_key": self._ids.key_check if "pseudonymize" in (self.patient_ids, self.record_ids) else None,
                "surrogate_key": self.deid.surrogates.key_check if self.deid.surrogates is not None else None}

    def progress_state(self) -> dict[str, Any]:
        """The counts of the records yielded so far (JSON), for a checkpoint (read between two yields, when they
        count exactly the records out)."""
        state = {"out": self.n_out, "phi": dict(self.phi), "fields_changed": self.fields_changed,
                 "records_changed": self.records_changed, "record_ids_with_phi": self.record_ids_with_phi,
                 "unparsed_dates": self.deid.unparsed_dates}
        if self.deid.surrogates is not None:  # a mark only: the memory itself is written by ``checkpoint_state``
            state["roles_mark"] = list(self.deid.surrogates.roles_mark())
        return state

    def checkpoint_state(self, state: dict[str, Any]) -> dict[str, Any]:
        """``state`` (from ``progress_state``) with what it marks written out: surrogate mode's role memory as it
        was then (keyed tags, roles, genders)."""
        if "roles_mark" not in state:
            return state
        return {**state, "roles": self.deid.surrogates.roles_state(tuple(state["roles_mark"]))}

    def add_progress(self, state: dict[str, Any]) -> None:
        """Add the counts an interrupted run saved (``progress_state``) to this run's, for the data card."""
        self.n_in += state["out"]
        self.n_out += state["out"]
        self.phi.update(state["phi"])
        self.fields_changed += state["fields_changed"]
        self.records_changed += state["records_changed"]
        self.record_ids_with_phi += state["record_ids_with_phi"]
        if self.deid.surrogates is not None:
            self.deid.surrogates.unparsed_dates += state.get("unparsed_dates", 0)
            if "roles" in state:
                self.deid.surrogates.restore_roles(state["roles"])

    def report(self) -> dict[str, Any]:
        """Counts for the data card: records in/out and changed, fields changed, PHI spans by type."""
        out = {"in": self.n_in, "out": self.n_out, "mode": self.deid.mode, "records_changed": self.records_changed,
               "fields_changed": self.fields_changed, "phi_by_type": dict(sorted(self.phi.items())),
               "phi_total": sum(self.phi.values()), "unparsed_dates_masked": self.deid.unparsed_dates,
               "patient_ids": (self._ids.describe()
                               if self.patient_ids == "pseudonymize" else "kept as in the source"),
               "record_ids": (self._ids.describe() if self.record_ids == "pseudonymize" else "kept as in the source"),
               "record_ids_with_phi": self.record_ids_with_phi}
        if self.deid.surrogate_key_source is not None:  # where the key came from, never the key
            out["surrogate_key"] = f"HMAC-SHA256 with {self.deid.surrogate_key_source}"
        if self.ner_model is not None:  # which tagger, and which of its entities joined the rules
            out["ner_model"] = {"path": str(self.ner_model), "gate": self.deid.recognizers[-1].gate.to_json(),
                                "int8": self.ner_int8}
        return out
