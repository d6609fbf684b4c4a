"""The docstring examples of the serve package and of the backend base class run and give what they show."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest


def _modules() -> list[str]:
    import clinforge.serve

    names = ["clinforge.serve", "clinforge.models.backends.base", "clinforge.models.backends.openai"]
    names += [info.name for info in pkgutil.iter_modules(clinforge.serve.__path__, prefix="clinforge.serve.")]
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} failing docstring example(s) in {name}"
