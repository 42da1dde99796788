"""The notebook series as data: its chapters, their navigation bars, and a tool to rebuild them.

Every notebook starts and ends with the same kind of bar: previous, contents, next, and an
"Open in Binder" badge. They are generated from :data:`CHAPTERS` so that they never drift apart;
``python -m eda_lesson.book`` rewrites them, and with ``--execute`` also runs the notebooks and
stores their outputs and widget state (what GitHub shows a reader). A notebook whose code did
not change is saved byte for byte as before: widget ids are renumbered, no timings are kept,
and errors are saved as one line, without the machine's paths.

This module knows nothing about what the notebooks teach; it only lays out the book.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "BINDER_URL",
    "CHAPTERS",
    "REPOSITORY",
    "Chapter",
    "binder_link",
    "chapter",
    "execute",
    "merge_streams",
    "navigation",
    "readme_badge",
    "readme_map",
    "refresh_readme",
    "renumber_widget_ids",
    "repository",
]


def repository() -> str:
    """The GitHub repository (owner/name) the Binder badges launch, from ``[project.urls]``
    ``Repository`` in pyproject.toml (the checkout's, else the installed package's metadata)."""
    url = _repository_url()
    match = re.fullmatch(r"https://github\.com/([\w.-]+/[\w.-]+?)(?:\.git)?/?", url)
    if match is None:
        raise ValueError(
            f"[project.urls] Repository must be a GitHub address such as "
            f"https://github.com/OWNER/NAME, got {url!r}"
        )
    return match.group(1)


def _repository_url() -> str:
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if pyproject.is_file():
        import tomllib

        urls = tomllib.loads(pyproject.read_text())["project"].get("urls", {})
        if "Repository" in urls:
            return str(urls["Repository"])
    from importlib.metadata import metadata

    entries: list[str] = metadata("eda-lesson").get_all("Project-URL") or []
    for entry in entries:
        label, _, url = entry.partition(",")
        if label.strip() == "Repository":
            return url.strip()
    raise LookupError("pyproject.toml names no [project.urls] Repository")


REPOSITORY = repository()
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
        "commands_and_the_message_bus",
        "Commands and the message bus",
        "requests with one handler; handlers with dependencies; one queue for both",
        "Domain-driven design",
    ),
    Chapter(
        5,
        "aggregates",
        "Aggregates",
        "rules in one place; the aggregate decides, then records what it decided",
        "Domain-driven design",
    ),
    Chapter(
        6,
        "unit_of_work",
        "The unit of work",
        "save, then publish; optimistic concurrency",
        "Domain-driven design",
    ),
    Chapter(
        7,
        "failures_retries_dead_letters",
        "Failures, retries, dead letters",
        "transient and permanent failures; replay; idempotency",
        "Reliability",
    ),
    Chapter(
        8,
        "async_and_concurrency",
        "Async and concurrency",
        "handlers that wait; ordering; backpressure",
        "Reliability",
    ),
    Chapter(
        9,
        "event_sourcing_and_projections",
        "Event sourcing and projections",
        "state as a fold of events; read models; time travel",
        "Events as the source of truth",
    ),
    Chapter(
        10,
        "sagas_and_process_managers",
        "Sagas and process managers",
        "one process across aggregates; compensation",
        "Events as the source of truth",
    ),
    Chapter(
        11,
        "outbox_and_brokers",
        "The outbox and brokers",
        "the same handlers, out of process, behind Redis Streams",
        "Out of process",
    ),
    Chapter(
        12,
        "capstone_returns_and_refunds",
        "Capstone: returns and refunds",
        "one feature end to end: command, rule, events, projection, saga, outbox",
        "Capstone",
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


README_BADGE = re.compile(r"\[!\[Open in Binder\]\([^)]*\)\]\([^)]*\)")


def readme_badge() -> str:
    """The README's Binder badge, opening the first chapter."""
    return f"[![Open in Binder]({BADGE_IMAGE})]({binder_link(CHAPTERS[0].filename)})"


