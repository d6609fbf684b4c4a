"""From records to training examples: read a stage's sources, turn records into text / chat / preference examples,
tokenise them with assistant-only labels, and collate them padding-free.

Record -> example conversions (documented in docs/train.md):

* ``text`` (cpt): note/document -> text; qa -> "Question: ...\\nAnswer: ..." (context first); mcq -> question,
  lettered options, "Answer: X" and the explanation; dialogue -> the transcript (and the note written from it);
  report -> findings + impression; instruction -> the turns as "role: content".
* ``chat`` (ift/sft): instruction -> its messages; qa -> user question (+context) / assistant answer; mcq -> user
  question with options / assistant "X. option"; dialogue or report with a ``target`` -> user asks for the note
  section (MTS-Dialog header) or impression / assistant target; a dialogue without target -> its own turns.
* ``preference`` (dpo/rm/rlaif): preference records -> {prompt, chosen, rejected}.

A record that has no form for the stage (e.g. a bare note in an SFT stage) is skipped and counted under its
reason in the stage's data card; a stage whose sources yield no usable example raises a DataError that names the
reader, the rows skipped and why.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinforge.core.errors import ConfigError, DataError
from clinforge.data.records import LETTERS, Record
from clinforge.train.recipe import DataSpec, SourceSpec

IGNORE_INDEX = -100


# ---- records -> examples -----------------------------------------------------------------------------------
def _mcq_prompt(r: Record) -> str:
    opts = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(r.choices or []))
    ctx = f"{r.context}\n\n" if r.context else ""
    return f"{ctx}{r.question}\n{opts}"


def record_to_text(r: Record) -> str | None:
    """Plain text of a record for causal-LM (cpt) training, or None when it has none.

    Example:
        >>> record_to_text(Record(id="1", kind="qa", question="What is BP?", answer="Blood pressure."))
        'Question: What is BP?\\nAnswer: Blood pressure.'
    """
    k = r.kind
    if k in ("note", "document", "caption"):
        return r.text
    if k == "report":
        return r.text + (f"\nImpression: {r.target}" if r.target else "")
    if k == "qa":
        if not r.answer:
            return None
        ctx = f"{r.context}\n" if r.context else ""
        return f"{ctx}Question: {r.question}\nAnswer: {r.answer}"
    if k == "mcq":
        expl = f"\n{r.target}" if r.target else ""
        return f"{_mcq_prompt(r)}\nAnswer: {r.answer}{expl}"
    if k == "vqa":
        return f"Question: {r.question}\nAnswer: {r.answer}" if r.answer else None
    if k in ("dialogue", "instruction"):
        body = r.text or "\n".join(f"{m.role}: {m.content}" for m in r.messages or [])
        return body + (f"\n\n{r.target}" if r.target else "")
    if k == "preference":
        return "\n".join(m.content for m in r.prompt or []) + "\n" + (r.chosen or "")
    return None


def record_to_messages(r: Record, system: str | None = None) -> list[dict[str, str]] | None:
    """Chat turns (ending in an assistant turn) for ift/sft, or None when the record has no chat form.

    Example:
        >>> record_to_messages(Record(id="1", kind="qa", question="Q?", answer="A."))
        [{'role': 'user', 'content': 'Q?'}, {'role': 'assistant', 'content': 'A.'}]
    """
    k = r.kind
    msgs: list[dict[str, str]] | None = None
    if k == "instruction" or (k == "dialogue" and not r.target):
        msgs = [m.model_dump() for m in r.messages or []]
    elif k == "qa" and r.answer:
        ctx = f"{r.context}\n\n" if r.context else ""
        msgs = [{"role": "user", "content": f"{ctx}{r.question}"}, {"role": "assistant", "content": r.answer}]
    elif k == "mcq":
        idx = LETTERS.index(r.answer)
        msgs = [{"role": "user", "content": _mcq_prompt(r) + "\nAnswer with the letter of the best option."},
                {"role": "assistant", "content": f"{r.answer}. {r.choices[idx]}"}]
    elif k == "dialogue" and r.target:
        header = r.meta.get("section_header")
        what = f"the {header} section of the clinical note" if header else "the clinical note"
        transcript = r.text or "\n".join(f"{m.role}: {m.content}" for m in r.messages or [])
        msgs = [{"role": "user", "content": f"Write {what} for this doctor-patient conversation.\n\n{transcript}"},
                {"role": "assistant", "content": r.target}]
    elif k == "report" and r.target:
        msgs = [{"role": "user", "content": f"Write the impression for these radiology findings.\n\n{r.text}"},
                {"role": "assistant", "content": r.target}]
    elif k == "vqa" and r.answer and not r.images:
        msgs = [{"role": "user", "content": r.question}, {"role": "assistant", "content": r.answer}]
    elif k == "preference":
        msgs = [m.model_dump() for m in r.prompt or []] + [{"role": "assistant", "content": r.chosen}]
    if not msgs or msgs[-1]["role"] != "assistant" or not msgs[-1]["content"]:
        return None
    if system and msgs[0]["role"] != "system":
        msgs = [{"role": "system", "content": system}] + msgs
    return msgs


def record_to_prompt(r: Record, system: str | None = None) -> list[dict[str, str]] | None:
    """The prompt turns of a record (its chat form without the final assistant turn), for RL / RLAIF sampling.

    Example:
        >>> record_to_prompt(Record(id="1", kind="qa", question="Q?", answer="A."))
        [{'role': 'user', 'content': 'Q?'}]
    """
    if r.kind == "preference":
        msgs = [m.model_dump() for m in r.prompt or []]
        if system and msgs and msgs[0]["role"] != "system":
            msgs = [{"role": "system", "content": system}] + msgs
        return msgs or None
    msgs = record_to_messages(r, system)
    return msgs[:-1] if msgs else None


def record_to_preference(r: Record, system: str | None = None) -> dict[str, Any] | None:
    """``{"prompt": messages, "chosen": str, "rejected": str}`` of a preference record, else None."""
    if r.kind != "preference":
        return None
    return {"prompt": record_to_prompt(r, system), "chosen": r.chosen, "rejected": r.rejected}


def record_to_example(r: Record, fmt: str, system: str | None = None) -> dict[str, Any] | None:
    """One training example in format ``fmt`` (text, chat, preference, prompt), with id and patient id kept."""
    if fmt == "text":
        body = record_to_text(r)
        ex = {"text": body} if body else None
    elif fmt == "chat":
        msgs = record_to_messages(r, system)
        ex = {"messages": msgs} if msgs else None
    elif fmt == "preference":
        ex = record_to_preference(r, system)
    elif fmt == "prompt":
        p = record_to_prompt(r, system)
        ex = {"prompt": p, "reference": r.answer if r.kind != "mcq" else r.answer, "record": r.model_dump()} if p \
            else None
    else:
        raise ConfigError(f"unknown data format {fmt!r}; valid: text, chat, preference, prompt")
    if ex is not None:
        ex["id"] = r.id
        ex["patient_id"] = r.patient_id
    return ex


# ---- reading sources ---------------------------------------------------------------------------------------
@dataclass
class StageData:
    """Examples of a stage and the data cards describing where they came from.

    ``source_of`` maps ``id(example)`` to the index of its source's card, so that what happens to an example
    later (e.g. dropped at tokenisation) is counted on the card of the source it came from.
    """

    train: list[dict[str, Any]]
    eval: list[dict[str, Any]] = field(default_factory=list)
    cards: list[dict[str, Any]] = field(default_factory=list)
    source_of: dict[int, int] = field(default_factory=dict, repr=False)

    def note_sources(self, examples: list[dict[str, Any]], card_index: int) -> None:
        """Remember that ``examples`` came from the source of ``cards[card_index]``."""
        self.source_of.update((id(ex), card_index) for ex in examples)

    def count_dropped_per_card(self, dropped: list[tuple[dict[str, Any], str]]) -> list[Counter]:
        """Dropped ``(example, reason)`` pairs counted by reason on the card of each example's source.

        A card's count covers every example read from its source (``examples`` on the card), whether it went to
        the train or the eval set (``eval_fraction``). Examples of unknown origin are not counted on any card.

        Example:
            >>> a, b = {"id": "a"}, {"id": "b"}
            >>> data = StageData(train=[a, b], cards=[{"role": "train"}, {"role": "train"}])
            >>> data.note_sources([a], 0); data.note_sources([b], 1)
            >>> data.count_dropped_per_card([(b, "too long")])
            [Counter(), Counter({'too long': 1})]
        """
        per_card: list[Counter] = [Counter() for _ in self.cards]
        for ex, reason in dropped:
            i = self.source_of.get(id(ex))
            if i is not None:
                per_card[i][reason] += 1
        return per_card

    def eval_origin(self) -> str:
        """Where the eval examples came from, for messages: the eval sources' paths, or the train split.

        Example:
            >>> StageData(train=[], eval=[{}], cards=[{"role": "eval", "path": "/d/val.jsonl"}]).eval_origin()
            'from /d/val.jsonl'
            >>> StageData(train=[], eval=[{}]).eval_origin()
            'split off the train sources by data.eval_fraction'
        """
        paths = [str(c.get("path")) for c in self.cards if c.get("role") == "eval"]
        return f"from {', '.join(paths)}" if paths else "split off the train sources by data.eval_fraction"


def _is_prepared_dataset(path: Path) -> bool:
    folder = path / "dataset" if (path / "dataset").is_dir() else path
    return (folder / "dataset_dict.json").is_file() or (folder / "dataset_info.json").is_file()


def _prepared_records(src: SourceSpec) -> tuple[list[Record], dict[str, Any], str]:
    """Records of one split of a ``clinforge data prepare`` output, with a reader-like report."""
    try:
        from clinforge.data.prepare import load_prepared
    except ImportError as exc:  # pragma: no cover - present once the data-prepare module is installed
        raise DataError("reading a prepared dataset needs clinforge.data.prepare", file=src.prepared) from exc
    splits = load_prepared(src.prepared)
    name = src.split or ("train" if "train" in splits else "all" if "all" in splits else None)
    if name not in splits:
        raise DataError(f"prepared dataset has no split {name!r}; splits: {', '.join(splits)}", file=src.prepared,
                        field="split")
    records = splits[name][: src.limit] if src.limit else splits[name]
    report = {"rows": len(records), "records": len(records), "skipped": {}}
    summary = prepared_card_summary(Path(src.prepared))
    if summary:
        report["prepared_card"] = summary
    return records, report, f"prepared:{name}"


def prepared_card_summary(path: Path) -> dict[str, Any] | None:
    """The headline of a prepared dataset's ``data_card.json`` (what ``clinforge data prepare`` did to the data),
    carried into the stage's data card and the model card; None when the folder has no data card.

    Example:
        >>> prepared_card_summary(Path("/no/such/run")) is None
        True
    """
    import json

    run = path.parent if path.name == "dataset" else path
    card_file = run / "data_card.json"
    if not card_file.is_file():
        return None
    card = json.loads(card_file.read_text(encoding="utf-8"))
    return {"data_card": str(card_file), "recipe": card.get("recipe"), "records_in": card.get("records_in"),
            "records_out": card.get("records_out"), "steps": [s.get("transform") for s in card.get("steps", [])],
            "phi_by_type": card.get("phi_by_type"), "duplicates_removed": card.get("duplicates_removed"),
            "contamination": card.get("contamination"), "splits": {k: v.get("records") for k, v in
                                                                   (card.get("splits") or {}).items()}}


def _plain_prepared(path: Path) -> tuple[str, Path]:
    if path.is_file():
        return ("parquet" if path.suffix == ".parquet" else "jsonl"), path
    for name in ("records.jsonl", "train.jsonl", "data.jsonl"):
        if (path / name).is_file():
            return "jsonl", path / name
    jsonls = sorted(path.glob("*.jsonl"))
    if len(jsonls) == 1:
        return "jsonl", jsonls[0]
    raise DataError("not a prepared dataset (no dataset/ from clinforge data prepare, records.jsonl or single "
                    "*.jsonl)", file=str(path))


def check_source(src: SourceSpec, key: str = "source") -> None:
    """Fail early (a ConfigError with ``key``) when a source names an unknown reader or a path that does not exist.

    Reading is left to the stage; this only checks what is knowable without reading, so a recipe whose third
    stage points at a missing folder fails before the first stage trains.

    Example:
        >>> check_source(SourceSpec(reader="medquadd", path="."))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        clinforge.core.errors.ConfigError: source.reader: unknown reader 'medquadd'; valid: ...
    """
    from clinforge.data.readers.base import READERS

    if src.prepared is not None:
        if not Path(src.prepared).exists():
            raise ConfigError(f"prepared dataset not found: {src.prepared}", key=f"{key}.prepared")
        return
    if src.reader not in READERS:
        raise ConfigError(f"unknown reader {src.reader!r}; valid: {', '.join(READERS.names())}", key=f"{key}.reader")
    if src.reader != "hf" and not Path(src.path).exists():
        raise ConfigError(f"data source for reader {src.reader!r} not found: {src.path}", key=f"{key}.path")


def read_source_records(src: SourceSpec) -> tuple[list[Record], dict[str, Any], str, Path]:
    """Records of one source (a reader + path, or a prepared dataset) with the reader's report.

    Returns ``(records, report, reader_name, path)``; the report has the reader-report keys ``rows``,
    ``records`` and ``skipped``. Stages that convert records themselves (alignment stages) start here.
    """
    from clinforge.data.load import read_records

    if src.prepared is not None and _is_prepared_dataset(Path(src.prepared)):
        records, rep, reader_name = _prepared_records(src)
        return records, rep, reader_name, Path(src.prepared)
    if src.prepared is not None:
        reader_name, path = _plain_prepared(Path(src.prepared))
    else:
        reader_name, path = src.reader, Path(src.path)
    if not Path(path).exists() and reader_name != "hf":
        raise DataError(f"data source for reader {reader_name!r} not found", file=str(path))
    stream, reader = read_records(str(path), reader_name, on_error=src.on_error, limit=src.limit, **src.options)
    records = list(stream)
    return records, reader.report.as_dict(), reader_name, path


def source_card(src: SourceSpec, records: list[Record], report: dict[str, Any], reader_name: str,
                path: Path) -> dict[str, Any]:
    """The data card of one source before conversion: reader, path, rows read, records, skips by reason, kinds.

    Stages add ``format``, ``examples`` and ``unconvertible`` (records with no form for the stage, by reason).
    """
    return {"reader": reader_name, "path": str(path), "rows": report["rows"], "records": report["records"],
            "reader_skipped": report["skipped"], "unconvertible": {}, "limit": src.limit,
            "kinds": dict(Counter(r.kind for r in records)),
            "patients": len({r.patient_id for r in records if r.patient_id}),
            **({"prepared": report["prepared_card"]} if report.get("prepared_card") else {})}


def split_eval(train: list[Any], evals: list[Any], spec: DataSpec, seed: int, what: str = "examples"
               ) -> tuple[list[Any], list[Any]]:
    """Shuffle ``train`` with ``seed`` (when ``spec.shuffle``) and, when no eval set was given, hold out
    ``spec.eval_fraction`` of it; returns ``(train, eval)``.

    Example:
        >>> split_eval(list(range(10)), [], DataSpec(sources=[SourceSpec(prepared=".")], eval_fraction=0.2,
        ...            shuffle=False), seed=0)
        ([2, 3, 4, 5, 6, 7, 8, 9], [0, 1])
    """
    train = list(train)
    if spec.shuffle:
        random.Random(seed).shuffle(train)
    if spec.eval_fraction and not evals:
        n_eval = max(1, int(len(train) * spec.eval_fraction))
        if n_eval >= len(train):
            raise DataError(f"eval_fraction {spec.eval_fraction} leaves no training {what} ({len(train)} in all)")
        evals, train = train[:n_eval], train[n_eval:]
    return train, evals


def check_eval_kept(stage: str, given: int, kept: int, max_length: int, what: str = "examples",
                    origin: str | None = None) -> None:
    """Raise a DataError when eval data was given and fitting it to ``max_length`` left nothing.

    ``origin`` (e.g. ``StageData.eval_origin()``) says in the message where the eval examples came from.

    A stage would otherwise train without the held-out loss it was asked for, or (with ``train.eval_every``) stop at
    its first evaluation with transformers' message about its own arguments.

    Example:
        >>> check_eval_kept("sft", given=5, kept=2, max_length=128)  # some left: fine
        >>> check_eval_kept("sft", given=5, kept=0, max_length=128)
        Traceback (most recent call last):
        ...
        clinforge.core.errors.DataError: stage sft: none of the 5 eval examples keeps a target within max_length 128; \
