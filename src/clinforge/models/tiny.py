"""Tiny randomly initialised causal LMs with a tokenizer trained on local text: for offline use, tests and demos.

``build_tiny("llama", "runs/tiny")`` writes a normal Hugging Face folder (``config.json``, ``model.safetensors``,
``tokenizer.json`` + ``tokenizer_config.json`` with a ChatML-style chat template, ``generation_config.json``)
that ``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer.from_pretrained`` load. The tokenizer is a
byte-level BPE (``tokenizers``) trained on a small medical corpus shipped in the package (written for clinforge)
or on files you give. Architectures: llama, mistral, qwen2, gpt2, mamba, rwkv (all still in transformers 5.24).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from clinforge.core.errors import ClinforgeError

CORPUS = Path(__file__).resolve().parent / "corpus" / "medical_tiny.txt"
ARCHS = ("llama", "mistral", "qwen2", "gpt2", "mamba", "rwkv")
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _corpus_lines(corpus: str | os.PathLike | None) -> Iterator[str]:
    paths: list[Path]
    if corpus is None:
        paths = [CORPUS]
    else:
        p = Path(corpus)
        if not p.exists():
            raise ClinforgeError(f"{p}: corpus file or folder does not exist")
        paths = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in (".txt", ".md", ".xml", ".csv",
                                                                                 ".jsonl", ".json")) \
            if p.is_dir() else [p]
        if not paths:
            raise ClinforgeError(f"{p}: no .txt/.md/.xml/.csv/.json/.jsonl files to train the tokenizer on")
    for f in paths:
        with open(f, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.strip():
                    yield line


def train_tokenizer(corpus: str | os.PathLike | None = None, vocab_size: int = 2048):
    """Train a byte-level BPE tokenizer on ``corpus`` (the packaged medical text by default) with a chat template.

    Example:
        >>> tok = train_tokenizer(vocab_size=512)
        >>> tok.decode(tok("blood pressure")["input_ids"])
        'blood pressure'
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, min_frequency=2,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(_corpus_lines(corpus), trainer=trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|pad|>",
                                  bos_token=None, unk_token=None, model_max_length=2048)
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_config(arch: str, vocab_size: int, *, hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4,
                max_positions: int = 2048, pad_token_id: int | None = None, eos_token_id: int | None = None):
    """A transformers config of a small model of family ``arch``."""
    import transformers as tf

    if hidden_size % num_heads:
        raise ClinforgeError(f"hidden size {hidden_size} is not divisible by {num_heads} heads")
    common = {"vocab_size": vocab_size, "pad_token_id": pad_token_id, "eos_token_id": eos_token_id,
              "bos_token_id": eos_token_id}
    inter = hidden_size * 4 if arch == "gpt2" else int(hidden_size * 8 / 3) // 8 * 8 or 8
    if arch in ("llama", "mistral", "qwen2"):
        cls = {"llama": tf.LlamaConfig, "mistral": tf.MistralConfig, "qwen2": tf.Qwen2Config}[arch]
        kw = {"hidden_size": hidden_size, "intermediate_size": inter, "num_hidden_layers": num_layers,
              "num_attention_heads": num_heads, "num_key_value_heads": max(1, num_heads // 2),
              "max_position_embeddings": max_positions, "tie_word_embeddings": True}
        if arch == "mistral":
            kw["sliding_window"] = None
        return cls(**kw, **common)
    if arch == "gpt2":
        return tf.GPT2Config(n_embd=hidden_size, n_layer=num_layers, n_head=num_heads, n_positions=max_positions,
                             resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **common)
    if arch == "mamba":
        return tf.MambaConfig(hidden_size=hidden_size, num_hidden_layers=num_layers, state_size=8,
                              expand=2, conv_kernel=4, use_cache=True, **common)
    if arch == "rwkv":
        return tf.RwkvConfig(hidden_size=hidden_size, num_hidden_layers=num_layers, attention_hidden_size=hidden_size,
                             intermediate_size=hidden_size * 4, context_length=max_positions,
                             vocab_size=vocab_size, pad_token_id=pad_token_id, eos_token_id=eos_token_id,
                             bos_token_id=eos_token_id)
    raise ClinforgeError(f"unknown tiny architecture {arch!r}; valid: {', '.join(ARCHS)}")


def build_tiny(arch: str = "llama", out_dir: str | os.PathLike = "tiny-model", *, vocab_size: int = 2048,
               hidden_size: int = 64, num_layers: int = 2, num_heads: int = 4, max_positions: int = 2048,
               seed: int = 0, corpus: str | os.PathLike | None = None, overwrite: bool = False) -> Path:
    """Write a randomly initialised tiny ``arch`` model and its tokenizer to ``out_dir``; returns the folder.

    An existing ``out_dir`` is an OutputExistsError unless ``overwrite`` (a random model must never replace a
    trained one by accident).

    Example:
        >>> import tempfile
        >>> from transformers import AutoModelForCausalLM
        >>> d = build_tiny("llama", tempfile.mkdtemp() + "/m", vocab_size=512, hidden_size=32)
        >>> AutoModelForCausalLM.from_pretrained(d).config.model_type
        'llama'
    """
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    from clinforge.core.io import atomic_path
    from clinforge.core.progress import say

    if arch not in ARCHS:
        raise ClinforgeError(f"unknown tiny architecture {arch!r}; valid: {', '.join(ARCHS)}")
    say(f"step 1/3 tokenizer: training a byte-level BPE (vocab <= {vocab_size}) on "
        f"{'the packaged medical corpus' if corpus is None else corpus}")
    tok = train_tokenizer(corpus, vocab_size)
    cfg = tiny_config(arch, len(tok), hidden_size=hidden_size, num_layers=num_layers, num_heads=num_heads,
                      max_positions=max_positions, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    say(f"step 2/3 model: initialising a {arch} ({num_layers} layers, hidden {hidden_size}) with seed {seed}")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                                               bos_token_id=tok.eos_token_id)
    say(f"step 3/3 save: writing {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters to {out_dir}")
    with atomic_path(out_dir, overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
    return Path(out_dir)
