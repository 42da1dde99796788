"""Every notebook is a finished chapter: structure, saved outputs, working exercises.

nbval (run by `pytest` through pyproject.toml) compares each notebook's outputs with the saved
ones. These tests check what nbval cannot: that the outputs were saved at all, that they are
stable, that each chapter has its parts, and that the published solutions pass their checks.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eda_lesson.book.chapters import (
    CHAPTERS,
    NAV_START,
    REPOSITORY,
    binder_link,
    execute,
    navigation,
    readme_badge,
    renumber_widget_ids,
)

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
UNSTABLE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # uuids
    r"|\b[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}\b"  # uuid4 hex (random widget ids)
    r"|\b0x[0-9a-f]{6,}\b"  # memory addresses
    r"|\b20\d\d-\d\d-\d\d[T ]\d\d:\d\d"  # wall-clock times
)


def load(path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(path.read_text())


def source(cell: dict) -> str:  # type: ignore[type-arg]
    text = cell.get("source", "")
    return "".join(text) if isinstance(text, list) else text


def code_cells(notebook: dict) -> list[dict]:  # type: ignore[type-arg]
    return [c for c in notebook["cells"] if c["cell_type"] == "code" and source(c).strip()]


def markdown(notebook: dict) -> str:  # type: ignore[type-arg]
    return "\n".join(source(c) for c in notebook["cells"] if c["cell_type"] == "markdown")


def outputs_text(notebook: dict) -> str:  # type: ignore[type-arg]
    return json.dumps([c.get("outputs", []) for c in code_cells(notebook)])


def ids(paths: list[Path]) -> list[str]:
    return [p.stem for p in paths]


def test_the_series_exists() -> None:
    assert PATHS, "no notebooks under notebooks/"
    names = {chapter.filename for chapter in CHAPTERS}
    assert {p.name for p in PATHS} <= names, (
        "notebook names must match eda_lesson.book.chapters.CHAPTERS"
    )


@pytest.mark.parametrize("path", PATHS, ids=ids(PATHS))
def test_every_code_cell_was_run_in_order(path: Path) -> None:
    counts = [cell.get("execution_count") for cell in code_cells(load(path))]
    assert None not in counts, (
        f"{path.name}: commit it executed (python -m eda_lesson.book --execute)"
    )
    assert counts == list(range(1, len(counts) + 1)), f"{path.name}: run it top to bottom once"


@pytest.mark.parametrize("path", PATHS, ids=ids(PATHS))
def test_outputs_are_stable_and_error_free(path: Path) -> None:
    notebook = load(path)
    found = UNSTABLE.findall(json.dumps([notebook["cells"], notebook["metadata"]]))
    assert not found, f"{path.name}: outputs that change between runs: {found[:3]}"
    for cell in code_cells(notebook):
        raises = "NBVAL_RAISES_EXCEPTION" in source(cell) or "raises-exception" in str(
            cell.get("metadata", {}).get("tags", [])
        )
        errors = [o for o in cell.get("outputs", []) if o["output_type"] == "error"]
        assert raises or not errors, f"{path.name}: an unexpected error output: {errors[:1]}"
        assert not any(o.get("name") == "stderr" for o in cell.get("outputs", [])), (
            f"{path.name}: a cell wrote to stderr (a warning?): {source(cell)[:80]!r}"
        )


@pytest.mark.parametrize("path", PATHS, ids=ids(PATHS))
def test_ignored_outputs_are_rare_and_explained(path: Path) -> None:
    ignored = [c for c in code_cells(load(path)) if "# NBVAL_IGNORE_OUTPUT" in source(c)]
    assert len(ignored) <= 2, f"{path.name}: make outputs deterministic instead of ignoring them"
    for cell in ignored:
        lines = source(cell).splitlines()
        marker = lines.index("# NBVAL_IGNORE_OUTPUT")
        assert marker + 1 < len(lines) and lines[marker + 1].startswith("# "), (
            f"{path.name}: say why under the marker: {lines[:2]}"
        )


@pytest.mark.parametrize("path", PATHS, ids=ids(PATHS))
def test_chapter_has_its_parts(path: Path) -> None:
    notebook = load(path)
    text = markdown(notebook)
    assert "## Learning objectives" in text, f"{path.name}: objectives at the top"
    assert "## Recap" in text, f"{path.name}: a recap at the end"
    assert "## Exercises" in text, f"{path.name}: exercises"
    assert '"image/png"' in outputs_text(notebook), f"{path.name}: at least one drawing"


@pytest.mark.parametrize("path", PATHS, ids=ids(PATHS))
def test_navigation_and_binder_badge_at_top_and_bottom(path: Path) -> None:
    notebook = load(path)
    chapter = next(c for c in CHAPTERS if c.filename == path.name)
    expected = navigation(chapter, {p.name for p in PATHS})
    first, last = source(notebook["cells"][0]), source(notebook["cells"][-1])
    hint = "run python -m eda_lesson.book to refresh the navigation bars"
    assert first == expected and last == expected, f"{path.name}: {hint}"
    assert first.startswith(NAV_START) and "Open in Binder" in first


def test_the_repository_is_named_once_and_every_badge_follows_it() -> None:
    import tomllib

    project = tomllib.loads((NOTEBOOKS.parent / "pyproject.toml").read_text())["project"]
    assert project["urls"]["Repository"] == f"https://github.com/{REPOSITORY}"
    readme = (NOTEBOOKS.parent / "README.md").read_text()
    badges = re.findall(r"\[!\[Open in Binder\].*?\)\]\(.*?\)", readme)
    assert badges == [readme_badge()], "run python -m eda_lesson.book to refresh the badge"
    for path in PATHS:
        launches = set(
            re.findall(r"https://mybinder\.org/v2/gh/[^/]+/[^/]+/", json.dumps(load(path)))
        )
        assert launches == {f"https://mybinder.org/v2/gh/{REPOSITORY}/"}, path.name
        assert binder_link(path.name) in source(load(path)["cells"][0])


@pytest.mark.parametrize("path", PATHS, ids=ids(PATHS))
def test_exercises_have_checks_and_hidden_solutions(path: Path) -> None:
    notebook = load(path)
    checks = set(
        re.findall(r"check\.ex(\d+)\(", "\n".join(source(c) for c in code_cells(notebook)))
    )
    solutions = set(
        re.findall(r"<summary>Solution to exercise (\d+)</summary>", markdown(notebook))
    )
    assert len(checks) >= 3, f"{path.name}: at least three exercises with checks"
    assert checks == solutions, f"{path.name}: each checked exercise needs a hidden solution"


@pytest.mark.parametrize("path", PATHS, ids=ids(PATHS))
def test_widgets_in_outputs_have_their_state_saved(path: Path) -> None:
    notebook = load(path)
    if WIDGET_VIEW not in outputs_text(notebook):
        pytest.skip(f"{path.name} shows no widget")
    state = notebook["metadata"].get("widgets", {}).get(WIDGET_STATE, {})
    assert state.get("state"), f"{path.name}: widget state with its 'state' key (GitHub needs it)"
    shown = re.findall(r'"model_id": "([0-9a-f]+)"', outputs_text(notebook))
    assert set(shown) <= set(state["state"]), f"{path.name}: a shown widget has no saved state"


STUB = re.compile(r"^# Exercise (\d+)\b", re.MULTILINE)
SOLUTION = re.compile(
    r"<summary>Solution to exercise (\d+)</summary>\s*```python\n(.*?)```", re.DOTALL
)


@pytest.mark.parametrize("path", PATHS, ids=ids(PATHS))
def test_published_solutions_pass_their_checks(path: Path, tmp_path: Path) -> None:
    """Run the notebook with each exercise cell replaced by its published solution: every
    check must then say "Correct!" (the committed run shows what the unsolved cells get)."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    solutions = dict(SOLUTION.findall(markdown(notebook)))
    replaced = set()
    for cell in notebook.cells:
        stub = STUB.match(source(cell)) if cell.cell_type == "code" else None
        if stub and stub.group(1) in solutions:
            cell.source = solutions[stub.group(1)]
            replaced.add(stub.group(1))
    assert replaced == set(solutions), f"{path.name}: a '# Exercise N' cell for each solution"
    NotebookClient(
        notebook,
        timeout=120,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    ).execute()
    verdicts = [
        "".join(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code" and re.search(r"check\.ex\d+\(", source(cell))
        for output in cell.outputs
        if output.get("output_type") == "execute_result"
    ]
    assert len(verdicts) >= len(solutions)
    assert all(v.startswith("Correct!") for v in verdicts), verdicts


# ---------------------------------------------------------------- byte-stable, path-free files

MACHINE_PATH = re.compile(
    r"(?<![\w.~-])/(?:work|tmp|home|root|Users|usr|opt|var|private|mnt|srv)/"
    r"|site-packages|dist-packages|\bipykernel_\d+"
    r"|\b[A-Za-z]:\\\w"  # C:\Users
)
ANSI = re.compile(r"\x1b\[[0-9;]*m")
"""Colour codes: a traceback writes ESC ``[32m`` just before a path, so it follows a letter."""
BINARY = re.compile(r"image/(?!svg)")
"""Base64 data (PNG, JPEG) is not text: a path pattern could match it by chance."""


def saved_text(notebook: dict[str, Any]) -> Iterator[str]:
    """Every string of the saved outputs and widget state, except base64 images and buffers."""

    def walk(value: Any) -> Iterator[str]:
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for key, item in value.items():
                if not BINARY.match(key) and key != "buffers":
                    yield key
                    yield from walk(item)
        elif isinstance(value, list):
            for item in value:
                yield from walk(item)

    for cell in code_cells(notebook):
        yield from walk(cell.get("outputs", []))
    yield from walk(notebook["metadata"].get("widgets", {}))


@pytest.mark.parametrize("path", PATHS, ids=ids(PATHS))
def test_outputs_hold_no_path_of_the_machine_that_ran_them(path: Path) -> None:
    texts = [ANSI.sub("", text) for text in saved_text(load(path))]
    found = sorted({match for text in texts for match in MACHINE_PATH.findall(text)})
    assert not found, (
        f"{path.name}: outputs name files of the machine that ran it: {found[:3]}; "
        "re-execute it with python -m eda_lesson.book --execute (short tracebacks), or print "
        "names relative to the notebook"
    )


@pytest.mark.parametrize("path", PATHS, ids=ids(PATHS))
def test_errors_raised_on_purpose_are_saved_as_one_line(path: Path) -> None:
    """A full traceback names files on the machine that ran it, a chained one twice over."""
    for cell in code_cells(load(path)):
        for output in cell.get("outputs", []):
            if output["output_type"] == "error":
                traceback = output["traceback"]
                assert len(traceback) == 1 and output["ename"] in traceback[0], (
                    f"{path.name}: a full traceback ({len(traceback)} lines) in "
                    f"{source(cell)[:60]!r}; re-execute it with python -m eda_lesson.book"
                )


@pytest.mark.parametrize("path", PATHS, ids=ids(PATHS))
def test_saved_widget_ids_are_the_renumbered_ones(path: Path) -> None:
    notebook = load(path)
    mapping = renumber_widget_ids(copy.deepcopy(notebook))
    changed = {old: new for old, new in mapping.items() if old != new}
    assert not changed, (
        f"{path.name}: {len(changed)} widget ids are random, not renumbered; "
        "re-execute it with python -m eda_lesson.book --execute"
    )


REEXECUTED = [
    NOTEBOOKS / "02_handlers_and_registration.ipynb",  # widgets, errors raised on purpose
    NOTEBOOKS / "08_async_and_concurrency.ipynb",  # tasks, timeouts and cancellation
    NOTEBOOKS / "09_event_sourcing_and_projections.ipynb",  # widgets, a chained error
    NOTEBOOKS / "11_outbox_and_brokers.ipynb",  # real Redis, worker processes killed
]


@pytest.mark.slow
@pytest.mark.parametrize("path", REEXECUTED, ids=ids(REEXECUTED))
def test_reexecuting_an_unchanged_notebook_leaves_its_file_byte_for_byte_the_same(
    path: Path, tmp_path: Path
) -> None:
    executed = tmp_path / path.name
    execute(path, save_as=executed)
    committed, again = path.read_text().splitlines(), executed.read_text().splitlines()
    changed = next(
        (n for n, (a, b) in enumerate(zip(committed, again, strict=False)) if a != b),
        min(len(committed), len(again)),
    )
    assert executed.read_bytes() == path.read_bytes(), (
        f"{path.name}: a new run differs from the committed file at line {changed + 1}: "
        f"{(again[changed:] or ['(end of file)'])[0].strip()[:100]!r}; if the code it shows "
        "changed, re-execute it with python -m eda_lesson.book --execute"
    )


def synthetic_notebook(
    box: str, label: str, layout: str, slider: str, style: str
) -> dict[str, Any]:
    """Two widget views, four saved models created in the order slider, box, label, layout,
    and a reference to ``style``, a model that was never saved."""
    return {
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": f"box is {box}"},
            {
                "cell_type": "code",
                "metadata": {},
                "source": "box",
                "outputs": [
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {
                            WIDGET_VIEW: {"model_id": box, "version_major": 2, "version_minor": 0},
                            "text/plain": f"Box(model={box})",
                        },
                    }
                ],
            },
            {
                "cell_type": "code",
                "metadata": {},
                "source": "label",
                "outputs": [
                    {
                        "output_type": "execute_result",
                        "execution_count": 2,
                        "metadata": {},
                        "data": {WIDGET_VIEW: {"model_id": label}, "text/plain": "Label()"},
                    }
                ],
            },
        ],
        "metadata": {
            "widgets": {
                WIDGET_STATE: {
                    "state": {
                        slider: {"state": {"layout": f"IPY_MODEL_{layout}", "value": 3}},
                        box: {
                            "state": {
                                "children": [f"IPY_MODEL_{label}", f"IPY_MODEL_{slider}"],
                                "layout": f"IPY_MODEL_{layout}",
                            }
                        },
                        label: {"state": {"style": f"IPY_MODEL_{style}", "value": "hi"}},
                        layout: {"state": {"width": "10px"}},
                    },
                    "version_major": 2,
                    "version_minor": 0,
                }
            }
        },
    }


