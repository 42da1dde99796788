"""Every Mermaid export renders in the real Mermaid renderer, each node labelled and coloured.

Comparing strings (tests/test_graphs.py) cannot tell whether Mermaid parses a diagram: every
export once failed because a node class was named ``call``, a flowchart keyword
(mermaid-js/mermaid#4245). Here the real CLI (``mmdc``, Mermaid in Chromium; see
tests/mermaid_cli.py) renders the shop's cascades, failures, unhandled events, commands and
names full of quotes, markup, comment signs, keywords, unicode and line breaks, and every
```` ```mermaid ```` block in the notebooks' Markdown. Each SVG must show every node of the
cascade that the page keeps (:func:`~eda_lesson.views.folding.page_graph`), with the text a
reader should see, in the shape and colour of its kind, and the note saying what was left out
when something was. All exports go through one run of the CLI, the notebooks' blocks through
another.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, make_dataclass
from pathlib import Path
from typing import Any

import pytest
from mermaid_cli import Rendering, render_all, rendered_edge_count, rendered_nodes

from eda_lesson import Command, DispatchResult, EventBus
from eda_lesson.shop.events import (
    OrderCancelled,
    OrderCreated,
    OrderPaid,
    OrderShipped,
    ShipmentRequested,
)
from eda_lesson.shop.services import Shop
from eda_lesson.views.folding import LeftOut, folded_graph, page_graph
from eda_lesson.views.graphs import to_mermaid
from eda_lesson.views.labels import shorten
from eda_lesson.views.palette import INKS

pytestmark = pytest.mark.slow

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

# What a reader sees for each kind of node: its Mermaid class, its outline and its fill.
CLASS = {
    "event": "edaEvent",
    "command": "edaCommand",
    "call": "edaHandler",
    "failed": "edaFailed",
    "unhandled": "edaUnhandled",
}
SEPARATOR = " · "


# ---------------------------------------------------------------------- cascades


def shop_dispatch(*events: object) -> DispatchResult:
    """The shop's answer to the last of ``events``, dispatched one after another."""
    bus = EventBus()
    Shop().register(bus)
    results = [bus.dispatch(event) for event in events]
    return results[-1]


def send_sms(event: OrderPaid) -> None:
    raise ConnectionError("the SMS gateway did not answer")


def notebook_03_failed() -> DispatchResult:
    """The cascade notebook 03 prints with ``print(to_mermaid(failed))``, rebuilt step by step."""
    bus = EventBus()
    shop = Shop()
    shop.register(bus)
    bus.dispatch(OrderCreated("o-1", customer_id="c-7", total=42.0))
    bus.dispatch(OrderPaid("o-1", amount=42.0))
    bus.register(OrderPaid, send_sms)
    bus.dispatch(OrderCreated("o-2", customer_id="c-8", total=10.0))
    return bus.dispatch(OrderPaid("o-2", amount=10.0))


def no_warehouse() -> DispatchResult:
    """Notebook 03's shop without the shipping handler: ShipmentRequested goes unhandled."""
    bus = EventBus()
    for event_type, handler in Shop().handlers():
        if event_type is not ShipmentRequested:
            bus.register(event_type, handler)
    return bus.dispatch(OrderPaid("o-3", amount=5.0))


@dataclass(frozen=True)
class Ship(Command):
    order_id: str


def ship(command: Ship) -> OrderShipped:
    return OrderShipped(command.order_id)


def ask_to_ship(event: OrderPaid) -> Ship:
    return Ship(event.order_id)


def notify_shipped(event: OrderShipped) -> None:
    pass


def commands() -> DispatchResult:
    """OrderPaid -> a handler asks for Ship -> its one handler -> OrderShipped -> notify."""
    bus = EventBus()
    bus.register(OrderPaid, ask_to_ship)
    bus.register(Ship, ship)
    bus.register(OrderShipped, notify_shipped)
    return bus.dispatch(OrderPaid("o-1", 42.0))


def a_command_nobody_handles() -> DispatchResult:
    bus = EventBus()
    bus.register(OrderPaid, ask_to_ship)
    return bus.dispatch(OrderPaid("o-1", 42.0))


