"""clinforge data prepare: recipes and their errors, the written dataset, the data card, the run record, the CLI
and the demo command, on the packaged synthetic samples."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import yaml

from clinforge.cli.main import main
from clinforge.core.errors import ConfigError, OutputExistsError
from clinforge.core.paths import samples_dir
from clinforge.data.prepare import load_prepared, load_recipe, prepare, record_to_row, row_to_record
from clinforge.data.records import Message, Record
from clinforge.data.transforms import TRANSFORMS
from clinforge.data.transforms.split import check_patient_splits


def sample_recipe(tmp_path: Path, *, drop=("deid",)) -> Path:
    """The packaged demo recipe with absolute paths, minus the steps in ``drop``, written to tmp_path."""
    data = yaml.safe_load((samples_dir() / "prepare.yaml").read_text())
    for src in data["sources"]:
        src["path"] = str(samples_dir() / src["path"])
    data["steps"] = [s for s in data["steps"] if s["transform"] not in drop]
    for s in data["steps"]:
        for b in s.get("options", {}).get("benchmarks", []):
            b["path"] = str(samples_dir() / b["path"])
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prep")
    recipe = sample_recipe(tmp)
    card = prepare(load_recipe(recipe), tmp / "run", recipe_file=str(recipe), progress=False)
    return tmp / "run", card


def test_prepare_writes_dataset_card_and_run_record(prepared):
    run, card = prepared
    assert sorted(p.name for p in run.iterdir()) == ["data_card.json", "data_card.md", "dataset", "run.json",
                                                     "summary.json"]
    splits = load_prepared(run)
    assert list(splits) == ["train", "validation", "test"]
    records = [r for recs in splits.values() for r in recs]
    assert len(records) == card["records_out"] == 108 - 4 - 3 - 4
    assert check_patient_splits(records) == {}
    assert all(r.split == name for name, recs in splits.items() for r in recs)
    # chat formatted: questions became conversations with the system prompt, notes stay plain text, DPO pairs intact
    kinds = {r.kind for r in records}
    assert kinds == {"instruction", "note", "preference"}
    mcq = next(r for r in records if r.meta.get("source_kind") == "mcq")
    assert [m.role for m in mcq.messages] == ["system", "user", "assistant"]
    # the contaminated training MCQs are gone
    assert not {"mcq-001", "mcq-003", "mcq-010", "mcq-017"} & {r.id for r in records}

    on_disk = json.loads((run / "data_card.json").read_text())
    assert on_disk["records_in"] == 108 and on_disk["duplicates_removed"] == {"exact": 2, "near": 2}
    assert on_disk["contamination"]["samples-benchmark"] == {"items": 10, "train_records_hit": 4,
                                                             "benchmark_items_hit": 4, "skipped_rows": {}}
    # every step says which kinds it was applied to and how many records of each kind it processed
    assert all(s["applied_to_kinds"] == "all" for s in on_disk["steps"])
    assert on_disk["steps"][0]["kinds_processed"] == {"note": 39, "mcq": 30, "qa": 20, "dialogue": 10,
                                                      "instruction": 5, "preference": 4}
    assert on_disk["steps"][-1]["kinds_processed"]["mcq"] == 26  # after dedup, filter and contamination
    assert "- applied to all kinds; records processed by kind: note=39, mcq=30" in (run / "data_card.md").read_text()
    filt = next(s for s in on_disk["steps"] if s["transform"] == "filter")
    assert filt["report"]["removed_by_reason"] == {"too_short": 1, "boilerplate": 1, "not_english": 1}
    assert [(s["step"], s["in"], s["out"]) for s in on_disk["steps"]] == [
        ("1:dedup", 108, 104), ("2:filter", 104, 101), ("3:contamination", 101, 97), ("4:split", 97, 97),
        ("5:chat_format", 97, 97)]
    assert on_disk["groups_crossing_splits"] == 0
    assert on_disk["sources"]["notes"]["records"] == 39 and on_disk["skipped_rows"] == {}
    assert sum(s["records"] for s in on_disk["splits"].values()) == 97
    md = (run / "data_card.md").read_text()
    for heading in ("## Sources", "## Steps", "## Duplicates", "## Contamination", "## Output", "## Definitions"):
        assert heading in md
    assert "| samples-benchmark | 10 | 4 | 4 | none |" in md

    meta = json.loads((run / "run.json").read_text())
    assert meta["status"] == "ok" and meta["seed"] == 0 and meta["command"] == "data prepare"
    hashed = {Path(p).name for p, h in meta["inputs"].items() if h}
    assert {"notes.jsonl", "mcq.jsonl", "benchmark_mcq.jsonl", "recipe.yaml"} <= hashed
    assert meta["config"]["steps"][0]["transform"] == "dedup"
    assert json.loads((run / "summary.json").read_text())["records_out"] == 97


def test_card_never_quotes_record_text(prepared):
    run, _ = prepared
    card_text = (run / "data_card.json").read_text() + (run / "data_card.md").read_text()
    notes = [json.loads(line) for line in (samples_dir() / "notes.jsonl").read_text().splitlines()]
    assert not any(n["text"][:40] in card_text for n in notes)


def test_prepare_refuses_to_overwrite(prepared, tmp_path):
    run, _ = prepared
    recipe = sample_recipe(tmp_path)
    before = (run / "data_card.json").read_text()
    with pytest.raises(OutputExistsError, match="--overwrite"):
        prepare(load_recipe(recipe), run, progress=False)
    assert (run / "data_card.json").read_text() == before


def test_prepare_without_split_writes_one_dataset(tmp_path):
    recipe = sample_recipe(tmp_path, drop=("deid", "split", "contamination"))
    card = prepare(load_recipe(recipe, ["sources=[{reader: jsonl, path: %s}]" % (samples_dir() / "qa.jsonl")]),
                   tmp_path / "run", progress=False)
    assert card["groups_crossing_splits"] is None
    recs = load_prepared(tmp_path / "run" / "dataset")
    assert list(recs) == ["all"] and len(recs["all"]) == 20


def test_row_roundtrip_keeps_every_field():
    rec = Record(id="p", kind="preference", prompt=[Message(role="user", content="Q?")], chosen="a", rejected="b",
                 patient_id="P1", images=["x.png"], meta={"nested": {"k": [1, 2]}})
    assert row_to_record(record_to_row(rec)) == rec


# ------------------------------------------------------------------------------------------------- recipe errors
def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


def test_recipe_unknown_key_names_file_line_key(tmp_path):
    p = write(tmp_path, "seed: 0\nsources:\n  - reader: jsonl\n    path: x.jsonl\n    on_eror: skip\n")
    with pytest.raises(ConfigError) as err:
        load_recipe(p)
    assert str(err.value).startswith(f"{p}:5: sources.0.on_eror: unknown key")


def test_recipe_unknown_transform_lists_valid(tmp_path):
    p = write(tmp_path, "sources:\n  - {reader: jsonl, path: x.jsonl}\nsteps:\n  - transform: dedupe\n")
    with pytest.raises(ConfigError, match=r":4: steps.0.transform: unknown transform 'dedupe'; valid: .*dedup"):
        load_recipe(p)


def test_recipe_unknown_reader_lists_valid(tmp_path):
    p = write(tmp_path, "sources:\n  - {reader: jsonlines, path: x.jsonl}\n")
    with pytest.raises(ConfigError, match=r":2: sources.0.reader: unknown reader 'jsonlines'; valid: .*jsonl"):
        load_recipe(p)


def test_recipe_bad_step_option_names_its_line(tmp_path):
    p = write(tmp_path, "sources:\n  - {reader: jsonl, path: x.jsonl}\nsteps:\n  - transform: dedup\n"
                        "    options:\n      threshold: 0.8\n      shingles: 5\n")
    with pytest.raises(ConfigError) as err:
        load_recipe(p)
    assert str(err.value).startswith(f"{p}:7: steps.0.options.shingles: unknown key (did you mean 'shingle'?); "
                                 "valid keys here:")
    p = write(tmp_path, "sources:\n  - {reader: jsonl, path: x.jsonl}\nsteps:\n  - transform: dedup\n"
                        "    options:\n      threshold: high\n")
    with pytest.raises(ConfigError, match=r":6: steps.0.options.threshold: Input should be a valid number"):
        load_recipe(p)


def test_recipe_needs_sources_and_resolves_paths(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="sources"):
        load_recipe(write(tmp_path, "seed: 1\n"))
    (tmp_path / "n.jsonl").write_text('{"id": "1", "kind": "note", "text": "x"}\n')
    monkeypatch.setenv("MYDATA", str(tmp_path))
    r = load_recipe(write(tmp_path, "sources:\n  - {reader: jsonl, path: n.jsonl}\n  - {reader: jsonl, path: "
                                    "\"${MYDATA}/n.jsonl\", name: b}\n"))
    assert r.sources[0].path == str(tmp_path / "n.jsonl") == r.sources[1].path
    with pytest.raises(ConfigError, match="undefined environment variable"):
        load_recipe(write(tmp_path, "sources:\n  - {reader: jsonl, path: \"$NO_SUCH_VAR_X/n.jsonl\"}\n"))


def test_recipe_seed_is_default_step_seed(tmp_path):
    from clinforge.data.prepare import build_steps

    r = load_recipe(write(tmp_path, "seed: 5\nsources:\n  - {reader: jsonl, path: x.jsonl}\nsteps:\n"
                                    "  - {transform: split}\n  - {transform: split, options: {seed: 2}}\n"))
    assert [t.opts.seed for _, t in build_steps(r)] == [5, 2]


# ------------------------------------------------------------------------------------------------------------- CLI
def test_cli_prepare_with_set_and_overwrite(tmp_path, capsys):
    recipe = sample_recipe(tmp_path, drop=("deid", "contamination"))
    out = tmp_path / "cli-run"
    main(["data", "prepare", str(recipe), "--out", str(out), "--set", "steps.2.options.fractions={train: 0.5, test: 0.5}"])
    fingerprint = json.loads((out / "data_card.json").read_text())["split_fingerprint"]
    printed = " ".join(capsys.readouterr().out.split())  # the console wraps at the terminal width
    assert f"patients crossing splits: 0; fingerprint {fingerprint[:12]})" in printed
    assert list(load_prepared(out)) == ["train", "test"]
    with pytest.raises(SystemExit) as exc:
        main(["data", "prepare", str(recipe), "--out", str(out)])
    assert exc.value.code == 2 and "--overwrite" in capsys.readouterr().err
    main(["data", "prepare", str(recipe), "--out", str(out), "--overwrite", "--json"])
    assert json.loads(capsys.readouterr().out)["records_out"] > 0


def test_cli_prepare_reports_recipe_error(tmp_path, capsys):
    p = write(tmp_path, "sources:\n  - {reader: jsonl, path: x.jsonl}\nstepz: []\n")
    with pytest.raises(SystemExit) as exc:
        main(["data", "prepare", str(p), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "r.yaml:3: stepz: unknown key" in err.replace("\n", "")
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------------------------------------------------ demo
def test_demo_refuses_existing_output(tmp_path, capsys):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--out", str(out)])
    assert exc.value.code == 2 and (out / "keep.txt").read_text() == "mine"


def test_demo_rejects_unknown_data_choice(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["demo", "--out", str(tmp_path / "d"), "--data", "fake"])
    assert exc.value.code == 2


def test_recipe_checks_benchmark_readers_and_labels(tmp_path):
    p = write(tmp_path, "sources:\n  - {reader: jsonl, path: x.jsonl}\nsteps:\n  - transform: contamination\n"
                        "    options:\n      benchmarks:\n        - {name: b, reader: medqaa, path: t.jsonl}\n")
    with pytest.raises(ConfigError, match=r":7: steps.0.options.benchmarks.0.reader: unknown reader 'medqaa'"):
        load_recipe(p)
    p = write(tmp_path, "sources:\n  - {reader: jsonl, path: x.jsonl}\n  - {reader: jsonl, path: x.jsonl}\n")
    with pytest.raises(ConfigError, match=r":3: sources.1.name: two sources are labelled 'jsonl:x.jsonl'"):
        load_recipe(p)


def test_missing_input_fails_before_the_run_directory_exists(tmp_path):
    recipe = load_recipe(data={"sources": [{"reader": "jsonl", "path": str(tmp_path / "nope.jsonl")}]})
    with pytest.raises(ConfigError, match="sources.0.path: input not found"):
        prepare(recipe, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_skipped_rows_are_counted_in_the_card(tmp_path):
    src = tmp_path / "mixed.jsonl"
    src.write_text('{"id": "1", "kind": "note", "text": "Afebrile overnight, tolerating diet."}\n'
                   '{"id": "2", "kind": "note"}\n'
                   'not json at all\n'
                   '{"id": "4", "kind": "mcq", "question": "Which?", "choices": ["a", "b"], "answer": "C"}\n'
                   '{"id": "5", "kind": "note", "text": "Ambulating independently, plan discharge."}\n')
    recipe = load_recipe(data={"sources": [{"name": "mixed", "reader": "jsonl", "path": str(src), "on_error": "skip"}]})
    card = prepare(recipe, tmp_path / "run", progress=False)
    assert card["records_out"] == 2 and card["sources"]["mixed"]["records"] == 2
    assert sum(card["skipped_rows"].values()) == 3 == card["sources"]["mixed"]["skipped_total"]
    examples = card["sources"]["mixed"]["error_examples"]
    assert any("line 3" in e for e in examples) and all(str(src) in e for e in examples)
    md = (tmp_path / "run" / "data_card.md").read_text()
    assert "Skipped rows by reason" in md
    # with on_error: fail the same file stops the run and the run record says so
    strict = load_recipe(data={"sources": [{"reader": "jsonl", "path": str(src)}]})
    with pytest.raises(Exception, match="line 2"):
        prepare(strict, tmp_path / "strict", progress=False)
    assert json.loads((tmp_path / "strict" / "run.json").read_text())["status"] == "failed"


def test_plugin_transform_option_errors_name_recipe_line(tmp_path):
    """A user transform without an Options model checks its own options; the error still names file and line."""
    from clinforge.data.prepare import build_steps
    from clinforge.data.transforms.base import Transform

    class Lowercase(Transform):
        name = "lowercase_test_plugin"

        def __init__(self, fields="text"):
            super().__init__(fields=fields)
            if fields not in ("text", "all"):
                raise ConfigError(f"fields must be text or all, not {fields!r}", key="fields")

        def apply(self, records):
            for rec in records:
                self.n_in += 1
                self.n_out += 1
                yield rec.model_copy(update={"text": rec.text.lower()}) if rec.text else rec

    TRANSFORMS.register("lowercase_test_plugin", Lowercase, override=True)
    p = write(tmp_path, "sources:\n  - {reader: jsonl, path: x.jsonl}\nsteps:\n  - transform: lowercase_test_plugin\n"
                        "    options:\n      fields: some\n")
    with pytest.raises(ConfigError) as err:
        build_steps(load_recipe(p))
    assert str(err.value) == f"{p}:6: steps.0.options.fields: fields must be text or all, not 'some'"
    p = write(tmp_path, "sources:\n  - {reader: jsonl, path: x.jsonl}\nsteps:\n  - transform: lowercase_test_plugin\n"
                        "    options: {feilds: text}\n")
    with pytest.raises(ConfigError, match=r":4: steps.0.options: .*feilds"):
        build_steps(load_recipe(p))


def test_step_kinds_pass_other_records_through_in_order(tmp_path):
    src = tmp_path / "mixed.jsonl"
    rows = [{"id": "n1", "kind": "note", "text": "Seen."},
            {"id": "q1", "kind": "qa", "question": "Why?", "answer": "Because."},
            {"id": "n2", "kind": "note", "text": "Afebrile overnight, tolerating diet, plan discharge."},
            {"id": "q2", "kind": "qa", "question": "Dose?", "answer": "5 mg."}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recipe = load_recipe(data={"sources": [{"reader": "jsonl", "path": str(src)}],
                               "steps": [{"transform": "filter", "kinds": ["note"], "options": {"min_words": 3}}]})
    card = prepare(recipe, tmp_path / "run", progress=False)
    assert [r.id for r in load_prepared(tmp_path / "run")["all"]] == ["q1", "n2", "q2"]
    step = card["steps"][0]
    assert (step["in"], step["out"], step["removed"], step["passed_through"]) == (4, 3, 1, 2)
    assert step["applied_to_kinds"] == ["note"] and step["report"]["in"] == 2
    assert step["kinds_processed"] == {"note": 2} and step["passed_through_by_kind"] == {"qa": 2}
    md = (tmp_path / "run" / "data_card.md").read_text()
    assert "applied to kinds note only; records processed by kind: note=2; passed through unchanged: qa=2" in md
    with pytest.raises(ConfigError, match="steps.0.kinds.0"):
        load_recipe(data={"sources": [{"reader": "jsonl", "path": "x"}], "steps": [{"transform": "filter",
                                                                                     "kinds": ["notes"]}]})


def test_unknown_reader_option_fails_at_load_naming_file_line_key(tmp_path):
    """A misspelt reader option (source or benchmark) is a recipe error, raised before a run directory exists."""
    (tmp_path / "n.jsonl").write_text('{"id": "1", "kind": "note", "text": "Afebrile overnight."}\n')
    p = write(tmp_path, "sources:\n  - reader: jsonl\n    path: n.jsonl\n    options: {kindd: note}\n")
    with pytest.raises(ConfigError) as err:
        load_recipe(p)
    assert str(err.value).startswith(f"{p}:4: sources.0.options.kindd: unknown option(s) kindd for reader 'jsonl'")
    p = write(tmp_path, "sources:\n  - {reader: jsonl, path: n.jsonl}\nsteps:\n  - transform: contamination\n"
                        "    options:\n      benchmarks:\n        - name: b\n          reader: medmcqa\n"
                        "          path: n.jsonl\n          options: {cop_base: 2}\n")
    with pytest.raises(ConfigError, match=r"r.yaml:10: steps.0.options.benchmarks.0.options.cop_base: cop_base must"):
        load_recipe(p)
    with pytest.raises(SystemExit):
        main(["data", "prepare", str(write(tmp_path, "sources:\n  - {reader: jsonl, path: n.jsonl, options: {x: 1}}\n")),
              "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()


def test_prepared_dataset_round_trips_every_record_field(tmp_path):
    """Records of every kind, every field set, go through prepare and load_prepared unchanged."""
    turns = [Message(role="system", content="Be brief."), Message(role="user", content="Cough?"),
             Message(role="assistant", content="Since Monday.")]
    meta = {"nested": {"list": [1, 2.5, None, "x"], "flag": True}, "unicode": "Sjögren — 5 µg", "empty": {}}
    records = [
        Record(id="n1", kind="note", source="ehr", split="train", text="Afebrile.\n\tStable.", patient_id="P1",
               meta=meta),
        Record(id="m1", kind="mcq", source="medqa", split="test", question="Which?", choices=["a", "b", ""],
               answer="B", context="ctx", target="why", meta={"meta_info": "step1"}),
        Record(id="v1", kind="vqa", question="Fracture?", answer="no", images=["a/1.jpg", "b/2.png"],
               patient_id="P2", meta={"answer_type": "closed"}),
        Record(id="d1", kind="dialogue", messages=turns, target="Cough for 3 days.", text="", patient_id="P1"),
        Record(id="p1", kind="preference", prompt=turns[:2], chosen="good", rejected="bad", meta={"k": [[1], [2]]}),
        Record(id="c1", kind="caption", text="Chest film.", images=["x.jpg"]),
    ]
    records = [r.model_copy(update={"source": r.source or "s"}) for r in records]  # (the reader fills a missing one)
    src = tmp_path / "all.jsonl"
    src.write_text("".join(r.model_dump_json() + "\n" for r in records))
    prepare(load_recipe(data={"sources": [{"reader": "jsonl", "path": str(src)}]}), tmp_path / "run", progress=False)
    assert load_prepared(tmp_path / "run") == {"all": records}
    # through a split step too: only `split` changes (the source's split kept in meta)
    prepare(load_recipe(data={"sources": [{"reader": "jsonl", "path": str(src)}], "steps": [{"transform": "split"}]}),
            tmp_path / "run2", progress=False)
    back = {r.id: r for recs in load_prepared(tmp_path / "run2").values() for r in recs}
    for rec in records:
        got = back[rec.id]
        source_split = got.meta.pop("source_split", None)
        assert source_split == rec.split and got.model_copy(update={"split": rec.split}) == rec


def test_empty_splits_still_load(tmp_path):
    """A split left empty (here by a zero fraction; in practice small data) must not make the dataset unloadable."""
    src = tmp_path / "n.jsonl"
    src.write_text("".join(json.dumps({"id": str(i), "kind": "note", "text": f"Stable overnight, day {i}."}) + "\n"
                           for i in range(4)))
    steps = [{"transform": "split", "options": {"fractions": {"train": 0.5, "validation": 0.0, "test": 0.5}}}]
    card = prepare(load_recipe(data={"sources": [{"reader": "jsonl", "path": str(src)}], "steps": steps}),
                   tmp_path / "run", progress=False)
    loaded = load_prepared(tmp_path / "run")
    assert card["splits"]["validation"]["records"] == 0 and loaded["validation"] == []
    assert sum(len(v) for v in loaded.values()) == 4
    # every record filtered out, no split step: an empty (but loadable) dataset
    prepare(load_recipe(data={"sources": [{"reader": "jsonl", "path": str(src)}],
                              "steps": [{"transform": "filter", "options": {"min_words": 50}}]}),
            tmp_path / "empty", progress=False)
    assert load_prepared(tmp_path / "empty") == {"all": []}


def test_failed_overwrite_keeps_the_previous_output(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text('{"id": "1", "kind": "note", "text": "Afebrile overnight, tolerating diet."}\n')
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "kind": "note", "text": "Afebrile overnight."}\n{"id": "2", "kind": "note"}\n')
    run = tmp_path / "run"
    prepare(load_recipe(data={"sources": [{"reader": "jsonl", "path": str(good)}]}), run, progress=False)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    with pytest.raises(Exception, match="line 2"):
        prepare(load_recipe(data={"sources": [{"reader": "jsonl", "path": str(bad)}]}), run, overwrite=True,
                progress=False)
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    assert [r.id for r in load_prepared(run)["all"]] == ["1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "good.jsonl", "run"]  # nothing left behind
    # a successful --overwrite replaces it
    card = prepare(load_recipe(data={"sources": [{"reader": "jsonl", "path": str(good)}, {"reader": "jsonl", "path":
                                                  str(good), "name": "again"}]}), run, overwrite=True, progress=False)
    assert card["records_in"] == 2 and len(load_prepared(run)["all"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "good.jsonl", "run"]


def test_card_takes_phi_counts_from_phi_by_type_only():
    """A deid step's PHI counts come from its phi_by_type; another dict of counts is never taken for them."""
    from clinforge.data.card import build_card
    from clinforge.data.transforms.base import Transform

    class Deid(Transform):
        name = "deid"

        def __init__(self, report):
            super().__init__()
            self._report = report

        def report(self):
            return self._report

    card = build_card(recipe={}, sources={}, steps=[("1:deid", Deid({"in": 1, "out": 1, "phi_by_type": {"NAME": 2}}))],
                      splits={"all": []}, crossing=None)
    assert card["phi_by_type"] == {"NAME": 2}
    with pytest.raises(Exception, match="1:deid: a deid transform must report phi_by_type"):
        build_card(recipe={}, sources={}, steps=[("1:deid", Deid({"in": 1, "out": 1, "types_kept": {"mcq": 3}}))],
                   splits={"all": []}, crossing=None)


