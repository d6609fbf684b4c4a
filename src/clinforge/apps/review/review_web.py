"""The review web application (FastAPI, server-rendered Jinja2 pages with autoescaping, a little vanilla JS).

Security: every response carries a strict Content-Security-Policy (scripts and styles from this server only, no
inline code, no framing), ``X-Frame-Options: DENY``, ``nosniff``, ``Referrer-Policy: no-referrer`` (invite links
never leak through a Referer) and ``Cache-Control: no-store``. Session cookies are HttpOnly, SameSite=Strict (and
Secure behind HTTPS); every POST must carry the session's CSRF token (form field ``csrf`` or header
``X-CSRF-Token``); the login and invite forms, used before a session exists, use a double-submit cookie. Raters
reach only their own assignments (another rater's assignment answers 404, as a missing one does); admin pages
answer 403 to raters.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader
from sqlalchemy import func, select
from starlette.background import BackgroundTask

from clinforge.apps.review import review_auth as auth
from clinforge.apps.review.review_db import (
    Adjudication,
    Assignment,
    Database,
    PairwiseChoice,
    Rating,
    Study,
    StudyItem,
    User,
)
from clinforge.apps.review.review_results import (
    export_study,
    flagged_items,
    model_labels,
    plots,
    results_json,
    study_results,
)
from clinforge.apps.review.review_studies import (
    assign,
    check_allowed,
    close_study,
    create_study,
    load_rubric,
    save_rating,
    study_progress,
)
from clinforge.core.errors import ClinforgeError, ConfigError

HERE = Path(__file__).parent
COOKIE, PRE_COOKIE = "review_session", "review_pre"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
EXPORT_FILES = {"ratings.csv": "text/csv", "ratings.jsonl": "application/x-ndjson",
                "key/blinding_key.json": "application/json", "comparisons.csv": "text/csv",
                "comparisons.jsonl": "application/x-ndjson", "key/pairwise_key.json": "application/json",
                "adjudications.jsonl": "application/x-ndjson", "manifest.json": "application/json"}


class Redirect(Exception):
    """Raised inside a handler to answer with a redirect (e.g. to the login page)."""

    def __init__(self, url: str):
        self.url = url


class Denied(Exception):
    """Raised inside a handler to answer with an error page and status."""

    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


def create_app(db: Database, *, data_roots: list[Path] | None = None, n_boot: int = 1000) -> FastAPI:
    """The review app on ``db`` (migrated already); admins may build studies only from files under
    ``data_roots`` (default: the current folder).

    Example:
        >>> from clinforge.apps.review.review_db import open_database  # doctest: +SKIP
        >>> app = create_app(open_database("review.db"))  # doctest: +SKIP
    """
    roots = [Path(r).resolve() for r in (data_roots or [Path.cwd()])]
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, trim_blocks=True,
                      lstrip_blocks=True)
    env.filters["stat"] = fmt_stat
    env.filters["share"] = fmt_share
    app = FastAPI(title="clinforge review", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.state.db = db

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.exception_handler(Redirect)
    async def _redirect(_request: Request, exc: Redirect) -> Response:
        return RedirectResponse(exc.url, status_code=303)

    @app.exception_handler(Denied)
    async def _denied(request: Request, exc: Denied) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        return page("error.html", request, None, status=exc.status, message=exc.message)

    def page(name: str, request: Request, who: tuple[User, Any] | None, *, status: int = 200, **ctx: Any) -> Response:
        user, web = who if who else (None, None)
        html = env.get_template(name).render(user=user, csrf=web.csrf_token if web else None, request=request, **ctx)
        return HTMLResponse(html, status_code=status)

    def current(request: Request) -> tuple[User, Any] | None:
        with db.read() as s:
            return auth.session_user(s, request.cookies.get(COOKIE))

    def need_user(request: Request, *, admin: bool = False) -> tuple[User, Any]:
        who = current(request)
        if who is None:
            if request.url.path.startswith("/api/"):
                raise Denied(401, "log in first")
            raise Redirect("/login")
        if admin and who[0].role != "admin":
            raise Denied(403, "this page is for admins")
        return who

    async def form_of(request: Request, web: Any | None) -> dict[str, Any]:
        form = await request.form()
        data = {k: form.getlist(k) if k == "raters" else form.get(k) for k in form}
        if web is not None:
            if not auth.csrf_ok(web.csrf_token, data.get("csrf") or request.headers.get("x-csrf-token")):
                raise Denied(403, "the form expired (CSRF check failed); reload the page and try again")
        elif not auth.csrf_ok(request.cookies.get(PRE_COOKIE, ""), data.get("csrf")):
            raise Denied(403, "the form expired (CSRF check failed); reload the page and try again")
        return data

    def pre_page(name: str, request: Request, *, status: int = 200, **ctx: Any) -> Response:
        token = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(32)
        response = page(name, request, None, status=status, pre_csrf=token, **ctx)
        response.set_cookie(PRE_COOKIE, token, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https", max_age=3600)
        return response

    def login_response(request: Request, user: User) -> Response:
        with db.write() as s:
            token = auth.start_session(s, s.get(User, user.id))
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                            max_age=auth.SESSION_HOURS * 3600)
        response.delete_cookie(PRE_COOKIE)
        return response

    # ------------------------------------------------------------------ login, logout, invites
    @app.get("/login")
    def login_form(request: Request) -> Response:
        return pre_page("login.html", request)

    @app.post("/login")
    async def login(request: Request) -> Response:
        data = await form_of(request, None)
        client = request.client.host if request.client else "?"
        try:
            with db.write() as s:
                user = auth.authenticate(s, str(data.get("username") or ""), str(data.get("password") or ""), client)
        except auth.RateLimited:
            return pre_page("login.html", request, status=429,
                            error="Too many failed logins. Wait 15 minutes and try again.")
        if user is None:
            return pre_page("login.html", request, status=401, error="Wrong username or password.")
        return login_response(request, user)

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        _user, web = need_user(request)
        await form_of(request, web)
        with db.write() as s:
            auth.end_session(s, request.cookies.get(COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    @app.get("/invite/{token}")
    def invite_form(request: Request, token: str) -> Response:
        with db.read() as s:
            if auth.open_invite(s, token) is None:
                raise Denied(404, "This invitation link is not valid any more (used or expired). Ask for a new one.")
        return pre_page("invite.html", request, token=token)

    @app.post("/invite/{token}")
    async def invite_accept(request: Request, token: str) -> Response:
        data = await form_of(request, None)
        if data.get("password") != data.get("password2"):
            return pre_page("invite.html", request, status=400, token=token, error="The passwords differ.")
        try:
            with db.write() as s:
                user = auth.accept_invite(s, token, str(data.get("username") or ""), str(data.get("password") or ""))
        except ClinforgeError as exc:
            return pre_page("invite.html", request, status=400, token=token, error=str(exc))
        return login_response(request, user)

    # ------------------------------------------------------------------ rater pages
    @app.get("/")
    def home(request: Request) -> Response:
        user, _web = who = need_user(request)
        if user.role == "admin":
            raise Redirect("/admin")
        with db.read() as s:
            rows = s.execute(select(Study, func.count(Assignment.id)).join(Assignment, Assignment.study_id == Study.id)
                             .where(Assignment.rater_id == user.id).group_by(Study.id).order_by(Study.id)).all()
            studies = [{"study": st, "total": n, "done": _done(s, st, user)} for st, n in rows]
        return page("my.html", request, who, studies=studies)

    def my_assignment(s: Any, study_id: int, user: User, position: int) -> tuple[Study, Assignment, int]:
        study = s.get(Study, study_id)
        total = s.scalar(select(func.count()).select_from(Assignment).where(
            Assignment.study_id == study_id, Assignment.rater_id == user.id)) if study else 0
        if not total:
            raise Denied(404, "no such study among your assignments")
        a = s.scalar(select(Assignment).where(Assignment.study_id == study_id, Assignment.rater_id == user.id,
                                              Assignment.position == position))
        if a is None:
            raise Denied(404, "no such item")
        return study, a, total

    @app.get("/s/{study_id}/rate")
    def rate_next(request: Request, study_id: int) -> Response:
        user, _ = need_user(request)
        with db.read() as s:
            table = _table(s.get(Study, study_id))
            pos = s.scalar(select(func.min(Assignment.position)).outerjoin(table, table.assignment_id == Assignment.id)
                           .where(Assignment.study_id == study_id, Assignment.rater_id == user.id,
                                  func.coalesce(table.submitted, False).is_(False)))
        raise Redirect(f"/s/{study_id}/rate/{pos}" if pos is not None else f"/s/{study_id}/done")

    @app.get("/s/{study_id}/done")
    def rate_done(request: Request, study_id: int) -> Response:
        who = need_user(request)
        with db.read() as s:
            study, _a, total = my_assignment(s, study_id, who[0], 0)
            done = _done(s, study, who[0])
        return page("done.html", request, who, study=study, total=total, done=done)

    def rate_page(request: Request, who: tuple[User, Any], study_id: int, position: int, *, status: int = 200,
                  error: str | None = None, posted: dict | None = None) -> Response:
        user = who[0]
        with db.read() as s:
            study, a, total = my_assignment(s, study_id, user, position)
            item = s.get(StudyItem, a.item_id)
            saved = s.scalar(select(_table(study)).where(_table(study).assignment_id == a.id))
            done = _done(s, study, user)
        answers = [item.answer_a] if study.kind == "single" else (
            [item.answer_b, item.answer_a] if a.swapped else [item.answer_a, item.answer_b])
        if posted is not None:
            state = posted
        elif saved is None:
            state = {"values": {}, "choice": None, "unsure": False, "flagged": False, "comment": ""}
        else:
            state = {"values": getattr(saved, "values", {}), "choice": getattr(saved, "choice", None),
                     "unsure": saved.unsure, "flagged": saved.flagged, "comment": saved.comment}
        return page("rate.html", request, who, status=status, study=study, assignment=a, code=item.code,
                    question=item.question, answers=answers, position=position, total=total, done=done, state=state,
                    error=error, submitted=bool(saved and saved.submitted), closed=study.status != "open")

    @app.get("/s/{study_id}/rate/{position}")
    def rate_get(request: Request, study_id: int, position: int) -> Response:
        return rate_page(request, need_user(request), study_id, position)

    @app.post("/s/{study_id}/rate/{position}")
    async def rate_post(request: Request, study_id: int, position: int) -> Response:
        who = need_user(request)
        data = await form_of(request, who[1])
        with db.read() as s:
            study, a, total = my_assignment(s, study_id, who[0], position)
        payload = _payload(study, data)
        action = data.get("action")
        try:
            with db.write() as s:
                save_rating(s, s.get(User, who[0].id), a.id, payload, submit=action == "next")
        except ClinforgeError as exc:
            return rate_page(request, who, study_id, position, status=400, error=str(exc), posted=payload)
        if action == "prev" and position > 0:
            raise Redirect(f"/s/{study_id}/rate/{position - 1}")
        if action == "next" and position + 1 < total:
            raise Redirect(f"/s/{study_id}/rate/{position + 1}")
        raise Redirect(f"/s/{study_id}/rate")

    @app.post("/api/assignments/{assignment_id}/rating")
    async def autosave(request: Request, assignment_id: int) -> Response:
        user, web = need_user(request)
        if not auth.csrf_ok(web.csrf_token, request.headers.get("x-csrf-token")):
            raise Denied(403, "CSRF check failed")
        try:
            body = await request.json()
        except ValueError:
            raise Denied(400, "the body must be JSON") from None
        if not isinstance(body, dict):
            raise Denied(400, "the body must be a JSON object")
        try:
            with db.write() as s:
                result = save_rating(s, s.get(User, user.id), assignment_id, body, submit=bool(body.get("submit")))
        except LookupError:
            raise Denied(404, "no such assignment") from None
        except ClinforgeError as exc:
            raise Denied(400, str(exc)) from None
        return JSONResponse(result)

    # ------------------------------------------------------------------ admin pages
    @app.get("/admin")
    def admin_home(request: Request) -> Response:
        who = need_user(request, admin=True)
        with db.read() as s:
            studies = [{"study": st, "progress": study_progress(s, st)}
                       for st in s.scalars(select(Study).order_by(Study.id.desc()))]
            users = list(s.scalars(select(User).order_by(User.role, User.username)))
        return page("admin.html", request, who, studies=studies, users=users, invite_link=None)

    @app.post("/admin/invites")
    async def admin_invite(request: Request) -> Response:
        who = need_user(request, admin=True)
        data = await form_of(request, who[1])
        with db.write() as s:
            token = auth.create_invite(s, s.get(User, who[0].id), note=str(data.get("note") or ""))
            studies = [{"study": st, "progress": study_progress(s, st)}
                       for st in s.scalars(select(Study).order_by(Study.id.desc()))]
            users = list(s.scalars(select(User).order_by(User.role, User.username)))
        link = str(request.base_url).rstrip("/") + f"/invite/{token}"
        return page("admin.html", request, who, studies=studies, users=users, invite_link=link)

    @app.get("/admin/studies/new")
    def study_new(request: Request) -> Response:
        return page("study_new.html", request, need_user(request, admin=True), form={}, roots=roots)

    @app.post("/admin/studies")
    async def study_create(request: Request) -> Response:
        who = need_user(request, admin=True)
        data = await form_of(request, who[1])
        try:
            sources = [line.strip() for line in str(data.get("sources") or "").splitlines() if line.strip()]
            rubric_path = str(data.get("rubric") or "").strip()
            rubric = None
            if rubric_path:
                rubric = load_rubric(check_allowed(Path(rubric_path), roots))
            limit = str(data.get("limit") or "").strip()
            with db.write() as s:
                study = create_study(s, s.get(User, who[0].id), name=str(data.get("name") or ""),
                                     kind=str(data.get("kind") or "single"), sources=sources,
                                     k_raters=_int(data.get("k_raters"), "raters per item"),
                                     seed=_int(data.get("seed") or 0, "seed"), rubric=rubric,
                                     judge_labels=str(data.get("judge_labels") or "").strip() or None, roots=roots,
                                     limit=_int(limit, "limit") if limit else None)
                study_id = study.id
        except ClinforgeError as exc:
            return page("study_new.html", request, who, status=400, form=data, roots=roots, error=str(exc))
        raise Redirect(f"/admin/studies/{study_id}")

    def admin_study(request: Request, study_id: int, **ctx: Any) -> Response:
        who = need_user(request, admin=True)
        with db.read() as s:
            study = s.get(Study, study_id)
            if study is None:
                raise Denied(404, "no such study")
            progress = study_progress(s, study)
            raters = list(s.scalars(select(User).where(User.role == "rater", User.active.is_(True))
                                    .order_by(User.username)))
            n_flagged = len(flagged_items(s, study))
            labels = model_labels(s, study)
        return page("study_admin.html", request, who, study=study, progress=progress, raters=raters,
                    n_flagged=n_flagged, models=sorted(set(labels.values())), export_files=_export_names(study),
                    **ctx)

    @app.get("/admin/studies/{study_id}")
    def study_page(request: Request, study_id: int) -> Response:
        return admin_study(request, study_id)

    @app.get("/api/studies/{study_id}/progress")
    def study_progress_api(request: Request, study_id: int) -> Response:
        need_user(request, admin=True)
        with db.read() as s:
            study = s.get(Study, study_id)
            if study is None:
                raise Denied(404, "no such study")
            return JSONResponse(study_progress(s, study))

    @app.post("/admin/studies/{study_id}/{action}")
    async def study_action(request: Request, study_id: int, action: str) -> Response:
        who = need_user(request, admin=True)
        data = await form_of(request, who[1])
        try:
            with db.write() as s:
                study, admin = s.get(Study, study_id), s.get(User, who[0].id)
                if study is None:
                    raise Denied(404, "no such study")
                if action == "assign":
                    assign(s, admin, study, [_int(r, "rater") for r in data.get("raters") or []])
                elif action == "close":
                    close_study(s, admin, study)
                else:
                    raise Denied(404, "no such action")
        except ClinforgeError as exc:
            return admin_study(request, study_id, error=str(exc))
        raise Redirect(f"/admin/studies/{study_id}")

    @app.get("/admin/studies/{study_id}/adjudicate")
    def adjudicate_page(request: Request, study_id: int) -> Response:
        who = need_user(request, admin=True)
        with db.read() as s:
            study = s.get(Study, study_id)
            if study is None:
                raise Denied(404, "no such study")
            entries = flagged_items(s, study)
        return page("adjudicate.html", request, who, study=study, entries=entries)

    @app.post("/admin/studies/{study_id}/adjudicate/{item_id}")
    async def adjudicate(request: Request, study_id: int, item_id: int) -> Response:
        who = need_user(request, admin=True)
        data = await form_of(request, who[1])
        with db.write() as s:
            study = s.get(Study, study_id)
            if study is None or item_id not in {e["item"].id for e in flagged_items(s, study)}:
                raise Denied(404, "no such flagged item")
            if study.kind == "single":
                values = {a["name"]: data.get(a["name"]) or None for a in study.rubric}
                bad = [k for k, v in values.items() if v is not None and v not in
                       next(a["values"] for a in study.rubric if a["name"] == k)]
            else:
                values = {"winner": data.get("winner") or None}
                bad = [] if values["winner"] in (None, "a", "b", "tie") else ["winner"]
            if bad:
                raise Denied(400, f"invalid value for {bad[0]}")
            existing = s.scalar(select(Adjudication).where(Adjudication.item_id == item_id))
            if existing is None:
                s.add(Adjudication(item_id=item_id, admin_id=who[0].id, values=values,
                                   note=str(data.get("note") or "")[:5000]))
            else:
                existing.values, existing.note, existing.admin_id = values, str(data.get("note") or "")[:5000], who[0].id
            auth.audit(s, who[0].id, "adjudicate", study=study_id, item=item_id)
        raise Redirect(f"/admin/studies/{study_id}/adjudicate")

    @app.get("/admin/studies/{study_id}/results")
    def results_page(request: Request, study_id: int) -> Response:
        who = need_user(request, admin=True)
        with db.read() as s:
            study = s.get(Study, study_id)
            if study is None:
                raise Denied(404, "no such study")
            results = study_results(s, study, n_boot=n_boot)
        return page("results.html", request, who, study=study, r=results, charts=plots(results))

    @app.get("/admin/studies/{study_id}/results.json")
    def results_download(request: Request, study_id: int) -> Response:
        need_user(request, admin=True)
        with db.read() as s:
            study = s.get(Study, study_id)
            if study is None:
                raise Denied(404, "no such study")
            return Response(results_json(s, study, n_boot=n_boot), media_type="application/json")

    @app.get("/admin/studies/{study_id}/export/{name:path}")
    def export_file(request: Request, study_id: int, name: str) -> Response:
        who = need_user(request, admin=True)
        if name not in EXPORT_FILES:
            raise Denied(404, "no such export file")
        tmp = Path(tempfile.mkdtemp(prefix="review-export-"))
        with db.write() as s:
            study = s.get(Study, study_id)
            if study is None:
                raise Denied(404, "no such study")
            try:
                export_study(s, study, tmp / "out")
            except ClinforgeError as exc:
                raise Denied(400, str(exc)) from None
            auth.audit(s, who[0].id, "export", study=study_id, file=name)
        path = tmp / "out" / name
        if not path.exists():
            raise Denied(404, "this study has no such export file")
        return FileResponse(path, media_type=EXPORT_FILES[name], filename=f"study{study_id}-{path.name}",
                            background=BackgroundTask(shutil.rmtree, tmp, ignore_errors=True))

    return app


def fmt_stat(block: dict[str, Any] | None) -> str:
    """``0.512 [0.301, 0.700]`` for a ``{value, ci}`` block; ``n/a`` when undefined.

    Example:
        >>> fmt_stat({"value": 0.5, "ci": [0.25, 0.75]}), fmt_stat({"value": None})
        ('0.500 [0.250, 0.750]', 'n/a')
    """
    if not block or block.get("value") is None:
        return "n/a"
    ci = block.get("ci")
    return f"{block['value']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def fmt_share(block: dict[str, Any]) -> str:
    """``40% (17–69%)`` for a share with its Wilson interval.

    Example:
        >>> fmt_share({"value": 0.4, "ci": [0.168, 0.687]})
        '40% (17–69%)'
    """
    if block.get("value") is None:
        return "–"
    lo, hi = block["ci"]
    return f"{block['value']:.0%} ({lo * 100:.0f}–{hi * 100:.0f}%)"


def _table(study: Study | None) -> type:
    if study is None:
        raise Denied(404, "no such study")
    return Rating if study.kind == "single" else PairwiseChoice


def _done(s: Any, study: Study, user: User) -> int:
    table = _table(study)
    return s.scalar(select(func.count()).select_from(table).join(Assignment, table.assignment_id == Assignment.id)
                    .where(Assignment.study_id == study.id, Assignment.rater_id == user.id,
                           table.submitted.is_(True))) or 0


def _payload(study: Study, data: dict[str, Any]) -> dict[str, Any]:
    common = {"unsure": data.get("unsure") == "1", "flagged": data.get("flagged") == "1",
              "comment": str(data.get("comment") or "")}
    if study.kind == "single":
        return {"values": {a["name"]: data.get(a["name"]) or None for a in study.rubric}, **common}
    return {"choice": data.get("choice") or None, **common}


def _int(raw: Any, what: str) -> int:
    try:
        return int(str(raw).strip())
    except ValueError:
        raise ConfigError(f"{what} must be a whole number") from None


def _export_names(study: Study) -> list[str]:
    if study.status != "closed":
        return []
    base = ["ratings.csv", "ratings.jsonl", "key/blinding_key.json"] if study.kind == "single" else [
        "comparisons.csv", "comparisons.jsonl", "key/pairwise_key.json"]
    return [*base, "adjudications.jsonl", "manifest.json"]
