"""Ctrl-C and SIGTERM as a user or a scheduler sends them: real `clinforge` subprocesses, real signals (os.kill),
a real tiny model on real MedQA questions. An interrupted batch command exits 130 (SIGINT) or 143 (SIGTERM), says
what it saved and the command that resumes, leaves a run record saying "interrupted", and the printed command
completes the run."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _tinylm import build_tiny_lm

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1",
                CLINFORGE_NO_PROGRESS="1")


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "clinforge", *args], env=_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen, ready, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if ready():
            return
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the command ended (rc {proc.returncode}) before it could be interrupted:\n{err[-3000:]}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail("the command never reached the point where the test interrupts it")


def _resume_command(stderr: str) -> list[str]:
    """The `to resume:` line the user would copy, run with this interpreter."""
    line = next(x for x in stderr.splitlines() if x.strip().startswith("to resume:"))
    argv = shlex.split(line.split("to resume:", 1)[1])
    assert argv[0] == "clinforge"
    return [sys.executable, "-m", "clinforge", *argv[1:]]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory, data_root) -> Path:
    return build_tiny_lm(tmp_path_factory.mktemp("tinylm_signals"), data_root)


@pytest.mark.slow
def test_ctrl_c_during_eval_exits_130_says_what_was_saved_and_the_resume_completes(tmp_path, tiny_lm):
    out = tmp_path / "eval"
    args = ["eval", "--model", f"hf:{tiny_lm}", "--device", "cpu", "--tasks", "medqa", "--limit", "40",
            "--batch-size", "1", "--chunk-items", "2", "--out", str(out)]
    proc = _start(args)
    log = out / "items" / "medqa.jsonl"
    _wait_for(proc, lambda: log.exists() and len(log.read_text().splitlines()) >= 4)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted by SIGINT; exit status 130" in err
    kept = len([x for x in log.read_text().splitlines() if x.strip()])
    assert f"saved: {kept} of 40 items scored (medqa {kept})" in err
    assert "Traceback" not in err
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    assert not (out / "summary.json").exists()
    resume = _resume_command(err)
    assert resume[3:] == args  # the command the user typed, nothing lost or added
    done = subprocess.run(resume, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"medqa: {kept} of 40 items already scored in {out}/items, reusing them" in done.stderr
    summary = json.loads((out / "summary.json").read_text())
    rows = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    assert summary["tasks"]["medqa"]["n"] == 40 and len({r["id"] for r in rows}) == 40


@pytest.mark.slow
def test_ctrl_c_during_judging_says_how_many_items_were_judged_and_the_resume_completes(tmp_path, tiny_lm):
    """`clinforge judge` with a local model judge: Ctrl-C after a few items exits 130, names the items judged and the
    command that resumes, and that command judges only the rest."""
    items = tmp_path / "answers.jsonl"
    items.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Dose of drug {i}?", "response": f"{i} mg daily."})
                             + "\n" for i in range(30)))
    out = tmp_path / "judged"
    args = ["judge", "single", "--judge", f"hf:{tiny_lm}", "--input", str(items), "--out", str(out),
            "--batch-size", "1", "--max-new-tokens", "24", "--seed", "3"]
    proc = _start(args)
    log = out / "items.jsonl"
    _wait_for(proc, lambda: log.exists() and len(log.read_text().splitlines()) >= 2)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted by SIGINT; exit status 130" in err and "Traceback" not in err
    kept = len([x for x in log.read_text().splitlines() if x.strip()])
    assert 2 <= kept < 30
    said = " ".join(err.split())  # the console may wrap the note
    assert f"saved: {kept} of 30 items judged in {log}; the same command reuses them" in said
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    resume = _resume_command(err)
    assert resume[3:] == args
    done = subprocess.run(resume, env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_items"] == kept
    assert sorted(json.loads(x)["id"] for x in log.read_text().splitlines() if x.strip()) == sorted(
        f"q{i}" for i in range(30))


def _train_recipe(tmp: Path, model: Path, data_root: Path) -> Path:
    medqa = data_root / "mirage/rawdata/medqa/data_clean/questions/US/4_options/phrases_no_exclude_test.jsonl"
    p = tmp / "recipe.yaml"
    p.write_text(f"""
model: {model}
seed: 3
tracking: {{tensorboard: false}}
stages:
  - name: sft
    type: sft
    data:
      sources: [{{reader: medqa, path: "{medqa}", limit: 64}}]
    method: {{type: lora, r: 4, alpha: 8}}
    train: {{max_steps: 40, batch_size: 2, max_length: 256, save_every: 2, log_every: 2}}
