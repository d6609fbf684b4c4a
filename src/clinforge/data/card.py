"""The data card of a prepared dataset: what went in, what each step did, and what came out.

``data_card.json`` is the machine-readable card; ``data_card.md`` renders the same content for people. Neither
quotes record text (only ids, counts and the readers' file/line/field error messages), so a card never leaks PHI.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections import Counter, defaultdict
from typing import Any

from clinforge import __version__
from clinforge.data.records import Record
from clinforge.data.transforms.base import Transform

DEFINITIONS = {
    "dedup": "exact = same kind, same images and same normalised text (NFKC, lower case, no punctuation); near = MinHash "
             "Jaccard estimate of word shingles >= threshold with an earlier kept record (LSH candidates, verified); "
             "the first occurrence is kept.",
    "contamination": "a training record is contaminated by a benchmark when one of its fields shares a word n-gram "
                     "(n=13 by default; lm-evaluation-harness Janitor normalisation: ASCII lower case, punctuation "
                     "deleted) with any benchmark field; benchmark fields shorter than n but >= min_words are matched "
                     "whole.",
    "filter": "too_short / too_long by words or characters; not_english by a function-word-ratio heuristic; "
              "boilerplate by regular expressions; each record counted under its first failing reason.",
    "split": "patient-level: every record of a patient_id in one split (records without one are their own group); "
             "hash method: sha256(seed:group) picks the split; shuffle method: seeded greedy fill to the fractions; "
             "a group is named by its patient id, or (anchor record: after per-run patient pseudonyms) by its "
             "record ids, so the same input gives the same split.",
    "chat_format": "records converted to user/assistant messages per kind; notes and documents kept as plain text "
                   "for continued pre-training.",
    "deid": "PHI spans found and replaced (HIPAA Safe Harbor identifiers); counts by entity type.",
    "make_preference": "preference pairs from gold answers: wrong_option = gold MCQ option (chosen) vs a seeded "
                       "random wrong option (rejected); mismatched_answer = a record's own answer (chosen) vs the "
                       "answer of another record of the same split (rejected, seeded derangement).",
}


def _phi_by_type(label: str, report: dict[str, Any]) -> dict[str, int]:
    """PHI counts by entity type from a deid step's report (its ``phi_by_type``); no other key is guessed at."""
    phi = report.get("phi_by_type")
    if not isinstance(phi, dict):
        from clinforge.core.errors import ClinforgeError

        raise ClinforgeError(f"step {label}: a deid transform must report phi_by_type (counts by entity type) for "
                             "the data card")
    return phi


def hide_phi_file_names(report: dict[str, Any]) -> dict[str, Any]:
    """A source's report as the card shows it: when a file name it lists holds what looks like PHI (exports name
    files by MRN and date), the list becomes its count and a digest, and the error examples name such a file by its
    number. The card is meant to travel with the dataset; it must not carry the names.

    Example:
        >>> rep = hide_phi_file_names({"path": "/x", "files": ["/x/note_1.txt", "/x/4456781_2021-03-14.txt"],
        ...                            "error_examples": ["/x/4456781_2021-03-14.txt, line 1: empty"]})
        >>> rep["files"]["count"], rep["error_examples"]
        (2, ['file 2 of 2 of this source (its name is not shown), line 1: empty'])
    """
    from pathlib import Path

    from clinforge.data.deid.phi_in_names import names_with_phi

    files = [str(f) for f in report.get("files") or []]
    root = Path(str(report.get("path", "")))
    rels = [Path(f).relative_to(root) if Path(f).is_relative_to(root) and Path(f) != root else Path(Path(f).name)
            for f in files]
    named, types = names_with_phi(rels)
    if not named:
        return report
    out = dict(report)
    out["files"] = {"count": len(files), "sha256": hashlib.sha256("\n".join(sorted(files)).encode()).hexdigest(),
                    "not_listed": f"{named} file names hold what looks like PHI "
                                  f"({', '.join(f'{t} {n}' for t, n in sorted(types.items()))})"}
    examples = []
    for example in report.get("error_examples", []):
        for i in sorted(range(len(files)), key=lambda k: -len(files[k])):  # longest first: no prefix clash
            example = example.replace(files[i], f"file {i + 1} of {len(files)} of this source (its name is not shown)")
        examples.append(example)
    out["error_examples"] = examples
    return out


