"""``clinforge data deid`` on a folder or a JSONL/CSV file keeps what it finished when stopped and the same command
resumes: the output equals an uninterrupted run's byte for byte (core/partial_output.py, data/deid/file_deid.py)."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clinforge.core.errors import OutputExistsError
from clinforge.core.interrupts import Interrupted, take_notes
from clinforge.data.deid import Deidentifier
from clinforge.data.deid import file_deid as fd
from clinforge.data.deid.patient_ids import KEY_ENV

NAMES = ["Martha Collins", "John Okafor", "Ana Pruitt", "Li Moreno", "Sam Dastrelik"]


def _note(i: int) -> str:
    return (f"Dr. {NAMES[i % 5].split()[1]} saw {NAMES[(i + 2) % 5]} on 03/{i % 28 + 1:02d}/2021. "
            f"Call 617-555-{i:04d}. BP 120/80, café au lait spots.")


def _inputs(root: Path, n: int) -> dict[str, Path]:
    root.mkdir(parents=True, exist_ok=True)
    jl = root / "notes.jsonl"
    jl.write_text("".join(json.dumps({"id": i, "mrn": f"M{i % 7}", "text": _note(i), "ward": "5B"}) + "\n"
                          for i in range(n)), encoding="utf-8")
    cs = root / "notes.csv"
    with open(cs, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["id", "mrn", "text"])
        w.writeheader()
        for i in range(n):
            w.writerow({"id": i, "mrn": f"M{i % 7}", "text": _note(i) + ("\nsecond line" if i % 3 == 0 else "")})
    folder = root / "notes"
    folder.mkdir(exist_ok=True)
    for i in range(n):
        (folder / f"n{i:03d}.txt").write_text(_note(i), encoding="utf-8")
    return {"jsonl": jl, "csv": cs, "folder": folder}


def _read(path: Path) -> dict[str, bytes] | bytes:
    if path.is_dir():
        return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    return path.read_bytes()


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, calls: int, signum: int = signal.SIGINT) -> None:
    """Make the ``calls``-th de-identification raise the interruption a signal would."""
    real = Deidentifier.deidentify
    seen = [0]

    def deidentify(self, text, patient_id=None):
        seen[0] += 1
        if seen[0] == calls:
            raise Interrupted(signum)
        return real(self, text, patient_id)

    monkeypatch.setattr(Deidentifier, "deidentify", deidentify)


@pytest.mark.parametrize("at", [1, 17])  # at the first text (only a CSV header is out) and later
@pytest.mark.parametrize("kind", ["jsonl", "csv", "folder"])
def test_an_interrupted_run_resumes_to_the_output_of_an_uninterrupted_one(tmp_path: Path, kind: str, at: int,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    src = _inputs(tmp_path / "in", 40)[kind]
    options = {"patient_column": "mrn", "patient_ids": "keep"} if kind != "folder" else {}
    ref = tmp_path / f"ref.{kind}"
    ref_summary = fd.deidentify_file(src, ref, progress=False, **options)

    out = tmp_path / f"out.{kind}"
    with monkeypatch.context() as m:
        _interrupt_after(m, at)
        with pytest.raises(KeyboardInterrupt):
            fd.deidentify_file(src, out, progress=False, **options)
    notes, resume = take_notes()
    # (the CSV's cells span lines every third row: its total counts rows, not lines)
    assert notes == [f"{at - 1} of 40 {'files' if kind == 'folder' else 'rows'} "
                     f"de-identified, in {tmp_path / f'.out.{kind}.partial'}"]
    assert resume is not None and resume.startswith("clinforge")
    assert not out.exists()
    state = json.loads((tmp_path / f".out.{kind}.partial" / "state.json").read_text())
    assert state["progress"]["done"] == at - 1
    saved = json.dumps(state)
    assert "Collins" not in saved and "617-555" not in saved  # counts and sizes, never text

    summary = fd.deidentify_file(src, out, progress=False, **options)
    assert summary["resumed_after"] == at - 1
    assert _read(out) == _read(ref)
    assert summary["items"] == ref_summary["items"] == 40 and summary["phi"] == ref_summary["phi"]
    assert not (tmp_path / f".out.{kind}.partial").exists()


def test_spans_printed_with_json_are_those_of_an_uninterrupted_run(tmp_path: Path, monkeypatch) -> None:
    import io

    src = _inputs(tmp_path / "in", 30)["jsonl"]
    ref_out = io.StringIO()
    fd.deidentify_file(src, tmp_path / "ref.jsonl", json_out=True, progress=False, stdout=ref_out)
    with monkeypatch.context() as m:
        _interrupt_after(m, 11)
        with pytest.raises(KeyboardInterrupt):
            fd.deidentify_file(src, tmp_path / "out.jsonl", json_out=True, progress=False, stdout=io.StringIO())
    take_notes()
    resumed = io.StringIO()
    fd.deidentify_file(src, tmp_path / "out.jsonl", json_out=True, progress=False, stdout=resumed)
    assert resumed.getvalue() == ref_out.getvalue() and len(resumed.getvalue().splitlines()) == 30


def test_other_options_are_refused_until_overwrite_discards_the_unfinished_run(tmp_path: Path, monkeypatch) -> None:
    src = _inputs(tmp_path / "in", 20)["jsonl"]
    out = tmp_path / "out.jsonl"
    with monkeypatch.context() as m:
        _interrupt_after(m, 5)
        with pytest.raises(KeyboardInterrupt):
            fd.deidentify_file(src, out, progress=False)
    take_notes()
    with pytest.raises(OutputExistsError, match=r"unfinished run .* \(differing: mode\); run that command again"):
        fd.deidentify_file(src, out, mode="redact", progress=False)
    summary = fd.deidentify_file(src, out, mode="redact", progress=False, overwrite=True)
    assert summary["resumed_after"] == 0
    assert b"***" in out.read_bytes() and b"[NAME]" not in out.read_bytes()
    # an input changed since the interruption is another input: refused likewise
    with monkeypatch.context() as m:
        _interrupt_after(m, 5)
        with pytest.raises(KeyboardInterrupt):
            fd.deidentify_file(src, tmp_path / "o2.jsonl", progress=False)
    take_notes()
    src.write_text(src.read_text() + json.dumps({"text": "one more"}) + "\n")
    with pytest.raises(OutputExistsError, match=r"differing: input"):
        fd.deidentify_file(src, tmp_path / "o2.jsonl", progress=False)


@pytest.mark.parametrize("setting", ["surrogate", "per-run key"])
def test_runs_under_a_per_run_key_are_not_saved(tmp_path: Path, monkeypatch, setting: str) -> None:
    src = _inputs(tmp_path / "in", 20)["jsonl"]
    monkeypatch.delenv(KEY_ENV, raising=False)
    options = ({"mode": "surrogate", "patient_column": "mrn", "patient_ids": "keep"} if setting == "surrogate"
               else {"patient_column": "mrn"})
    with monkeypatch.context() as m:
        _interrupt_after(m, 8)
        with pytest.raises(KeyboardInterrupt):
            fd.deidentify_file(src, tmp_path / "out.jsonl", progress=False, **options)
    assert take_notes() == ([], None)
    assert not (tmp_path / ".out.jsonl.partial").exists()
    assert fd.deidentify_file(src, tmp_path / "out.jsonl", progress=False, **options)["resumed_after"] == 0
    # with the key in the environment, the same run is resumable
    monkeypatch.setenv(KEY_ENV, "a site key")
    with monkeypatch.context() as m:
        _interrupt_after(m, 8)
        with pytest.raises(KeyboardInterrupt):
            fd.deidentify_file(src, tmp_path / "keyed.jsonl", progress=False, **options)
    take_notes()
    assert fd.deidentify_file(src, tmp_path / "keyed.jsonl", progress=False, **options)["resumed_after"] == 7


@pytest.mark.parametrize("workers", [1, 2])
def test_a_surrogate_run_under_a_site_key_resumes_with_its_name_roles(tmp_path: Path, monkeypatch,
                                                                      workers: int) -> None:
    # "Quenvaro" is no listed given name: alone after "Dr." (no gender) it keeps the given-name role it took in the
    # patient's full name 11 rows earlier, a memory the checkpoint must hold (as keyed tags, not names)
    monkeypatch.setenv(KEY_ENV, "a site key")
    rows = [{"mrn": "M1", "text": "Seen with Quenvaro Dastrelik, his son."}]
    rows += [{"mrn": "M1", "text": f"Vitals stable on 3/{i}/2020."} for i in range(1, 11)]
    rows += [{"mrn": "M1", "text": "Called Dr. Quenvaro about the plan."}]
    src = tmp_path / "notes.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    options = {"mode": "surrogate", "patient_column": "mrn", "workers": workers}
    fd.deidentify_file(src, tmp_path / "ref.jsonl", progress=False, **options)
    ref = [json.loads(line)["text"] for line in (tmp_path / "ref.jsonl").read_text().splitlines()]
    given = ref[0].split("with ")[1].split()[0]
    assert ref[-1] == f"Called Dr. {given} about the plan."
    real, seen = Deidentifier._apply, [0]

    def _apply(self, *args, **kwargs):  # surrogates are made in this process (workers detect in mask mode)
        if self.mode == "surrogate":
            seen[0] += 1
            if seen[0] == 6:
                raise Interrupted(signal.SIGINT)
        return real(self, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(Deidentifier, "_apply", _apply)
        with pytest.raises(KeyboardInterrupt):
            fd.deidentify_file(src, tmp_path / "out.jsonl", progress=False, **options)
    take_notes()
    saved = (tmp_path / ".out.jsonl.partial" / "state.json").read_text()
    assert json.loads(saved)["progress"]["roles"]["roles"]
    assert "quenvaro" not in saved.lower() and "dastrelik" not in saved.lower() and "M1" not in saved
    assert fd.deidentify_file(src, tmp_path / "out.jsonl", progress=False, **options)["resumed_after"] == 5
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "ref.jsonl").read_bytes()


def _cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "clinforge", "--no-progress", "data", "deid", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _wait_for(path: Path, min_bytes: int = 0, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not path.exists() or path.stat().st_size < min_bytes:
        assert time.monotonic() < end, f"{path} never reached {min_bytes} bytes"
        time.sleep(0.02)


def _long_inputs(root: Path, kind: str) -> Path:
    """~4 MB of notes: seconds of work, so that a signal lands in the middle."""
    src = _inputs(root, 6000)[kind]
    src.write_text(src.read_text(encoding="utf-8").replace("café au lait spots.", "café au lait spots. " * 4),
                   encoding="utf-8")
    return src


def test_sigterm_then_the_same_command_as_a_user_runs_it(tmp_path: Path) -> None:
    src = _long_inputs(tmp_path / "in", "jsonl")
    ref = tmp_path / "ref.jsonl"
    done = subprocess.run([sys.executable, "-m", "clinforge", "--no-progress", "data", "deid", str(src), "-o", str(ref)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out.jsonl"
    proc = _cli(str(src), "-o", str(out))
    _wait_for(tmp_path / ".out.jsonl.partial" / "out.jsonl", min_bytes=64_000)  # buffered writes reached disk
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.fail("the run finished before SIGTERM; make the input larger")
    assert proc.returncode == 143, err
    assert "saved: " in err and "rows de-identified" in err and "to resume: clinforge" in err
    kept = json.loads((tmp_path / ".out.jsonl.partial" / "state.json").read_text())["progress"]["done"]
    assert 0 < kept < 6000
    again = _cli(str(src), "-o", str(out))
    _, err = again.communicate(timeout=600)
    assert again.returncode == 0, err
    assert f"resuming: {kept} of 6000 rows" in err and f"(resumed after {kept} done by an interrupted run)" in err
    assert out.read_bytes() == ref.read_bytes()
    assert "Collins" not in err


def test_a_killed_run_resumes_from_its_last_checkpoint_and_drops_what_came_after(tmp_path: Path) -> None:
    # SIGKILL runs no clean-up: the output may hold rows after the last checkpoint, which the resume cuts off
    src = _long_inputs(tmp_path / "in", "csv")
    ref = tmp_path / "ref.csv"
    fd.deidentify_file(src, ref, progress=False)
    out = tmp_path / "out.csv"
    code = ("import sys; import clinforge.data.deid.file_deid as f; f.CHECKPOINT_S = 0.2; "
            "from clinforge.cli.main import main; sys.argv = ['clinforge']; "
            f"main(['--no-progress', 'data', 'deid', {str(src)!r}, '-o', {str(out)!r}])")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    state = tmp_path / ".out.csv.partial" / "state.json"
    _wait_for(state)
    _wait_for(tmp_path / ".out.csv.partial" / "out.csv", min_bytes=200_000)
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    progress = json.loads(state.read_text())["progress"]
    written = (tmp_path / ".out.csv.partial" / "out.csv").stat().st_size
    assert 0 < progress["done"] < 6000 and written >= progress["out_bytes"]
    summary = fd.deidentify_file(src, out, progress=False)
    assert summary["resumed_after"] == progress["done"]
    assert out.read_bytes() == ref.read_bytes()


def test_an_output_inside_the_input_folder_is_refused(tmp_path: Path) -> None:
    # the unfinished output (and a finished one, on the next run) would be read back as input notes
    from clinforge.core.errors import ConfigError

    folder = _inputs(tmp_path / "in", 3)["folder"]
    with pytest.raises(ConfigError, match="--out: must be outside the input folder"):
        fd.deidentify_file(folder, folder / "clean", progress=False)
    assert not any(p.name.startswith(".") for p in folder.iterdir())


def test_overwrite_replaces_an_existing_output_folder_after_a_resume(tmp_path: Path, monkeypatch) -> None:
    folder = _inputs(tmp_path / "in", 12)["folder"]
    out = tmp_path / "clean"
    out.mkdir()
    (out / "stale.txt").write_text("an older run", encoding="utf-8")
    with pytest.raises(OutputExistsError, match="exists; pass --overwrite"):
        fd.deidentify_file(folder, out, progress=False)
    with monkeypatch.context() as m:
        _interrupt_after(m, 6)
        with pytest.raises(KeyboardInterrupt):
            fd.deidentify_file(folder, out, progress=False, overwrite=True)
    take_notes()
    assert (out / "stale.txt").exists()  # the old output stays until the new one is complete
    summary = fd.deidentify_file(folder, out, progress=False, overwrite=True)
    assert summary["resumed_after"] == 5
    assert sorted(p.name for p in out.iterdir()) == [f"n{i:03d}.txt" for i in range(12)]
    assert not any(p.name.startswith(".clean") for p in tmp_path.iterdir())