raise train.max_length or give shorter eval data
    """
    if given and not kept:
        where = f" ({origin})" if origin else ""
        raise DataError(f"stage {stage}: none of the {given} eval {what}{where} keeps a target within max_length "
                        f"{max_length}; raise train.max_length or give shorter eval data")


def read_source(src: SourceSpec, fmt: str, system: str | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Read one source and convert its records; returns examples and a data card (counts, skips with reasons).

    Raises DataError naming the reader, rows read and skipped (by reason) when nothing usable comes out.
    """
    records, rep, reader_name, path = read_source_records(src)
    examples: list[dict[str, Any]] = []
    unconvertible: Counter = Counter()
    for rec in records:
        ex = record_to_example(rec, fmt, system)
        if ex is None:
            unconvertible[f"{rec.kind} record has no {fmt} form"] += 1
            continue
        examples.append(ex)
    card = {**source_card(src, records, rep, reader_name, path), "format": fmt,
            "unconvertible": dict(unconvertible), "examples": len(examples),
            "patients": len({e["patient_id"] for e in examples if e.get("patient_id")})}
    if not examples:
        why = {**rep["skipped"], **unconvertible}
        reasons = "; ".join(f"{n} x {r}" for r, n in why.items()) or "the source yielded no records"
        raise DataError(f"no usable {fmt} examples from reader {reader_name!r}: {rep['rows']} rows read, "
                        f"{rep['records']} records, {sum(why.values())} skipped ({reasons})", file=str(path))
    return examples, card


