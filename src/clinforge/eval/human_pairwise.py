"""Pairwise human-evaluation exchange: side-by-side comparisons of two models' answers, their import, win rates and a
Bradley-Terry ranking with bootstrap CIs.

Format (``clinforge-pairwise/1``), written by ``clinforge review`` exports and readable from any spreadsheet:

* comparisons file, CSV or JSONL, one row per (rater, pair), columns:

  ============ ====================================================================================
  rater_id     the rater
  code         the pair's blinded code (``C`` + 8 hex digits), a key in the key file
  question     the question shown (informational)
  answer_left  the answer shown on the left (informational)
  answer_right the answer shown on the right (informational)
  left         which answer of the key's pair was shown on the left: ``a`` or ``b``
  choice       ``left``, ``right`` or ``tie``; empty = no choice (missing, counted)
  unsure       ``1``/``true`` when the rater marked the comparison as unsure (the choice is then missing)
  comment      free text
  ============ ====================================================================================

* key file (JSON, keep away from raters): ``{"format": "clinforge-pairwise-key/1", "codes": {code: {"item_id",
  "model_a", "model_b"}}}``.

:func:`import_pairwise` validates and unblinds: one dict per row with ``rater, code, item_id, model_a, model_b,
left_model, winner`` (a model name, ``"tie"`` or None), ``unsure`` and ``comment``.

Definitions (:func:`pairwise_summary`):

* **win rate** of a model: (wins + ties / 2) / comparisons it took part in (missing choices left out), 95%
  percentile bootstrap CI over comparisons, seeded.
* **Bradley-Terry**: ``P(i beats j) = p_i / (p_i + p_j)``; maximum-likelihood strengths by Hunter's (2004) MM
  iteration ``p_i <- W_i / sum_j n_ij / (p_i + p_j)`` with a tie counted as half a win for each side; reported as
  ``score = log p_i`` centred to mean 0 over the models (equal to a logistic regression on +1/-1 design columns,
  proven in tests/test_human_pairwise.py against statsmodels). The MLE exists only when the "beat" graph is
  strongly connected (no model won, or lost, every comparison against the rest); otherwise the scores are None
  and ``estimable`` is False. CIs: 95% percentile bootstrap over comparisons, resamples without an MLE counted in
  ``n_undefined``.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from clinforge.core.errors import DataError

PAIRWISE_COLUMNS = ("rater_id", "code", "question", "answer_left", "answer_right", "left", "choice", "unsure",
                    "comment")
KEY_FORMAT = "clinforge-pairwise-key/1"
CHOICES = ("left", "right", "tie")
_TRUE, _FALSE = {"1", "true", "yes", "y"}, {"", "0", "false", "no", "n"}


def parse_flag(raw: Any, *, file: str, line: int, field: str) -> bool:
    """A boolean cell: 1/true/yes or 0/false/no/empty (case-insensitive); anything else is a DataError.

    Example:
        >>> parse_flag("TRUE", file="f.csv", line=2, field="unsure"), parse_flag("", file="f.csv", line=2, field="u")
        (True, False)
    """
    if isinstance(raw, bool):
        return raw
    text = "" if raw is None else str(raw).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise DataError("not a yes/no value (1/0, true/false, yes/no)", file=file, line=line, field=field)


def import_pairwise(paths: Sequence[str | os.PathLike], key_path: str | os.PathLike) -> list[dict[str, Any]]:
    """Validate comparison files against their key and unblind them (see the module docs for the format).

    Example:
        >>> import tempfile, pathlib, json
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "key.json").write_text(json.dumps({"format": KEY_FORMAT, "codes": {
        ...     "C00000001": {"item_id": "q1", "model_a": "m1", "model_b": "m2"}}}))
        >>> _ = (d / "c.csv").write_text("rater_id,code,left,choice,unsure,comment\\nr1,C00000001,b,left,0,\\n")
        >>> import_pairwise([d / "c.csv"], d / "key.json")[0]["winner"]
        'm2'
    """
    try:
        key = json.loads(Path(key_path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read the key ({exc})", file=str(key_path)) from None
    if not isinstance(key, dict) or key.get("format") != KEY_FORMAT or not isinstance(key.get("codes"), dict):
        raise DataError(f"not a pairwise key (format {KEY_FORMAT!r} with a 'codes' object)", file=str(key_path))
    from clinforge.eval.human import (  # here, not at the top: human.py imports this module
        checked_rater_code,
        read_exchange_rows,
    )

    codes = key["codes"]
    out, seen = [], set()
    for path in map(Path, paths):
        for line, row in read_exchange_rows(path, ("rater_id", "code", "left", "choice"), "comparisons"):
            rater, code = checked_rater_code(row, codes, seen, path, line, "compared this pair")
            pair = codes[code]
            left = str(row.get("left") or "").strip().lower()
            if left not in ("a", "b"):
                raise DataError("must be a or b", file=str(path), line=line, field="left")
            choice = str(row.get("choice") or "").strip().lower() or None
            if choice is not None and choice not in CHOICES:
                raise DataError(f"not one of: {', '.join(CHOICES)} (or empty)", file=str(path), line=line,
                                field="choice")
            unsure = parse_flag(row.get("unsure"), file=str(path), line=line, field="unsure")
            left_model = pair["model_a"] if left == "a" else pair["model_b"]
            right_model = pair["model_b"] if left == "a" else pair["model_a"]
            winner = None
            if choice is not None and not unsure:
                winner = {"left": left_model, "right": right_model, "tie": "tie"}[choice]
            comment = row.get("comment")
            out.append({"rater": rater, "code": code, "item_id": pair["item_id"], "model_a": pair["model_a"],
                        "model_b": pair["model_b"], "left_model": left_model, "winner": winner, "unsure": unsure,
                        "comment": str(comment) if comment else None})
    return out


def _wins(comparisons: Sequence[dict[str, Any]], models: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(wins[i, j] = i's wins over j with ties as 1/2, games[i, j] = comparisons between i and j)."""
    index = {m: i for i, m in enumerate(models)}
    wins = np.zeros((len(models), len(models)))
    for c in comparisons:
        a, b, w = index[c["model_a"]], index[c["model_b"]], c["winner"]
        if w == "tie":
            wins[a, b] += 0.5
            wins[b, a] += 0.5
        elif w == c["model_a"]:
            wins[a, b] += 1
        else:
            wins[b, a] += 1
    return wins, wins + wins.T


