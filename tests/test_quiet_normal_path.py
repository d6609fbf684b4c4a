"""Issue 11 item 8: the causes of the alarming warnings on the normal training path, tested at the unit level
(tests/test_train_examples.py runs every shipped example in a subprocess and checks that none of them prints).

The tokenizer's "Token indices sequence length is longer than the specified maximum ... indexing errors" warning
was false: clinforge chunks long documents (cpt), cuts conversations (sft) and TRL cuts preference pairs (dpo) to
``max_length``; the tests check that the training tokens are what they were, and that nothing is printed.
"""

from __future__ import annotations

import logging

import pytest

from clinforge.models.tiny import train_tokenizer
from clinforge.train.align.common import conversational_pairs
from clinforge.train.align.dpo import fit_pairs_to_length
from clinforge.train.data import tokenize_chat, tokenize_text

LONG = " ".join(f"The patient had fever and cough on day {i}, treated with fluids." for i in range(400))


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(vocab_size=512)


@pytest.fixture
def transformers_warnings(caplog):
    """Records what transformers logs (its logger does not propagate to the root logger by default)."""
    logger = logging.getLogger("transformers")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.WARNING, logger="transformers")
    yield caplog
    logger.removeHandler(caplog.handler)


def test_long_document_is_chunked_without_a_false_warning(tok, transformers_warnings):
    rows = tokenize_text([{"text": LONG}], tok, 256)
    full = tok(LONG, verbose=False)["input_ids"] + [tok.eos_token_id]
    assert len(full) > tok.model_max_length  # the case that used to warn
    assert [t for r in rows for t in r["input_ids"]] == full and all(len(r["input_ids"]) <= 256 for r in rows)
    assert "indexing errors" not in transformers_warnings.text


def test_long_conversation_is_cut_without_a_false_warning(tok, transformers_warnings):
    msgs = [{"role": "user", "content": "Summarise."}, {"role": "assistant", "content": LONG}]
    rows, dropped = tokenize_chat([{"messages": msgs}], tok, 300)
    assert dropped == 0 and len(rows[0]["input_ids"]) == 300
    text = tok.apply_chat_template(msgs, tokenize=False)
    assert rows[0]["input_ids"] == tok(text, add_special_tokens=False, verbose=False)["input_ids"][:300]
    assert "indexing errors" not in transformers_warnings.text


def test_preference_pairs_keep_the_same_training_tokens_and_count_drops(tok, transformers_warnings):
    prompt = [{"role": "user", "content": "What is pneumonia?"}]
    pairs = conversational_pairs([{"prompt": prompt, "chosen": LONG, "rejected": "Short wrong answer."},
                                  {"prompt": [{"role": "user", "content": LONG}], "chosen": "a", "rejected": "b"}])
    rows, counts = fit_pairs_to_length(pairs, tok, 256)
    assert counts == {"pairs_dropped_prompt_too_long": 1, "completions_cut": 1} and len(rows) == 1
    assert len(rows[0]["chosen"][0]["content"]) < len(LONG) and rows[0]["rejected"] == pairs[0]["rejected"]

    def first_tokens(row):  # what TRL trains on with keep_start: the first max_length tokens of prompt + completion
        text = tok.apply_chat_template(row["prompt"] + row["chosen"], tokenize=False)
        return tok(text, add_special_tokens=False, verbose=False)["input_ids"][:256]

    assert first_tokens(rows[0]) == first_tokens(pairs[0])
    assert "indexing errors" not in transformers_warnings.text