README_MAP = re.compile(r"(?m)^\| # \| notebook \|.*\n(?:^\|.*\n)+")
"""The README's notebook map: a Markdown table whose header starts ``| # | notebook |``."""


def readme_map() -> str:
    """The README's notebook map, one row per chapter of :data:`CHAPTERS`."""
    rows = ["| # | notebook | part | what you learn |", "| --- | --- | --- | --- |"]
    rows += [
        f"| {c.number:02d} | [{c.title}](notebooks/{c.filename}) | {c.part} | {c.summary} |"
        for c in CHAPTERS
    ]
    return "\n".join(rows) + "\n"


def refresh_readme(path: Path) -> bool:
    """Rewrite the Binder badge and the notebook map of the README at ``path``; True when
    either changed. A README without a map gets none (nothing is appended)."""
    text = path.read_text()
    updated = README_MAP.sub(lambda _: readme_map(), README_BADGE.sub(readme_badge(), text))
    if updated == text:
        return False
    path.write_text(updated)
    return True


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


WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_REFERENCE = "IPY_MODEL_"
"""How one widget's state names another (``"IPY_MODEL_" + model_id``), as ipywidgets writes it."""

KERNEL_ARGUMENTS = ("--InteractiveShell.xmode=Minimal",)
"""Options for the kernel that runs the notebooks, so that saved outputs hold no machine paths.

``Minimal`` prints an error as ``Name: message`` only: a full traceback names the absolute path
of every file it passes through (this checkout, site-packages), and a chained error prints every
link of the chain. nbval compares an error's name and message but not its traceback, so a fresh
kernel with the default mode still agrees with the saved outputs. Passing the option to the
kernel keeps it out of the notebooks' code and out of their execution counts.
"""


def execute(path: Path, timeout: int = 300, *, save_as: Path | None = None) -> None:
    """Run a notebook top to bottom in its own folder and save outputs and widget state.

    The saved file depends only on what the code prints: widget ids are renumbered
    (:func:`renumber_widget_ids`), no timings are recorded, and errors are saved without
    tracebacks (:data:`KERNEL_ARGUMENTS`). Running an unchanged notebook again therefore leaves
    its file byte for byte the same. ``save_as`` writes the result elsewhere (the notebook
    still runs in its own folder, where it may read its neighbours); by default it overwrites
    ``path``.
    """
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    # Widgets of an earlier run would survive a run that shows none: nbclient only writes
    # the block when the kernel opened a widget.
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)  # old timestamps, see record_timing below
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        extra_arguments=list(KERNEL_ARGUMENTS),
        store_widget_state=True,
        record_timing=False,  # timestamps in cell metadata would change on every run
    )
    client.execute()
    renumber_widget_ids(notebook)
    merge_streams(notebook)
    nbformat.write(notebook, save_as or path)


def merge_streams(notebook: dict[str, Any]) -> int:
    """Join each run of adjacent stdout (or stderr) outputs of a cell into one output; return
    how many outputs were merged away. The kernel flushes printed text when it likes, so
    the same prints can arrive as one output or as two, depending on the machine's load;
    joined, the file no longer does (nbval joins them the same way before comparing)."""
    merged = 0
    for cell in notebook.get("cells", []):
        outputs = cell.get("outputs")
        if not outputs:
            continue
        kept: list[Any] = []
        for output in outputs:
            previous = kept[-1] if kept else None
            if (
                previous is not None
                and output.get("output_type") == "stream"
                and previous.get("output_type") == "stream"
                and output.get("name") == previous.get("name")
            ):
                previous["text"] = _text(previous["text"]) + _text(output["text"])
                merged += 1
            else:
                kept.append(output)
        cell["outputs"] = kept
    return merged


def _text(text: str | list[str]) -> str:
    return text if isinstance(text, str) else "".join(text)


