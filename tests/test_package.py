"""Packaging promises: a light import, type information, one version."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import eda_lesson

HEAVY = ("matplotlib", "networkx", "ipywidgets")


# Modules that teach without drawing: importing any of them must not load a drawing library.
LIGHT = (
    "eda_lesson",
    "eda_lesson.shop",
    "eda_lesson.book",
    "eda_lesson.clock",
    "eda_lesson.messages",
    "eda_lesson.middleware",
    "eda_lesson.asyncbus",
    "eda_lesson.serialization",
    "eda_lesson.store",
    "eda_lesson.aggregate",
    "eda_lesson.unit_of_work",
    "eda_lesson.projections",
    "eda_lesson.saga",
)


def test_import_eda_lesson_does_not_load_drawing_libraries() -> None:
    code = (
        f"import sys, json, importlib; [importlib.import_module(m) for m in {LIGHT!r}];"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_the_package_ships_type_information() -> None:
    assert (Path(eda_lesson.__file__).parent / "py.typed").is_file()


def test_version_matches_the_project_metadata() -> None:
    from importlib.metadata import version

    assert eda_lesson.__version__ == version("eda-lesson")
