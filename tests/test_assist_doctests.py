"""The examples in the docstrings of the assist/ guard modules run and give what they show (kb/ has its own file).
``tmp_dir`` in the examples is this test's temporary folder, so nothing is written elsewhere."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

MODULES = ["clinforge.assist.phi_guard", "clinforge.assist.crisis_rules", "clinforge.assist.crisis_guard",
           "clinforge.assist.grounding", "clinforge.assist.cove"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str, tmp_path: Path) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, extraglobs={"tmp_dir": tmp_path}, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0 and result.failed == 0
