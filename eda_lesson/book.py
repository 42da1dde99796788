"""The notebook series as data: its chapters, their navigation bars, and a tool to rebuild them.

Every notebook starts and ends with the same kind of bar: previous, contents, next, and an
"Open in Binder" badge. They are generated from :data:`CHAPTERS` so that they never drift apart;
``python -m eda_lesson.book`` rewrites them, and with ``--execute`` also runs the notebooks and
stores their outputs and widget state (what GitHub shows a reader).

This module knows nothing about what the notebooks teach; it only lays out the book.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "BINDER_URL",
    "CHAPTERS",
    "REPOSITORY",
    "Chapter",
    "binder_link",
    "chapter",
    "navigation",
]

REPOSITORY = "eda-lesson/eda-lesson"
"""The GitHub repository (owner/name) that the Binder badges launch."""

BINDER_URL = f"https://mybinder.org/v2/gh/{REPOSITORY}/HEAD"
BADGE_IMAGE = "https://mybinder.org/badge_logo.svg"

NAV_START = "<!-- navigation -->"
"""Marks a generated navigation cell; everything in such a cell is rewritten."""


@dataclass(frozen=True)
class Chapter:
    """One notebook of the series."""

    number: int
    slug: str
    title: str
    summary: str
    part: str

    @property
    def filename(self) -> str:
        return f"{self.number:02d}_{self.slug}.ipynb"


CHAPTERS: tuple[Chapter, ...] = (
    Chapter(
        0, "start_here", "Start here", "what event-driven architecture is for; the map", "Basics"
    ),
    Chapter(1, "domain_events", "Domain events", "facts in the past tense, immutable", "Basics"),
    Chapter(
        2,
        "handlers_and_registration",
        "Handlers and registration",
        "plain functions that react; the bus that connects them",
        "Basics",
    ),
    Chapter(
        3,
        "dispatch_and_flow",
        "Dispatch and flow",
        "what happens when an event is dispatched: cascades, failures",
        "Basics",
    ),
    Chapter(
        4,
        "aggregates_and_unit_of_work",
        "Aggregates and the unit of work",
        "rules in one place; publish only what was committed",
        "Domain-driven design",
    ),
    Chapter(
        5,
        "failures_retries_dead_letters",
        "Failures, retries, dead letters",
        "transient and permanent failures; replay; idempotency",
        "Reliability",
    ),
    Chapter(
        6,
        "async_and_concurrency",
        "Async and concurrency",
        "handlers that wait; ordering; backpressure",
        "Reliability",
    ),
    Chapter(
        7,
        "event_sourcing_and_projections",
        "Event sourcing and projections",
        "state as a fold of events; read models; time travel",
        "Events as the source of truth",
    ),
    Chapter(
        8,
        "sagas_and_process_managers",
        "Sagas and process managers",
        "one process across aggregates; compensation",
        "Events as the source of truth",
    ),
    Chapter(
        9,
        "outbox_and_brokers",
        "The outbox and brokers",
        "the same handlers, out of process, behind Redis Streams",
        "Out of process",
    ),
)


def chapter(number: int) -> Chapter:
    """The chapter with this number."""
    for candidate in CHAPTERS:
        if candidate.number == number:
            return candidate
    raise LookupError(f"there is no chapter {number}; chapters are 0 to {len(CHAPTERS) - 1}")


def binder_link(filename: str) -> str:
    """A link that opens ``notebooks/filename`` in JupyterLab on Binder."""
    return f"{BINDER_URL}?urlpath=lab/tree/notebooks/{filename}"


def navigation(current: Chapter, available: set[str] | None = None) -> str:
    """The Markdown of the navigation bar of ``current``.

    ``available`` names the notebook files that exist; a neighbour that is not written yet is
    shown without a link.
    """
    index = CHAPTERS.index(current)
    parts = []
    if index > 0:
        parts.append("&larr; " + _link(CHAPTERS[index - 1], available))
    parts.append(_link(CHAPTERS[0], available, text="Contents"))
    if index + 1 < len(CHAPTERS):
        parts.append(_link(CHAPTERS[index + 1], available) + " &rarr;")
    badge = f"[![Open in Binder]({BADGE_IMAGE})]({binder_link(current.filename)})"
    return f"{NAV_START}\n" + " | ".join(parts) + f" | {badge}"


def _link(target: Chapter, available: set[str] | None, text: str | None = None) -> str:
    label = text or f"{target.number:02d} {target.title}"
    if available is not None and target.filename not in available:
        return f"{label} (coming soon)"
    return f"[{label}]({target.filename})"


# ---------------------------------------------------------------------- maintaining notebooks


def refresh_navigation(path: Path) -> bool:
    """Rewrite the first and last cells of a notebook as its navigation bars.

    Returns True when the file changed. The notebook must start and end with a Markdown cell
    marked with :data:`NAV_START` (the tool adds them when they are missing).
    """
    import nbformat

    original = path.read_text()
    notebook = nbformat.reads(original, as_version=4)
    current = _chapter_of(path)
    available = {p.name for p in path.parent.glob("*.ipynb")}
    bar = navigation(current, available)
    cells = notebook["cells"]
    for position in (0, -1):
        if not _is_navigation(cells[position]):
            cells.insert(0 if position == 0 else len(cells), nbformat.v4.new_markdown_cell())
        cells[position]["source"] = bar
    text = nbformat.writes(notebook) + "\n"
    if text == original:
        return False
    path.write_text(text)
    return True


def execute(path: Path, timeout: int = 300) -> None:
    """Run a notebook top to bottom in its own folder and save outputs and widget state."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)  # old timestamps, see record_timing below
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        store_widget_state=True,
        record_timing=False,  # timestamps in cell metadata would change on every run
    )
    client.execute()
    nbformat.write(notebook, path)


def _chapter_of(path: Path) -> Chapter:
    match = re.match(r"(\d\d)_", path.name)
    if match is None:
        raise ValueError(f"{path.name} is not named like a chapter (NN_name.ipynb)")
    found = chapter(int(match.group(1)))
    if found.filename != path.name:
        raise ValueError(f"{path.name} should be called {found.filename} (see eda_lesson.book)")
    return found


def _is_navigation(cell: dict[str, object]) -> bool:
    source = cell.get("source", "")
    text = "".join(source) if isinstance(source, list) else str(source)
    return cell.get("cell_type") == "markdown" and text.startswith(NAV_START)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m eda_lesson.book",
        description="Refresh the navigation bars of the notebooks, and optionally run them.",
    )
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument("--execute", action="store_true", help="run them and save the outputs")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(Path("notebooks").glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        changed = refresh_navigation(path)
        if args.execute:
            execute(path)
        print(
            f"{path}: {'navigation refreshed' if changed else 'navigation up to date'}"
            + (", executed" if args.execute else "")
        )


if __name__ == "__main__":
    main()
