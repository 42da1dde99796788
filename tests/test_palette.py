"""The palette (eda_lesson.views.palette), checked by computation: colours a colour-blind reader
can still tell apart, a second cue besides colour for the things not to mix up, and no colour
written anywhere else in the views.

The simulation uses the matrices of Machado, Oliveira and Fernandes (2009), "A
physiologically-based model for simulation of color vision deficiency", IEEE TVCG 15(6), at
severity 1.0 (full dichromacy), applied to linear RGB; distances are CIE 1976 L*a*b* ΔE.
"""

from __future__ import annotations

import ast
import itertools
import re
from pathlib import Path

import pytest
from matplotlib.colors import get_named_colors_mapping, to_rgb

from eda_lesson import EventBus
from eda_lesson.shop.events import OrderPaid, ShipmentRequested
from eda_lesson.views import palette
from eda_lesson.views.flow import draw_flow
from eda_lesson.views.graphs import to_mermaid
from eda_lesson.views.palette import (
    CALL,
    COMMAND,
    EVENT,
    FAILED,
    INKS,
    OKABE_ITO,
    TEXT,
    UNHANDLED,
    WHITE,
    Ink,
)

Matrix = tuple[tuple[float, float, float], ...]

SIMULATIONS: dict[str, Matrix] = {
    "normal vision": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    "protanopia": (
        (0.152286, 1.052583, -0.204868),
        (0.114503, 0.786281, 0.099216),
        (-0.003882, -0.048116, 1.051998),
    ),
    "deuteranopia": (
        (0.367322, 0.860646, -0.227968),
        (0.280085, 0.672501, 0.047413),
        (-0.011820, 0.042940, 0.968881),
    ),
    "tritanopia": (
        (1.255528, -0.076749, -0.178779),
        (-0.078411, 0.930809, 0.147602),
        (0.004733, 0.691367, 0.303900),
    ),
}

#: The kinds of thing every picture of a dispatch shows side by side.
KINDS: dict[str, Ink] = {
    "event": EVENT,
    "command": COMMAND,
    "handler call": CALL,
    "failed call": FAILED,
    "unhandled event": UNHANDLED,
}

STROKE_DISTANCE = 15.0  # ΔE between two line colours: clearly different at a glance
FILL_DISTANCE = 8.0  # pale fills (dark text sits on them) are closer; the strokes carry hue


def linear(channel: float) -> float:
    return channel / 12.92 if channel <= 0.04045 else ((channel + 0.055) / 1.055) ** 2.4


def lab(colour: str, matrix: Matrix) -> tuple[float, float, float]:
    """``colour`` as a reader with the vision ``matrix`` simulates sees it, in CIE L*a*b*."""
    rgb = [linear(c) for c in to_rgb(colour)]
    seen = [min(max(sum(m * c for m, c in zip(row, rgb, strict=True)), 0.0), 1.0) for row in matrix]
    to_xyz = ((0.4124, 0.3576, 0.1805), (0.2126, 0.7152, 0.0722), (0.0193, 0.1192, 0.9505))
    white = (0.95047, 1.0, 1.08883)
    x, y, z = (
        sum(m * c for m, c in zip(row, seen, strict=True)) / w
        for row, w in zip(to_xyz, white, strict=True)
    )

    def f(t: float) -> float:
        return t ** (1 / 3) if t > (6 / 29) ** 3 else t / (3 * (6 / 29) ** 2) + 4 / 29

    return (116 * f(y) - 16, 500 * (f(x) - f(y)), 200 * (f(y) - f(z)))


def distance(a: str, b: str, matrix: Matrix) -> float:
    return float(
        sum((p - q) ** 2 for p, q in zip(lab(a, matrix), lab(b, matrix), strict=True)) ** 0.5
    )


def luminance(colour: str) -> float:
    red, green, blue = (linear(c) for c in to_rgb(colour))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(a: str, b: str) -> float:
    """The WCAG contrast ratio of two colours (1 to 21)."""
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


