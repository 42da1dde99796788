"""Every example in a docstring of the package runs and prints what it says it prints."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import eda_lesson

MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages(eda_lesson.__path__, "eda_lesson.")
    if info.name != "eda_lesson.book.__main__"  # importing it runs the command-line tool
)


@pytest.mark.parametrize("name", MODULES)
def test_the_examples_in_a_modules_docstrings_hold(name: str) -> None:
    module = importlib.import_module(name)
    outcome = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=True, verbose=False)
    assert outcome.failed == 0, f"{outcome.failed} of {outcome.attempted} examples in {name} failed"


def test_the_package_has_examples_to_check() -> None:
    attempted = sum(
        doctest.testmod(importlib.import_module(name), report=False).attempted
        for name in ("eda_lesson.core.bus", "eda_lesson.patterns.aggregate")
    )
    assert attempted > 10