def _strongly_connected(wins: np.ndarray) -> bool:
    k = len(wins)

    def reach(adj: np.ndarray) -> set[int]:
        seen, todo = {0}, [0]
        while todo:
            i = todo.pop()
            for j in np.nonzero(adj[i] > 0)[0]:
                if int(j) not in seen:
                    seen.add(int(j))
                    todo.append(int(j))
        return seen

    return k > 0 and len(reach(wins)) == k and len(reach(wins.T)) == k


def bradley_terry(comparisons: Sequence[dict[str, Any]], models: Sequence[str], *, tol: float = 1e-12,
                  max_iter: int = 100_000) -> list[float] | None:
    """Bradley-Terry log-strengths (mean 0) of ``models`` from decided comparisons (``winner`` a model or
    ``"tie"``); None when the MLE does not exist (see the module docs).

    Example:
        >>> cs = [{"model_a": "x", "model_b": "y", "winner": w} for w in ("x", "x", "y")]
        >>> [round(s, 4) for s in bradley_terry(cs, ["x", "y"])]
        [0.3466, -0.3466]
    """
    models = list(models)
    if len(models) < 2:
        return None
    wins, games = _wins([c for c in comparisons if c.get("winner") is not None], models)
    if not _strongly_connected(wins):
        return None
    w_total = wins.sum(axis=1)
    p = np.ones(len(models))
    for _ in range(max_iter):
        denom = (games / (p[:, None] + p[None, :])).sum(axis=1)
        new = w_total / denom
        new /= math.exp(np.log(new).mean())  # fix the scale: geometric mean 1
        if np.max(np.abs(np.log(new) - np.log(p))) < tol:
            p = new
            break
        p = new
    scores = np.log(p)
    return [float(s) for s in scores - scores.mean()]


