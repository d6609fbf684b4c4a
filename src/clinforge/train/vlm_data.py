"""Image-text training examples for the ``vlm_align`` / ``vlm_sft`` stages: records with images -> chat turns with an
image marker -> token ids whose image placeholders are expanded to the model's visual-token count, with labels on
assistant tokens only.

What the field keeps getting wrong, and what this module guarantees instead:

* the loss covers assistant tokens only: image placeholders, system and user turns and template tokens are -100
  (labels located with the chat template's own prefix renderings, ``clinforge.train.data.assistant_char_spans``);
* the placeholder count is checked: a record whose rendered text holds a different number of image markers than
  images is an error naming the record, never a silent feature/token mismatch at the first forward pass;
* length: an example is never cut inside its image tokens nor down to zero answer tokens; such examples are
  dropped and counted by reason (``dropped`` in the data card); an example that has no loss token before any cut
  is an error naming the record (a NaN or zero loss would otherwise hide it);
* the decoded loss tokens of the first examples are written to the run folder (``loss_tokens.jsonl``) so a user can
  read exactly what the model was trained on.

Example:
    >>> from clinforge.data.records import Record
    >>> ex = record_to_vlm_example(Record(id="7", kind="vqa", question="Is there a fracture?", answer="no",
    ...                                   images=["/d/a.jpg"]), image_token="<image>")
    >>> ex["messages"][0]["content"], ex["images"]
    ('<image>\\nIs there a fracture?', ['/d/a.jpg'])
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinforge.core.errors import ConfigError, DataError
from clinforge.data.records import Record
from clinforge.train.data import (
    IGNORE_INDEX,
    StageData,
    assistant_char_spans,
    read_source_records,
    source_card,
    split_eval,
)
from clinforge.train.recipe import DataSpec

DROP_CUT_IN_IMAGE = "max_length would cut inside the image tokens"
DROP_NO_ANSWER = "no answer token left within max_length"


# ---- records -> examples ------------------------------------------------------------------------------------
def record_to_vlm_example(r: Record, *, image_token: str | None, system: str | None = None,
                          question_template: str = "{question}", prompt: str | None = None
                          ) -> dict[str, Any] | None:
    """A chat example with images: ``{"messages", "images", "id", "patient_id"}``, or None when the record has no
    image-text form (no image, or no answer / target).

    Each image becomes one ``image_token`` marker (a line of its own before the text of the user turn); with
    ``image_token=None`` (a model that reads images another way, e.g. prompt augmentation) no marker is written.
    VQA records give ``question_template`` filled with the question (e.g. the short-answer instruction an
    evaluation prompt uses) -> answer; reports and captions with images give ``prompt`` (default: "Describe the
    findings of this image.") -> their target or text.

    Example:
        >>> record_to_vlm_example(Record(id="1", kind="vqa", question="Q?", answer="A.", images=["x.png"]),
        ...                       image_token=None)["messages"][0]
        {'role': 'user', 'content': 'Q?'}
    """
    images = list(r.images or [])
    if not images:
        return None
    if r.kind == "vqa" and r.answer:
        question, answer = question_template.format(question=r.question), r.answer
    elif r.kind in ("report", "caption") and (r.target or r.text):
        question = prompt or "Describe the findings of this image."
        answer = r.target or r.text
    else:
        return None
    markers = "".join(f"{image_token}\n" for _ in images) if image_token else ""
    msgs = [{"role": "user", "content": f"{markers}{question}"}, {"role": "assistant", "content": str(answer)}]
    if system:
        msgs = [{"role": "system", "content": system}] + msgs
    return {"messages": msgs, "images": images, "id": r.id, "patient_id": r.patient_id}


@dataclass
class VlmStageData(StageData):
    """Image-text examples of a stage, its held-out examples and the data cards of its sources (with their
    provenance, as ``StageData``)."""


def load_vlm_stage_data(spec: DataSpec, *, image_token: str | None, seed: int = 0,
                        question_template: str = "{question}") -> VlmStageData:
    """Read every source of a vlm stage (any reader whose records carry ``images``: ``vqa_rad``, or a prepared
    folder), convert records to image-text chat examples, hold out eval examples and shuffle with ``seed``.

    A source that yields no image-text example is a DataError naming the reader and why its records were skipped.

    Example:
        >>> # load_vlm_stage_data(DataSpec(sources=[SourceSpec(reader="vqa_rad", path=".../vqa-rad")]),
        >>> #                     image_token="<image>").train[0]["images"]  -> ['/.../images/synpic...jpg']
    """
    data = VlmStageData(train=[])

    def read(group, role: str) -> list[dict[str, Any]]:
        examples = []
        for src in group:
            records, rep, reader_name, path = read_source_records(src)
            got, skipped = [], Counter()
            for rec in records:
                ex = record_to_vlm_example(rec, image_token=image_token, system=spec.system,
                                           question_template=question_template)
                if ex is None:
                    skipped["no image" if not rec.images else f"{rec.kind} record has no image-text form"] += 1
                else:
                    got.append(ex)
            if not got:
                why = "; ".join(f"{n} x {k}" for k, n in {**rep["skipped"], **skipped}.items()) or "no records"
                raise DataError(f"no image-text examples from reader {reader_name!r}: {rep['rows']} rows read, "
                                f"{rep['records']} records ({why})", file=str(path))
            examples += got
            data.note_sources(got, len(data.cards))
            data.cards.append({**source_card(src, records, rep, reader_name, path), "format": "image-text chat",
                               "unconvertible": dict(skipped), "examples": len(got),
                               "images": len({i for e in got for i in e["images"]}), "role": role})
        return examples

    train = read(spec.sources, "train")
    evals = read(spec.eval_sources, "eval") if spec.eval_sources else []
    data.train, data.eval = split_eval(train, evals, spec, seed)
    return data


# ---- tokenisation -------------------------------------------------------------------------------------------
@dataclass
class ImageTokens:
    """How a model reads images from text: the marker written in the text (``token``, its ``token_id``), how many
    placeholders one image expands to (``per_image``), and ``mode``: ``tokens`` (projection / query connectors,
    LLaVA: ``per_image`` copies), ``marker`` (gated cross-attention: the marker stays, once) or ``none`` (prompt
    augmentation: ``expand`` replaces each marker with the experts' text, no pixel values reach the model)."""

    token: str | None
    token_id: int | None
    per_image: int
    mode: str = "tokens"
    expand: Any = None  # mode none: callable(text, images) -> text


def image_tokens_of(processor) -> ImageTokens:
    """The image marker rules of a processor: a clinforge ``VlmProcessor`` (``placeholder``, ``num_image_tokens``)
    or a transformers processor that expands markers itself (LLaVA and the like; counted by expanding one marker on
    a blank image, so the CLS / feature-strategy rules of the model are honoured).

    Example:
        >>> # image_tokens_of(AutoProcessor.from_pretrained("tiny-llava")) -> ImageTokens('<image>', 512, 16)
    """
    token = getattr(processor, "image_token", None)
    mode = getattr(processor, "placeholder", "tokens")
    if token is None:
        raise ConfigError(f"{type(processor).__name__} has no image_token: not a vision-language processor")
    if mode == "none":
        return ImageTokens(token, None, 0, "none", lambda text, images: processor.expand(text, images=images))
    token_id = getattr(processor, "image_token_id", None)
    if mode == "marker":
        per_image = 1
    elif getattr(processor, "num_image_tokens", None) is not None:
        per_image = processor.num_image_tokens
    else:
        from PIL import Image

        enc = processor(text=token, images=[Image.new("RGB", (64, 64))], return_tensors="pt")
        per_image = int((enc["input_ids"] == token_id).sum())
    if token_id is None or per_image < 1:
        raise ConfigError(f"the processor's image token {token!r} has id {token_id} and expands to {per_image} "
                          "placeholders per image; a vlm stage needs at least one")
    return ImageTokens(token, int(token_id), int(per_image), mode)


def tokenize_vlm_chat(examples: list[dict[str, Any]], tokenizer, image: ImageTokens, max_length: int,
                      dropped_examples: list[tuple[dict[str, Any], str]] | None = None
                      ) -> tuple[list[dict[str, Any]], Counter]:
    """Tokenise image-text chat examples: labels on assistant tokens only, each image marker expanded to
    ``image.per_image`` placeholder ids (label -100). Returns the rows and the dropped examples by reason
    (each also appended to ``dropped_examples`` with its reason, when given).

    An example is dropped (and counted) when ``max_length`` would cut inside or before one of its image blocks, or
    leave no answer token. An example without any answer token even uncut, and one whose marker count differs from
    its image count, is a DataError naming the record.

    Example:
        >>> # rows, dropped = tokenize_vlm_chat(data.train, processor.tokenizer, image_tokens_of(processor), 512)
    """
    if getattr(tokenizer, "chat_template", None) is None:
        raise ConfigError("the tokenizer has no chat_template; vlm stages render conversations with it")
    out: list[dict[str, Any]] = []
    dropped: Counter = Counter()
    for ex in examples:
        messages = ex["messages"]
        if image.mode == "none":  # prompt augmentation: the experts' reading of each image replaces its marker
            images = list(ex["images"])
            messages = []
            for m in ex["messages"]:
                n = m["content"].count(image.token)
                messages.append({**m, "content": image.expand(m["content"], images[:n]) if n else m["content"]})
                images = images[n:]
        text, spans = assistant_char_spans(tokenizer, messages)
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        ids: list[int] = []
        labels: list[int] = []
        blocks: list[tuple[int, int]] = []  # [start, end) of each expanded image block
        for tok, (a, b) in zip(enc["input_ids"], enc["offset_mapping"], strict=True):
            if image.token_id is not None and tok == image.token_id:
                blocks.append((len(ids), len(ids) + image.per_image))
                ids += [tok] * image.per_image
                labels += [IGNORE_INDEX] * image.per_image
                continue
            ids.append(tok)
            labels.append(tok if any(s <= a and b <= e and b > a for s, e in spans) else IGNORE_INDEX)
        expected = len(ex["images"]) if image.mode != "none" else 0
        if len(blocks) != expected:
            raise DataError(f"the rendered text holds {len(blocks)} image placeholder(s) "
                            f"{image.token!r} for {len(ex['images'])} image(s)", record=ex["id"], field="images")
        if all(x == IGNORE_INDEX for x in labels):
            raise DataError("no assistant token carries a label (empty answer, or a chat "
                            "template that drops the assistant turn); it would train on nothing",
                            record=ex["id"], field="answer")
        if len(ids) > max_length:
            reason = None
            if any(end > max_length for _, end in blocks):
                reason = DROP_CUT_IN_IMAGE
            else:
                ids, labels = ids[:max_length], labels[:max_length]
                if all(x == IGNORE_INDEX for x in labels):
                    reason = DROP_NO_ANSWER
            if reason is not None:
                dropped[reason] += 1
                if dropped_examples is not None:
                    dropped_examples.append((ex, reason))
                continue
        out.append({"input_ids": ids, "labels": labels, "images": list(ex["images"]), "id": ex["id"],
                    "patient_id": ex.get("patient_id")})
    return out, dropped


def describe_loss_tokens(rows: list[dict[str, Any]], tokenizer, image: ImageTokens, n: int = 5
                         ) -> list[dict[str, Any]]:
    """For the first ``n`` rows: the decoded tokens that carry a loss and the decoded masked context (each image
    block shown once as ``<image>xN``), so a user can check what the model is trained on.

    Example:
        >>> # describe_loss_tokens(rows, tok, image_tokens_of(proc), 3)[0]["trained_on"] -> 'yes<|im_end|>\\n'
    """
    described = []
    for row in rows[:n]:
        trained = [t for t, lab in zip(row["input_ids"], row["labels"], strict=True) if lab != IGNORE_INDEX]
        masked: list[str] = []
        run: list[int] = []
        i = 0
        ids = row["input_ids"]
        while i < len(ids):
            if image.token_id is not None and ids[i] == image.token_id:
                j = i
                while j < len(ids) and ids[j] == image.token_id:
                    j += 1
                if run:
                    masked.append(tokenizer.decode(run))
                    run = []
                masked.append(f"{image.token}x{j - i}")
                i = j
                continue
            if row["labels"][i] == IGNORE_INDEX:
                run.append(ids[i])
            i += 1
        if run:
            masked.append(tokenizer.decode(run))
        described.append({"id": row["id"], "tokens": len(ids), "loss_tokens": len(trained),
                          "images": len(row["images"]), "trained_on": tokenizer.decode(trained),
                          "masked_context": "".join(masked)})
    return described


def write_loss_tokens(path: Path, described: list[dict[str, Any]]) -> None:
    """Write ``describe_loss_tokens`` output as JSON lines (atomically)."""
    import json

    from clinforge.core.io import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in described))


