from __future__ import annotations

import json

import pytest

from clinforge.core.config import StrictModel, load_config
from clinforge.core.errors import ConfigError, DataError, OutputExistsError
from clinforge.core.io import atomic_write_text, read_jsonl
from clinforge.core.registry import Registry, UnknownComponentError
from clinforge.core.run_records import RunRecord, prepare_output_dir
from clinforge.data.records import Record


class Train(StrictModel):
    lr: float = 1e-4
    epochs: int = 1


class Recipe(StrictModel):
    seed: int = 0
    train: Train = Train()


def test_config_error_names_file_line_and_key(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("seed: 1\ntrain:\n  lr: 0.1\n  epoch: 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(Recipe, p)
    assert err.value.line == 4 and err.value.key == "train.epoch" and str(p) in str(err.value)
    assert "valid keys here: epochs, lr" in str(err.value)


def test_config_overrides_are_typed(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("train:\n  lr: 0.1\n")
    cfg = load_config(Recipe, p, ["train.lr=3e-4", "train.epochs=2", "seed=5"])
    assert cfg.train.lr == pytest.approx(3e-4) and cfg.train.epochs == 2 and cfg.seed == 5
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config(Recipe, p, ["train.epochs=many"])


def test_atomic_write_refuses_overwrite(tmp_path):
    atomic_write_text(tmp_path / "a", "1")
    with pytest.raises(OutputExistsError):
        atomic_write_text(tmp_path / "a", "2", overwrite=False)
    assert (tmp_path / "a").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["a"]  # no temporary left behind


def test_run_record_and_output_dir(tmp_path):
    (tmp_path / "in.txt").write_text("x")
    out = prepare_output_dir(tmp_path / "run")
    run = RunRecord(out, command="t", config={"seed": 3}, inputs=[tmp_path / "in.txt"], seed=3)
    run.finish({"n": 1})
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "ok" and meta["seed"] == 3 and meta["packages"]["clinforge"]
    assert meta["inputs"][str(tmp_path / "in.txt")].startswith("2d711642b726")
    with pytest.raises(OutputExistsError):
        prepare_output_dir(out)
    assert prepare_output_dir(out, resume=True) == out


def test_registry_lists_valid_names():
    reg: Registry = Registry("metric")
    reg.register("bleu", object())
    with pytest.raises(UnknownComponentError, match="valid: bleu"):
        reg.get("blue")


def test_read_jsonl_names_bad_line(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"a": 1}\n\n{oops\n')
    with pytest.raises(DataError, match=r"x.jsonl, line 3"):
        list(read_jsonl(p))


def test_record_validates_kind_fields():
    with pytest.raises(ValueError, match="needs choices"):
        Record(id="1", kind="mcq", question="q", answer="A")
    with pytest.raises(ValueError, match="not one of AB"):
        Record(id="1", kind="mcq", question="q", choices=["a", "b"], answer="C")
