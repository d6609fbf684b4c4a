"""The docstring examples of the knowledge-base modules run and give what they show (examples that need a built KB
or a model are marked ``+SKIP`` there and covered by the other kb tests)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import clinforge.assist.kb as kb_pkg

MODULES = sorted({"clinforge.assist.kb", "clinforge.cli.kb",
                  *(i.name for i in pkgutil.iter_modules(kb_pkg.__path__, prefix="clinforge.assist.kb."))})


def test_every_kb_module_is_covered():
    assert {"clinforge.assist.kb.chunking", "clinforge.assist.kb.fusion", "clinforge.assist.kb.retriever",
            "clinforge.assist.kb.kb_store"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} failing docstring example(s) in {name}"