# ---- images -> pixel values ---------------------------------------------------------------------------------
class PixelCache:
    """Loads an image (or a NIfTI volume) once and keeps its ``pixel_values`` as the model's processor makes them
    (one marker + one image through the processor, so every processor's resizing and normalisation apply). A
    corrupt or unreadable file is a DataError naming the file and the record.

    Example:
        >>> # PixelCache(processor).get("/d/a.jpg", record="12").shape -> (3, 32, 32)
    """

    def __init__(self, processor):
        self.processor = processor
        self.cache: dict[str, Any] = {}

    def _open(self, path: str):
        if path.endswith((".nii", ".nii.gz")):
            import nibabel

            vol = nibabel.as_closest_canonical(nibabel.load(path)).get_fdata()
            return vol.transpose(2, 1, 0).copy()  # RAS (x, y, z) -> D x H x W, contiguous
        from PIL import Image

        with Image.open(path) as im:
            return im.convert("RGB")

    def get(self, path: str, *, record: str | None = None):
        """The processed image tensor of ``path`` (C x H x W; a volume: depth x C x H x W)."""
        if path not in self.cache:
            try:
                item = self._open(path)
                token = self.processor.image_token
                self.cache[path] = self.processor(text=token, images=[item], return_tensors="pt")["pixel_values"][0]
            except Exception as exc:  # noqa: BLE001 - PIL, nibabel and processors raise many types; name the file
                raise DataError(f"unreadable image ({type(exc).__name__}: {exc})", file=path, record=record,
                                field="images") from None
        return self.cache[path]


class VlmDataset:
    """Tokenised image-text rows as a map-style dataset: ``input_ids``, ``labels`` and the rows' images as a
    ``pixel_values`` tensor (n_images x C x H x W), loaded through a ``PixelCache``."""

    def __init__(self, rows: list[dict[str, Any]], pixels: PixelCache | None):
        self.rows = rows
        self.pixels = pixels

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        r = self.rows[i]
        pv = [self.pixels.get(p, record=r["id"]) for p in r["images"]] if self.pixels is not None else []
        return {"input_ids": r["input_ids"], "labels": r["labels"],
                "pixel_values": torch.stack(pv) if pv else None}