def new_ids() -> list[str]:
    return [uuid.uuid4().hex for _ in range(5)]


def test_widget_ids_are_renumbered_in_order_of_first_appearance_everywhere() -> None:
    box, label, layout, slider, style = old = new_ids()
    notebook = synthetic_notebook(box, label, layout, slider, style)
    mapping = renumber_widget_ids(notebook)
    number = {
        name: f"{rank:032x}" for rank, name in enumerate([box, label, slider, layout, style], 1)
    }
    assert mapping == number  # views first, then saved models as created, then references
    state = notebook["metadata"]["widgets"][WIDGET_STATE]["state"]
    assert list(state) == sorted(number.values())[:4]
    assert state[number[box]]["state"] == {
        "children": [f"IPY_MODEL_{number[label]}", f"IPY_MODEL_{number[slider]}"],
        "layout": f"IPY_MODEL_{number[layout]}",
    }
    assert state[number[label]]["state"]["style"] == f"IPY_MODEL_{number[style]}"
    shown = notebook["cells"][1]["outputs"][0]["data"]
    assert shown[WIDGET_VIEW]["model_id"] == number[box]
    assert shown["text/plain"] == f"Box(model={number[box]})"
    assert notebook["cells"][2]["outputs"][0]["data"][WIDGET_VIEW]["model_id"] == number[label]
    assert notebook["cells"][0]["source"] == f"box is {box}", "sources are not outputs"
    saved = json.dumps([notebook["cells"][1:], notebook["metadata"]])
    assert not [i for i in old if i in saved]


