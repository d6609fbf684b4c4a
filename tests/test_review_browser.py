"""End to end in real headless Chromium (Debian's chromium + chromedriver, driven by Selenium), on SQLite and on a
real PostgreSQL: an admin builds a study from two real tiny-model evaluation runs, invites two raters, who rate
with overlap using the keyboard (one closes the page mid-item and loses nothing); the admin closes the study and the
results page shows the agreement figures the evaluation exchange computes from the exported files. Screenshots of
the main pages are written to ``$CLINFORGE_TEST_ARTIFACTS/review`` (default: the test's tmp folder)."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import httpx
import pytest

from clinforge.apps.review.review_auth import create_user
from clinforge.apps.review.review_db import open_database
from clinforge.apps.review.review_web import create_app, fmt_stat
from clinforge.eval.human import axis_agreement, import_ratings
from clinforge.judges.axes import AXES

sys.path.insert(0, str(Path(__file__).parent))
from _tinylm import build_tiny_lm  # noqa: E402

pytest_plugins = ["_review_support"]  # fixtures: postgres, db_url, live_server
PW = "a long password 1"
CHROMIUM, DRIVER = shutil.which("chromium") or "/usr/bin/chromium", shutil.which("chromedriver") or "/usr/bin/chromedriver"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def eval_runs(tmp_path_factory, data_root) -> Path:
    """Two real evaluation runs (two tiny random Llamas with a MedQA-trained tokenizer, MedQuAD, 3 items each),
    built once per test run and shared by the xdist workers; read-only."""
    from conftest import build_once

    def build(root: Path) -> None:
        from clinforge.eval.eval_runner import EvalConfig, evaluate
        from clinforge.models.backends import load_backend

        for seed in (0, 1):
            model = build_tiny_lm(root / f"tiny{seed}", data_root, seed=seed)
            backend = load_backend(f"hf:{model}", batch_size=4, device="cpu")
            evaluate(EvalConfig(model=f"hf:{model}", tasks=["medquad"], out=str(root / f"run-tiny{seed}"), limit=3,
                                seed=seed, max_new_tokens=12), backend=backend, progress=False)

    return build_once(tmp_path_factory, "review-eval-runs", build)


@pytest.fixture
def browser():
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        if os.environ.get("CI"):
            pytest.fail("CI is set but chromium/chromedriver are missing (scripts/install_system.sh installs them)")
        pytest.skip("chromium and chromium-driver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def _shots(tmp_path, name) -> Path:
    base = Path(os.environ.get("CLINFORGE_TEST_ARTIFACTS") or tmp_path) / "review" / name
    base.mkdir(parents=True, exist_ok=True)
    return base


def test_study_from_real_eval_runs_rated_in_chromium(db_url, eval_runs, browser, live_server, tmp_path, request):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    shots = _shots(tmp_path, request.node.callspec.id)
    db = open_database(db_url)
    with db.write() as s:
        create_user(s, "admin", PW, "admin")
    server = live_server(create_app(db, data_roots=[eval_runs], n_boot=200))
    d, url = browser, server.url
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException

    wait = WebDriverWait(d, 30, ignored_exceptions=[StaleElementReferenceException])

    def press(keys):  # keystrokes to the focused page, as a user types them
        ActionChains(d).send_keys(keys).perform()

    def left_behind(element):  # the page holding ``element`` has been replaced by the next one
        def check(_driver):
            try:
                element.is_enabled()
                return False
            except WebDriverException:  # stale, or "node does not belong to the document" mid-navigation
                return True
        return check

    def click(element_id):  # click and wait for the next page
        element = d.find_element(By.ID, element_id)
        element.click()
        wait.until(left_behind(element))

    def shot(name):
        d.save_screenshot(str(shots / f"{name}.png"))

    def login(user):
        d.delete_all_cookies()
        d.get(url + "/login")
        d.find_element(By.NAME, "username").send_keys(user)
        d.find_element(By.NAME, "password").send_keys(PW + Keys.ENTER)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "span.who")))

    # admin: invite two raters
    d.get(url + "/login")
    shot("01_login")
    login("admin")
    links = []
    for note in ("dr-a", "dr-b"):
        d.find_element(By.NAME, "note").send_keys(note)
        click("create-invite")
        links.append(d.find_element(By.ID, "invite-link").get_attribute("value"))
    shot("02_admin_invite")
    for link, name in zip(links, ("rater1", "rater2"), strict=True):
        d.delete_all_cookies()
        d.get(link)
        d.find_element(By.NAME, "username").send_keys(name)
        d.find_element(By.NAME, "password").send_keys(PW)
        d.find_element(By.NAME, "password2").send_keys(PW + Keys.ENTER)
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "span.who")))

    # admin: a single-rating study from the two real evaluation runs, K = 2
    login("admin")
    click("new-study")
    d.find_element(By.NAME, "name").send_keys("MedQuAD pilot")
    d.find_element(By.NAME, "sources").send_keys(f"{eval_runs / 'run-tiny0'}\n{eval_runs / 'run-tiny1'}")
    shot("03_new_study")
    click("create-study")
    click("assign")
    study_url = d.current_url
    wait.until(ec.presence_of_element_located((By.ID, "progress-text")))
    assert "6 items" in d.page_source and "tiny0" not in d.page_source  # blinded even for the admin until closed
    shot("04_study_admin")

    # raters: keyboard only; rater1 marks one unsure and flags one; rater2 leaves a page mid-item first
    for rater in ("rater1", "rater2"):
        login(rater)
        d.find_element(By.LINK_TEXT, "Start").click()
        for n in range(6):
            wait.until(ec.presence_of_element_located((By.ID, "rate-form")))
            assert "tiny0" not in d.page_source and "tiny1" not in d.page_source
            if n == 0:
                shot(f"05_rate_{rater}")
            # one digit per axis (the highlight moves on after each); values vary by item and a little by rater
            keys = "".join(str((n + i + (rater == "rater2" and i % 3 == 0)) % 2 + 1) for i in range(9))
            if rater == "rater2" and n == 0:  # choose everything, let autosave run, leave without submitting
                press(keys)
                wait.until(lambda drv: drv.find_element(By.ID, "save-status").text == "Saved")
                here = d.current_url
                d.get(url + "/")
                d.get(here)
                checked = d.find_elements(By.CSS_SELECTOR, "fieldset.axis input:checked")
                assert len(checked) == 9  # nothing lost
            else:
                press(keys)
            if rater == "rater1" and n == 1:
                press("u")
            if rater == "rater1" and n == 2:
                press("f")
            if n == 3:
                d.set_window_size(820, 1180)  # tablet
                shot(f"05_rate_tablet_{rater}")
                d.set_window_size(1280, 900)
            form = d.find_element(By.ID, "rate-form")
            press(Keys.ENTER)
            wait.until(left_behind(form))
            assert 'role="alert"' not in d.page_source, d.find_element(By.CSS_SELECTOR, ".error").text
        wait.until(ec.url_contains("/done"))
        wait.until(lambda drv: "6 of 6" in drv.find_element(By.TAG_NAME, "main").text)

    # admin: adjudication list, close, results
    login("admin")
    d.get(study_url + "/adjudicate")
    wait.until(ec.presence_of_element_located((By.TAG_NAME, "h1")))
    assert len(d.find_elements(By.CSS_SELECTOR, 'section.card[id^="item-"]')) == 1
    shot("06_adjudicate")
    d.get(study_url)
    wait.until(lambda drv: drv.find_element(By.ID, "progress-text").text == "12 of 12 ratings submitted")
    d.find_element(By.ID, "close-study").click()
    d.switch_to.alert.accept()
    wait.until(ec.presence_of_element_located((By.LINK_TEXT, "ratings.csv")))
    cookies = {c["name"]: c["value"] for c in d.get_cookies()}
    export = tmp_path / "export"
    (export / "key").mkdir(parents=True)
    for name in ("ratings.csv", "key/blinding_key.json"):
        resp = httpx.get(f"{study_url}/export/{name}", cookies=cookies, timeout=60)
        assert resp.status_code == 200
        (export / name).write_bytes(resp.content)
    click("results-link")
    wait.until(ec.presence_of_element_located((By.ID, "agreement")))
    shot("07_results")
    height = d.execute_script("return document.documentElement.scrollHeight")
    d.set_window_size(1280, min(int(height) + 200, 8000))
    shot("07_results_full")
    d.set_window_size(1280, 900)
    imported = import_ratings([export / "ratings.csv"], export / "key" / "blinding_key.json")
    assert len(imported) == 12 and sum(r["unsure"] for r in imported) == 1
    assert {r["model"] for r in imported} == {"run-tiny0", "run-tiny1"}
    shown = 0
    for axis in AXES.values():
        row = d.find_element(By.CSS_SELECTOR, f'#agreement tr[data-axis="{axis.name}"]').text
        expected = axis_agreement(imported, axis, seed=0, n_boot=200)
        assert fmt_stat(expected["krippendorff_alpha_nominal"]) in row
        assert fmt_stat(expected["cohen_kappa"]) in row
        shown += expected["krippendorff_alpha_nominal"]["value"] is not None
    assert shown == 9  # real figures on every axis, not a page of n/a
    assert re.search(r"run-tiny0", d.page_source)  # names revealed after closing

    # a pairwise study from the same runs: sides are drawn per rater; rater1 picks with the keyboard
    d.get(url + "/admin/studies/new")
    d.find_element(By.NAME, "name").send_keys("MedQuAD side by side")
    d.find_element(By.CSS_SELECTOR, 'input[name="kind"][value="pairwise"]').click()
    d.find_element(By.NAME, "sources").send_keys(f"{eval_runs / 'run-tiny0'}\n{eval_runs / 'run-tiny1'}")
    click("create-study")
    click("assign")
    wait.until(ec.presence_of_element_located((By.ID, "progress-text")))
    assert "3 items" in d.page_source
    login("rater1")
    d.find_elements(By.LINK_TEXT, "Start")[-1].click()
    wait.until(ec.presence_of_element_located((By.ID, "rate-form")))
    assert "Left answer" in d.page_source and "Right answer" in d.page_source and "tiny0" not in d.page_source
    shot("08_pairwise")
    press("3")
    wait.until(lambda drv: drv.find_element(By.ID, "save-status").text == "Saved")
    press(Keys.ENTER)
    wait.until(ec.url_contains("/rate/1"))
    db.dispose()
