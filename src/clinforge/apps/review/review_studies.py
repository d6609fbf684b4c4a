"""Studies of the review app: building one from evaluation run directories or exchange files, assigning items to
raters (overlap K, a random order per rater, a random left/right side per pairwise assignment), and saving ratings
(upsert on the assignment, so parallel or repeated submissions leave exactly one row).

Blinding: every study item gets a code ``C`` + 8 hex digits from ``random.Random(seed)`` over the items sorted by
(source id, models); raters see only the code, the question and the answer(s). Rater ``u``'s order is
``random.Random(f"{seed}:{u}").shuffle`` of their items; the left/right side of a pairwise assignment is
``random.Random(f"{seed}:{u}:{code}").random() < 0.5`` (``swapped``: answer b on the left), stored per assignment.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from clinforge.apps.review.review_auth import audit
from clinforge.apps.review.review_db import (
    Assignment,
    PairwiseChoice,
    Rating,
    Study,
    StudyItem,
    User,
    utcnow,
)
from clinforge.core.errors import ConfigError, DataError
from clinforge.core.io import read_jsonl
from clinforge.eval.human import Candidate, load_candidates, load_judge_labels, normalize_value
from clinforge.judges.axes import AXES

KINDS = ("single", "pairwise")
PAIRWISE_QUESTION = "Which answer is better overall for the patient's question?"
MAX_COMMENT = 5000
_AXIS_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


def default_rubric() -> list[dict[str, Any]]:
    """The Med-PaLM axes (``clinforge.judges.axes.AXES``) as a rubric.

    Example:
        >>> [a["name"] for a in default_rubric()][:2]
        ['consensus', 'comprehension_error']
    """
    return [{"name": a.name, "question": a.question, "values": list(a.values), "ordered": a.ordered}
            for a in AXES.values()]


def load_rubric(path: str | Path) -> list[dict[str, Any]]:
    """A rubric from YAML or JSON: a list of ``{name, question, values, ordered}`` (or ``{axes: [...]}``).
    Errors name the file, the axis (record) and the field.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.yaml"
        >>> _ = p.write_text("- {name: clarity, question: 'Is it clear?', values: [clear, unclear]}\\n")
        >>> load_rubric(p)[0]["values"]
        ['clear', 'unclear']
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"cannot read the rubric ({exc})", file=str(path)) from None
    if isinstance(data, dict):
        data = data.get("axes")
    if not isinstance(data, list) or not data:
        raise DataError("a rubric is a non-empty list of axes (or {axes: [...]})", file=str(path))
    out, names = [], set()
    for i, axis in enumerate(data, start=1):
        if not isinstance(axis, dict):
            raise DataError("an axis must be a mapping", file=str(path), record=i)
        name = str(axis.get("name", ""))
        if not _AXIS_NAME.match(name) or name in names:
            raise DataError("must be a unique lower-case identifier (a-z, 0-9, _)", file=str(path), record=i,
                            field="name")
        values = [normalize_value(v) for v in axis.get("values") or []]
        if len(values) < 2 or None in values or len(set(values)) != len(values):
            raise DataError("needs at least two distinct non-empty values", file=str(path), record=i, field="values")
        if not isinstance(axis.get("question", ""), str):
            raise DataError("must be text", file=str(path), record=i, field="question")
        names.add(name)
        out.append({"name": name, "question": axis.get("question") or name, "values": values,
                    "ordered": bool(axis.get("ordered", False))})
    return out


def read_eval_run(run_dir: Path, label: str) -> tuple[list[Candidate], dict[str, Any]]:
    """Answers of an evaluation run directory (``items/TASK.jsonl`` rows with ``id``, ``prompt`` and a text
    ``output``) as candidates of model ``label``; rows without a text output (log-likelihood scoring) are skipped
    and counted in the returned info."""
    items_dir = run_dir / "items"
    files = sorted(p for p in items_dir.glob("*.jsonl") if ".rank" not in p.name)
    if not files:
        raise DataError("not an evaluation run (no items/TASK.jsonl)", file=str(run_dir))
    out, seen, skipped = [], set(), 0
    for path in files:
        for line, row in read_jsonl(path):
            if row.get("id") is None or not isinstance(row.get("prompt"), str):
                raise DataError("missing id or prompt", file=str(path), line=line, field="id")
            if not isinstance(row.get("output"), str):
                skipped += 1
                continue
            item_id = str(row["id"])
            if item_id in seen:
                raise DataError("duplicate item id in this run", file=str(path), line=line, field="id")
            seen.add(item_id)
            out.append(Candidate(item_id, label, row["prompt"], row["output"]))
    model = None
    run_json = run_dir / "run.json"
    if run_json.exists():
        model = (json.loads(run_json.read_text(encoding="utf-8")).get("config") or {}).get("model")
    return out, {"path": str(run_dir), "kind": "eval_run", "label": label, "model": model, "n_answers": len(out),
                 "n_skipped_no_text_output": skipped}