def build_card(*, recipe: dict[str, Any], sources: dict[str, Any], steps: list[tuple[str, Transform]],
               splits: dict[str, list[Record]], crossing: dict[str, list[str]] | None) -> dict[str, Any]:
    """The data card as a dict (see the module docstring).

    Example:
        >>> card = build_card(recipe={"name": "x", "seed": 0}, sources={}, steps=[], splits={"all": []}, crossing=None)
        >>> card["records_out"], card["splits"]
        (0, {'all': {'records': 0, 'patients': 0, 'kinds': {}}})
    """
    step_cards = []
    phi: Counter = Counter()
    saw_deid = False
    dups = {"exact": 0, "near": 0}
    saw_dedup = False
    contamination: dict[str, Any] = {}
    for label, t in steps:
        rep = t.report()
        passed = getattr(t, "kinds_passed_through", 0) if getattr(t, "only_kinds", None) else 0
        n_in, n_out = rep.get("in", t.n_in) + passed, rep.get("out", t.n_out) + passed
        entry = {"step": label, "transform": t.name, "in": n_in, "out": n_out, "removed": n_in - n_out,
                 # which kinds the step was given (a step with `kinds:` sees only those; the others pass through)
                 "applied_to_kinds": list(t.only_kinds) if getattr(t, "only_kinds", None) else "all",
                 "kinds_processed": dict(getattr(t, "kinds_processed", None) or {}), "report": rep}
        if getattr(t, "only_kinds", None):
            entry.update(passed_through=passed, passed_through_by_kind=dict(getattr(t, "passed_through_by_kind", {})))
        step_cards.append(entry)
        if t.name == "deid":
            saw_deid = True
            phi.update(_phi_by_type(label, rep))
        elif t.name == "dedup":
            saw_dedup = True
            dups["exact"] += rep.get("exact_removed", 0)
            dups["near"] += rep.get("near_removed", 0)
        elif t.name == "contamination":
            for bench, r in rep.get("benchmarks", {}).items():
                contamination[bench] = {k: r[k] for k in ("items", "train_records_hit", "benchmark_items_hit")}
                # rows of the benchmark file its reader skipped (on_error: skip), which were not checked against
                contamination[bench]["skipped_rows"] = dict(r.get("read", {}).get("skipped", {}))
    split_cards = {}
    for name, recs in splits.items():
        split_cards[name] = {"records": len(recs), "patients": len({r.patient_id for r in recs if r.patient_id}),
                             "kinds": dict(Counter(r.kind for r in recs))}
    skipped: dict[str, int] = defaultdict(int)
    for rep in sources.values():
        for reason, n in rep.get("skipped", {}).items():
            skipped[reason] += n
    return {
        "recipe": recipe.get("name"),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "clinforge_version": __version__,
        "seed": recipe.get("seed"),
        "sources": {label: hide_phi_file_names(rep) for label, rep in sources.items()},
        "records_in": sum(rep.get("records", 0) for rep in sources.values()),
        "skipped_rows": dict(skipped),
        "steps": step_cards,
        "phi_by_type": dict(phi) if saw_deid else None,
        "duplicates_removed": dups if saw_dedup else None,
        "contamination": contamination or None,
        "splits": split_cards,
        "groups_crossing_splits": None if crossing is None else len(crossing),
        "split_fingerprint": None if crossing is None else split_fingerprint(splits),
        "records_out": sum(len(r) for r in splits.values()),
        "definitions": {t.name: DEFINITIONS[t.name] for _, t in steps if t.name in DEFINITIONS},
    }


def split_fingerprint(splits: dict[str, list[Record]]) -> str:
    """sha256 over the sorted ``split<TAB>record id`` lines: two runs drew the same split iff the values match.

    Example:
        >>> a = {"train": [Record(id="n1", kind="note", text="x")], "test": [Record(id="n2", kind="note", text="y")]}
        >>> b = {"test": [Record(id="n2", kind="note", text="y")], "train": [Record(id="n1", kind="note", text="x")]}
        >>> split_fingerprint(a) == split_fingerprint(b), len(split_fingerprint(a))
        (True, 64)
    """
    lines = sorted(f"{name}\t{rec.id}\n" for name, recs in splits.items() for rec in recs)
    return hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()