""")
    return p


@pytest.mark.slow
def test_sigterm_during_train_exits_143_names_the_checkpoint_and_resume_finishes(tmp_path, tiny_lm, data_root):
    recipe = _train_recipe(tmp_path, tiny_lm, data_root)
    out = tmp_path / "run"
    proc = _start(["train", str(recipe), "--out", str(out)])
    ckpts = out / "stages" / "sft" / "checkpoints"
    _wait_for(proc, lambda: any((c / "trainer_state.json").is_file() for c in ckpts.glob("checkpoint-*")))
    os.kill(proc.pid, signal.SIGTERM)  # what Slurm, Kubernetes and systemd send
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    assert "interrupted by SIGTERM; exit status 143" in err
    assert "finished stages: none; stage sft: checkpoint checkpoint-" in err
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    assert not (out / "model").exists()
    resume = _resume_command(err)
    assert resume[-1] == "--resume"
    done = subprocess.run(resume, env=_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "model" / "config.json").is_file()
    assert json.loads((out / "summary.json").read_text())["stages"][0]["metrics"]["global_step"] == 40


@pytest.mark.slow
def test_ctrl_c_during_data_prepare_exits_130_and_the_same_command_runs_again(tmp_path, data_root):
    recipe = Path(__file__).resolve().parents[1] / "recipes" / "examples" / "prepare-medquad.yaml"
    out = tmp_path / "prep"
    args = ["data", "prepare", str(recipe), "--out", str(out)]
    proc = _start(args)
    _wait_for(proc, lambda: (out / "run.json").is_file())
    time.sleep(1.0)  # inside the reading / de-identification steps
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "saved: nothing yet: prepare writes its dataset at the end" in err
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    done = subprocess.run(_resume_command(err), env=_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "data_card.json").is_file()


@pytest.mark.slow
def test_ctrl_c_during_the_demo_resumes_without_redoing_finished_steps(tmp_path):
    """An interrupted demo keeps its finished steps: the printed `--resume` command skips them (the prepared data is
    not rebuilt) and completes the run; a plain rerun is refused with a hint instead of silently starting over."""
    out = tmp_path / "demo"
    proc = _start(["demo", "--model", "tiny", "--out", str(out)])
    steps = out / "steps.json"
    _wait_for(proc, lambda: steps.is_file() and "model" in json.loads(steps.read_text() or "{}"))
    os.kill(proc.pid, signal.SIGINT)  # the train step has begun
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted by SIGINT; exit status 130" in err
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    finished = json.loads(steps.read_text())
    assert "prepare" in finished and "compare" not in finished
    card_mtime = (out / "prepare" / "data_card.json").stat().st_mtime_ns

    again = subprocess.run([sys.executable, "-m", "clinforge", "demo", "--model", "tiny", "--out", str(out)],
                           env=_env(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "--resume" in again.stderr

    resume = _resume_command(err)
    assert resume[-1] == "--resume"
    done = subprocess.run(resume, env=_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "step 1/5: prepare (finished before, kept)" in done.stdout
    assert (out / "prepare" / "data_card.json").stat().st_mtime_ns == card_mtime
    assert set(json.loads(steps.read_text())) == {"prepare", "model", "train", "evaluate", "compare"}
    assert json.loads((out / "run.json").read_text())["status"] == "ok"
    assert (out / "compare" / "report.html").is_file()


def test_demo_resume_refuses_a_folder_made_with_other_settings(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"command": "demo", "config": {"data": "real", "model": "tiny"}}))
    (out / "steps.json").write_text("{}")
    proc = subprocess.run([sys.executable, "-m", "clinforge", "demo", "--model", "tiny", "--out", str(out),
                           "--resume"], env=_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "not a demo with --data samples --model tiny" in proc.stderr.replace("\n", " ")


class _SetNameInterrupted:
    """A descriptor whose ``__set_name__`` is hit by the signal: what a Ctrl-C that lands while a lazily imported
    module defines a pydantic model looks like (the demo's train step, seen in CI)."""

    def __set_name__(self, owner: type, name: str) -> None:
        from clinforge.core.interrupts import Interrupted

        raise Interrupted(signal.SIGINT)


def _interrupted_while_defining_a_class() -> BaseException:
    try:
        type("Spec", (), {"kind": _SetNameInterrupted()})
    except BaseException as exc:  # Python 3.11 wraps it in RuntimeError; 3.12 lets it through with a note
        return exc
    raise AssertionError("the class was defined")


def test_an_interrupt_wrapped_by_class_creation_still_exits_130_with_notes_and_an_interrupted_record(
        tmp_path, monkeypatch, capsys):
    from clinforge.cli import main as cli_main
    from clinforge.core.interrupts import interruption_in, resume_note, take_notes
    from clinforge.core.run_records import RunRecord

    wrapped = _interrupted_while_defining_a_class()
    assert interruption_in(wrapped) is not None and interruption_in(wrapped).signum == signal.SIGINT
    take_notes()
    run = RunRecord(tmp_path / "run", command="test", config={}, inputs=[], seed=0)

    def command(args, standalone_mode):
        with resume_note(lambda: "3 items in runs/x", resume="clinforge eval --out runs/x"):
            try:
                raise wrapped
            except BaseException as exc:
                run.fail(exc)
                raise

    monkeypatch.setattr(cli_main, "app", command)
    with pytest.raises(SystemExit) as stop:
        cli_main._main([])
    assert stop.value.code == 130
    err = capsys.readouterr().err
    assert "interrupted by SIGINT; exit status 130" in err and "Traceback" not in err
    assert "saved: 3 items in runs/x" in err and "to resume: clinforge eval --out runs/x" in err
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "interrupted"


def test_an_ordinary_error_is_not_taken_for_an_interrupt(monkeypatch):
    from clinforge.cli import main as cli_main
    from clinforge.core.interrupts import interruption_in

    def command(args, standalone_mode):
        try:
            raise ValueError("a real bug")
        except ValueError as exc:
            raise RuntimeError("wrapped") from exc

    assert interruption_in(RuntimeError("x")) is None
    monkeypatch.setattr(cli_main, "app", command)
    with pytest.raises(RuntimeError, match="wrapped"):
        cli_main._main([])