def win_rate(comparisons: Sequence[dict[str, Any]], model: str) -> float | None:
    """(wins + ties / 2) / decided comparisons involving ``model``; None when it has none.

    Example:
        >>> win_rate([{"model_a": "x", "model_b": "y", "winner": "tie"}, {"model_a": "x", "model_b": "y",
        ...            "winner": "x"}], "x")
        0.75
    """
    points, n = 0.0, 0
    for c in comparisons:
        if c.get("winner") is None or model not in (c["model_a"], c["model_b"]):
            continue
        n += 1
        points += 0.5 if c["winner"] == "tie" else float(c["winner"] == model)
    return points / n if n else None


def pairwise_summary(comparisons: Sequence[dict[str, Any]], *, seed: int = 0, n_boot: int = 1000,
                     level: float = 0.95) -> dict[str, Any]:
    """Win rates and Bradley-Terry scores per model with percentile bootstrap CIs over decided comparisons, the
    ranking (by score, else by win rate), and counts of missing and unsure comparisons.

    Example:
        >>> cs = [{"model_a": "x", "model_b": "y", "winner": w, "unsure": False} for w in ("x", "x", "y", "tie")]
        >>> out = pairwise_summary(cs, n_boot=50)
        >>> out["ranking"], out["models"]["x"]["win_rate"]["value"]
        (['x', 'y'], 0.625)
    """
    decided = [c for c in comparisons if c.get("winner") is not None]
    models = sorted({m for c in comparisons for m in (c["model_a"], c["model_b"])})
    point_bt = bradley_terry(decided, models)
    rng = np.random.default_rng(seed)
    boot_bt: dict[str, list[float]] = defaultdict(list)
    boot_wr: dict[str, list[float]] = defaultdict(list)
    undefined = 0
    n = len(decided)
    for _ in range(n_boot if n else 0):
        sample = [decided[i] for i in rng.integers(0, n, size=n)]
        bt = bradley_terry(sample, models)
        if bt is None:
            undefined += 1
        else:
            for m, s in zip(models, bt, strict=True):
                boot_bt[m].append(s)
        for m in models:
            wr = win_rate(sample, m)
            if wr is not None:
                boot_wr[m].append(wr)
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2

    def ci(values: list[float]) -> list[float] | None:
        return [float(x) for x in np.quantile(values, [lo, hi])] if values else None

    out_models = {}
    for i, m in enumerate(models):
        out_models[m] = {
            "n": sum(m in (c["model_a"], c["model_b"]) for c in decided),
            "win_rate": {"value": win_rate(decided, m), "ci": ci(boot_wr[m])},
            "bt_score": {"value": point_bt[i] if point_bt else None, "ci": ci(boot_bt[m])},
        }
    if point_bt:
        ranking = sorted(models, key=lambda m: -out_models[m]["bt_score"]["value"])
    else:
        ranking = sorted(models, key=lambda m: -(out_models[m]["win_rate"]["value"] or 0.0))
    return {"n_comparisons": len(comparisons), "n_decided": n, "n_ties": sum(c["winner"] == "tie" for c in decided),
            "n_missing": len(comparisons) - n, "n_unsure": sum(bool(c.get("unsure")) for c in comparisons),
            "estimable": point_bt is not None, "n_boot": n_boot, "n_undefined": undefined, "seed": seed,
            "models": out_models, "ranking": ranking,
            "definitions": {
                "win_rate": "(wins + ties/2) / decided comparisons with the model",
                "bt_score": "Bradley-Terry log-strength, MLE (ties = half a win each), centred to mean 0",
                "ci": f"{level:.0%} percentile bootstrap over decided comparisons, {n_boot} resamples, seed {seed}"}}
