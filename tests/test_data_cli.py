"""``clinforge data catalog`` and ``clinforge data inspect`` through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from clinforge.cli.main import app

FIX = Path(__file__).parent / "fixtures" / "readers"
runner = CliRunner()


def test_catalog_table_and_json():
    res = runner.invoke(app, ["data", "catalog", "--type", "dialogue"])
    assert res.exit_code == 0, res.output
    assert "MTS-Dialog" in res.output and "HealthCareMagic-100k" in res.output and "MIMIC-III" not in res.output
    res = runner.invoke(app, ["data", "catalog", "--json"])
    entries = json.loads(res.output)
    assert len(entries) >= 53 and {"name", "type", "licence", "access", "reader"} <= set(entries[0])
    res = runner.invoke(app, ["data", "catalog", "--json", "--readable", "--access", "credentialed"])
    assert [e["name"] for e in json.loads(res.output)] == ["MIMIC-III", "MIMIC-IV"]
    res = runner.invoke(app, ["data", "catalog", "iu x-ray"])
    assert res.exit_code == 0 and "CC BY-NC-ND 4.0" in res.output and "iu_xray" in res.output


def test_inspect_json_counts_problems_and_sample():
    res = runner.invoke(app, ["data", "inspect", str(FIX / "medqa_mirage_bad.jsonl"), "--format", "medqa", "--json"])
    assert res.exit_code == 0, res.output
    s = json.loads(res.stdout)  # stdout holds the JSON; progress goes to stderr
    assert s["count"] == 1 and s["rows_read"] == 5 and s["by_kind"] == {"mcq": 1}
    assert s["problems"]["skipped_total"] == 4 and s["problems"]["skipped"]["invalid JSON"] == 1
    assert any("line 2, field answer_idx" in e for e in s["problems"]["error_examples"])
    assert s["fields"]["question"] == 1.0 and s["sample"]["answer"] == "B"
    assert s["reader_notes"] == {"layout": {"mirage": 1}}


def test_inspect_reader_options_limit_and_table():
    res = runner.invoke(app, ["data", "inspect", str(FIX / "qa_mapped.csv"), "-f", "csv", "--option", "kind=qa",
                              "--option", "fields={question: Q, answer: A}", "--limit", "2", "--json", "--no-sample"])
    s = json.loads(res.stdout)  # stdout holds the JSON; progress goes to stderr
    assert s["count"] == 2 and s["sample"] is None and s["meta_fields"] == {"url": 1.0}
    res = runner.invoke(app, ["data", "inspect", str(FIX / "MTS-Dialog-ValidationSet.csv"), "-f", "mts_dialog"])
    assert res.exit_code == 0
    assert "2 records from 3 rows" in res.output and "unknown speaker" in res.output and "sample record" in res.output


def test_inspect_fail_mode_and_unknown_reader_exit_2():
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent / "src")}
    cmd = [sys.executable, "-m", "clinforge", "data", "inspect", str(FIX / "anatomy_test.csv"), "--format", "mmlu",
           "--on-error", "fail"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "anatomy_test.csv, line 3, field answer" in out.stderr.replace("\n", "")
    out = subprocess.run(cmd[:7] + ["medqq"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "unknown reader 'medqq'; valid:" in out.stderr


def test_paths_and_fields_with_square_brackets_survive_the_console(tmp_path):
    """Rich markup must not eat a ``[v2]`` folder name or crash on a ``[/...]`` in an error: errors name the file."""
    folder = tmp_path / "medqa [v2]"
    folder.mkdir()
    bad = folder / "test.jsonl"
    bad.write_text((FIX / "medqa_mirage_bad.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    res = runner.invoke(app, ["data", "inspect", str(bad), "--format", "medqa", "--no-sample"])
    assert res.exit_code == 0, res.output
    flat = res.output.replace("\n", "")
    assert "medqa [v2]" in flat and "line 2, field answer_idx" in flat
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent / "src"), "COLUMNS": "300"}
    cmd = [sys.executable, "-m", "clinforge", "data", "inspect", str(bad), "--format", "medqa", "--on-error", "fail"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "medqa [v2]" in out.stderr.replace("\n", "") and "Traceback" not in out.stderr


def test_option_validation_errors_are_one_line_not_a_traceback(tmp_path):
    """typer's own parameter checks (a missing --input file, --limit -1) exit 2 with click's message."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent / "src"), "COLUMNS": "200"}
    for args, expected in (
        (["judge", "single", "--judge", "openai:http://127.0.0.1:9/v1#m", "--input", str(tmp_path / "nope.jsonl"),
          "--out", str(tmp_path / "o")], "does not exist"),
        (["data", "inspect", str(FIX / "records.jsonl"), "--format", "jsonl", "--limit", "-1"], "--limit"),
    ):
        out = subprocess.run([sys.executable, "-m", "clinforge", *args], env=env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 2, out.stderr
        assert "Traceback" not in out.stderr and expected in out.stderr
