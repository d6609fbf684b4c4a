"""What a newcomer sees, checked as they would see it: `clinforge` run as a subprocess, stdout a real pipe or a real
pseudo-terminal, real recipes, real data and a real tiny model. Override errors, recipe typos, stranded runs,
progress output, the catalog layout, -o, inspect's exit status, JSON error wording, surrogate genders and
trainer_args."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = str(ROOT / "src")
MEDQA = "mirage/rawdata/medqa/data_clean/questions/US/4_options/phrases_no_exclude_test.jsonl"


def _env(**extra: str) -> dict:
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    env.pop("CLINFORGE_NO_PROGRESS", None)
    env.update(extra)
    return env


def clinforge(*args: str, env: dict | None = None, timeout: float = 600, python: tuple[str, ...] = ()):
    return subprocess.run([sys.executable, *python, "-m", "clinforge", *args], env=env or _env(), capture_output=True,
                          text=True, timeout=timeout)


def _in_terminal(args: list[str], columns: int = 80) -> str:
    """Run in a pseudo-terminal `columns` wide (what a user's terminal is); the screen text without colours."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "clinforge", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=_env(TERM="xterm"), close_fds=True)
    os.close(slave)
    out = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(timeout=120) == 0
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode()).replace("\r\n", "\n")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "llama"
    res = clinforge("models", "tiny", "--arch", "llama", "--out", str(out), "--hidden", "32", "--vocab", "512",
                    "--no-progress")
    assert res.returncode == 0, res.stderr
    return out


# ---- item 3: --set -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("override, expected", [
    ("steps.9.options.threshold=0.7", "--set steps.9.options.threshold=0.7: no item 9 in steps, which is a list of "
                                      "6 item(s) (indices 0-5)"),
    ("sources.name.x=1", "--set sources.name.x=1: sources is a list of 3 item(s) (indices 0-2); give an index, e.g. "
                         "sources.0.name.x"),
    ("seed.x=1", "--set seed.x=1: seed is the value 0, not a section or a list"),
])
def test_bad_set_overrides_name_the_path_and_what_exists(override, expected):
    res = clinforge("data", "prepare", str(ROOT / "recipes/examples/prepare-medquad.yaml"), "--out", "/nonexistent/x",
                    "--set", override)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == f"error: {expected}"


# ---- item 9: recipe errors -----------------------------------------------------------------------------------
def test_misspelt_required_key_names_its_line_and_the_key_before_torch_is_imported(tmp_path):
    recipe = tmp_path / "r.yaml"
    text = (ROOT / "recipes/examples/tiny-sft-lora.yaml").read_text().replace("\nmodel: tiny:llama", "\nmodle: tiny:llama")
    recipe.write_text(text)
    line = text[:text.index("modle:")].count("\n") + 1
    # -X importtime lists every module the process imported: torch and transformers must not be among them
    res = clinforge("train", str(recipe), "--out", str(tmp_path / "run"), python=("-X", "importtime"))
    assert res.returncode == 2
    assert f"error: {recipe}:{line}: modle: unknown key (did you mean 'model'?); valid keys here:" in res.stderr
    imported = {m.group(1).strip() for m in re.finditer(r"^import time:.*\|\s*(\S+)\s*$", res.stderr, re.M)}
    assert "clinforge.train.recipe" in imported and not {"torch", "transformers", "trl", "peft"} & imported
    assert not (tmp_path / "run").exists()