# ---------------------------------------------------------------------- colour


def test_the_simulation_can_fail_red_and_green_look_alike_to_a_deuteranope() -> None:
    """The check below can fail: a plain red and green, far apart to most eyes, are close
    for a deuteranope."""
    red, green = "#d62728", "#2ca02c"
    assert distance(red, green, SIMULATIONS["normal vision"]) > 60
    assert distance(red, green, SIMULATIONS["deuteranopia"]) < STROKE_DISTANCE


@pytest.mark.parametrize("vision", list(SIMULATIONS))
def test_the_kinds_of_thing_keep_apart_in_stroke_and_fill_for_every_vision(vision: str) -> None:
    matrix = SIMULATIONS[vision]
    for (name_a, a), (name_b, b) in itertools.combinations(KINDS.items(), 2):
        strokes = distance(a.stroke, b.stroke, matrix)
        fills = distance(a.fill, b.fill, matrix)
        assert strokes >= STROKE_DISTANCE, f"{name_a} and {name_b} strokes: ΔE {strokes:.1f}"
        assert fills >= FILL_DISTANCE, f"{name_a} and {name_b} fills: ΔE {fills:.1f}"


def test_the_strokes_are_the_okabe_ito_colours_themselves() -> None:
    assert {ink.stroke for ink in KINDS.values()} <= set(OKABE_ITO.values())


def test_text_stays_readable_on_every_fill_and_coloured_words_on_white() -> None:
    for name, ink in INKS.items():
        assert contrast(TEXT, ink.fill) >= 7, name  # WCAG AAA for text on a box
        if name != "pending":  # what has not happened yet is faint on purpose
            assert contrast(ink.words, WHITE) >= 4.5, name  # WCAG AA for coloured words


# ---------------------------------------------------------------------- the cues besides colour


def cues(ink: Ink) -> tuple[str, str, str]:
    return (ink.dashes, ink.hatch, ink.shape)


def test_failed_unhandled_and_command_differ_in_more_than_colour() -> None:
    told_apart = {"failed call": FAILED, "unhandled event": UNHANDLED, "command": COMMAND}
    for (name_a, a), (name_b, b) in itertools.combinations(told_apart.items(), 2):
        assert cues(a) != cues(b), f"{name_a} and {name_b} differ only by colour"
    # And each differs from the plain event and handler call it is drawn among.
    for name, ink in told_apart.items():
        assert cues(ink) not in (cues(EVENT), cues(CALL)), name
    assert FAILED.hatch and FAILED.dashes == "--" and FAILED.width > CALL.width
    assert UNHANDLED.dashes == ":"
    assert COMMAND.shape == "arrow"


def missing_handler(event: OrderPaid) -> ShipmentRequested:
    return ShipmentRequested(event.order_id)


def broken(event: OrderPaid) -> None:
    raise ConnectionError("down")


def test_drawn_boxes_carry_the_cues_of_their_ink() -> None:
    bus = EventBus()
    bus.register(OrderPaid, missing_handler)
    bus.register(OrderPaid, broken)
    figure = draw_flow(bus.dispatch(OrderPaid("o-1", 1.0)))
    drawn = {a.get_gid(): a for a in figure.findobj(lambda a: a.get_gid() is not None)}
    failed, unhandled = drawn["call-2"], drawn["event-1"]
    assert (failed.get_hatch(), failed.get_linestyle()) == ("//", "--")
    assert unhandled.get_linestyle() == ":" and not unhandled.get_hatch()
    assert drawn["call-1"].get_linestyle() == "-" and not drawn["call-1"].get_hatch()


