"""The colours of every picture, named by what they mean, with the cues that are not colour.

The hues are the Okabe-Ito palette (Okabe and Ito, *Color Universal Design*, 2002-2008): eight
colours chosen so that readers with any common colour-vision deficiency still tell them apart.
A stroke is one of those colours as it is; a fill is the same hue mixed with white, so dark
text on it stays easy to read; ``words`` is a darker shade, for text that carries the meaning.

Colour is never the only cue for the three things a reader must not mix up. A failed call is
hatched and has a bold dashed border, an unhandled event has a dotted border, and a command
is a box shaped like an arrow (:attr:`Ink.shape`); the Mermaid export carries the same border
styles. ``tests/test_palette.py`` checks both by computation: it simulates protanopia,
deuteranopia and tritanopia and measures the distance between the colours, and it compares the
cues. Every colour value of :mod:`eda_lesson.views` is written here and nowhere else.

It draws nothing and imports no drawing library.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "BLACK",
    "CALL",
    "COMMAND",
    "COMPENSATION",
    "CURRENT",
    "DEAD_LETTER",
    "DUPLICATE",
    "EDGE",
    "EVENT",
    "FADED_COMPENSATION",
    "FADED_EDGE",
    "FADED_TEXT",
    "FAILED",
    "GRID",
    "INKS",
    "MUTED_TEXT",
    "NO_COLOUR",
    "OKABE_ITO",
    "PANEL",
    "PENDING",
    "PLAIN",
    "QUEUED",
    "READ_SIDE",
    "TEXT",
    "UNHANDLED",
    "WHITE",
    "WRITE_SIDE",
    "Dashes",
    "Ink",
    "Shape",
    "mix",
]

Dashes = Literal["-", "--", ":", "-."]
"""Line styles: solid, dashed, dotted, dash-dotted."""

Shape = Literal["rounded", "square", "arrow"]
"""The outline of a box: rounded for an event (a fact), square for a handler call, an arrow
for a command (a request pointing at its one handler)."""

#: The eight colours of the Okabe-Ito palette, by the names its authors give them.
OKABE_ITO: dict[str, str] = {
    "black": "#000000",
    "orange": "#e69f00",
    "sky blue": "#56b4e9",
    "bluish green": "#009e73",
    "yellow": "#f0e442",
    "blue": "#0072b2",
    "vermillion": "#d55e00",
    "reddish purple": "#cc79a7",
}

WHITE = "#ffffff"
BLACK = OKABE_ITO["black"]
NO_COLOUR = "none"
"""No fill or no edge at all (matplotlib's word for it)."""


def mix(colour: str, amount: float, base: str = WHITE) -> str:
    """``amount`` of ``colour`` mixed into ``base`` (white: a tint; black: a shade), as hex."""
    mixed = [
        round(amount * int(colour[i : i + 2], 16) + (1 - amount) * int(base[i : i + 2], 16))
        for i in (1, 3, 5)
    ]
    return "#" + "".join(f"{channel:02x}" for channel in mixed)


def _shade(colour: str, amount: float) -> str:
    return mix(colour, amount, BLACK)


# ---------------------------------------------------------------------- neutral colours

TEXT = "#111827"
"""Words, nearly black."""
MUTED_TEXT = "#6b7280"
"""Words that explain rather than name: axis notes, placeholders."""
FADED_TEXT = "#9ca3af"
"""Words of what has not happened yet."""
EDGE = "#4b5563"
"""Arrows and plain outlines."""
FADED_EDGE = "#d1d5db"
"""Arrows and outlines of what has not happened yet."""
GRID = FADED_EDGE
"""Grid lines of a time axis."""
PANEL = "#f9fafb"
"""The faint background of a lane, a header or a bar."""
_PENDING_FILL = "#f3f4f6"
_PENDING_STROKE = "#c4c9d0"


# ---------------------------------------------------------------------- inks


@dataclass(frozen=True)
class Ink:
    """How one kind of thing is drawn: its colours and the cues that are not colour."""

    fill: str
    stroke: str
    words: str = TEXT
    """Text that says this meaning in colour (a label, an outcome): legible on white."""
    dashes: Dashes = "-"
    width: float = 1.2
    hatch: str = ""
    """A matplotlib hatch pattern ("//"); "" for none."""
    hatch_colour: str = ""
    """The colour of the hatch lines: light, so a label on top stays easy to read."""
    shape: Shape = "square"

    def but(self, **changes: Any) -> Ink:
        """This ink with some attributes changed: ``EVENT.but(stroke=BLACK, width=3.0)``."""
        return dataclasses.replace(self, **changes)


def _ink(hue: str, tint: float, shade: float, **cues: Any) -> Ink:
    """An ink of one Okabe-Ito hue: the colour itself as the stroke, ``tint`` of it mixed
    with white as the fill, ``shade`` of it mixed with black for words."""
    colour = OKABE_ITO[hue]
    return Ink(mix(colour, tint), colour, _shade(colour, shade), **cues)


EVENT = _ink("blue", 0.0, 1.0, shape="rounded").but(fill=mix(OKABE_ITO["sky blue"], 0.4))
"""An event: a fact that happened (filled with the lighter sky blue)."""
COMMAND = _ink("reddish purple", 0.15, 0.7, shape="arrow")
"""A command: a request for one handler; the arrow shape tells it from an event."""
CALL = _ink("bluish green", 0.4, 0.75)
"""A handler call that worked (and anything done: a write, a delivery handled)."""
FAILED = _ink("vermillion", 0.35, 0.8, dashes="--", width=2.0, hatch="//").but(
    hatch_colour=mix(OKABE_ITO["vermillion"], 0.55)
)
"""A handler call that raised: hatched, with a bold dashed border."""
UNHANDLED = _ink("orange", 0.35, 0.65, dashes=":", width=1.8, shape="rounded")
"""An event no handler took: a dotted border."""
CURRENT = Ink(mix(OKABE_ITO["yellow"], 0.3), BLACK, BLACK, width=3.0)
"""The step shown now: a bold black border (and a highlighter's yellow where it fills)."""
QUEUED = Ink(WHITE, OKABE_ITO["blue"], OKABE_ITO["blue"], dashes="--", shape="rounded")
"""An event produced and waiting in the queue: white, dashed."""
PENDING = Ink(_PENDING_FILL, _PENDING_STROKE, FADED_TEXT, width=1.0)
"""What has not happened yet: grey."""
PLAIN = Ink(WHITE, EDGE)
"""A box that is only a place: a state, a step, a participant."""
COMPENSATION = _ink("orange", 0.25, 0.65, dashes="--")
"""What undoes earlier steps of a saga: orange, beside the vermillion of the failure."""
FADED_COMPENSATION = mix(OKABE_ITO["orange"], 0.45)
"""A compensation the process has not taken."""
DEAD_LETTER = Ink(
    _shade(OKABE_ITO["vermillion"], 0.55),
    _shade(OKABE_ITO["vermillion"], 0.35),
    WHITE,
    hatch="//",
    hatch_colour=_shade(OKABE_ITO["vermillion"], 0.8),
)
"""A delivery given up on for good: a dark, hatched failure, with white words."""
DUPLICATE = Ink(_PENDING_FILL, MUTED_TEXT, MUTED_TEXT)
"""A delivery recognised as seen before and skipped."""
WRITE_SIDE = mix(COMMAND.stroke, 0.08)
"""The background of the side of CQRS where commands change things."""
READ_SIDE = mix(EVENT.stroke, 0.06)
"""The background of the side of CQRS where queries read models."""

#: The ink of each kind of node in a picture of a dispatch, by the names the graphs use.
INKS: dict[str, Ink] = {
    "event": EVENT,
    "command": COMMAND,
    "call": CALL,
    "failed": FAILED,
    "unhandled": UNHANDLED,
    "current": CURRENT,
    "queued": QUEUED,
    "pending": PENDING,
}