def test_a_stage_option_typo_is_also_found_before_heavy_imports(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text((ROOT / "recipes/examples/tiny-dpo.yaml").read_text().replace("      beta: 0.1", "      betta: 0.1"))
    res = clinforge("train", str(recipe), "--out", str(tmp_path / "run"), python=("-X", "importtime"))
    assert res.returncode == 2 and "stages.0.options.betta: unknown key (did you mean 'beta'?)" in res.stderr
    imported = {m.group(1).strip() for m in re.finditer(r"^import time:.*\|\s*(\S+)\s*$", res.stderr, re.M)}
    assert not {"torch", "transformers"} & imported


def test_unknown_metric_in_a_task_yaml_names_the_file_and_line_before_the_model(tmp_path):
    task = tmp_path / "my_task.yaml"
    task.write_text("task: my_task\ntype: generate\nreader: jsonl\npath: x.jsonl\nmetrics:\n  - rouge\n  - bleux\n")
    res = clinforge("eval", "--model", f"hf:{tmp_path}/no-model", "--tasks", str(task), "--out", str(tmp_path / "e"))
    assert res.returncode == 2
    assert f"error: {task}:7: metrics.1: unknown metric 'bleux' (did you mean 'bleu'?); valid:" in res.stderr
    assert not (tmp_path / "e").exists()


# ---- item 4: a failed eval does not strand its folder ----------------------------------------------------------
def test_a_failed_eval_does_not_block_the_corrected_command(tmp_path, tiny_model, data_root):
    out = tmp_path / "eval"
    common = ["--tasks", "medqa", "--limit", "3", "--device", "cpu", "--out", str(out)]
    wrong = clinforge("eval", "--model", f"hf:{tmp_path}/typo-model", *common, env=_env(HF_HUB_OFFLINE="1"))
    assert wrong.returncode == 2 and "typo-model" in wrong.stderr
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    fixed = clinforge("eval", "--model", f"hf:{tiny_model}", *common, env=_env(CLINFORGE_NO_PROGRESS="1"))
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert "it/s" not in fixed.stderr and "%|" not in fixed.stderr  # not even transformers' loading bars
    assert json.loads((out / "summary.json").read_text())["tasks"]["medqa"]["n"] == 3
    # once it has results, a different model on the same folder is refused (it would mix results)
    again = clinforge("eval", "--model", f"hf:{tmp_path}/typo-model", *common, env=_env(HF_HUB_OFFLINE="1"))
    assert again.returncode == 2 and "holds a run with different model" in again.stderr


def test_a_missing_fewshot_file_fails_before_the_model_is_loaded_and_leaves_no_folder(tmp_path, data_root):
    task = tmp_path / "t.yaml"
    task.write_text(yaml.safe_dump({"task": "medqa_fs", "type": "mcq", "reader": "medqa", "path": str(data_root / MEDQA),
                                    "fewshot_path": str(tmp_path / "missing-dev.jsonl")}))
    out = tmp_path / "eval"
    # the model does not exist either: the few-shot error proves data is checked first
    res = clinforge("eval", "--model", f"hf:{tmp_path}/no-model", "--tasks", str(task), "--num-fewshot", "1",
                    "--out", str(out))
    assert res.returncode == 2 and "missing-dev.jsonl" in res.stderr and "no-model" not in res.stderr
    assert not out.exists()


# ---- item 5: progress ----------------------------------------------------------------------------------------
def _small_prepare_recipe(tmp_path: Path) -> Path:
    notes = tmp_path / "notes.jsonl"
    notes.write_text("".join(json.dumps({"id": str(i), "kind": "note", "text": f"Patient {i} seen by Dr. Martha "
                                         f"Collins on 03/04/2021, stable and afebrile overnight."}) + "\n"
                             for i in range(40)))
    recipe = tmp_path / "prep.yaml"
    recipe.write_text(yaml.safe_dump({"name": "small", "sources": [{"reader": "jsonl", "path": str(notes)}],
                                      "steps": [{"transform": "deid"}, {"transform": "dedup"}]}))
    return recipe


def test_data_prepare_reports_each_step_in_a_pipe_and_no_progress_silences_it(tmp_path):
    recipe = _small_prepare_recipe(tmp_path)
    res = clinforge("data", "prepare", str(recipe), "--out", str(tmp_path / "a"))
    assert res.returncode == 0, res.stderr
    assert "read 1 source(s): 40 records" in res.stderr
    assert re.search(r"^step 1/2 deid: 40 in, 40 out \(\d+\.\d s\)$", res.stderr, re.M)
    assert re.search(r"^step 2/2 dedup: 40 in, 40 out", res.stderr, re.M)
    assert "\r" not in res.stderr  # line by line in a pipe: no in-place redraws
    for quiet in (clinforge("data", "prepare", str(recipe), "--out", str(tmp_path / "b"), "--no-progress"),
                  clinforge("data", "prepare", str(recipe), "--out", str(tmp_path / "c"),
                            env=_env(CLINFORGE_NO_PROGRESS="1"))):
        assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_score_shows_one_progress_line_per_metric_in_a_pipe(tmp_path):
    pred, ref = tmp_path / "p.txt", tmp_path / "r.txt"
    pred.write_text("the patient is stable\nno acute distress\n")
    ref.write_text("patient is stable\nno distress noted\n")
    res = clinforge("score", "--pred", str(pred), "--ref", str(ref), "--metrics", "bleu,rouge,distinct")
    assert res.returncode == 0, res.stderr
    lines = res.stderr.splitlines()
    for i, name in enumerate(("bleu", "rouge", "distinct", "bootstrap intervals")):
        assert any(line.startswith(f"{name} on 2 examples:") and f"{i}/4" in line for line in lines), res.stderr
    assert any("4/4" in line for line in lines)
    quiet = clinforge("score", "--pred", str(pred), "--ref", str(ref), "--no-progress")
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_models_tiny_reports_its_steps_in_a_pipe_and_no_progress_silences_it(tmp_path):
    res = clinforge("models", "tiny", "--out", str(tmp_path / "a"), "--hidden", "32", "--vocab", "512")
    assert res.returncode == 0, res.stderr
    for i, step in enumerate(("tokenizer", "model", "save"), start=1):
        assert re.search(rf"^step {i}/3 {step}: ", res.stderr, re.M), res.stderr
    assert "\r" not in res.stderr
    quiet = clinforge("models", "tiny", "--out", str(tmp_path / "b"), "--hidden", "32", "--vocab", "512",
                      "--no-progress")
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr


def test_every_command_offers_no_progress():
    import typer

    from clinforge.cli.main import app

    def leaves(command, path=()):
        subs = getattr(command, "commands", None)
        if not subs:
            yield path, command
            return
        for name, sub in subs.items():
            yield from leaves(sub, (*path, name))

    found = list(leaves(typer.main.get_command(app)))
    assert len(found) > 20
    missing = [" ".join(path) for path, cmd in found if not any("--no-progress" in p.opts for p in cmd.params)]
    assert not missing, f"commands without --no-progress: {missing}"
    for cmd in (["data", "prepare"], ["eval"], ["judge", "single"]):  # and the user sees it in --help
        res = clinforge(*cmd, "--help", env=_env(COLUMNS="200"))
        assert res.returncode == 0 and "--no-progress" in res.stdout, cmd


# ---- item 6: catalog -----------------------------------------------------------------------------------------
def test_catalog_is_tsv_in_a_pipe_json_with_json_and_fits_an_80_column_terminal():
    piped = clinforge("data", "catalog")
    rows = piped.stdout.splitlines()
    assert rows[0].split("\t") == ["name", "type", "modality", "size", "ai_synthesised", "licence", "access", "reader"]
    assert len(rows) > 40 and all(len(r.split("\t")) == 8 for r in rows)
    names = [r.split("\t")[0] for r in rows[1:]]
    as_json = json.loads(clinforge("data", "catalog", "--json").stdout)
    assert [e["name"] for e in as_json] == names
    screen = _in_terminal(["data", "catalog"], columns=80)
    lines = screen.splitlines()
    assert max(len(line) for line in lines) <= 80
    for name in names:  # one line per dataset, its name whole
        assert sum(1 for line in lines if line.split()[:1] == name.split()[:1] and name in line) >= 1, name
    assert len(lines) < len(names) + 10


# ---- item 10: small inconsistencies --------------------------------------------------------------------------
def test_dash_o_means_out_everywhere():
    for cmd in (["eval"], ["train"], ["data", "prepare"], ["data", "deid"], ["demo"], ["judge", "single"],
                ["models", "tiny"]):
        res = clinforge(*cmd, "--help", env=_env(COLUMNS="200"))
        line = next(x for x in res.stdout.splitlines() if x.lstrip("│ *").startswith("--out"))
        assert re.search(r"--out\s+-o\b", line), (cmd, line)
    for cmd in (["data", "inspect"], ["score"], ["data", "catalog"]):
        res = clinforge(*cmd, "--help", env=_env(COLUMNS="200"))
        assert not re.search(r"\s-o\s", res.stdout), cmd


def test_inspect_reading_no_record_is_an_error_naming_why(data_root):
    res = clinforge("data", "inspect", str(data_root / MEDQA), "--format", "jsonl", "--no-sample")
    assert res.returncode == 2
    assert ("0 records from 1273 rows read as jsonl: every row was skipped (1273 x kind: missing" in res.stderr
            and "check --format" in res.stderr)
    ok = clinforge("data", "inspect", str(data_root / MEDQA), "--format", "medqa", "--limit", "5", "--no-sample")
    assert ok.returncode == 0


def test_json_errors_read_at_column_once(tmp_path):
    bad = tmp_path / "bad.jsonl"
    line = '{"id": "1", "kind": "note", "text": "unterminated'
    bad.write_text(line + "\n")
    res = clinforge("data", "inspect", str(bad), "-f", "jsonl", "--on-error", "fail")
    assert res.returncode == 2  # the newline inside the string is the bad character, one past the line's end
    assert f"error: {bad}, line 1: invalid JSON (Invalid control character at column {len(line) + 1})" in res.stderr
    assert "at at" not in res.stderr


def test_surrogate_names_agree_with_the_title(tmp_path):
    from faker.providers.person.en_US import Provider

    note = tmp_path / "note.txt"
    note.write_text("Mr. Jennifer Thompson was seen today. Mrs. John Smith called. Ms. Robert Lee left early.")
    res = clinforge("data", "deid", str(note), "--mode", "surrogate", env=_env(CLINFORGE_DEID_KEY="test key"))
    assert res.returncode == 0, res.stderr
    male, female = set(Provider.first_names_male), set(Provider.first_names_female)
    given = dict(re.findall(r"\b(Mr|Mrs|Ms)\. (\w+) \w+", res.stdout))
    assert set(given) == {"Mr", "Mrs", "Ms"}, res.stdout
    assert given["Mr"] in male and given["Mr"] not in female
    assert given["Mrs"] in female and given["Ms"] in female
    assert "Jennifer Thompson" not in res.stdout and "John Smith" not in res.stdout


# ---- trainer_args ---------------------------------------------------------------------------------------------
def _sft_recipe(tmp_path: Path, model: Path, data_root: Path, trainer_args: str) -> Path:
    p = tmp_path / "sft.yaml"
    p.write_text(f"""model: {model}
tracking: {{tensorboard: false}}
stages:
  - name: sft
    type: sft
    data:
      sources: [{{reader: medqa, path: "{data_root / MEDQA}", limit: 8}}]
    train: {{max_steps: 2, batch_size: 2, max_length: 1024, save_every: 1}}  # step 1 keeps a checkpoint
    trainer_args: {trainer_args}
""")
    return p


def test_trainer_args_reach_the_trainer_and_typos_name_the_line_and_the_closest_key(tmp_path, tiny_model, data_root):
    recipe = _sft_recipe(tmp_path, tiny_model, data_root, "{adam_beta2: 0.95, lr_scheduler_kwargs: {}}")
    res = clinforge("train", str(recipe), "--out", str(tmp_path / "run"), "--no-progress")
    assert res.returncode == 0, res.stderr[-3000:]
    import torch

    args = torch.load(next((tmp_path / "run/stages/sft/checkpoints").glob("checkpoint-*/training_args.bin")),
                      weights_only=False)
    assert args.adam_beta2 == 0.95 and args.learning_rate == 2e-4  # trainer_args plus the recipe's own settings

    typo = _sft_recipe(tmp_path, tiny_model, data_root, "{adam_beta_2: 0.95}")
    res = clinforge("train", str(typo), "--out", str(tmp_path / "typo"))
    assert res.returncode == 2
    assert (f"error: {typo}:9: stages.0.trainer_args.adam_beta_2: unknown option of TrainingArguments (did you mean "
            "'adam_beta2'?)") in res.stderr
    twice = _sft_recipe(tmp_path, tiny_model, data_root, "{learning_rate: 0.1}")
    res = clinforge("train", str(twice), "--out", str(tmp_path / "twice"))
    assert res.returncode == 2 and "stages.0.trainer_args.learning_rate: set by the recipe's train.lr" in res.stderr


def test_trainer_args_of_a_dpo_stage_are_checked_against_dpoconfig(tmp_path):
    recipe = tmp_path / "dpo.yaml"
    text = (ROOT / "recipes/examples/tiny-dpo.yaml").read_text()
    recipe.write_text(text.replace("    options:\n", "    trainer_args: {disable_dropot: false}\n    options:\n"))
    res = clinforge("train", str(recipe), "--out", str(tmp_path / "run"))
    assert res.returncode == 2
    assert "stages.0.trainer_args.disable_dropot: unknown option of DPOConfig (did you mean 'disable_dropout'?)" in \
        res.stderr
    recipe.write_text(text.replace("    options:\n", "    trainer_args: {beta: 0.5}\n    options:\n"))
    res = clinforge("train", str(recipe), "--out", str(tmp_path / "run"))
    assert res.returncode == 2 and "set by this stage's options.beta" in res.stderr


def test_a_train_run_that_failed_before_any_checkpoint_does_not_block_the_fix(tmp_path, tiny_model, data_root):
    recipe = _sft_recipe(tmp_path, tiny_model, data_root, "{}")
    recipe.write_text(recipe.read_text().replace("max_length: 1024", "max_length: 64"))
    out = tmp_path / "run"
    failed = clinforge("train", str(recipe), "--out", str(out), "--no-progress")
    assert failed.returncode == 2 and "no example has a target within max_length 64" in failed.stderr
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    recipe.write_text(recipe.read_text().replace("max_length: 64", "max_length: 1024"))
    fixed = clinforge("train", str(recipe), "--out", str(out), "--no-progress")  # no --overwrite needed
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    assert (out / "model" / "config.json").is_file()
    # a run that finished is protected as before
    again = clinforge("train", str(recipe), "--out", str(out), "--no-progress")
    assert again.returncode == 2 and "--overwrite" in again.stderr