def _md_value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_md_value(v) if not isinstance(v, dict) else '(' + _md_value(v) + ')'}"
                         for k, v in value.items()) or "none"
    if isinstance(value, list):
        return f"{len(value)} listed in data_card.json" if value and isinstance(value[0], dict) else \
            ", ".join(map(str, value)) or "none"
    return str(value)


def _reasons(counts: dict[str, int]) -> str:
    return "; ".join(f"{reason} ({n})" for reason, n in counts.items()) or "none"


def render_markdown(card: dict[str, Any]) -> str:
    """``data_card.md`` from the card dict.

    Example:
        >>> card = build_card(recipe={"name": "x", "seed": 0}, sources={}, steps=[], splits={"all": []}, crossing=None)
        >>> render_markdown(card).splitlines()[0]
        '# Data card: x'
    """
    out = [f"# Data card: {card['recipe']}", "",
           f"Prepared {card['created']} with clinforge {card['clinforge_version']}, seed {card['seed']}. "
           f"Records in: {card['records_in']}; records out: {card['records_out']}.", "", "## Sources", "",
           "| source | reader | rows | records | skipped |", "|---|---|---|---|---|"]
    for label, s in card["sources"].items():
        out.append(f"| {label} | {s.get('reader')} | {s.get('rows', '')} | {s.get('records', '')} | "
                   f"{_reasons(s.get('skipped', {}))} |")
    if card["skipped_rows"]:
        out += ["", "Skipped rows by reason: " + _reasons(card["skipped_rows"]), ""]
        for s in card["sources"].values():
            out += [f"- {e}" for e in s.get("error_examples", [])]
    out += ["", "## Steps", "", "| step | in | out | removed |", "|---|---|---|---|"]
    out += [f"| {s['step']} | {s['in']} | {s['out']} | {s['removed']} |" for s in card["steps"]]
    for s in card["steps"]:
        out += ["", f"### {s['step']}", ""]
        if s["applied_to_kinds"] == "all":
            out.append(f"- applied to all kinds; records processed by kind: {_md_value(s['kinds_processed'])}")
        else:
            out.append(f"- applied to kinds {', '.join(s['applied_to_kinds'])} only; records processed by kind: "
                       f"{_md_value(s['kinds_processed'])}; passed through unchanged: "
                       f"{_md_value(s['passed_through_by_kind'])}")
        for k, v in s["report"].items():
            if k in ("in", "out"):
                continue
            if isinstance(v, dict) and any(isinstance(x, dict) for x in v.values()):
                out.append(f"- {k}:")
                out += [f"  - {name}: {_md_value(sub)}" for name, sub in v.items()]
            else:
                out.append(f"- {k}: {_md_value(v)}")
    if card["phi_by_type"] is not None:
        out += ["", "## PHI found by type", ""]
        out += [f"- {k}: {v}" for k, v in sorted(card["phi_by_type"].items())] or ["- none found"]
    if card["duplicates_removed"] is not None:
        d = card["duplicates_removed"]
        out += ["", "## Duplicates", "", f"- exact removed: {d['exact']}", f"- near removed: {d['near']}"]
    if card["contamination"] is not None:
        out += ["", "## Contamination", "", "| benchmark | items | training records hit | benchmark items hit | "
                "benchmark rows skipped |", "|---|---|---|---|---|"]
        out += [f"| {b} | {c['items']} | {c['train_records_hit']} | {c['benchmark_items_hit']} | "
                f"{_reasons(c.get('skipped_rows', {}))} |" for b, c in card["contamination"].items()]
    out += ["", "## Output", "", "| split | records | patients | kinds |", "|---|---|---|---|"]
    out += [f"| {n} | {s['records']} | {s['patients']} | {_md_value(s['kinds'])} |" for n, s in card["splits"].items()]
    if card["groups_crossing_splits"] is not None:
        out += ["", f"Patients (or id-less records) found in more than one split: {card['groups_crossing_splits']}."]
    if card.get("split_fingerprint"):
        out += ["", f"Split fingerprint (sha256 of the sorted split and record id pairs; equal in two runs that drew "
                    f"the same split): `{card['split_fingerprint']}`."]
    if card["definitions"]:
        out += ["", "## Definitions", ""] + [f"- **{k}**: {v}" for k, v in card["definitions"].items()]
    return "\n".join(out) + "\n"
