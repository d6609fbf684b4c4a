"""Results and exports of a review study, computed with the evaluation exchange's own functions so that the app and
``clinforge judge agreement`` give the same numbers for the same ratings.

* Ratings enter the statistics in the exchange's unblinded form (``rater, code, item_id, model`` + one key per axis;
  an "unsure" rating has every axis missing). Only submitted ratings count; autosaved drafts are counted apart.
* Per axis and model: the share of each value among non-missing ratings with a 95% Wilson score interval.
* Agreement per axis: :func:`clinforge.eval.human.axis_agreement` (Cohen's kappa per rater pair, Fleiss' kappa over
  answers every rater rated, Krippendorff's alpha; percentile bootstrap CIs over answers, seeded with the study's
  seed); judge vs clinicians: :func:`clinforge.eval.human.judge_vs_human` on the Med-PaLM axes the judge labelled.
* Pairwise: :func:`clinforge.eval.human_pairwise.pairwise_summary` (win rates, Bradley-Terry, bootstrap CIs) and
  Krippendorff's alpha (nominal) of the raters' winners (a, b, tie) over pairs with two or more decided choices.
* Exports: the exchange formats (``ratings.csv``/``.jsonl`` + ``key/blinding_key.json`` for single ratings;
  ``comparisons.csv``/``.jsonl`` + ``key/pairwise_key.json`` for pairwise), ``adjudications.jsonl`` and
  ``manifest.json``. CSV cells that start with ``=``, ``+``, ``-``, ``@``, tab or carriage return get a leading
  ``'`` so a spreadsheet never runs them as a formula.

Model names are replaced by "model 1", "model 2", ... (order of a seeded shuffle) until the study is closed.
"""

from __future__ import annotations

import csv
import io
import json
import random
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from clinforge.apps.review.review_db import Adjudication, Assignment, PairwiseChoice, Rating, Study, StudyItem, User
from clinforge.core.intervals import wilson as wilson_interval
from clinforge.core.io import atomic_write_json, atomic_write_text, write_jsonl
from clinforge.core.run_records import prepare_output_dir
from clinforge.eval.agreement import bootstrap_units, krippendorff_alpha
from clinforge.eval.human import axis_agreement, judge_vs_human
from clinforge.eval.human_pairwise import KEY_FORMAT, PAIRWISE_COLUMNS, pairwise_summary
from clinforge.judges.axes import AXES, Axis

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralize_cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet would run as a formula, prefixed with ``'`` (others unchanged).

    Example:
        >>> neutralize_cell("=HYPERLINK(1)"), neutralize_cell("ok"), neutralize_cell(3)
        ("'=HYPERLINK(1)", 'ok', 3)
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_text(columns: tuple[str, ...] | list[str], rows: list[dict[str, Any]]) -> str:
    """CSV with a header and formula-neutralised cells."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: neutralize_cell(row.get(k)) for k in columns})
    return buf.getvalue()


def wilson(k: int, n: int) -> list[float] | None:
    """95% Wilson score interval of a proportion k/n as a JSON-ready list (None when n = 0).

    Example:
        >>> [round(x, 4) for x in wilson(8, 10)]
        [0.4902, 0.9433]
    """
    return list(wilson_interval(k, n)) if n else None


def model_labels(session: Session, study: Study) -> dict[str, str]:
    """Model name -> the name to show: the real name once closed, else "model N" in a seeded random order."""
    items = session.scalars(select(StudyItem).where(StudyItem.study_id == study.id))
    names = sorted({m for it in items for m in (it.model_a, it.model_b) if m})
    if study.status == "closed":
        return {m: m for m in names}
    order = list(names)
    random.Random(f"{study.seed}:labels").shuffle(order)
    return {m: f"model {i + 1}" for i, m in enumerate(order)}


def _rows(session: Session, study: Study):
    table = Rating if study.kind == "single" else PairwiseChoice
    return session.execute(
        select(table, Assignment, StudyItem, User.username)
        .join(Assignment, table.assignment_id == Assignment.id)
        .join(StudyItem, Assignment.item_id == StudyItem.id).join(User, Assignment.rater_id == User.id)
        .where(Assignment.study_id == study.id).order_by(User.username, Assignment.position)).all()


def exchange_ratings(session: Session, study: Study) -> tuple[list[dict[str, Any]], int]:
    """Submitted single ratings in the exchange's unblinded form, and the number of drafts left out."""
    out, drafts = [], 0
    for rating, _assignment, item, username in _rows(session, study):
        if not rating.submitted:
            drafts += 1
            continue
        values = {a["name"]: (None if rating.unsure else rating.values.get(a["name"])) for a in study.rubric}
        out.append({"rater": username, "code": item.code, "item_id": item.source_id, "model": item.model_a,
                    **values, "comment": rating.comment or None, "unsure": rating.unsure,
                    "flagged": rating.flagged})
    return out, drafts