def test_renumbering_ignores_the_random_ids_and_changes_nothing_the_second_time() -> None:
    first = synthetic_notebook(*new_ids())
    second = synthetic_notebook(*new_ids())
    renumber_widget_ids(first)
    renumber_widget_ids(second)
    first["cells"][0] = second["cells"][0]  # the Markdown cell keeps its (random) text
    assert json.dumps(first) == json.dumps(second)
    again = json.loads(json.dumps(first, sort_keys=True))  # as nbformat saves and reads it
    mapping = renumber_widget_ids(again)
    assert all(old == new for old, new in mapping.items())
    assert json.dumps(again, sort_keys=True) == json.dumps(first, sort_keys=True)


def test_a_notebook_without_widgets_is_left_alone() -> None:
    notebook: dict[str, Any] = {
        "cells": [{"cell_type": "code", "source": "1", "outputs": [], "metadata": {}}],
        "metadata": {},
    }
    before = copy.deepcopy(notebook)
    assert renumber_widget_ids(notebook) == {}
    assert notebook == before


def _solution_lines(notebook: dict) -> set[str]:  # type: ignore[type-arg]
    """Lines of code in the worked solutions (the markdown cells that fold one away)."""
    lines: set[str] = set()
    for cell in notebook["cells"]:
        text = source(cell)
        if cell["cell_type"] != "markdown" or "<details" not in text:
            continue
        for block in re.findall(r"```python\n(.*?)```", text, re.S):
            lines |= {
                line.strip()
                for line in block.splitlines()
                if len(line.strip()) >= 20
                and not line.strip().startswith(("#", "from ", "import "))
            }
    return lines


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_no_committed_exercise_output_gives_its_solution_away(path: Path) -> None:
    """A reader on GitHub sees the check's verdict on the stub, never the hint or the code."""
    notebook = load(path)
    solution = _solution_lines(notebook)
    for cell in code_cells(notebook):
        if "check.ex" not in source(cell):
            continue
        shown = "".join(
            "".join(output.get("text", "")) + "".join(output.get("data", {}).get("text/plain", ""))
            for output in cell.get("outputs", [])
        )
        assert "Hint:" not in shown, f"{path.name}: {source(cell)[:60]!r} prints its hint"
        leaked = [line for line in solution if line in shown]
        assert leaked == [], f"{path.name}: {source(cell)[:60]!r} prints solution code {leaked}"