def load_stage_data(spec: DataSpec, *, fmt: str, seed: int = 0, file: str | None = None,
                    lines: dict | None = None, stage_index: int = 0) -> StageData:
    """Read every source of a stage, split off eval examples, and shuffle the training set with ``seed``.

    Example:
        >>> # spec = DataSpec(sources=[SourceSpec(reader="medquad", path="../shared/data/medquad", limit=50)])
        >>> # load_stage_data(spec, fmt="chat").train[0]["messages"][0]["role"]  -> 'user'
    """
    data = StageData(train=[])
    train: list[dict[str, Any]] = []
    evals: list[dict[str, Any]] = []
    for role, sources, into in (("train", spec.sources, train), ("eval", spec.eval_sources, evals)):
        for src in sources:
            ex, card = read_source(src, fmt, spec.system)
            data.note_sources(ex, len(data.cards))
            into += ex
            data.cards.append({**card, "role": role})
    data.train, data.eval = split_eval(train, evals, spec, seed)
    return data


# ---- tokenisation -------------------------------------------------------------------------------------------
def tokenize_text(examples: list[dict[str, Any]], tokenizer, max_length: int) -> list[dict[str, Any]]:
    """Tokenise text examples for causal LM; documents longer than ``max_length`` are split into chunks.

    Each chunk ends with EOS when it ends its document; labels equal input ids (the model shifts them).
    """
    out = []
    eos = tokenizer.eos_token_id
    for ex in examples:
        # the whole document at once, chunked below: verbose=False stops the tokenizer's "longer than the maximum
        # sequence length ... indexing errors" warning, which is false here (no chunk exceeds max_length)
        ids = tokenizer(ex["text"], add_special_tokens=True, verbose=False)["input_ids"]
        if eos is not None and (not ids or ids[-1] != eos):
            ids = ids + [eos]
        for start in range(0, len(ids), max_length):
            chunk = ids[start:start + max_length]
            if len(chunk) < 2:
                continue
            out.append({"input_ids": chunk, "labels": list(chunk), "patient_id": ex.get("patient_id")})
    return out


