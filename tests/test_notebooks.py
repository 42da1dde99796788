"""Every notebook is a finished chapter: structure, saved outputs, working exercises.

nbval (run by `pytest` through pyproject.toml) compares each notebook's outputs with the saved
ones. These tests check what nbval cannot: that the outputs were saved at all, that they are
stable, that each chapter has its parts, and that the published solutions pass their checks.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from eda_lesson.book import CHAPTERS, NAV_START, navigation

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
UNSTABLE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # uuids
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
    assert {p.name for p in PATHS} <= names, "notebook names must match eda_lesson.book.CHAPTERS"


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
    found = UNSTABLE.findall(json.dumps(notebook["cells"]))
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