def exchange_comparisons(session: Session, study: Study) -> tuple[list[dict[str, Any]], int]:
    """Submitted pairwise choices in the pairwise exchange's unblinded form, and the number of drafts left out."""
    out, drafts = [], 0
    for choice, assignment, item, username in _rows(session, study):
        if not choice.submitted:
            drafts += 1
            continue
        winner = None
        if choice.winner and not choice.unsure:
            winner = {"a": item.model_a, "b": item.model_b, "tie": "tie"}[choice.winner]
        out.append({"rater": username, "code": item.code, "item_id": item.source_id, "model_a": item.model_a,
                    "model_b": item.model_b, "left_model": item.model_b if assignment.swapped else item.model_a,
                    "left": "b" if assignment.swapped else "a", "choice": None if choice.unsure else choice.choice,
                    "winner": winner, "unsure": choice.unsure, "comment": choice.comment or None,
                    "flagged": choice.flagged})
    return out, drafts


def rubric_axes(study: Study) -> list[Axis]:
    """The study's rubric as exchange ``Axis`` objects."""
    return [Axis(a["name"], a["question"], tuple(a["values"]), bool(a["ordered"])) for a in study.rubric]


def study_results(session: Session, study: Study, *, n_boot: int = 1000) -> dict[str, Any]:
    """Every figure of the results page (see the module docs), with model names shown per :func:`model_labels`.

    Example:
        >>> study_results(session, study)["agreement"]["bias"]["krippendorff_alpha_nominal"]  # doctest: +SKIP
    """
    labels = model_labels(session, study)
    out: dict[str, Any] = {"study": study.name, "kind": study.kind, "status": study.status, "seed": study.seed,
                           "n_boot": n_boot, "blinded": study.status != "closed"}
    if study.kind == "single":
        ratings, drafts = exchange_ratings(session, study)
        out.update(n_ratings=len(ratings), n_drafts=drafts, n_unsure=sum(r["unsure"] for r in ratings),
                   raters=sorted({r["rater"] for r in ratings}))
        axes = rubric_axes(study)
        summaries: dict[str, Any] = {}
        for axis in axes:
            per_model: dict[str, Any] = {}
            for model in sorted({r["model"] for r in ratings}, key=lambda m: labels[m]):
                values = [r[axis.name] for r in ratings if r["model"] == model and r[axis.name] is not None]
                per_model[labels[model]] = {"n": len(values), "n_missing": sum(
                    r["model"] == model and r[axis.name] is None for r in ratings), "shares": {
                    v: {"value": values.count(v) / len(values) if values else None, "ci": wilson(values.count(v),
                                                                                            len(values))}
                    for v in axis.values}}
            summaries[axis.name] = per_model
        out["summaries"] = summaries
        out["agreement"] = {a.name: axis_agreement(ratings, a, seed=study.seed, n_boot=n_boot) for a in axes}
        labelled = {}
        for item in session.scalars(select(StudyItem).where(StudyItem.study_id == study.id)):
            if item.judge_labels:
                labelled[(item.source_id, item.model_a)] = item.judge_labels
        if labelled:
            jvh = judge_vs_human(ratings, labelled, seed=study.seed, n_boot=n_boot)
            rubric_names = {a.name for a in axes}
            out["judge_vs_human"] = {k: v for k, v in jvh.items() if k in rubric_names and k in AXES and v["n"]}
    else:
        comparisons, drafts = exchange_comparisons(session, study)
        shown = [{**c, "model_a": labels[c["model_a"]], "model_b": labels[c["model_b"]],
                  "winner": labels.get(c["winner"], c["winner"])} for c in comparisons]
        out.update(n_comparisons=len(comparisons), n_drafts=drafts, raters=sorted({c["rater"] for c in comparisons}))
        out["pairwise"] = pairwise_summary(shown, seed=study.seed, n_boot=n_boot)
        out["agreement"] = {"winner": _winner_alpha(comparisons, study.seed, n_boot)}
    out["definitions"] = {
        "shares": "share of each value among the non-missing ratings of a model, 95% Wilson score interval",
        "agreement": "clinforge.eval.human.axis_agreement: Cohen/Fleiss kappa, Krippendorff alpha; 95% percentile "
                     f"bootstrap over answers, {n_boot} resamples, seed {study.seed}",
        "unsure": "an unsure rating counts as missing on every axis",
        "drafts": "autosaved but never submitted ratings are left out of every figure"}
    return out