def assistant_char_spans(tokenizer, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """Render ``messages`` with the chat template; return the text and the character spans of assistant turns.

    Works with any template that renders a conversation's prefixes as prefixes of the full text (true of
    ChatML, Llama, Mistral, Qwen, Gemma templates): each assistant span runs from the end of the prompt rendered
    with ``add_generation_prompt=True`` to the end of the conversation rendered up to that turn. This is why we
    do not rely on TRL's ``assistant_only_loss``, which needs ``{% generation %}`` markers few templates have.
    """
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True) if i else ""
        upto = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not full.startswith(upto) or not upto.startswith(before):
            raise DataError("the chat template does not render conversation prefixes as prefixes; "
                            "assistant-only labels cannot be located", field="chat_template")
        spans.append((len(before), len(upto)))
    return full, spans


DROP_NO_TARGET = "no target after truncation"


def tokenize_chat(examples: list[dict[str, Any]], tokenizer, max_length: int,
                  dropped_examples: list[tuple[dict[str, Any], str]] | None = None
                  ) -> tuple[list[dict[str, Any]], int]:
    """Tokenise chat examples; labels are the assistant tokens only (others -100). Returns (rows, truncated_out).

    A conversation longer than ``max_length`` is truncated; one whose assistant tokens all fall beyond the cut
    is dropped and counted (second value) rather than trained on with no target. ``dropped_examples``, when
    given, receives ``(example, DROP_NO_TARGET)`` for each dropped example (for per-source counts on data cards).

    Example:
        >>> # rows, dropped = tokenize_chat(data.train, tokenizer, 512)
    """
    if getattr(tokenizer, "chat_template", None) is None:
        raise ConfigError("the tokenizer has no chat_template; ift/sft need one (clinforge models tiny sets one)")
    out, dropped = [], 0
    for ex in examples:
        text, spans = assistant_char_spans(tokenizer, ex["messages"])
        # verbose=False: the tokenizer's "longer than the maximum sequence length" warning is false here, the
        # conversation is cut to max_length below (and dropped and counted if no assistant token survives)
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        labels = []
        for tok, (a, b) in zip(ids, offsets, strict=True):
            inside = any(s <= a and b <= e and b > a for s, e in spans)
            labels.append(tok if inside else IGNORE_INDEX)
        ids, labels = ids[:max_length], labels[:max_length]
        if all(x == IGNORE_INDEX for x in labels):
            dropped += 1
            if dropped_examples is not None:
                dropped_examples.append((ex, DROP_NO_TARGET))
            continue
        out.append({"input_ids": ids, "labels": labels, "patient_id": ex.get("patient_id")})
    return out, dropped