def renumber_widget_ids(notebook: dict[str, Any]) -> dict[str, str]:
    """Replace the random widget model ids of an executed notebook by sequential ones, in place.

    ipywidgets gives every model a fresh ``uuid4`` on each run, and the ids appear in three
    places: the keys of the saved widget state (``metadata.widgets``), references from one
    model's state to another (``"IPY_MODEL_<id>"``), and the ``model_id`` of each widget view
    in the outputs. Each id becomes its rank in order of first appearance, written in hex with
    the original's length (``00000000000000000000000000000001`` for a uuid), the same in all
    three places. The order is: views in the outputs, cell by cell; then the saved models not
    shown directly, in the order the kernel created them; then models referred to but not
    saved. It does not depend on the random ids themselves, so two runs of the same code give
    the same file, and renumbering a renumbered notebook changes nothing.

    Returns the mapping from old to new ids.
    """
    widgets = notebook.get("metadata", {}).get("widgets", {})
    state: dict[str, Any] = widgets.get(WIDGET_STATE, {}).get("state", {})
    outputs = [
        output
        for cell in notebook.get("cells", [])
        if cell.get("cell_type") == "code"
        for output in cell.get("outputs", [])
    ]
    order: dict[str, None] = {}
    for output in outputs:
        view = output.get("data", {}).get(WIDGET_VIEW)
        if isinstance(view, dict) and isinstance(view.get("model_id"), str):
            order.setdefault(view["model_id"])
    for model_id in state:
        order.setdefault(model_id)
    for model_id in [m for m in order if m in state]:
        for reference in _references(state[model_id]):
            order.setdefault(reference)
    mapping = {old: f"{rank:0{len(old)}x}" for rank, old in enumerate(order, start=1)}
    if not mapping:
        return mapping
    pattern = re.compile(
        r"(?<![0-9A-Za-z])(?:"
        + "|".join(re.escape(old) for old in sorted(mapping, key=len, reverse=True))
        + r")(?![0-9A-Za-z])"
    )
    for output in outputs:
        _replace_ids(output, pattern, mapping)
    if state:
        _replace_ids(widgets, pattern, mapping)
        renamed = widgets[WIDGET_STATE]["state"]
        rank = {new: number for number, new in enumerate(mapping.values())}
        ordered = sorted(renamed.items(), key=lambda item: rank.get(item[0], len(rank)))
        renamed.clear()
        renamed.update(ordered)
    return mapping


def _references(value: Any) -> list[str]:
    """The model ids a widget's state refers to, in a fixed order (keys sorted).

    A reference is a ``"IPY_MODEL_<id>"`` string, or a view inside an Output widget's outputs.
    """
    if isinstance(value, str):
        return [value[len(WIDGET_REFERENCE) :]] if value.startswith(WIDGET_REFERENCE) else []
    if isinstance(value, dict):
        view = value.get(WIDGET_VIEW)
        shown = view.get("model_id") if isinstance(view, dict) else None
        nested = [found for key in sorted(value) for found in _references(value[key])]
        return ([shown] if isinstance(shown, str) else []) + nested
    if isinstance(value, list):
        return [found for item in value for found in _references(item)]
    return []


def _replace_ids(value: Any, pattern: re.Pattern[str], mapping: dict[str, str]) -> Any:
    """``value`` with every id of ``mapping`` replaced; dicts and lists are changed in place."""
    if isinstance(value, str):
        return pattern.sub(lambda match: mapping[match.group(0)], value)
    if isinstance(value, dict):
        items = [
            (_replace_ids(k, pattern, mapping), _replace_ids(v, pattern, mapping))
            for k, v in value.items()
        ]
        value.clear()
        value.update(items)
    elif isinstance(value, list):
        value[:] = [_replace_ids(item, pattern, mapping) for item in value]
    return value


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
    if Path("README.md").is_file() and refresh_readme(Path("README.md")):
        print("README.md: Binder badge and notebook map refreshed")
    for path in paths:
        changed = refresh_navigation(path)
        if args.execute:
            execute(path)
        print(
            f"{path}: {'navigation refreshed' if changed else 'navigation up to date'}"
            + (", executed" if args.execute else "")
        )