def test_the_mermaid_block_of_chapter_03_is_exactly_the_export_printed_above_it() -> None:
    """The chapter says so: the Markdown cell holds the text ``to_mermaid`` printed."""
    cells = load(NOTEBOOKS / "03_dispatch_and_flow.ipynb")["cells"]
    for index, cell in enumerate(cells):
        block = re.search(r"```mermaid\n(.*?)```", source(cell), re.S)
        if cell["cell_type"] == "markdown" and block:
            printed = "".join(cells[index - 1]["outputs"][0]["text"])
            assert block.group(1) == printed, "copy the printed export into the Markdown cell"
            return
    pytest.fail("chapter 03 has no Mermaid block")


def test_adjacent_prints_saved_as_one_output_whatever_the_kernel_flushed() -> None:
    from eda_lesson.book.chapters import merge_streams

    def stream(name: str, text: str | list[str]) -> dict[str, Any]:
        return {"output_type": "stream", "name": name, "text": text}

    split = {"cells": [{"cell_type": "code", "outputs": [
        stream("stdout", "one\n"), stream("stdout", ["two\n", "three\n"]), stream("stderr", "x\n"),
        {"output_type": "execute_result", "data": {"text/plain": "42"}}, stream("stdout", "four\n"),
    ]}, {"cell_type": "markdown"}]}  # fmt: skip
    assert merge_streams(split) == 1
    assert split["cells"][0]["outputs"] == [
        stream("stdout", "one\ntwo\nthree\n"),
        stream("stderr", "x\n"),
        {"output_type": "execute_result", "data": {"text/plain": "42"}},
        stream("stdout", "four\n"),
    ]
    assert merge_streams(split) == 0, "once merged, nothing changes"


@pytest.mark.parametrize("path", PATHS, ids=ids(PATHS))
def test_no_cell_saves_two_adjacent_outputs_of_one_stream(path: Path) -> None:
    for cell in code_cells(load(path)):
        kinds = [(o.get("output_type"), o.get("name")) for o in cell.get("outputs", [])]
        twice = [a for a, b in itertools.pairwise(kinds) if a == b and a[0] == "stream"]
        assert not twice, f"{path.name}: re-execute with python -m eda_lesson.book --execute"