def named_handler(
    name: str, produces: type | None = None, error: BaseException | None = None
) -> Callable[[object], object]:
    """A handler whose name (``__qualname__``) is ``name``; it raises ``error`` if given, or
    returns a ``produces`` event."""

    def handle(event: object) -> object:
        if error is not None:
            raise error
        return None if produces is None else produces(getattr(event, "tag", ""))

    handle.__qualname__ = name
    return handle


def chain(
    events: Sequence[str],
    handlers: Sequence[str],
    *,
    error: BaseException | None = None,
    also_failing: Mapping[str, BaseException] | None = None,
    tag: str = "x",
) -> DispatchResult:
    """Event types named ``events``, each handled by the handler named at its place, which
    produces the next event. Fewer handlers than events leave the last event unhandled; as
    many, and the last handler raises ``error`` (when given). ``also_failing`` adds handlers
    of the first event that raise."""
    types = [make_dataclass(name or "Nameless", [("tag", str)], frozen=True) for name in events]
    for cls, name in zip(types, events, strict=True):
        cls.__name__ = cls.__qualname__ = name
    bus = EventBus()
    for position, name in enumerate(handlers):
        following = types[position + 1] if position + 1 < len(types) else None
        last = position == len(handlers) - 1
        bus.register(types[position], named_handler(name, following, error if last else None))
    for name, failure in (also_failing or {}).items():
        bus.register(types[0], named_handler(name, error=failure))
    return bus.dispatch(types[0](tag))


KEYWORDS = ["end", "call", "click", "style", "class", "default", "graph", "subgraph"]
KEYWORDS += ["classDef", "linkStyle", "flowchart", "direction"]

CASES: dict[str, Callable[[], DispatchResult]] = {
    "shop: OrderPaid": lambda: shop_dispatch(
        OrderCreated("o-1", customer_id="c-7", total=42.0), OrderPaid("o-1", 42.0)
    ),
    "shop: OrderCreated": lambda: shop_dispatch(OrderCreated("o-1", customer_id="c-7", total=42.0)),
    "shop: OrderCancelled": lambda: shop_dispatch(
        OrderCreated("o-1", customer_id="c-7", total=42.0),
        OrderCancelled("o-1", reason="changed my mind"),
    ),
    "notebook 03: a failing handler": notebook_03_failed,
    "an unhandled event": no_warehouse,
    "a command with its one handler": commands,
    "a command nobody handles": a_command_nobody_handles,
    "quotes and markup": lambda: chain(
        ['Say "hi"', "<b>Bold</b> & <i>", "#1 #lt; #quot; &amp;"],
        ['say "hi"', "<script>alert(1)</script>", "a&b <br/> c"],
        error=ValueError('<img src=x onerror=alert(1)> "no"'),
    ),
    "comments, directives and entity codes": lambda: chain(
        ["100%% done", "%%{init: {'theme':'dark'}}%%", "a #35; b ;"],
        ["%% not a comment", "%%{init: {'theme':'forest'}}%%"],
    ),
    # Chains of three events, so that each fits a page (seven layers) and nothing is cut.
    "keywords as event and handler names": lambda: chain(
        KEYWORDS[0:3],
        KEYWORDS[1:4],
        also_failing={"style e0 fill:#f00": KeyError("subgraph")},
    ),
    "more keywords": lambda: chain(KEYWORDS[3:6], KEYWORDS[4:7]),
    "yet more keywords": lambda: chain(KEYWORDS[6:9], KEYWORDS[7:10]),
    "the last keywords": lambda: chain(
        KEYWORDS[9:12], [*KEYWORDS[10:12], "click e0 call alert()"], error=ValueError("end")
    ),
    "unicode": lambda: chain(
        ["Café", "注文済み", "📦 Versand"], ["Café.bestellen", "注文.発送", "🚚"]
    ),
    "more unicode": lambda: chain(
        ["Ωmega ñ ü"], ["rtl \u202eabc"], error=ValueError("été ☀ 東京 🎉")
    ),
    "a cascade cut to a page, its note naming what was left out": lambda: chain(
        ["A", "B", "C", "D", '<b>x</b> & "q"', "100%% done #35;", "style e0 fill:#f00;", "end"],
        ["a", "b", "c", "d", "e", "f", "g"],
    ),
    "line breaks and control characters": lambda: chain(
        ["Two\nLines", "Tab\there", "Line\u2028Separator"],
        ["first\r\nsecond", "zero\u200bwidth", "sur\ud800rogate"],
        error=ValueError("line one\nline two\r\n\tline three"),
        also_failing={"repr": KeyError("a\nb"), "nothing said": RuntimeError()},
        tag="a\nb",
    ),
    "traps in Mermaid's own preprocessing": lambda: chain(
        ["`Markdown` **bold**", "restyle a:<b>", "\ufb02\xb0x\xb6\xdf", ""],
        ["back\\slash\\n", "classDef x fill:#f00;", "style e0 fill:#f00;"],
    ),
}


