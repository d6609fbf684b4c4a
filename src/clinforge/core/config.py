"""YAML recipes validated with pydantic, with errors that name the file, line and key, and ``--set`` overrides.

Every recipe section is a pydantic model that forbids unknown keys (``StrictModel``), so a typo is an error that
points at its line instead of a silently ignored setting.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from clinforge.core.errors import ConfigError, did_you_mean

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def _line_map(node: yaml.Node, prefix: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """Map each key path in a composed YAML document to its 1-based line."""
    out = {} if out is None else out
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            path = prefix + (key_node.value,)
            out[path] = key_node.start_mark.line + 1
            _line_map(value_node, path, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            path = prefix + (i,)
            out[path] = item.start_mark.line + 1
            _line_map(item, path, out)
    return out


def load_yaml(path: str | os.PathLike) -> tuple[dict[str, Any], dict[tuple, int]]:
    """Read a YAML mapping and the line of each key path.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "r.yaml"; _ = p.write_text("a:\\n  b: 1\\n")
        >>> load_yaml(p)
        ({'a': {'b': 1}}, {('a',): 1, ('a', 'b'): 2})
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"invalid YAML: {getattr(exc, 'problem', exc)}", file=str(path),
                          line=mark.line + 1 if mark else None) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("a recipe must be a mapping of keys to values", file=str(path), line=1)
    return data, _line_map(node) if node is not None else {}


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split ``a.b=c`` into a key path and a YAML-typed value.

    Example:
        >>> parse_override("train.lr=3e-4")
        (['train', 'lr'], 0.0003)
        >>> parse_override("data.paths=[a, b]")
        (['data', 'paths'], ['a', 'b'])
    """
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key.path=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {item!r} has an empty key")
    value = yaml.safe_load(raw) if raw.strip() else ""
    if isinstance(value, str) and value != raw.strip():
        value = raw.strip()
    # YAML 1.1 reads "3e-4" as a string; users mean a number.
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            pass
    return key.split("."), value


def _describe(node: Any) -> str:
    if isinstance(node, list):
        return f"a list of {len(node)} item(s)" + (f" (indices 0-{len(node) - 1})" if node else "")
    if isinstance(node, dict):
        return "a section with keys " + (", ".join(map(str, node)) if node else "(none)")
    return f"the value {node!r}"


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Apply ``--set key.path=value`` overrides to a nested dict (creating sections as needed).

    A list is indexed by number (``stages.0.train.lr``); a bad index, a name used on a list, or a key under a plain
    value is an error naming the override, the part that does not fit and what exists there.

    Example:
        >>> apply_overrides({"a": {"b": 1}}, ["a.b=2", "c=x"])
        {'a': {'b': 2}, 'c': 'x'}
        >>> apply_overrides({"steps": [{"x": 1}]}, ["steps.9.x=2"])
        Traceback (most recent call last):
        ...
        clinforge.core.errors.ConfigError: --set steps.9.x=2: no item 9 in steps, which is a list of 1 item(s) (indices 0-0)
    """
    for item in overrides or []:
        path, value = parse_override(item)
        node: Any = data
        for i, part in enumerate(path):
            here = ".".join(path[:i]) or "the top level"
            last = i == len(path) - 1
            if isinstance(node, list):
                if not part.isdigit():
                    raise ConfigError(f"--set {item}: {here} is {_describe(node)}; give an index, e.g. "
                                      f"{'.'.join([*path[:i], '0', *path[i:]])}")
                index = int(part)
                if index >= len(node):
                    raise ConfigError(f"--set {item}: no item {index} in {here}, which is {_describe(node)}")
                if last:
                    node[index] = value
                else:
                    node = node[index]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                    break
                nxt = node.get(part)
                if nxt is None:
                    nxt = node[part] = {}
                node = nxt
            else:
                raise ConfigError(f"--set {item}: {here} is {_describe(node)}, not a section or a list")
    return data


def keys_at(model: type[BaseModel], path: tuple | list) -> list[str] | None:
    """The keys the section at ``path`` of a config model accepts (list indices and union branches looked
    through), or None when the path does not lead to a section.

    Example:
        >>> class R(StrictModel):
        ...     lr: float = 1.0
        ...     seed: int = 0
        >>> keys_at(R, []), keys_at(R, ["lr"])
        (['lr', 'seed'], None)
    """
    import typing

    current: Any = model
    for part in path:
        if isinstance(part, int) or (isinstance(part, str) and part.isdigit()):
            continue
        field = current.model_fields.get(part)
        if field is None:
            return None
        candidates = [field.annotation]
        for c in candidates:  # grows while it is walked: list[X] | None -> X
            candidates += [a for a in typing.get_args(c) if a not in candidates]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if current is None:
            return None
    return sorted(current.model_fields)


def validate(model: type[M], data: dict[str, Any], *, file: str | None = None,
             lines: dict[tuple, int] | None = None) -> M:
    """Validate ``data`` against ``model``; the first error names file, line and dotted key.

    Example:
        >>> class R(StrictModel):
        ...     lr: float = 1e-4
        >>> validate(R, {"lr": "x"}, file="r.yaml", lines={("lr",): 4})
        Traceback (most recent call last):
        ...
        clinforge.core.errors.ConfigError: r.yaml:4: lr: Input should be a valid number, unable to parse string as a number
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        err, hint = _typo_error(errors, data)
        if err is None:
            err = errors[0]
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        # pydantic adds union/tagged-union branch names to loc; keep the longest prefix the YAML knows.
        line = None
        if lines:
            for n in range(len(loc), 0, -1):
                if loc[:n] in lines:
                    line = lines[loc[:n]]
                    break
        key = ".".join(str(p) for p in loc) or None
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            valid = keys_at(model, loc[:-1]) or []
            msg = "unknown key" + (f" (did you mean {hint!r}?)" if hint else did_you_mean(str(loc[-1]), valid))
            if valid:
                msg += f"; valid keys here: {', '.join(valid)}"
        elif err["type"] == "missing":
            msg = "required key missing"
            valid = keys_at(model, loc[:-1])
            if valid:
                msg += f" (keys here: {', '.join(valid)})"
        raise ConfigError(msg, file=file, line=line, key=key) from None


def _typo_error(errors: list[dict[str, Any]], data: Any) -> tuple[dict[str, Any] | None, str | None]:
    """An unknown key that is a misspelling of a required key missing beside it (``modle:`` for ``model:``): that
    error, and the key it stands for, so the message points at the typo's line instead of "model: missing"."""
    import difflib

    missing = [e for e in errors if e["type"] == "missing"]
    extra = [e for e in errors if e["type"] == "extra_forbidden"]
    for m in missing:
        for x in extra:
            if tuple(x["loc"][:-1]) == tuple(m["loc"][:-1]) and difflib.get_close_matches(
                    str(x["loc"][-1]), [str(m["loc"][-1])], n=1, cutoff=0.6):
                return x, str(m["loc"][-1])
    first = errors[0]
    if first["type"] == "extra_forbidden" or not extra:
        return None, None
    return (extra[0], None) if first["type"] == "missing" else (None, None)


def load_config(model: type[M], path: str | os.PathLike | None = None, overrides: list[str] | None = None,
                base: dict[str, Any] | None = None) -> M:
    """Load a YAML recipe (or ``base``), apply overrides and validate it.

    Example:
        >>> class R(StrictModel):
        ...     seed: int = 0
        >>> load_config(R, None, ["seed=7"]).seed
        7
    """
    data, lines = (load_yaml(path) if path else (dict(base or {}), {}))
    data = apply_overrides(data, overrides)
    return validate(model, data, file=str(path) if path else None, lines=lines)
