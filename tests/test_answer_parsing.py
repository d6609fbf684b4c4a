"""One answer grammar for training and evaluation: the RL reward ``mcq_letter`` and ``clinforge eval``'s scoring of
generated MCQ answers read every completion the same way (issue 7: "The answer is a bacterial infection. Answer: C"
was A for the reward and C for the evaluator)."""

from __future__ import annotations

import pytest

from clinforge.data.answer_parsing import extract_choice, parse_letter
from clinforge.data.records import Record
from clinforge.eval.tasks.base import TASKS
from clinforge.train.align.common import PromptOptions, record_prompt
from clinforge.train.align.rewards import build_reward, parse_answer_letter

# (completion, letter both paths must read; None = no answer). Four options A-D.
TRICKY = [
    ("The answer is a bacterial infection. Answer: C", "C"),  # the example: "a" is a word, not option A
    ("Answer: B", "B"),
    ("answer: d", None),  # lower-case letters are words, never options
    ("The answer is (C).", "C"),
    ("Reasoning first. Answer: A\nOn reflection, Answer: D", "D"),  # the LAST final-answer line counts
    ("B. Metformin", "B"),
    ("(D) because the patient is septic", "D"),
    (" C", "C"),
    ("A 45-year-old man presents with chest pain", None),  # restating the question is not option A
    ("I think B is right", None),  # a pronoun "I" is not an option, and "B is" is not an answer line
    ("E. None of the above", None),  # E is not one of four options
    ("Answer: E", None),
    ("answer is A", "A"),
    ("The final answer is: (B)", "B"),
    ("Answer=C", "C"),
    ("Answer: Cardiology", None),  # C followed by letters is a word, not the option
    ("I don't know.", None),
    ("", None),
    ("B\nbecause it lowers glucose", "B"),
    ("Answer: (A) aspirin, not Answer: B", "B"),
]


def eval_parse(task, record: Record, output: str) -> str | None:
    """What ``clinforge eval`` scores for a generated answer: the MCQ task's own score() on a generate plan."""
    plan = task.build(record, "generate", [])
    row = task.score(record, plan, [output])
    return row["parsed"]


@pytest.fixture(scope="module")
def medqa_task():
    return TASKS.get("medqa")


@pytest.mark.parametrize("text,expected", TRICKY)
def test_reward_and_eval_read_the_same_letter(text, expected, medqa_task):
    record = Record(id="q1", kind="mcq", question="Which organism?", choices=["virus", "fungus", "bacterium",
                                                                            "prion"], answer="C")
    assert eval_parse(medqa_task, record, text) == expected
    # the reward as the rl stage calls it: dataset columns answer + choice_letters from record_prompt / load_prompts
    prompt, gold = record_prompt(record, PromptOptions())
    assert gold == "C" and prompt[-1]["content"].startswith("Which organism?")
    logged: dict[str, float] = {}
    reward = build_reward("mcq_letter")(prompts=[prompt], completions=[[{"role": "assistant", "content": text}]],
                                        answer=["C"], choice_letters=[["A", "B", "C", "D"]],
                                        log_metric=lambda k, v: logged.update({k: v}))
    assert reward == [1.0 if expected == "C" else 0.0]
    assert logged["mcq_letter/unparsable_frac"] == (1.0 if expected is None else 0.0)
    # the building blocks agree too
    assert parse_letter(text, 4) == expected == extract_choice(text, ["A", "B", "C", "D"]).answer
    assert parse_answer_letter(text, 4) == expected


def test_reward_uses_each_records_own_options():
    """A 3-option PubMedQA-style item and a 5-option MedMCQA-style item in one batch: "E" only counts where an
    option E exists, as the evaluator would read it."""
    fn = build_reward("mcq_letter")
    got = fn(prompts=["q", "q"], completions=["Answer: E", "Answer: E"], answer=["E", "E"],
             choice_letters=[["A", "B", "C"], ["A", "B", "C", "D", "E"]])
    assert got == [0.0, 1.0]


def test_rl_prompt_rows_carry_the_options(tmp_path, data_root):
    """The rl stage's prompt rows hold choice_letters, so the reward sees the options eval's task sees."""
    from clinforge.train.align.rl import RLStage
    from clinforge.train.recipe import Recipe
    from clinforge.train.stages.base import StageContext

    src = {"reader": "pubmedqa", "path": str(data_root / "pubmedqa/data/ori_pqal.json"), "limit": 3}
    recipe = Recipe.model_validate({"model": "unused", "stages": [
        {"name": "rl", "type": "rl", "data": {"sources": [src]}, "train": {"batch_size": 2},
         "options": {"rewards": ["mcq_letter"], "num_generations": 2}}]})
    ctx = StageContext(recipe=recipe, spec=recipe.stages[0], index=0, model_path="unused", base_model="unused",
                       out_dir=tmp_path, run_dir=tmp_path)
    rows, _ = RLStage(ctx).load_prompts(PromptOptions())
    assert len(rows) == 3
    assert all(r["choice_letters"] == ["A", "B", "C"] and r["answer"] in "ABC" for r in rows)


def test_mcq_letter_rejects_impossible_option_counts():
    from clinforge.core.errors import ConfigError

    with pytest.raises(ConfigError, match="n_options must be 1..26"):
        build_reward({"name": "mcq_letter", "n_options": 27})