def _winner_alpha(comparisons: list[dict[str, Any]], seed: int, n_boot: int) -> dict[str, Any]:
    raters = sorted({c["rater"] for c in comparisons})
    codes = sorted({c["code"] for c in comparisons})
    cell = {(c["rater"], c["code"]): (None if c["winner"] is None else ("tie" if c["winner"] == "tie" else
            ("a" if c["winner"] == c["model_a"] else "b"))) for c in comparisons}
    matrix = [[cell.get((r, code)) for code in codes] for r in raters]
    multi = [j for j in range(len(codes)) if sum(row[j] is not None for row in matrix) >= 2]
    stat = bootstrap_units(lambda idx: krippendorff_alpha([[row[multi[i]] for i in idx] for row in matrix],
                                                          value_order=["a", "tie", "b"]),
                           len(multi), seed=seed, n_boot=n_boot)
    return {"krippendorff_alpha_nominal": stat, "n_units": len(multi)}


def plots(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, PNG data URI) charts: value shares per axis and model (single), win rates and Bradley-Terry scores
    with their CIs (pairwise)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from clinforge.eval.eval_report_html import png_data_uri

    charts = []
    if results["kind"] == "single" and results.get("n_ratings"):
        for axis, per_model in results["summaries"].items():
            models = list(per_model)
            values = list(next(iter(per_model.values()))["shares"]) if models else []
            fig, ax = plt.subplots(figsize=(5.5, 0.5 + 0.45 * max(1, len(models))))
            left = [0.0] * len(models)
            for v in values:
                widths = [per_model[m]["shares"][v]["value"] or 0.0 for m in models]
                ax.barh(models, widths, left=left, label=v)
                left = [a + b for a, b in zip(left, widths, strict=True)]
            ax.set_xlim(0, 1)
            ax.set_xlabel("share of ratings")
            ax.set_title(axis)
            # below the axes, so the legend never hides a bar
            ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.45), ncol=len(values), frameon=False)
            charts.append((f"{axis}: share of each value", png_data_uri(fig)))
            plt.close(fig)
    elif results["kind"] == "pairwise" and results.get("n_comparisons"):
        models = results["pairwise"]["ranking"]
        for key, title in (("win_rate", "win rate (95% CI)"), ("bt_score", "Bradley-Terry score (95% CI)")):
            points = [results["pairwise"]["models"][m][key] for m in models]
            if any(p["value"] is None for p in points):
                continue
            fig, ax = plt.subplots(figsize=(5.5, 0.6 + 0.45 * len(models)))
            xs = [p["value"] for p in points]
            err = [[x - (p["ci"] or [x, x])[0] for x, p in zip(xs, points, strict=True)],
                   [(p["ci"] or [x, x])[1] - x for x, p in zip(xs, points, strict=True)]]
            ax.errorbar(xs, models, xerr=err, fmt="o", capsize=4)
            ax.invert_yaxis()
            ax.set_title(title)
            charts.append((title, png_data_uri(fig)))
            plt.close(fig)
    return charts


SINGLE_EXTRA = ("comment", "unsure", "flagged")


