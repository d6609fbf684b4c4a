"""The examples in the docstrings of the core, data-reader, judge and human-evaluation modules run and give what
they show (the metric modules have their own file, ``test_metrics_doctests.py``).

Modules are discovered by walking the packages, so a new module is covered without editing this list; the parts
still being written on other branches (de-identification, transforms, prepare) are left to their own tests.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ["clinforge.core", "clinforge.data", "clinforge.data.readers", "clinforge.judges"]
MODULES = ["clinforge.eval.agreement", "clinforge.eval.human", "clinforge.eval.judge_report_html",
           "clinforge.eval.compare_runs", "clinforge.eval.compare_report_html", "clinforge.cli.score",
           "clinforge.eval.human_pairwise", "clinforge.apps.review.review_db", "clinforge.apps.review.review_auth",
           "clinforge.apps.review.review_studies", "clinforge.apps.review.review_results",
           "clinforge.apps.review.review_web", "clinforge.apps.review.review_server"]
EXCLUDED_PREFIXES = ("clinforge.data.deid", "clinforge.data.transforms", "clinforge.data.prepare")


def _modules() -> list[str]:
    names = list(MODULES)
    for package_name in PACKAGES:
        package = importlib.import_module(package_name)
        names.append(package_name)
        for info in pkgutil.iter_modules(package.__path__, prefix=f"{package_name}."):
            if info.ispkg or info.name.startswith(EXCLUDED_PREFIXES):
                continue
            names.append(info.name)
    return sorted(set(names))


def test_discovery_finds_the_modules():
    names = _modules()
    for expected in ("clinforge.core.config", "clinforge.data.readers.mcq", "clinforge.judges.pairwise"):
        assert expected in names


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{result.failed} failing docstring example(s) in {name}"
