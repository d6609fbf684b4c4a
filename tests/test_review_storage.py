"""Review app storage on real SQLite and real PostgreSQL: the shipped Alembic migrations build exactly the models'
schema, studies are blinded and assigned with overlap and per-rater order, ratings are upserted (parallel
submissions leave one row each), passwords are Argon2id, logins are rate-limited and invites work once."""

from __future__ import annotations

import json
import threading
from collections import Counter

import pytest
from sqlalchemy import func, select

from clinforge.apps.review.review_auth import (
    MAX_CLIENT_FAILURES,
    MAX_FAILURES,
    RateLimited,
    accept_invite,
    authenticate,
    create_invite,
    create_user,
)
from clinforge.apps.review.review_db import Assignment, Database, PairwiseChoice, Rating, StudyItem, open_database
from clinforge.apps.review.review_studies import assign, create_study, save_rating
from clinforge.core.errors import ConfigError

pytest_plugins = ["_review_support"]  # fixtures: postgres, db_url
PW = "a long password 1"


def _answers(tmp_path, n_items=6, models=("m1", "m2")):
    path = tmp_path / "answers.jsonl"
    rows = [{"id": f"q{i}", "prompt": f"Question {i}?", "responses": {m: f"{m} answer {i}" for m in models}}
            for i in range(n_items)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _setup(db, tmp_path, kind="single", k=2, n_raters=3):
    with db.write() as s:
        admin = create_user(s, "admin", PW, "admin")
        raters = [create_user(s, f"r{i}", PW, "rater") for i in range(n_raters)]
        study = create_study(s, admin, name="s", kind=kind, sources=[str(_answers(tmp_path))], k_raters=k, seed=7)
        assign(s, admin, study, [r.id for r in raters])
    return admin, raters, study


def test_migrations_build_the_models_schema(db_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from clinforge.apps.review.review_db import Base

    db = open_database(db_url)
    db.migrate()  # idempotent: a second start changes nothing
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    db.dispose()


def test_study_is_blinded_overlapping_and_shuffled_per_rater(db_url, tmp_path):
    db = open_database(db_url)
    _admin, raters, study = _setup(db, tmp_path, k=2)
    with db.read() as s:
        items = list(s.scalars(select(StudyItem).where(StudyItem.study_id == study.id)))
        assert len(items) == 12 and len({i.code for i in items}) == 12
        assert all(i.code.startswith("C") and len(i.code) == 9 for i in items)
        per_item = Counter(a.item_id for a in s.scalars(select(Assignment)))
        assert set(per_item.values()) == {2}  # K = 2 raters per item
        orders = {}
        for r in raters:
            mine = list(s.scalars(select(Assignment).where(Assignment.rater_id == r.id).order_by(Assignment.position)))
            assert [a.position for a in mine] == list(range(len(mine)))
            assert len(mine) == 8  # 12 items x 2 / 3 raters, balanced
            orders[r.id] = [a.item_id for a in mine]
        common = set(orders[raters[0].id]) & set(orders[raters[1].id])
        assert [i for i in orders[raters[0].id] if i in common] != [i for i in orders[raters[1].id] if i in common]
    db.dispose()


def test_pairwise_sides_are_random_and_recorded(db_url, tmp_path):
    db = open_database(db_url)
    _admin, raters, study = _setup(db, tmp_path, kind="pairwise", k=3)
    with db.write() as s:
        assignments = list(s.scalars(select(Assignment)))
        assert {a.swapped for a in assignments} == {True, False}
        a = next(x for x in assignments if x.swapped and x.rater_id == raters[0].id)
        save_rating(s, raters[0], a.id, {"choice": "left"}, submit=True)
    with db.read() as s:
        choice = s.scalar(select(PairwiseChoice))
        assert (choice.choice, choice.winner) == ("left", "b")  # b was on the left
    db.dispose()


def test_parallel_submissions_never_lose_or_duplicate(db_url, tmp_path):
    db = open_database(db_url)
    _admin, raters, _study = _setup(db, tmp_path, k=2)
    with db.read() as s:
        mine = {r.id: [a.id for a in s.scalars(select(Assignment).where(Assignment.rater_id == r.id))] for r in raters}
    errors, barrier = [], threading.Barrier(24)

    def worker(n):
        rater = raters[n % 3]
        try:
            barrier.wait()
            for aid in mine[rater.id]:  # every thread of a rater writes every one of that rater's assignments
                value = "present" if n % 2 else "absent"
                with db.write() as s:
                    save_rating(s, rater, aid, {"values": {"bias": value}, "unsure": True, "comment": f"t{n}"},
                                submit=n % 4 == 0)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with db.read() as s:
        assert s.scalar(select(func.count()).select_from(Rating)) == sum(len(v) for v in mine.values()) == 24
        rows = list(s.scalars(select(Rating)))
        assert all(r.submitted for r in rows)  # a later draft autosave never un-submits
        assert all(r.values["bias"] in ("present", "absent") and r.comment.startswith("t") for r in rows)
    db.dispose()


def test_a_rater_writes_only_their_own_assignments(db_url, tmp_path):
    db = open_database(db_url)
    _admin, raters, _study = _setup(db, tmp_path)
    with db.write() as s:
        other = s.scalar(select(Assignment).where(Assignment.rater_id == raters[1].id))
        with pytest.raises(LookupError):
            save_rating(s, raters[0], other.id, {"values": {}}, submit=False)
        own = s.scalar(select(Assignment).where(Assignment.rater_id == raters[0].id))
        with pytest.raises(ConfigError, match="bias"):
            save_rating(s, raters[0], own.id, {"values": {"bias": "maybe"}}, submit=False)
        with pytest.raises(ConfigError, match="every question"):
            save_rating(s, raters[0], own.id, {"values": {"bias": "absent"}}, submit=True)
    db.dispose()


def test_passwords_rate_limit_and_invites(db_url):
    db = open_database(db_url)
    with db.write() as s:
        admin = create_user(s, "admin", PW, "admin")
        assert admin.password_hash.startswith("$argon2id$") and PW not in admin.password_hash
        with pytest.raises(ConfigError, match="at least"):
            create_user(s, "x", "short", "rater")
        with pytest.raises(ConfigError, match="username"):
            create_user(s, "=cmd", PW, "rater")
        token = create_invite(s, admin)
    for _ in range(MAX_FAILURES):
        with db.write() as s:
            assert authenticate(s, "admin", "wrong password", "1.2.3.4") is None
    with db.write() as s, pytest.raises(RateLimited):
        authenticate(s, "admin", PW, "5.6.7.8")  # the username is locked from any address
    for i in range(MAX_CLIENT_FAILURES - MAX_FAILURES):
        with db.write() as s:
            assert authenticate(s, f"guess{i}", "wrong password", "1.2.3.4") is None
    with db.write() as s, pytest.raises(RateLimited):
        authenticate(s, "someone-else", PW, "1.2.3.4")  # and the address is locked for any username now
    with db.write() as s:
        user = accept_invite(s, token, "rater1", PW)
        assert user.role == "rater"
    with db.write() as s, pytest.raises(ConfigError, match="not valid"):
        accept_invite(s, token, "rater2", PW)
    db.dispose()


def test_default_database_is_review_db_in_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLINFORGE_REVIEW_DB", raising=False)
    db = Database(None)
    db.migrate()
    assert (tmp_path / "review.db").is_file()
    db.dispose()


def test_custom_rubric_is_validated_and_used(tmp_path):
    from clinforge.apps.review.review_studies import load_rubric
    from clinforge.core.errors import DataError

    good = tmp_path / "rubric.yaml"
    good.write_text("axes:\n  - {name: clarity, question: 'Clear?', values: [clear, unclear]}\n"
                    "  - {name: safety, values: [safe, 'Needs review', unsafe], ordered: true}\n")
    rubric = load_rubric(good)
    assert rubric[1] == {"name": "safety", "question": "safety", "values": ["safe", "needs_review", "unsafe"],
                         "ordered": True}
    bad = tmp_path / "bad.yaml"
    bad.write_text("- {name: clarity, values: [clear, unclear]}\n- {name: Clarity!, values: [a, b]}\n")
    with pytest.raises(DataError, match=r"bad\.yaml, record 2, field name"):
        load_rubric(bad)
    bad.write_text("- {name: clarity, values: [clear]}\n")
    with pytest.raises(DataError, match=r"record 1, field values"):
        load_rubric(bad)
    db = open_database(str(tmp_path / "r.db"))
    with db.write() as s:
        admin = create_user(s, "admin", PW, "admin")
        rater = create_user(s, "r1", PW, "rater")
        study = create_study(s, admin, name="c", kind="single", sources=[str(_answers(tmp_path, 1))], k_raters=1,
                             rubric=rubric)
        assign(s, admin, study, [rater.id])
    with db.write() as s:
        aid = s.scalar(select(Assignment.id))
        with pytest.raises(ConfigError, match="safety"):
            save_rating(s, rater, aid, {"values": {"clarity": "clear", "safety": "absent"}}, submit=True)
        save_rating(s, rater, aid, {"values": {"clarity": "clear", "safety": "Needs review"}}, submit=True)
    with db.read() as s:
        assert s.scalar(select(Rating)).values == {"clarity": "clear", "safety": "needs_review"}
    db.dispose()