def test_card_counts_skipped_benchmark_rows(tmp_path):
    """Benchmark rows its reader skipped were not checked against: the card says how many and why."""
    train = tmp_path / "t.jsonl"
    train.write_text('{"id": "t", "kind": "note", "text": "Afebrile overnight, tolerating diet."}\n')
    bench = tmp_path / "b.jsonl"
    bench.write_text('{"id": "b1", "kind": "qa", "question": "What lowers LDL cholesterol in most adult patients?"}\n'
                     'not json\n')
    steps = [{"transform": "contamination", "options": {"benchmarks": [
        {"name": "b", "reader": "jsonl", "path": str(bench), "on_error": "skip"}]}}]
    card = prepare(load_recipe(data={"sources": [{"reader": "jsonl", "path": str(train)}], "steps": steps}),
                   tmp_path / "run", progress=False)
    assert card["contamination"]["b"]["items"] == 1 and sum(card["contamination"]["b"]["skipped_rows"].values()) == 1
    assert "| b | 1 | 0 | 0 | " in (tmp_path / "run" / "data_card.md").read_text()


def test_card_defines_every_builtin_transform():
    from clinforge.data.card import DEFINITIONS
    from clinforge.data.transforms import TRANSFORMS as registry

    builtin = {"deid", "dedup", "contamination", "filter", "chat_format", "split", "make_preference"}
    assert builtin <= set(registry.names()) and builtin <= set(DEFINITIONS)