def export_study(session: Session, study: Study, out_dir: str | Path, *, overwrite: bool = False) -> dict[str, Any]:
    """Write the study's exchange files (see the module docs) into ``out_dir``; returns the manifest. Closed
    studies only: the key files name the models.

    Example:
        >>> export_study(session, study, "exports/pilot")["files"]  # doctest: +SKIP
        ['ratings.csv', 'ratings.jsonl', 'key/blinding_key.json', 'adjudications.jsonl', 'manifest.json']
    """
    from clinforge.core.errors import ConfigError

    if study.status != "closed":
        raise ConfigError("close the study before exporting (the key names the models)")
    out = prepare_output_dir(out_dir, overwrite=overwrite)
    items = list(session.scalars(select(StudyItem).where(StudyItem.study_id == study.id).order_by(StudyItem.code)))
    files: list[str] = []
    if study.kind == "single":
        ratings, drafts = exchange_ratings(session, study)
        axes = [a["name"] for a in study.rubric]
        columns = ("rater_id", "code", "question", "answer", *axes, *SINGLE_EXTRA)
        text_of = {it.code: (it.question, it.answer_a) for it in items}
        rows = [{"rater_id": r["rater"], "code": r["code"], "question": text_of[r["code"]][0],
                 "answer": text_of[r["code"]][1], **{a: r[a] or "" for a in axes}, "comment": r["comment"] or "",
                 "unsure": int(r["unsure"]), "flagged": int(r["flagged"])} for r in ratings]
        atomic_write_text(out / "ratings.csv", csv_text(columns, rows))
        write_jsonl(out / "ratings.jsonl", rows)
        atomic_write_json(out / "key" / "blinding_key.json", {"seed": study.seed, "codes": {
            it.code: {"item_id": it.source_id, "model": it.model_a} for it in items}})
        files += ["ratings.csv", "ratings.jsonl", "key/blinding_key.json"]
        n = len(ratings)
    else:
        comparisons, drafts = exchange_comparisons(session, study)
        by_code = {it.code: it for it in items}
        rows = []
        for c in comparisons:
            it = by_code[c["code"]]
            left, right = (it.answer_b, it.answer_a) if c["left"] == "b" else (it.answer_a, it.answer_b)
            rows.append({"rater_id": c["rater"], "code": c["code"], "question": it.question, "answer_left": left,
                         "answer_right": right, "left": c["left"], "choice": c["choice"] or "",
                         "unsure": int(c["unsure"]), "comment": c["comment"] or "", "flagged": int(c["flagged"])})
        columns = (*PAIRWISE_COLUMNS, "flagged")
        atomic_write_text(out / "comparisons.csv", csv_text(columns, rows))
        write_jsonl(out / "comparisons.jsonl", rows)
        atomic_write_json(out / "key" / "pairwise_key.json", {"format": KEY_FORMAT, "seed": study.seed, "codes": {
            it.code: {"item_id": it.source_id, "model_a": it.model_a, "model_b": it.model_b} for it in items}})
        files += ["comparisons.csv", "comparisons.jsonl", "key/pairwise_key.json"]
        n = len(comparisons)
    adjudications = adjudication_rows(session, study)
    write_jsonl(out / "adjudications.jsonl", adjudications)
    files.append("adjudications.jsonl")
    manifest = {"study": study.name, "study_id": study.id, "kind": study.kind, "seed": study.seed,
                "rubric": study.rubric, "n_rows": n, "n_drafts_left_out": drafts,
                "n_adjudications": len(adjudications), "files": [*files, "manifest.json"],
                "format": "single: clinforge.eval.human packets (+ unsure, flagged); pairwise: clinforge-pairwise/1"}
    atomic_write_json(out / "manifest.json", manifest)
    return manifest


def adjudication_rows(session: Session, study: Study) -> list[dict[str, Any]]:
    """Adjudications of the study: code, item id, model(s), the admin's values and note."""
    rows = session.execute(select(Adjudication, StudyItem, User.username)
                           .join(StudyItem, Adjudication.item_id == StudyItem.id)
                           .join(User, Adjudication.admin_id == User.id)
                           .where(StudyItem.study_id == study.id).order_by(StudyItem.code)).all()
    return [{"code": it.code, "item_id": it.source_id, "model_a": it.model_a, "model_b": it.model_b,
             "adjudicator": name, "values": adj.values, "note": adj.note, "at": adj.at.isoformat()}
            for adj, it, name in rows]


def flagged_items(session: Session, study: Study) -> list[dict[str, Any]]:
    """Items any rater flagged, each with every rater's rating (admin view) and its adjudication if any."""
    per_item: dict[int, dict[str, Any]] = {}
    for rating, _assignment, item, username in _rows(session, study):
        entry = per_item.setdefault(item.id, {"item": item, "ratings": [], "flagged": False})
        entry["flagged"] |= bool(rating.flagged)
        entry["ratings"].append((username, rating))
    adjudicated = {a.item_id: a for a in session.scalars(select(Adjudication).join(StudyItem).where(
        StudyItem.study_id == study.id))}
    out = [{**e, "adjudication": adjudicated.get(i)} for i, e in per_item.items() if e["flagged"]]
    return sorted(out, key=lambda e: e["item"].code)


def results_json(session: Session, study: Study, *, n_boot: int = 1000) -> str:
    """:func:`study_results` as JSON text (the results page's download)."""
    return json.dumps(study_results(session, study, n_boot=n_boot), indent=2, default=str)
