"""Tasks declared in YAML, so users add their own without writing Python.

A task file names the reader, the data path, the prompt, the scoring and the metrics::

    task: my_mcq                 # registry name
    type: mcq                    # mcq (log-likelihood / generate / circular), generate (free text) or vqa (images)
    reader: jsonl                # any reader of clinforge.data.readers
    path: /data/my_mcq.jsonl     # absolute, or relative to $CLINFORGE_DATA
    reader_options: {kind: mcq, fields: {question: q, choices: opts, answer: gold}}
    format: medqa                # mcq: medqa | medmcqa | mmlu | pubmedqa | template
    prompt_template: "Q: {question}\\n{options}Answer:"   # format template / generate tasks (str.format)
    choice_words: [yes, no]      # mcq: answer words instead of letters
    description: ""              # text before the few-shot examples
    fewshot_path: /data/train.jsonl
    metrics: [rouge, bleu]       # generate: names in clinforge.eval.metrics.METRICS
    reference_field: answer      # generate: record field holding the reference
    max_new_tokens: 128

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.yaml"
    >>> _ = p.write_text("task: t\\ntype: generate\\nreader: jsonl\\npath: x.jsonl\\nprompt_template: '{question}'\\n")
    >>> load_task_yaml(p).name
    't'
"""

from __future__ import annotations

import os
from dataclasses import fields
from typing import Any

from clinforge.core.errors import ConfigError
from clinforge.eval.tasks.base import TASKS, Task

TYPES = ("mcq", "generate", "vqa")


def task_from_dict(spec: dict[str, Any], *, file: str | None = None, lines: dict[tuple, int] | None = None) -> Task:
    """Build a task from a mapping (the YAML document); unknown keys and unknown metrics are errors naming the file,
    the line (``lines``: key path -> line, from ``clinforge.core.config.load_yaml``) and the valid names."""
    from clinforge.core.errors import did_you_mean
    from clinforge.eval.metrics import METRICS
    from clinforge.eval.tasks.generative import GenTask
    from clinforge.eval.tasks.mcq import MCQTask
    from clinforge.eval.tasks.vqa import VqaTask

    lines = lines or {}
    spec = dict(spec)
    name = spec.pop("task", None) or spec.pop("name", None)
    if not name:
        raise ConfigError("a task needs a name", file=file, line=1 if file else None, key="task")
    kind = spec.pop("type", "generate")
    if kind not in TYPES:
        raise ConfigError(f"unknown task type {kind!r}; valid: {', '.join(TYPES)}", file=file,
                          line=lines.get(("type",)), key="type")
    cls = {"mcq": MCQTask, "generate": GenTask, "vqa": VqaTask}[kind]
    valid = {f.name for f in fields(cls)} - {"name"}
    for key in spec:
        if key not in valid:
            raise ConfigError(f"unknown key{did_you_mean(key, valid)}; valid: {', '.join(sorted(valid))}", file=file,
                              line=lines.get((key,)), key=key)
    for key in ("reader", "path"):
        if key not in spec:
            raise ConfigError("required key missing", file=file, key=key)
    known = METRICS.names()
    for group in ("metrics", "correction_metrics"):
        for i, metric in enumerate(spec.get(group) or ()):
            if metric not in known:
                raise ConfigError(f"unknown metric {metric!r}{did_you_mean(metric, known)}; valid: {', '.join(known)}",
                                  file=file, line=lines.get((group, i)) or lines.get((group,)), key=f"{group}.{i}")
    if kind == "vqa" and spec.get("scoring", "clinforge") not in ("clinforge", "llava-med-legacy"):
        raise ConfigError("scoring must be clinforge or llava-med-legacy", file=file, line=lines.get(("scoring",)),
                          key="scoring")
    for key in ("choice_words", "metrics", "modes", "path_options"):
        if key in spec and spec[key] is not None:
            spec[key] = tuple(spec[key])
    if kind == "mcq" and spec.get("format") == "template" and not spec.get("prompt_template"):
        raise ConfigError("format template needs prompt_template", file=file, key="prompt_template")
    return cls(name=name, **spec)


def load_task_yaml(path: str | os.PathLike, *, register: bool = False) -> Task:
    """Read one task YAML file (and register it in ``TASKS`` when ``register``)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as fh:
            spec = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"invalid YAML: {getattr(exc, 'problem', exc)}", file=str(path),
                          line=mark.line + 1 if mark else None) from exc
    if not isinstance(spec, dict):
        raise ConfigError("a task file must be a mapping", file=str(path))
    from clinforge.core.config import load_yaml

    task = task_from_dict(spec, file=str(path), lines=load_yaml(path)[1])
    if register:
        TASKS.register(task.name, task, override=True)
    return task
