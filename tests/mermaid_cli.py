"""The real Mermaid CLI for tests: many diagrams rendered to SVG in one run of ``mmdc``.

``mmdc()`` finds the CLI: the file named by ``$MERMAID_CLI``, or the project-local install
that ``.ci/run`` makes (``.ci/mermaid/node_modules/.bin/mmdc``). It drives Debian's Chromium
(``/usr/bin/chromium``) through puppeteer. When either is missing the test skips, naming the
install command; under CI (``CI=true``) it fails.

``render_all(diagrams, folder)`` writes the diagrams as ```` ```mermaid ```` blocks of one
Markdown file, so one browser renders them all (about 2 s to start, then about 1 s a diagram
on two cores). Mermaid refuses the whole file when one diagram does not parse; then each
diagram is rendered on its own, to say which ones fail and why.
"""

from __future__ import annotations

import json
import os
import subprocess
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import needs

ROOT = Path(__file__).resolve().parent.parent
LOCAL_MMDC = ROOT / ".ci" / "mermaid" / "node_modules" / ".bin" / "mmdc"
CHROMIUM = Path("/usr/bin/chromium")
INSTALL = (
    "cd to the project folder, then PUPPETEER_SKIP_DOWNLOAD=1 npm install --prefix .ci/mermaid "
    "--no-save @mermaid-js/mermaid-cli@11.17.0 (Chromium: apt-get install chromium)"
)
TIMEOUT = 600  # seconds for one run of mmdc, however many diagrams it renders

SVG = "{http://www.w3.org/2000/svg}"
SHAPES = {f"{SVG}rect", f"{SVG}path", f"{SVG}polygon"}


def mmdc() -> Path:
    """The Mermaid CLI; skip the test (fail it under CI) when it or Chromium is missing."""
    configured = os.environ.get("MERMAID_CLI")
    binary = Path(configured) if configured else LOCAL_MMDC
    missing = [str(path) for path in (binary, CHROMIUM) if not path.exists()]
    if missing:
        reason = f"it needs {' and '.join(missing)}; install with `{INSTALL}`"
        needs.missing(reason, "render the Mermaid diagrams")
    return binary


@dataclass(frozen=True)
class Rendering:
    """What the CLI made of one diagram: an SVG, or Mermaid's error message."""

    source: str
    svg: str | None
    error: str | None


def render_all(diagrams: list[str], folder: Path) -> list[Rendering]:
    """Render every diagram with the real CLI; one :class:`Rendering` per diagram, in order."""
    binary = mmdc()
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "puppeteer.json"
    config.write_text(json.dumps({"executablePath": str(CHROMIUM), "args": ["--no-sandbox"]}))
    blocks = "\n".join(f"```mermaid\n{text.rstrip()}\n```\n" for text in diagrams)
    run = _run(binary, config, folder / "diagrams.md", blocks, folder / "out.md")
    if run.returncode == 0:
        svgs = [folder / f"out-{number}.svg" for number in range(1, len(diagrams) + 1)]
        return [
            Rendering(text, svg.read_text(encoding="utf-8"), None)
            if svg.exists()
            else Rendering(text, None, f"mmdc exited 0 but wrote no {svg.name}")
            for text, svg in zip(diagrams, svgs, strict=True)
        ]
    if len(diagrams) == 1:
        return [Rendering(diagrams[0], None, _first_lines(run.stderr or run.stdout))]
    renderings = []
    for number, text in enumerate(diagrams, start=1):
        output = folder / f"alone-{number}.svg"
        alone = _run(binary, config, folder / f"alone-{number}.mmd", text, output)
        if alone.returncode == 0 and output.exists():
            renderings.append(Rendering(text, output.read_text(encoding="utf-8"), None))
        else:
            renderings.append(Rendering(text, None, _first_lines(alone.stderr or alone.stdout)))
    return renderings


def _run(
    binary: Path, config: Path, source: Path, text: str, output: Path
) -> subprocess.CompletedProcess[str]:
    source.write_text(text, encoding="utf-8")
    return subprocess.run(
        [str(binary), "--quiet", "-p", str(config), "-i", str(source), "-o", str(output)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def _first_lines(text: str, count: int = 4) -> str:
    """Mermaid's message without the JavaScript stack that follows it."""
    lines = [line for line in text.splitlines() if line.strip()]
    return "\n".join(line for line in lines[:count] if not line.lstrip().startswith("at "))


@dataclass(frozen=True)
class RenderedNode:
    """One node as the SVG shows it: its id in the diagram, classes, fill and visible text."""

    id: str
    classes: tuple[str, ...]
    fill: str | None
    shape: str
    text: str


def rendered_nodes(svg: str) -> dict[str, RenderedNode]:
    """The flowchart nodes of an SVG made by Mermaid, by their id in the Mermaid text."""
    root = ET.fromstring(svg)
    nodes: dict[str, RenderedNode] = {}
    for group in root.iter(f"{SVG}g"):
        classes = tuple(group.get("class", "").split())
        if "node" not in classes:
            continue
        # Mermaid names a node's group "<svg id>-flowchart-<node id>-<counter>".
        node_id = group.get("id", "").split("-flowchart-")[-1].rsplit("-", 1)[0]
        label = {
            element
            for child in group
            if "label" in child.get("class", "").split()
            for element in child.iter()
        }
        shape = next(  # the outline: a rect, a stadium's path, a hexagon's polygon
            element for element in group.iter() if element.tag in SHAPES and element not in label
        )
        nodes[node_id] = RenderedNode(
            id=node_id,
            classes=classes,
            fill=_style(shape.get("style", ""), "fill"),
            shape=shape.tag.removeprefix(SVG),
            text="".join(
                text
                for element in group.iter()
                if "nodeLabel" in element.get("class", "").split()
                for text in element.itertext()
            ),
        )
    return nodes


def rendered_edge_count(svg: str) -> int:
    """How many arrows the SVG draws."""
    return sum(
        "flowchart-link" in path.get("class", "").split()
        for path in ET.fromstring(svg).iter(f"{SVG}path")
    )


def _style(style: str, name: str) -> str | None:
    for declaration in style.split(";"):
        key, _, value = declaration.partition(":")
        if key.strip() == name:
            return value.replace("!important", "").strip()
    return None