def seen(text: str, limit: int = 40) -> str:
    """What a label shows of ``text``: one line, cut like the export cuts it; Mermaid shows
    a lone surrogate as the replacement character and an empty label as a no-break space."""
    flat = shorten(" ".join(text.split()), limit)
    return re.sub("[\ud800-\udfff]", "\ufffd", flat) or "\xa0"


@dataclass(frozen=True)
class Expected:
    css: str
    fill: str
    shape: str
    text: str


def page_of(result: DispatchResult) -> tuple[Any, LeftOut]:
    """The nodes of the cascade that the export keeps, and what it leaves out."""
    return page_graph(folded_graph(result))


def expected_nodes(result: DispatchResult) -> dict[str, Expected]:
    """Every node of the cascade that fits the page as the rendered diagram must show it, by
    its Mermaid id, and the note saying what was left out."""
    graph, left_out = page_of(result)
    nodes = {}
    if left_out:
        note = seen(left_out.note(), 400)
        nodes["leftout"] = Expected("edaNote", INKS["pending"].fill, "rect", note)
    for _, data in graph.nodes(data=True):
        if data["kind"] == "event":
            kind = "unhandled" if data["unhandled"] else "command" if data["command"] else "event"
            shape = "polygon" if data["command"] else "path"  # a hexagon, or a stadium
            text = seen(data["label"]) + (SEPARATOR + "no handler") * data["unhandled"]
            node_id = f"e{data['index']}"
        else:
            kind = "failed" if data["failed"] else "call"
            shape = "rect"
            text = f"step {data['step']}: {seen(data['label'])}"
            if data["failed"]:
                text += f"{SEPARATOR}failed: {seen(data['error'])}"
            node_id = f"c{data['step']}"
        nodes[node_id] = Expected(CLASS[kind], INKS[kind].fill, shape, text)
    return nodes


# ---------------------------------------------------------------------- rendering


Exports = dict[str, tuple[DispatchResult, Rendering]]


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Exports:
    """Every case's export, rendered by the real CLI in one run."""
    results = {name: build() for name, build in CASES.items()}
    renderings = render_all(
        [to_mermaid(result) for result in results.values()], tmp_path_factory.mktemp("exports")
    )
    return {
        name: (result, rendering)
        for (name, result), rendering in zip(results.items(), renderings, strict=True)
    }


def svg_of(rendering: Rendering) -> str:
    if rendering.svg is None:
        pytest.fail(f"Mermaid refused the diagram:\n{rendering.error}\n\n{rendering.source}")
    return rendering.svg


@pytest.mark.parametrize("case", list(CASES))
def test_the_export_renders_with_every_node_labelled_shaped_and_coloured(
    case: str, exports: Exports
) -> None:
    result, rendering = exports[case]
    svg = svg_of(rendering)
    rendered = {
        node_id: Expected(
            # Mermaid adds its own classes ("node", "default"); ours is the one that says eda.
            next((css for css in node.classes if css.startswith("eda")), "no eda class"),
            node.fill or "no fill",
            node.shape,
            node.text.replace("\u2060", ""),  # the export's invisible word joiners
        )
        for node_id, node in rendered_nodes(svg).items()
    }
    assert rendered == expected_nodes(result)
    assert rendered_edge_count(svg) == page_of(result)[0].number_of_edges()


