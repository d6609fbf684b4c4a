"""chat_format and split: conversions per record kind, chat templates, and the patient-level split invariant."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from clinforge.core.errors import ConfigError
from clinforge.data.records import Message, Record
from clinforge.data.transforms import get_transform
from clinforge.data.transforms.split import check_patient_splits, group_key

MCQ = Record(id="m1", kind="mcq", question="First-line drug for type 2 diabetes?", choices=["Insulin", "Metformin"],
             answer="B", target="Unless contraindicated.", patient_id=None, source="s", split="dev")


def convert(records, **opts):
    cf = get_transform("chat_format", **opts)
    return list(cf.apply(records)), cf.report()


def test_chat_format_mcq_styles():
    (out,), _ = convert([MCQ])
    assert out.kind == "instruction" and out.meta["source_kind"] == "mcq"
    assert (out.id, out.source, out.split) == ("m1", "s", "dev")
    user, assistant = out.messages
    assert user.content == ("First-line drug for type 2 diabetes?\nA. Insulin\nB. Metformin\n"
                            "Answer with the letter of the best option.")
    assert assistant.content == "B. Metformin"
    (out,), _ = convert([MCQ], mcq_answer="letter")
    assert out.messages[-1].content == "B"
    (out,), _ = convert([MCQ], mcq_answer="letter_text_explanation", system="Be careful.")
    assert [m.role for m in out.messages] == ["system", "user", "assistant"]
    assert out.messages[-1].content == "B. Metformin\nUnless contraindicated."


def test_chat_format_every_kind_and_drops():
    turns = [Message(role="assistant", content="What brings you in?"), Message(role="user", content="Cough.")]
    recs = [
        Record(id="qa", kind="qa", question="What is HbA1c?", answer="Glycated hemoglobin.", context="Lab primer."),
        Record(id="qa-empty", kind="qa", question="Unanswered?"),
        Record(id="dlg", kind="dialogue", messages=turns, target="Cough for 3 days.", patient_id="P1",
               meta={"section_header": "HPI"}),
        Record(id="dlg-no-target", kind="dialogue", messages=turns),
        Record(id="rep", kind="report", text="Heart size normal. Lungs clear.", target="No acute disease."),
        Record(id="vqa", kind="vqa", question="Is there a fracture?", answer="no", images=["/x/img1.jpg"]),
        Record(id="ins", kind="instruction", messages=[Message(role="user", content="Hi"),
                                                       Message(role="assistant", content="Hello")]),
        Record(id="pref", kind="preference", prompt=[Message(role="user", content="Q?")], chosen="good", rejected="bad"),
        Record(id="note", kind="note", text="Afebrile overnight.", patient_id="P2"),
    ]
    out, rep = convert(recs)
    by_id = {r.id: r for r in out}
    assert set(by_id) == {"qa", "dlg", "rep", "vqa", "ins", "pref", "note"}
    assert rep["dropped"] == {"qa_without_answer": 1, "dialogue_without_target": 1}
    assert by_id["qa"].messages[0].content == "Lab primer.\n\nWhat is HbA1c?"
    dlg = by_id["dlg"]
    assert dlg.patient_id == "P1" and dlg.messages[-1].content == "Cough for 3 days."
    assert dlg.messages[0].content.startswith("Write the HPI section of the clinical note")
    assert "Doctor: What brings you in?\nPatient: Cough." in dlg.messages[0].content
    assert by_id["rep"].messages[-1].content == "No acute disease."
    assert by_id["vqa"].images == ["/x/img1.jpg"] and by_id["vqa"].messages[-1].content == "no"
    assert by_id["pref"].kind == "preference" and by_id["note"].kind == "note"
    assert rep["converted"]["dialogue->instruction"] == 1 and rep["in"] == 9 and rep["out"] == 7
    out, rep = convert(recs, cpt=False, dialogue_mode="conversation")
    assert rep["dropped"]["note_dropped_cpt_off"] == 1
    assert {r.id for r in out} >= {"dlg", "dlg-no-target"}


@pytest.fixture(scope="module")
def chat_tokenizer(tmp_path_factory):
    """A real (tiny, locally trained) tokenizer with a chat template, saved like any HF tokenizer folder."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["first line drug for type 2 diabetes metformin insulin"],
                            trainers.WordLevelTrainer(special_tokens=["<unk>", "<s>", "</s>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>")
    fast.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
                          "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
    path = tmp_path_factory.mktemp("tok")
    fast.save_pretrained(path)
    return path


def test_chat_format_renders_with_tokenizer_template(chat_tokenizer):
    from transformers import AutoTokenizer

    (out,), rep = convert([MCQ], tokenizer=str(chat_tokenizer))
    expected = AutoTokenizer.from_pretrained(chat_tokenizer).apply_chat_template(
        [m.model_dump() for m in out.messages], tokenize=False)
    assert out.text == expected
    assert out.text.startswith("<|user|>\nFirst-line drug") and "<|assistant|>\nB. Metformin</s>" in out.text
    assert rep["rendered_with_tokenizer"] is True


def test_chat_format_mcq_prompt_is_the_one_dpo_and_train_use():
    """SFT examples (chat_format), DPO pairs (make_preference) and train's own MCQ form share one prompt layout."""
    from clinforge.data.transforms.preference import format_mcq_prompt
    from clinforge.train.data import record_to_messages

    rec = MCQ.model_copy(update={"context": "An adult clinic population."})
    (out,), _ = convert([rec])
    pair = next(get_transform("make_preference", include_context=True).apply([rec]))
    assert out.messages[0].content == pair.prompt[0].content == format_mcq_prompt(rec, include_context=True)
    assert out.messages[0].content == record_to_messages(rec)[0]["content"]
    assert out.messages[1].content == pair.chosen == "B. Metformin"


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    """clinforge's own tiny model folder: a trained byte-level BPE tokenizer with a ChatML chat template."""
    from clinforge.models.tiny import build_tiny

    return build_tiny("llama", tmp_path_factory.mktemp("tiny") / "m", vocab_size=512, hidden_size=32, num_layers=1)


def test_chat_format_with_build_tiny_chat_template(tiny_model_dir):
    from transformers import AutoTokenizer

    dlg = Record(id="d", kind="dialogue", messages=[Message(role="assistant", content="Any chest pain?"),
                                                     Message(role="user", content="No.")], target="Denies chest pain.")
    out, rep = convert([MCQ, dlg], tokenizer=str(tiny_model_dir), system="Be careful.")
    assert out[0].text == ("<|im_start|>system\nBe careful.<|im_end|>\n<|im_start|>user\nFirst-line drug for type 2 "
                           "diabetes?\nA. Insulin\nB. Metformin\nAnswer with the letter of the best option.<|im_end|>\n"
                           "<|im_start|>assistant\nB. Metformin<|im_end|>\n")
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert out[1].text == tok.apply_chat_template([m.model_dump() for m in out[1].messages], tokenize=False)
    ids = tok(out[0].text)["input_ids"]  # the special tokens are single tokens: the template matches the vocabulary
    assert ids.count(tok.convert_tokens_to_ids("<|im_start|>")) == 3 and tok.decode(ids) == out[0].text


def test_chat_format_unloadable_tokenizer_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"chat_format.tokenizer: cannot load a tokenizer from .*no-such"):
        get_transform("chat_format", tokenizer=str(tmp_path / "no-such"))
    with pytest.raises(ConfigError, match="chat_format.tokenizer: cannot load"):
        get_transform("chat_format", tokenizer="no/such/tok")
    # a hub id with the hub unreachable (a closed loopback port) and nothing cached: at once, naming the id
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = ("from clinforge.data.transforms.base import get_transform\n"
            "get_transform('chat_format', tokenizer='clinforge-test/not-cached')\n")
    env = {**os.environ, "HF_ENDPOINT": f"http://127.0.0.1:{port}", "HF_HUB_CACHE": str(tmp_path / "hub"),
           "HF_HUB_OFFLINE": "0", "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and ("chat_format.tokenizer: cannot load a tokenizer: 'clinforge-test/not-cached' is "
                                    "not a local folder and not in the Hugging Face cache") in run.stderr, run.stderr
    assert "Retry" not in run.stderr