def test_split_step_cannot_be_limited_to_some_kinds(tmp_path):
    """Records of other kinds would reach the output without a split (it crashed with a TypeError)."""
    p = write(tmp_path, "sources:\n  - {reader: jsonl, path: x.jsonl}\nsteps:\n  - transform: split\n"
                        "    kinds: [note]\n")
    with pytest.raises(ConfigError, match=r"r.yaml:5: steps.0.kinds: a split step applies to every record"):
        load_recipe(p)


def test_records_relabelled_after_the_split_are_an_error(tmp_path):
    from clinforge.core.errors import DataError
    from clinforge.data.transforms.base import Transform

    class Relabel(Transform):
        name = "relabel_test_plugin"

        def apply(self, records):
            for rec in records:
                yield rec.model_copy(update={"split": "holdout"})

    TRANSFORMS.register("relabel_test_plugin", Relabel, override=True)
    src = tmp_path / "n.jsonl"
    src.write_text('{"id": "n1", "kind": "note", "text": "Afebrile overnight."}\n')
    recipe = load_recipe(data={"sources": [{"reader": "jsonl", "path": str(src)}],
                               "steps": [{"transform": "split"}, {"transform": "relabel_test_plugin"}]})
    with pytest.raises(DataError, match=r"record n1, field split: split 'holdout' is not one of the split step's"):
        prepare(recipe, tmp_path / "run", progress=False)