def test_only_the_cut_case_leaves_anything_out() -> None:
    """Every case but one is whole: what they check is checked on every node."""
    cut = [name for name, build in CASES.items() if page_of(build())[1]]
    assert cut == ["a cascade cut to a page, its note naming what was left out"]


def test_the_real_renderer_refuses_a_node_class_named_call(tmp_path: Path) -> None:
    """The fault these tests guard against, seen in the real renderer: the test can fail."""
    (rendering,) = render_all(['flowchart LR\n    c1["step 1"]:::call\n'], tmp_path)
    assert rendering.svg is None
    assert rendering.error is not None and "CALLBACKNAME" in rendering.error


# ---------------------------------------------------------------------- the notebooks


def notebook_blocks() -> list[tuple[str, str]]:
    """``(where, text)`` of every fenced mermaid block in the notebooks' Markdown cells."""
    fence = re.compile(r"^(```|~~~)[ \t]*mermaid[^\n]*\n(.*?)^\1", re.DOTALL | re.MULTILINE)
    blocks = []
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        for number, cell in enumerate(cells):
            if cell["cell_type"] != "markdown":
                continue
            source = "".join(cell["source"])
            for count, match in enumerate(fence.finditer(source), start=1):
                blocks.append((f"{path.name} cell {number} block {count}", match.group(2)))
    return blocks


NOTEBOOK_BLOCKS = notebook_blocks()


@pytest.fixture(scope="module")
def notebook_renderings(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendering]:
    texts = [text for _, text in NOTEBOOK_BLOCKS]
    renderings = render_all(texts, tmp_path_factory.mktemp("notebooks")) if texts else []
    return {where: r for (where, _), r in zip(NOTEBOOK_BLOCKS, renderings, strict=True)}


@pytest.mark.parametrize("where", [where for where, _ in NOTEBOOK_BLOCKS])
def test_every_mermaid_block_in_the_notebooks_renders_each_labelled_node(
    where: str, notebook_renderings: dict[str, Rendering]
) -> None:
    rendering = notebook_renderings[where]
    nodes = rendered_nodes(svg_of(rendering))
    # Every node written with a quoted label: `id["..."]`, `id(["..."])`, `id{{"..."}}`.
    written = dict(re.findall(r'([A-Za-z_][\w-]*)\s*[\[({]+"([^"]*)"', rendering.source))
    assert written and sorted(nodes) == sorted(written)
    for node_id, label in written.items():
        assert nodes[node_id].text == shown(label), node_id


def shown(label: str) -> str:
    """The text Mermaid shows for a quoted label: tags such as <br/> vanish, entity codes
    (``#quot;``, ``#35;``) become their characters. A Markdown string is left as written."""
    if label.startswith("`"):
        return label
    text = re.sub(r"<[^>]*>", "", label)
    return re.sub(
        r"#(\d+|[A-Za-z]+);",
        lambda code: html.unescape(f"&#{code[1]};" if code[1].isdigit() else f"&{code[1]};"),
        text,
    )


def notebook_03_printed_export() -> str:
    cells = json.loads((NOTEBOOKS / "03_dispatch_and_flow.ipynb").read_text())["cells"]
    return next(
        "".join(output.get("text", ""))
        for cell in cells
        if cell["cell_type"] == "code" and "print(to_mermaid(failed))" in "".join(cell["source"])
        for output in cell["outputs"]
    )


def node_labels_and_edges(text: str) -> list[tuple[str, str]]:
    """Each node's id and the first part of its label, and each edge, of a Mermaid export
    in the old (``<br/>``) or the new (``·``) form."""
    nodes = re.findall(r'^\s*(\w+)[\[({]+"(.*?)(?:<br/>|' + SEPARATOR + '|")', text, re.M)
    edges = re.findall(r"^\s*(\w+) --> (\w+)$", text, re.MULTILINE)
    return nodes + edges


def test_the_rebuilt_failing_cascade_is_the_one_notebook_03_prints() -> None:
    assert node_labels_and_edges(to_mermaid(notebook_03_failed())) == node_labels_and_edges(
        notebook_03_printed_export()
    )
