"""The review app over real HTTP: a real uvicorn server on a loopback port chosen by the OS, driven with httpx, on
SQLite and on a real PostgreSQL. Login, CSRF, rate limit, headers, invites, blinding, rater isolation, escaping,
parallel submissions, close, export, and agreement figures equal to the exchange's for the same ratings."""

from __future__ import annotations

import csv
import json
import re
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from clinforge.apps.review.review_auth import create_user
from clinforge.apps.review.review_db import open_database
from clinforge.apps.review.review_web import create_app
from clinforge.eval.human import axis_agreement, import_ratings
from clinforge.eval.human_pairwise import import_pairwise, pairwise_summary
from clinforge.judges.axes import AXES

pytest_plugins = ["_review_support"]  # fixtures: postgres, db_url, live_server
PW = "a long password 1"
XSS = "<script>alert('x')</script>"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _answers(tmp_path, n_items=5):
    path = tmp_path / "answers.jsonl"
    rows = [{"id": f"q{i}", "prompt": f"Question {i}? {XSS}", "responses": {
        "model-alpha": f"alpha says {i}", "model-beta": f"beta says {i}"}} for i in range(n_items)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def live(db_url, tmp_path, live_server):
    db = open_database(db_url)
    with db.write() as s:
        create_user(s, "admin", PW, "admin")
    yield live_server(create_app(db, data_roots=[tmp_path], n_boot=200)), db, tmp_path
    db.dispose()


def login(url: str, username: str, password: str = PW) -> tuple[httpx.Client, httpx.Response]:
    client = httpx.Client(base_url=url, follow_redirects=False, timeout=60)
    page = client.get("/login")
    token = CSRF.search(page.text).group(1)
    return client, client.post("/login", data={"username": username, "password": password, "csrf": token})


def csrf_of(client: httpx.Client, path: str) -> str:
    return CSRF.search(client.get(path).text).group(1)


def invite(admin: httpx.Client, username: str, url: str) -> httpx.Client:
    page = admin.post("/admin/invites", data={"csrf": csrf_of(admin, "/admin"), "note": username})
    link = re.search(r'id="invite-link" readonly value="([^"]+)"', page.text).group(1)
    guest = httpx.Client(base_url=url, follow_redirects=False, timeout=60)
    form = guest.get(link)
    token = CSRF.search(form.text).group(1)
    done = guest.post(link, data={"csrf": token, "username": username, "password": PW, "password2": PW})
    assert done.status_code == 303
    assert guest.get(link).status_code == 404  # one-time: the link is dead now
    return guest


def make_study(admin: httpx.Client, sources: str, kind: str = "single", k: int = 2) -> int:
    r = admin.post("/admin/studies", data={"csrf": csrf_of(admin, "/admin/studies/new"), "name": f"pilot {kind}",
                                           "kind": kind, "sources": sources, "k_raters": str(k), "seed": "3"})
    assert r.status_code == 303, r.text
    study = int(r.headers["location"].rsplit("/", 1)[1])
    page = admin.get(f"/admin/studies/{study}")
    raters = re.findall(r'name="raters" value="(\d+)"', page.text)
    r = admin.post(f"/admin/studies/{study}/assign", data={"csrf": CSRF.search(page.text).group(1),
                                                          "raters": raters})
    assert r.status_code == 303
    return study


def rate_all(client: httpx.Client, study: int, pick) -> list[str]:
    """Rate every assigned item through the form; ``pick(code, n)`` gives the form fields. Returns the codes."""
    codes, n = [], 0
    r = client.get(f"/s/{study}/rate")
    while r.status_code == 303 and "/rate/" in r.headers["location"]:
        page = client.get(r.headers["location"])
        code = re.search(r"<code>(C[0-9a-f]{8})</code>", page.text).group(1)
        codes.append(code)
        data = {"csrf": CSRF.search(page.text).group(1), "action": "next", **pick(code, n)}
        r = client.post(r.headers["location"], data=data)
        assert r.status_code == 303, r.text[:2000]
        r = client.get(f"/s/{study}/rate")
        n += 1
    return codes


def test_headers_login_rate_limit_and_csrf(live):
    server, _db, _tmp = live
    client = httpx.Client(base_url=server.url, timeout=60)
    page = client.get("/login")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "'unsafe-inline'" not in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert client.get("/admin", follow_redirects=False).headers["location"] == "/login"
    assert client.post("/login", data={"username": "admin", "password": PW, "csrf": "forged"}).status_code == 403
    _, r = login(server.url, "admin' OR '1'='1", "x' OR '1'='1")  # SQL injection is just a wrong login
    assert r.status_code == 401
    admin, r = login(server.url, "admin")
    assert r.status_code == 303 and "httponly" in r.headers["set-cookie"].lower()
    assert "samesite=strict" in r.headers["set-cookie"].lower()
    assert admin.post("/admin/invites", data={"note": "x"}).status_code == 403  # no CSRF token
    for _ in range(5):
        assert login(server.url, "admin", "wrong password!")[1].status_code == 401
    assert login(server.url, "admin")[1].status_code == 429  # even the right password waits now
    assert admin.get("/admin").status_code == 200  # the existing session is unaffected


def test_study_end_to_end_over_http(live):
    server, _db, tmp_path = live
    admin, _ = login(server.url, "admin")
    r1, r2 = invite(admin, "rater1", server.url), invite(admin, "rater2", server.url)
    study = make_study(admin, str(_answers(tmp_path)))

    # blinding and isolation: raters see codes, never models; a rater cannot reach admin pages or others' items
    page = r1.get(f"/s/{study}/rate/0")
    assert page.status_code == 200 and "model-alpha" not in page.text and "model-beta" not in page.text
    assert XSS not in page.text and "&lt;script&gt;" in page.text  # stored XSS is escaped
    assert r1.get("/admin").status_code == 403 and r1.get(f"/admin/studies/{study}/results").status_code == 403
    other = r2.get(f"/s/{study}/rate/0")
    aid_r2 = int(re.search(r"/api/assignments/(\d+)/rating", other.text).group(1))
    token = CSRF.search(page.text).group(1)
    forged = r1.post(f"/api/assignments/{aid_r2}/rating", json={"values": {}}, headers={"X-CSRF-Token": token})
    assert forged.status_code == 404
    assert r1.post(f"/api/assignments/{aid_r2}/rating", json={"values": {}}).status_code == 403  # no CSRF header
    admin_html = admin.get(f"/admin/studies/{study}").text
    assert "model-alpha" not in admin_html  # hidden from admins too until closed

    # autosave of a draft, then submit through the form; "unsure" and a formula-looking comment
    aid = int(re.search(r"/api/assignments/(\d+)/rating", page.text).group(1))
    saved = r1.post(f"/api/assignments/{aid}/rating", json={"values": {"bias": "present"}},
                    headers={"X-CSRF-Token": token})
    assert saved.json() == {"ok": True, "complete": False}
    assert 'value="present" checked' in r1.get(f"/s/{study}/rate/0").text  # a closed tab loses nothing

    def pick1(code, n):
        fields = {a.name: a.values[(n + i) % len(a.values)] for i, a in enumerate(AXES.values())}
        if n == 1:
            fields = {"unsure": "1"}
        return {**fields, "comment": "=HYPERLINK(\"http://x\")" if n == 0 else "", "flagged": "1" if n == 2 else ""}

    def pick2(code, n):
        return {a.name: a.values[(n + 2 * i) % len(a.values)] for i, a in enumerate(AXES.values())}

    codes1, codes2 = rate_all(r1, study, pick1), rate_all(r2, study, pick2)
    assert len(codes1) == len(codes2) == 10 and set(codes1) == set(codes2)  # 10 answers, K=2 of 2 raters: all
    assert codes1 != codes2  # each rater has their own order
    progress = admin.get(f"/api/studies/{study}/progress").json()
    assert progress["submitted"] == 20 and progress["assigned"] == 20

    results = admin.get(f"/admin/studies/{study}/results.json").json()
    assert results["n_ratings"] == 20 and results["n_unsure"] == 1 and results["blinded"]
    html = admin.get(f"/admin/studies/{study}/results").text
    assert "Krippendorff" in html and "data:image/png;base64," in html and "model-alpha" not in html
    assert admin.get(f"/admin/studies/{study}/adjudicate").text.count('class="card" id="item-') == 1

    # close, then export and import with the evaluation exchange: identical agreement figures
    r = admin.post(f"/admin/studies/{study}/close", data={"csrf": csrf_of(admin, f"/admin/studies/{study}")})
    assert r.status_code == 303
    assert "model-alpha" in admin.get(f"/admin/studies/{study}/results").text
    assert r1.post(f"/api/assignments/{aid}/rating", json={"values": {}},
                   headers={"X-CSRF-Token": token}).status_code == 400  # closed: ratings frozen
    out = tmp_path / "export"
    (out / "key").mkdir(parents=True)
    for name in ("ratings.csv", "key/blinding_key.json"):
        resp = admin.get(f"/admin/studies/{study}/export/{name}")
        assert resp.status_code == 200
        (out / name).write_bytes(resp.content)
    with open(out / "ratings.csv", encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert any(r["comment"].startswith("'=HYPERLINK") for r in rows)  # formula neutralised
    assert all(not r["question"].startswith(("=", "+", "-", "@")) for r in rows)
    imported = import_ratings([out / "ratings.csv"], out / "key" / "blinding_key.json")
    assert sum(r["unsure"] for r in imported) == 1 and len(imported) == 20
    closed = admin.get(f"/admin/studies/{study}/results.json").json()
    for axis in AXES.values():
        assert closed["agreement"][axis.name] == json.loads(json.dumps(axis_agreement(imported, axis, seed=3,
                                                                                      n_boot=200)))


def test_parallel_http_submissions_leave_one_rating_each(live):
    server, db, tmp_path = live
    admin, _ = login(server.url, "admin")
    raters = [invite(admin, f"rater{i}", server.url) for i in range(2)]
    study = make_study(admin, str(_answers(tmp_path)), k=2)
    jobs = []
    for client in raters:
        page = client.get(f"/s/{study}/rate/0").text
        token = CSRF.search(page).group(1)
        for pos in range(10):
            aid = int(re.search(r"/api/assignments/(\d+)/rating", client.get(f"/s/{study}/rate/{pos}").text).group(1))
            for v in ("present", "absent") * 4:
                jobs.append((client, aid, token, v))
    barrier = threading.Barrier(16)

    def fire(job):
        client, aid, token, value = job
        if len(jobs) - jobs.index(job) <= 16:
            barrier.wait(timeout=60)
        return client.post(f"/api/assignments/{aid}/rating", headers={"X-CSRF-Token": token},
                           json={"values": {"bias": value}, "unsure": True, "submit": True}).status_code

    with ThreadPoolExecutor(16) as pool:
        statuses = list(pool.map(fire, jobs))
    assert statuses.count(200) == len(jobs) == 160
    results = admin.get(f"/admin/studies/{study}/results.json").json()
    assert results["n_ratings"] == 20 and results["n_drafts"] == 0  # 20 assignments, one row each


def test_pairwise_study_exports_the_pairwise_exchange(live):
    server, _db, tmp_path = live
    admin, _ = login(server.url, "admin")
    r1, r2 = invite(admin, "rater1", server.url), invite(admin, "rater2", server.url)
    study = make_study(admin, str(_answers(tmp_path, n_items=6)), kind="pairwise")
    for client, offset in ((r1, 0), (r2, 1)):
        rate_all(client, study, lambda code, n, o=offset: {"choice": ("left", "right", "tie")[(n + o) % 3]})
    admin.post(f"/admin/studies/{study}/close", data={"csrf": csrf_of(admin, f"/admin/studies/{study}")})
    out = tmp_path / "pw"
    (out / "key").mkdir(parents=True)
    for name in ("comparisons.csv", "key/pairwise_key.json"):
        (out / name).write_bytes(admin.get(f"/admin/studies/{study}/export/{name}").content)
    comparisons = import_pairwise([out / "comparisons.csv"], out / "key" / "pairwise_key.json")
    assert len(comparisons) == 12 and {c["left_model"] for c in comparisons} == {"model-alpha", "model-beta"}
    results = admin.get(f"/admin/studies/{study}/results.json").json()
    assert results["pairwise"] == json.loads(json.dumps(pairwise_summary(comparisons, seed=3, n_boot=200)))
    assert "Bradley" in admin.get(f"/admin/studies/{study}/results").text