def check_allowed(path: Path, roots: list[Path]) -> Path:
    """``path`` resolved, if it exists and lies under one of ``roots`` (admins read server files only there).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp()).resolve()
        >>> check_allowed(d, [d.parent]) == d
        True
    """
    resolved = path.resolve()
    if roots and not any(resolved == r or r in resolved.parents for r in roots):
        raise ConfigError(f"{path} is outside the folders this server may read (serve --data-root)")
    if not resolved.exists():
        raise ConfigError(f"{path} does not exist")
    return resolved


def gather_candidates(sources: list[str], *, roots: list[Path] | None = None) -> tuple[list[Candidate], list[dict]]:
    """Candidates from run directories (model label = the folder name, made unique) and exchange JSONL files."""
    roots = [r.resolve() for r in roots or []]
    candidates: list[Candidate] = []
    infos: list[dict] = []
    labels: set[str] = set()
    for raw in sources:
        path = check_allowed(Path(raw.strip()), roots)
        if path.is_dir():
            label = path.name
            n = 2
            while label in labels:
                label, n = f"{path.name}-{n}", n + 1
            labels.add(label)
            cands, info = read_eval_run(path, label)
        else:
            cands = load_candidates(path)
            info = {"path": str(path), "kind": "exchange", "n_answers": len(cands)}
        candidates += cands
        infos.append(info)
    if not candidates:
        raise ConfigError("the sources hold no answers to rate")
    keys = [(c.item_id, c.model) for c in candidates]
    if len(set(keys)) != len(keys):
        raise ConfigError("two sources give the same (item id, model); give each model once")
    return candidates, infos


def create_study(session: Session, admin: User, *, name: str, kind: str, sources: list[str], k_raters: int,
                 seed: int = 0, rubric: list[dict[str, Any]] | None = None, judge_labels: str | None = None,
                 roots: list[Path] | None = None, limit: int | None = None) -> Study:
    """A new open study (items and blinding codes, no assignments yet); see the module docs.

    Example:
        >>> create_study(s, admin, name="pilot", kind="single", sources=["runs/a"], k_raters=2)  # doctest: +SKIP
    """
    name = (name or "").strip()
    if not name or len(name) > 200:
        raise ConfigError("a study needs a name of 1-200 characters")
    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}")
    if not 1 <= int(k_raters) <= 50:
        raise ConfigError("raters per item (K) must be between 1 and 50")
    candidates, infos = gather_candidates(sources, roots=roots)
    if limit is not None:
        keep = sorted({c.item_id for c in candidates})[:limit]
        candidates = [c for c in candidates if c.item_id in set(keep)]
    labels = {}
    if judge_labels:
        labels = load_judge_labels(check_allowed(Path(judge_labels), [r.resolve() for r in roots or []]))
        infos.append({"path": judge_labels, "kind": "judge_labels", "n": len(labels)})
    study = Study(name=name, kind=kind, rubric=rubric or default_rubric(), k_raters=int(k_raters), seed=int(seed),
                  sources=infos, created_by=admin.id)
    session.add(study)
    session.flush()
    by_item: dict[str, list[Candidate]] = {}
    for c in sorted(candidates, key=lambda c: (c.item_id, c.model)):
        by_item.setdefault(c.item_id, []).append(c)
    units: list[tuple[Candidate, Candidate | None]] = []
    for cands in by_item.values():
        if kind == "single":
            units += [(c, None) for c in cands]
        else:
            units += list(itertools.combinations(cands, 2))
    if not units:
        raise ConfigError("no pairs to compare: pairwise studies need two or more models answering the same items")
    rng, codes = random.Random(seed), set()
    for a, b in units:
        code = f"C{rng.getrandbits(32):08x}"
        while code in codes:
            code = f"C{rng.getrandbits(32):08x}"
        codes.add(code)
        session.add(StudyItem(study_id=study.id, code=code, source_id=a.item_id, question=a.question,
                              answer_a=a.answer, model_a=a.model, answer_b=b.answer if b else None,
                              model_b=b.model if b else None,
                              judge_labels=labels.get((a.item_id, a.model)) if b is None else None))
    audit(session, admin.id, "study.create", study=study.id, kind=kind, n_items=len(units))
    return study


def assign(session: Session, admin: User, study: Study, rater_ids: list[int]) -> int:
    """Give every item to ``study.k_raters`` of the raters (balanced rotation over a seeded shuffle), each rater's
    items in their own random order; returns the number of assignments. A study is assigned once."""
    if session.scalar(select(func.count()).select_from(Assignment).where(Assignment.study_id == study.id)):
        raise ConfigError("this study is assigned already")
    raters = list(session.scalars(select(User).where(User.id.in_(rater_ids), User.active.is_(True))))
    if len(raters) < study.k_raters:
        raise ConfigError(f"choose at least {study.k_raters} raters (K = {study.k_raters} raters per item)")
    raters.sort(key=lambda u: u.username)
    random.Random(study.seed).shuffle(raters)
    items = list(session.scalars(select(StudyItem).where(StudyItem.study_id == study.id).order_by(StudyItem.code)))
    per_rater: dict[int, list[StudyItem]] = {u.id: [] for u in raters}
    for i, item in enumerate(items):
        for j in range(study.k_raters):
            per_rater[raters[(i * study.k_raters + j) % len(raters)].id].append(item)
    n = 0
    for user in raters:
        mine = per_rater[user.id]
        random.Random(f"{study.seed}:{user.username}").shuffle(mine)
        for pos, item in enumerate(mine):
            swapped = study.kind == "pairwise" and random.Random(f"{study.seed}:{user.username}:{item.code}").random() < 0.5
            session.add(Assignment(study_id=study.id, item_id=item.id, rater_id=user.id, position=pos,
                                   swapped=swapped))
            n += 1
    audit(session, admin.id, "study.assign", study=study.id, n_assignments=n, raters=[u.id for u in raters])
    return n


