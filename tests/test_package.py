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
    "eda_lesson.core.clock",
    "eda_lesson.core.messages",
    "eda_lesson.core.middleware",
    "eda_lesson.core.asyncbus",
    "eda_lesson.patterns.serialization",
    "eda_lesson.patterns.store",
    "eda_lesson.patterns.aggregate",
    "eda_lesson.patterns.unit_of_work",
    "eda_lesson.patterns.projections",
    "eda_lesson.patterns.saga",
    "eda_lesson.core.checks",
    "eda_lesson.patterns.state_unit_of_work",
    "eda_lesson.patterns.outbox",
    "eda_lesson.core.extras",
    "eda_lesson.core.text",
)

BROKER_MODULES = (
    "eda_lesson.transport.redis_streams",
    "eda_lesson.transport.worker",
    "eda_lesson.views.broker",
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


def test_every_module_but_the_brokers_imports_without_redis_or_jupyterlab() -> None:
    blocked = "import sys; sys.modules.update(redis=None, jupyterlab=None, jupyter_server=None)"
    code = f"{blocked}; import importlib; [importlib.import_module(m) for m in {LIGHT!r}]"
    subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)


def test_every_broker_module_without_redis_says_which_extra_to_install() -> None:
    for module in BROKER_MODULES:
        code = f"import sys; sys.modules['redis'] = None; import {module}"
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert run.returncode != 0, module
        last = run.stderr.strip().splitlines()[-1]
        assert last.startswith("eda_lesson.core.extras.MissingExtraError: "), (module, last)
        assert f"{module} needs the 'broker' extra" in last, last
        assert "pip install 'eda-lesson[broker]'" in last and "pip install -e '.[broker]'" in last


def test_the_core_depends_on_the_drawing_libraries_but_not_on_jupyterlab_or_redis() -> None:
    import tomllib

    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
    core = {name.split(">")[0].split("=")[0] for name in project["project"]["dependencies"]}
    assert core == {"ipywidgets", "networkx", "matplotlib"}
    extras = project["project"]["optional-dependencies"]
    assert any(d.startswith("redis") for d in extras["broker"])
    assert "jupyterlab>=4.2" in extras["notebooks"] and "eda-lesson[broker]" in extras["notebooks"]


def test_the_plural_of_a_count_is_written_in_one_place() -> None:
    """One helper for "1 event, 3 events": no module keeps a copy of its own."""
    package = Path(eda_lesson.__file__).parent
    copies = [
        path.name
        for path in sorted(package.rglob("*.py"))
        if path.name != "text.py"
        and any(
            line.startswith(("def _plural(", "def plural(", "def _count(count"))
            for line in path.read_text().splitlines()
        )
    ]
    assert copies == [], f"use eda_lesson.core.text.plural instead of the copies in {copies}"
    from eda_lesson.core.text import plural

    assert (plural(1, "event"), plural(3, "event")) == ("1 event", "3 events")
    assert plural(2, "entry", "entries") == "2 entries" and plural(0, "call") == "0 calls"