STATE_SPACE_MODELS = frozenset({"mamba", "mamba2", "falcon_mamba", "rwkv", "jamba", "bamba", "zamba", "zamba2"})


def supports_packed_positions(model_config) -> bool:
    """True when the model keeps packed examples apart given position_ids (attention models using
    ``create_causal_mask``); recurrent/state-space models carry state across the row, so they are padded."""
    return getattr(model_config, "model_type", "") not in STATE_SPACE_MODELS


class PackingCollator:
    """Padding-free packing collator. The batch's examples are packed into about ``tokens / max_row_tokens``
    balanced rows (longest first into the lightest row; one row holding everything when ``max_row_tokens`` is
    None, like
    ``transformers.DataCollatorWithFlattening``); position_ids restart at 0 for each example, so attention
    implementations that read packed position_ids (sdpa, eager, flex, flash) keep examples apart, and the first
    label of each example is -100 (no prediction across a boundary). Rows shorter than the longest are filled with
    a padding run that has its own positions and -100 labels (so no attention mask is needed).

    Bounding rows by ``max_row_tokens`` keeps attention cost at rows x max_length^2 instead of (batch tokens)^2,
    which matters where no variable-length kernel exists (CPU sdpa).

    Example:
        >>> c = PackingCollator()
        >>> b = c([{"input_ids": [5, 6], "labels": [5, 6]}, {"input_ids": [7, 8, 9], "labels": [7, 8, 9]}])
        >>> b["position_ids"].tolist(), b["labels"].tolist()
        ([[0, 1, 0, 1, 2]], [[-100, 6, -100, 8, 9]])
        >>> b = PackingCollator(max_row_tokens=3)([{"input_ids": [5, 6], "labels": [5, 6]},
        ...                                        {"input_ids": [7, 8, 9], "labels": [7, 8, 9]}])
        >>> b["input_ids"].tolist(), b["position_ids"].tolist()
        ([[7, 8, 9], [5, 6, 0]], [[0, 1, 2], [0, 1, 0]])
    """

    def __init__(self, max_row_tokens: int | None = None, pad_token_id: int = 0):
        self.max_row_tokens = max_row_tokens
        self.pad_token_id = pad_token_id
        self.tokens = 0
        self.padding = 0

    def _rows(self, features: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """Balanced rows: k = ceil(tokens / max_row_tokens) rows filled longest-first into the lightest row
        (LPT), adding a row while the heaviest exceeds the budget by more than a quarter."""
        if self.max_row_tokens is None:
            return [features]
        lengths = [len(f["input_ids"]) for f in features]
        budget = max(self.max_row_tokens, max(lengths))
        k = max(1, -(-sum(lengths) // budget))
        order = sorted(range(len(features)), key=lambda i: -lengths[i])
        while True:
            rows: list[list[int]] = [[] for _ in range(k)]
            load = [0] * k
            for i in order:
                j = load.index(min(load))
                rows[j].append(i)
                load[j] += lengths[i]
            if max(load) <= budget * 1.25 or k >= len(features):
                break
            k += 1
        return [[features[i] for i in r] for r in rows if r]

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        rows = []
        for members in self._rows(features):
            ids, labels, pos = [], [], []
            for f in members:
                n = len(f["input_ids"])
                ids += list(f["input_ids"])
                labels += [IGNORE_INDEX] + list(f["labels"][1:])
                pos += list(range(n))
            rows.append((ids, labels, pos))
        width = max(len(r[0]) for r in rows)
        out_ids, out_labels, out_pos = [], [], []
        for ids, labels, pos in rows:
            pad = width - len(ids)
            self.tokens += len(ids)
            self.padding += pad
            out_ids.append(ids + [self.pad_token_id] * pad)
            out_labels.append(labels + [IGNORE_INDEX] * pad)
            out_pos.append(pos + list(range(pad)))
        return {"input_ids": torch.tensor(out_ids), "labels": torch.tensor(out_labels),
                "position_ids": torch.tensor(out_pos)}


class PaddingCollator:
    """Right-pads a batch to its longest example (labels -100, attention_mask 0 on padding).

    Example:
        >>> b = PaddingCollator(pad_token_id=0)([{"input_ids": [5, 6], "labels": [5, 6]}, {"input_ids": [7], "labels": [7]}])
        >>> b["input_ids"].tolist(), b["attention_mask"].tolist()
        ([[5, 6], [7, 0]], [[1, 1], [1, 0]])
    """

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id
        self.tokens = 0
        self.padding = 0

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        ids, labels, mask = [], [], []
        for f in features:
            n = len(f["input_ids"])
            pad = width - n
            ids.append(list(f["input_ids"]) + [self.pad_token_id] * pad)
            labels.append(list(f["labels"]) + [IGNORE_INDEX] * pad)
            mask.append([1] * n + [0] * pad)
            self.tokens += n
            self.padding += pad
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}