def _insert(session: Session):
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def save_rating(session: Session, user: User, assignment_id: int, data: dict[str, Any], *, submit: bool) -> dict:
    """Validate and upsert the rating of one of ``user``'s own assignments in an open study. ``data``: ``values``
    (single: axis -> value or empty) or ``choice`` (pairwise: left/right/tie or empty), ``unsure``, ``flagged``,
    ``comment``. ``submit`` marks it done (a later autosave never un-marks it). Returns ``{"ok", "complete"}``;
    ConfigError for invalid input, LookupError for an assignment that is not the user's."""
    assignment = session.get(Assignment, int(assignment_id))
    if assignment is None or assignment.rater_id != user.id:
        raise LookupError("no such assignment")
    study = session.get(Study, assignment.study_id)
    if study.status != "open":
        raise ConfigError("this study is closed; ratings cannot change")
    comment = str(data.get("comment") or "")
    if len(comment) > MAX_COMMENT:
        raise ConfigError(f"comments are limited to {MAX_COMMENT} characters")
    unsure, flagged = bool(data.get("unsure")), bool(data.get("flagged"))
    common = {"unsure": unsure, "flagged": flagged, "comment": comment, "submitted": submit, "updated_at": utcnow()}
    insert = _insert(session)
    if study.kind == "single":
        raw = data.get("values") or {}
        if not isinstance(raw, dict):
            raise ConfigError("values must be an object of axis -> value")
        values = {}
        for axis in study.rubric:
            value = normalize_value(raw.get(axis["name"]))
            if value is not None and value not in axis["values"]:
                raise ConfigError(f"{axis['name']}: not one of {', '.join(axis['values'])}")
            values[axis["name"]] = value
        complete = unsure or all(v is not None for v in values.values())
        table, row = Rating.__table__, {"assignment_id": assignment.id, "values": values, **common}
    else:
        choice = normalize_value(data.get("choice"))
        if choice is not None and choice not in ("left", "right", "tie"):
            raise ConfigError("choice must be left, right or tie")
        winner = None
        if choice == "tie":
            winner = "tie"
        elif choice is not None:
            winner = "a" if (choice == "left") != assignment.swapped else "b"
        complete = unsure or choice is not None
        table, row = PairwiseChoice.__table__, {"assignment_id": assignment.id, "choice": choice, "winner": winner,
                                                **common}
    if submit and not complete:
        raise ConfigError("answer every question (or mark the item as unsure) before moving on")
    stmt = insert(table).values(**row)
    update = {k: stmt.excluded[k] for k in row if k not in ("assignment_id", "submitted")}
    update["submitted"] = table.c.submitted | stmt.excluded.submitted
    session.execute(stmt.on_conflict_do_update(index_elements=["assignment_id"], set_=update))
    return {"ok": True, "complete": complete}


def study_progress(session: Session, study: Study) -> dict[str, Any]:
    """Per rater: assigned, submitted, flagged counts; totals. Admin view (no item text)."""
    table = Rating if study.kind == "single" else PairwiseChoice
    rows = session.execute(
        select(User.username, func.count(Assignment.id),
               func.count(table.id).filter(table.submitted.is_(True)),
               func.count(table.id).filter(table.flagged.is_(True)))
        .join(Assignment, Assignment.rater_id == User.id)
        .outerjoin(table, table.assignment_id == Assignment.id)
        .where(Assignment.study_id == study.id).group_by(User.username).order_by(User.username)).all()
    raters = [{"username": u, "assigned": a, "submitted": s, "flagged": f} for u, a, s, f in rows]
    n_items = session.scalar(select(func.count()).select_from(StudyItem).where(StudyItem.study_id == study.id))
    assigned = sum(r["assigned"] for r in raters)
    submitted = sum(r["submitted"] for r in raters)
    return {"n_items": n_items, "raters": raters, "assigned": assigned, "submitted": submitted,
            "share": submitted / assigned if assigned else 0.0}


def close_study(session: Session, admin: User, study: Study) -> None:
    """Close the study: ratings freeze and model identities become visible to admins."""
    if study.status == "closed":
        raise ConfigError("the study is closed already")
    study.status, study.closed_at = "closed", utcnow()
    audit(session, admin.id, "study.close", study=study.id)
