"""The README tells the truth: its tour prints what it shows, its test command is CI's."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def fenced_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_the_api_tour_prints_what_the_readme_shows() -> None:
    """Each part of the tour runs after the ones before it and prints the block below it."""
    tours = [block for block in fenced_blocks("python") if "bus.dispatch" in block]
    shown = [block for block in fenced_blocks("text") if "DispatchResult(" in block]
    assert len(tours) == len(shown) >= 2
    namespace: dict[str, object] = {"__name__": "readme_tour"}
    for tour, expected in zip(tours, shown, strict=True):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(tour, "README.md", "exec", dont_inherit=True), namespace)
        assert printed.getvalue() == expected


def test_ci_runs_the_readme_test_command() -> None:
    commands = fenced_blocks("bash")
    test_command = next(c.strip() for c in commands if "pytest" in c)
    assert test_command in (ROOT / ".ci" / "run").read_text().splitlines()


def test_the_readme_opens_the_notebooks_in_jupyterlab() -> None:
    commands = [c.strip() for c in fenced_blocks("bash")]
    opens = 'pip install -e ".[notebooks]"'
    assert any("jupyter lab notebooks/" in c and opens in c for c in commands)


def test_the_notebook_map_links_every_notebook() -> None:
    notebooks = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert notebooks
    missing = [name for name in notebooks if f"](notebooks/{name})" not in README]
    assert not missing, f"add these to the README's notebook map: {missing}"


def test_the_notebook_map_is_the_one_generated_from_the_chapters(tmp_path: Path) -> None:
    from eda_lesson.book.chapters import readme_map, refresh_readme

    assert readme_map() in README, "run `python -m eda_lesson.book` to refresh the README's map"
    stale = tmp_path / "README.md"
    stale.write_text(README.replace("| 01 |", "| 1 |"))
    assert refresh_readme(stale), "a stale map must be rewritten"
    assert stale.read_text() == README
    assert not refresh_readme(stale), "a fresh map is left as it is"
