"""The docstring examples of every de-identification module run and give what they show (``test_doctests.py``
leaves the ``clinforge.data.deid`` package to this file)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import clinforge.data.deid as deid_package

MODULES = sorted(info.name for info in pkgutil.iter_modules(deid_package.__path__, prefix="clinforge.data.deid.")
                 if not info.ispkg)


def test_discovery_finds_the_rule_modules():
    assert {"clinforge.data.deid.note_rules", "clinforge.data.deid.note_dates", "clinforge.data.deid.patterns",
            "clinforge.data.deid.names", "clinforge.data.deid.lexicons"} <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0