def test_the_mermaid_export_carries_the_same_border_cues() -> None:
    bus = EventBus()
    bus.register(OrderPaid, missing_handler)
    bus.register(OrderPaid, broken)
    text = to_mermaid(bus.dispatch(OrderPaid("o-1", 1.0)))
    classes = [line.split(maxsplit=2)[1:] for line in text.splitlines() if "classDef" in line]
    styles = dict(classes)
    assert (
        "stroke-dasharray:6 3" in styles["edaFailed"] and "stroke-width:2px" in styles["edaFailed"]
    )
    assert "stroke-dasharray:2 2" in styles["edaUnhandled"]
    assert "stroke-dasharray" not in styles["edaEvent"] + styles["edaHandler"]
    assert f"fill:{FAILED.fill},stroke:{FAILED.stroke}" in styles["edaFailed"]


# ---------------------------------------------------------------------- colours live in the palette

VIEWS = Path(palette.__file__).parent
# A hex colour; not a Mermaid entity code such as "#160;" (three decimal digits and a
# semicolon: a no-break space), the one entity a hex pattern would take for a colour.
HEX = re.compile(r"#(?!\d{3};)(?:[0-9a-fA-F]{8}|[0-9a-fA-F]{6}|[0-9a-fA-F]{3})(?![0-9a-fA-F])")
NAMED = {name.lower() for name in get_named_colors_mapping() if len(name) > 2} - {"none"}
COLOUR_WORDS = {
    "color",
    "colour",
    "facecolor",
    "edgecolor",
    "hatchcolor",
    "fc",
    "ec",
    "c",
    "face",
    "edge",
    "fill",
    "stroke",
    "words",
    "hatch_colour",
    "text",
    "background",
}


def colour_literals(source: str) -> list[str]:
    """The colours ``source`` writes as literals (docstrings aside): a hex value anywhere in
    a string, a colour name matplotlib knows as a whole string, or any string given as a
    colour (a keyword argument or dict entry named like one: ``color="k"``, ``"edge": "none"``)."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    given_as_colour = [
        value
        for node in ast.walk(tree)
        for name, value in (
            [(k.arg, k.value) for k in node.keywords]
            if isinstance(node, ast.Call)
            else [
                (getattr(k, "value", None), v) for k, v in zip(node.keys, node.values, strict=True)
            ]
            if isinstance(node, ast.Dict)
            else []
        )
        if name in COLOUR_WORDS and isinstance(value, ast.Constant) and isinstance(value.value, str)
    ]
    found = [str(value.value) for value in given_as_colour]
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        if id(node) in docstrings or node in given_as_colour:
            continue
        if HEX.search(node.value) or node.value.lower() in NAMED:
            found.append(node.value)
    return sorted(found)


def test_the_literal_check_finds_hex_values_colour_names_and_colours_given_as_words() -> None:
    source = (
        'x = "#4b5563"\ny = {"edge": "none"}\nz = f"color:#fff;{n}"\nw = "tomato"\n'
        'ax.text(0, 0, "words", color="k")\n'
    )
    assert colour_literals(source) == sorted(["#4b5563", "none", "color:#fff;", "tomato", "k"])
    harmless = (
        '"""A docstring may say #ffffff."""\nx = "#160;" + "or none"\n'
        'ax.tick_params(axis="y")\nf"{x:g}"\n'
    )
    assert colour_literals(harmless) == []


@pytest.mark.parametrize(
    "path", sorted(p for p in VIEWS.glob("*.py") if p.name != "palette.py"), ids=lambda p: p.name
)
def test_no_module_of_the_views_but_the_palette_writes_a_colour(path: Path) -> None:
    assert colour_literals(path.read_text()) == [], "name these colours in palette.py"


def test_every_colour_of_the_palette_is_named_by_its_meaning() -> None:
    inks = [name for name in palette.__all__ if isinstance(getattr(palette, name), Ink)]
    assert {"EVENT", "COMMAND", "CALL", "FAILED", "UNHANDLED", "CURRENT", "QUEUED"} <= set(inks)
    for name in ("TEXT", "FADED_TEXT", "EDGE", "FADED_EDGE", "GRID", "WRITE_SIDE", "READ_SIDE"):
        to_rgb(getattr(palette, name))  # a colour matplotlib reads