def test_chat_format_template_error_names_the_record(tmp_path, chat_tokenizer):
    from transformers import AutoTokenizer

    from clinforge.core.errors import DataError

    tok = AutoTokenizer.from_pretrained(chat_tokenizer)
    tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}"
                         "{{ raise_exception('System role not supported') }}{% endif %}{{ m['content'] }}{% endfor %}")
    tok.save_pretrained(tmp_path)
    with pytest.raises(DataError, match=r"record m1.*messages.*System role not supported"):
        convert([MCQ], tokenizer=str(tmp_path), system="Be careful.")


def test_chat_format_tokenizer_without_template(tmp_path, chat_tokenizer):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(chat_tokenizer)
    tok.chat_template = None
    tok.save_pretrained(tmp_path)
    (tmp_path / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(ConfigError, match="no chat template"):
        get_transform("chat_format", tokenizer=str(tmp_path))


# ------------------------------------------------------------------------------------------------------- split
def patient_records(n=600, patients=120, seed=0):
    rng = random.Random(seed)
    recs = []
    for i in range(n):
        pid = f"P{rng.randrange(patients)}" if i % 4 else None  # a quarter without patient ids
        recs.append(Record(id=f"r{i}", kind="note", text=f"note {i}", patient_id=pid, split="train" if i % 2 else None))
    return recs


@pytest.mark.parametrize("method", ["hash", "shuffle"])
def test_split_keeps_patients_together(method):
    recs = patient_records()
    sp = get_transform("split", method=method, seed=3)
    out = list(sp.apply(recs))
    assert len(out) == len(recs) and check_patient_splits(out) == {}
    rep = sp.report()
    assert rep["groups_crossing_splits"] == 0 and rep["patients"] == len({r.patient_id for r in recs if r.patient_id})
    assert sum(rep["records_per_split"].values()) == len(recs)
    counts = rep["records_per_split"]
    assert 0.65 < counts["train"] / len(recs) < 0.95 and counts["validation"] > 0 and counts["test"] > 0
    # every record of one patient has one split
    where = {}
    for r in out:
        if r.patient_id:
            assert where.setdefault(r.patient_id, r.split) == r.split
    # the source split is kept in meta
    assert all(r.meta.get("source_split") == "train" for r in out if recs[int(r.id[1:])].split == "train")


def test_split_hash_is_order_independent_and_seeded():
    recs = patient_records()
    a = {r.id: r.split for r in get_transform("split").apply(recs)}
    b = {r.id: r.split for r in get_transform("split").apply(list(reversed(recs)))}
    c = {r.id: r.split for r in get_transform("split", seed=1).apply(recs)}
    assert a == b and a != c


def test_split_shuffle_hits_fractions_closely():
    recs = patient_records(n=1000, patients=400)
    sp = get_transform("split", method="shuffle", fractions={"train": 0.7, "test": 0.3})
    list(sp.apply(recs))
    assert abs(sp.report()["records_per_split"]["train"] - 700) <= 10


def test_split_groups_idless_records_by_id():
    r = Record(id="x", kind="note", text="t")
    assert group_key(r) == "record:x"


def test_split_fractions_must_sum_to_one():
    with pytest.raises(ConfigError, match="sum to 1"):
        get_transform("split", fractions={"train": 0.8, "test": 0.3})


# ------------------------------------------------------------------------------------------------- preference
def test_mismatched_answer_never_borrows_from_another_split():
    """A rejected answer taken from a test record would put evaluation text into training pairs."""
    recs = [Record(id=f"{s}{i}", kind="qa", question=f"q {s}{i}?", answer=f"answer {s}{i}", split=s)
            for s in ("train", "test") for i in range(6)] + [
        Record(id="lone", kind="qa", question="q?", answer="only validation answer", split="validation")]
    t = get_transform("make_preference", strategy="mismatched_answer", seed=3)
    pairs = list(t.apply(recs))
    assert len(pairs) == 12
    by_id = {r.id: r for r in recs}
    for p in pairs:
        donor = by_id[p.meta["rejected_from"]]
        assert donor.split == p.split and donor.id != p.id and p.rejected == donor.answer
    assert t.report()["dropped"] == {"fewer than two answers to mismatch within the split": 1}