def test_overwrite_refuses_to_delete_its_own_inputs(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    src = run / "n.jsonl"
    src.write_text('{"id": "1", "kind": "note", "text": "Afebrile overnight, tolerating diet."}\n')
    recipe = load_recipe(data={"sources": [{"reader": "jsonl", "path": str(src)}]})
    with pytest.raises(ConfigError, match="is inside the output directory"):
        prepare(recipe, run, overwrite=True, progress=False)
    assert src.exists()


def test_cli_prepare_shows_read_progress_on_a_terminal(tmp_path):
    """On a terminal, each source gets a bar of records read and each step a line with its counts, even when a step
    holds records until the end."""
    import os
    import shutil
    import subprocess
    import sys

    if shutil.which("script") is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but util-linux `script` (bsdutils) is missing: the Ctrl-C test needs a terminal")
        pytest.skip("needs util-linux `script` for a pseudo-terminal")
    recipe = sample_recipe(tmp_path, drop=("deid", "contamination"))  # its split step uses method: shuffle
    cmd = f"{sys.executable} -m clinforge data prepare {recipe} --out {tmp_path / 'run'}"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src"), "TERM": "xterm"}
    out = subprocess.run(["script", "-qec", f"stty cols 120 rows 40; {cmd}", "/dev/null"], capture_output=True,
                         text=True, env=env,
                         timeout=120).stdout
    assert "read notes" in out and "read mcq" in out
    import re

    # each step says when it is done, with its counts (a step that holds every record ends with the last source)
    assert re.search(r"step 1/\d+ \w+: \d+ in, \d+ out \(\d+\.\d s\)", out), out[-2000:]


def test_load_prepared_names_split_row_and_field_of_a_bad_row(tmp_path):
    """A prepared dataset edited by hand: the bad row is named (split, row, field), never quoted."""
    from datasets import Dataset, DatasetDict

    from clinforge.core.errors import DataError
    from clinforge.data.prepare import features

    good = record_to_row(Record(id="1", kind="note", text="Afebrile."))
    bad_kind = {**good, "id": "2", "kind": "notes"}
    DatasetDict({"train": Dataset.from_list([good, bad_kind], features=features())}).save_to_disk(tmp_path / "a")
    with pytest.raises(DataError, match=r"record train\[1\], field kind: not a valid record"):
        load_prepared(tmp_path / "a")
    Dataset.from_list([good, {**good, "meta": "{not json"}], features=features()).save_to_disk(tmp_path / "b")
    with pytest.raises(DataError, match=r"record all\[1\], field meta: meta is not valid JSON"):
        load_prepared(tmp_path / "b")


@pytest.mark.parametrize("method", ["shuffle", "hash"])
def test_same_recipe_twice_gives_the_same_split_though_patient_pseudonyms_differ(tmp_path, monkeypatch, method):
    """Without $CLINFORGE_DEID_KEY, deid pseudonymises patient ids with a random per-run key; the split after it
    anchors each patient on record ids, so a second run draws the same train/validation/test patients (before,
    every run drew another split, and a model trained on one run could be tested on its own patients)."""
    monkeypatch.delenv("CLINFORGE_DEID_KEY", raising=False)
    path = sample_recipe(tmp_path, drop=())
    runs = []
    for i in range(2):
        card = prepare(load_recipe(path, [f"steps.4.options.method={method}"]), tmp_path / f"run{i}", progress=False)
        split_report = next(s for s in card["steps"] if s["transform"] == "split")["report"]
        assert split_report["anchor"] == "record" and split_report["method"] == method
        runs.append({r.id: (name, r.patient_id) for name, recs in load_prepared(tmp_path / f"run{i}").items()
                     for r in recs})
    assert runs[0].keys() == runs[1].keys()
    assert {k: v[0] for k, v in runs[0].items()} == {k: v[0] for k, v in runs[1].items()}
    with_patient = [k for k, v in runs[0].items() if v[1]]
    assert len(with_patient) >= 20 and all(runs[0][k][1] != runs[1][k][1] for k in with_patient)
    assert not check_patient_splits(r for recs in load_prepared(tmp_path / "run0").values() for r in recs)
    cards = [json.loads((tmp_path / f"run{i}" / "data_card.json").read_text()) for i in range(2)]
    lines = sorted(f"{split}\t{rid}\n" for rid, (split, _) in runs[0].items())
    assert cards[0]["split_fingerprint"] == cards[1]["split_fingerprint"] == hashlib.sha256(
        "".join(lines).encode()).hexdigest()
    assert f"`{cards[0]['split_fingerprint']}`" in (tmp_path / "run0" / "data_card.md").read_text()


def test_a_stable_deid_key_keeps_the_patient_anchor(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINFORGE_DEID_KEY", "a site secret")
    card = prepare(load_recipe(sample_recipe(tmp_path, drop=())), tmp_path / "run", progress=False)
    assert next(s for s in card["steps"] if s["transform"] == "split")["report"]["anchor"] == "patient"


def test_shuffle_with_the_record_anchor_orders_groups_by_their_record_ids_not_their_keys():
    """Two groups sharing their smallest record id (duplicated ids) still get one order whatever their keys."""
    from clinforge.data.transforms.split import PatientSplit

    def run(keys: tuple[str, str]) -> list[str]:
        recs = [Record(id="a", kind="note", text="x", patient_id=keys[0]), Record(id="b", kind="note", text="x",
                patient_id=keys[0]), Record(id="a", kind="note", text="y", patient_id=keys[1])]
        recs += [Record(id=f"r{i}", kind="note", text="z") for i in range(8)]
        sp = PatientSplit(fractions={"train": 0.5, "test": 0.5}, method="shuffle", anchor="record", seed=3)
        return [r.split for r in sp.apply(recs)]

    assert run(("pt-1", "pt-2")) == run(("pt-9", "pt-0"))  # the same records, other pseudonyms: the same split


def test_run_pipeline_settles_the_anchor_of_steps_the_caller_built(tmp_path, monkeypatch):
    from clinforge.data.prepare import run_pipeline
    from clinforge.data.transforms.deid import DeidTransform
    from clinforge.data.transforms.split import PatientSplit

    monkeypatch.delenv("CLINFORGE_DEID_KEY", raising=False)
    p = tmp_path / "n.jsonl"
    p.write_text("".join(json.dumps({"id": f"n{i}", "kind": "note", "text": "Afebrile overnight.",
                                     "patient_id": f"MRN{i % 3}"}) + "\n" for i in range(6)))
    split = PatientSplit(method="shuffle")
    it, _, _ = run_pipeline(load_recipe(data={"sources": [{"reader": "jsonl", "path": str(p)}]}),
                            [("1:deid", DeidTransform()), ("2:split", split)])
    assert len(list(it)) == 6 and split.anchor == "record"


def test_only_kinds_keeps_the_order_when_a_one_to_one_transform_reads_ahead():
    # the deid step in worker processes reads a batch before it yields: the records of other kinds must still come
    # out where a record-by-record transform puts them (dedup and split depend on the order)
    from clinforge.data.prepare import only_kinds
    from clinforge.data.transforms.base import Transform

    class Lazy(Transform):
        one_to_one = True

        def apply(self, records):
            for r in records:
                yield r.model_copy(update={"text": r.text.upper()})

    class ReadsAhead(Lazy):
        def apply(self, records):
            batch = list(records)  # everything first, like a batch sent to workers
            yield from (r.model_copy(update={"text": r.text.upper()}) for r in batch)

    recs = [Record(id=f"{k}{i}", kind=k, text=f"t{i}") if k == "note" else
            Record(id=f"{k}{i}", kind=k, question=f"q{i}", answer="a")
            for i, k in enumerate(["qa", "note", "qa", "qa", "note", "note", "qa", "note", "qa"])]
    lazy = [r.id for r in only_kinds(recs, Lazy(), {"note"})]
    assert lazy == [r.id for r in recs]
    assert [r.id for r in only_kinds(recs, ReadsAhead(), {"note"})] == lazy
