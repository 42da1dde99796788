"""A sheet measured in inches, with boxes, arrows, text and a legend: what the pictures of
:mod:`eda_lesson.views.history` and :mod:`eda_lesson.views.sagas` are drawn on.

One data unit is one inch, so a label's size on the page is known while laying it out, and a
picture's size follows from its content. The colours are the ones of
:data:`eda_lesson.views.graphs.COLOURS` and :mod:`eda_lesson.views.flow`, so an event is the
same blue and a failure the same red in every picture of the series.

It draws with matplotlib's object API (a :class:`~eda_lesson.views.flow.NotebookFigure`), never
pyplot, so nothing is left open and Jupyter shows each picture once, as a PNG. It knows
nothing about events, stores or sagas; it only places shapes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle

from eda_lesson.views.flow import EDGE, TEXT, NotebookFigure
from eda_lesson.views.graphs import COLOURS

__all__ = [
    "Dashes",
    "Key",
    "Picture",
    "Sheet",
    "centre_of",
    "key",
]

Dashes = Literal["-", "--", ":", "-."]
"""The line styles the pictures use: solid, dashed, dotted, dash-dotted."""

TITLE_SIZE = 10.0
LEGEND_ROW = 0.26
LEGEND_COLUMN = 1.5
CHAR_WIDTH = 0.066  # inches per character of 8-point legend text, on average


class Picture(NotebookFigure):
    """A figure that Jupyter shows as a PNG, and whose text form is its title: short,
    stable, and what a reader without images (or a notebook test) sees."""

    caption: str = ""

    def _repr_png_(self) -> bytes:
        # What a notebook saves: zlib's default level makes the file a third smaller than the
        # fast setting explorers use to redraw at every step, and it is rendered only once.
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()

    def __repr__(self) -> str:
        return f"<picture: {self.caption}>" if self.caption else super().__repr__()


@dataclass(frozen=True)
class Key:
    """One entry of a legend: a swatch (or a line) and its words."""

    label: str
    face: str
    edge: str
    dashes: Dashes = "-"
    width: float = 1.2
    line: bool = False


def key(colour: str, label: str, *, dashes: Dashes = "-", width: float = 1.2) -> Key:
    """A legend entry in one of the series' colours (a name of :data:`COLOURS`)."""
    fill, stroke = COLOURS[colour]
    return Key(label, fill, stroke, dashes, width)


@dataclass
class Sheet:
    """An Axes whose data units are inches, origin at the bottom left."""

    figure: Figure
    ax: Axes
    width: float
    height: float

    @classmethod
    def new(cls, width: float, height: float, ax: Axes | None = None) -> Sheet:
        """A sheet of ``width`` x ``height`` inches: a new figure, or ``ax`` set up as one."""
        if ax is None:
            figure: Figure = Picture(figsize=(width, height))
            ax = figure.add_axes((0, 0, 1, 1))
        else:
            root = ax.get_figure(root=True)
            if root is None:
                raise ValueError("the Axes given as ax= belongs to no Figure; create it with one")
            figure = root
        ax.set_xlim(0, width)
        ax.set_ylim(0, height)
        ax.set_aspect("equal")
        ax.set_axis_off()
        return cls(figure, ax, width, height)

    def box(
        self,
        centre: tuple[float, float],
        size: tuple[float, float],
        label: str = "",
        *,
        face: str,
        edge: str,
        width: float = 1.2,
        dashes: Dashes = "-",
        rounded: bool = True,
        text: str = TEXT,
        fontsize: float = 8.5,
        gid: str | None = None,
        zorder: float = 2,
        **text_style: Any,
    ) -> FancyBboxPatch:
        """A box centred on ``centre`` with ``label`` in its middle; returns the patch, which
        :meth:`arrow` can take as an end so the arrow stops at the box's edge."""
        x, y = centre
        w, h = size
        # A corner wider than half the box would bulge out of it.
        radius = min(0.14, 0.45 * min(w, h)) if rounded else 0.03
        style = f"round,pad=0,rounding_size={radius:.3f}"
        patch = FancyBboxPatch(
            (x - w / 2, y - h / 2),
            w,
            h,
            boxstyle=style,
            facecolor=face,
            edgecolor=edge,
            linewidth=width,
            linestyle=dashes,
            zorder=zorder,
        )
        if gid is not None:
            patch.set_gid(gid)
        self.add(patch)
        if label:
            self.text(
                x,
                y,
                label,
                ha="center",
                va="center",
                fontsize=fontsize,
                color=text,
                zorder=3,
                gid=None if gid is None else f"{gid}-label",
                **text_style,
            )
        return patch

    def arrow(
        self,
        start: tuple[float, float],
        end: tuple[float, float],
        *,
        colour: str = EDGE,
        width: float = 1.2,
        dashes: Dashes = "-",
        bend: float = 0.0,
        source: FancyBboxPatch | None = None,
        target: FancyBboxPatch | None = None,
        head: str = "-|>",
        gid: str | None = None,
    ) -> FancyArrowPatch:
        """An arrow from ``start`` to ``end``, clipped to the ``source`` and ``target`` boxes
        when given; ``bend`` curves it (a fraction of its length, positive bends left)."""
        arrow = FancyArrowPatch(
            start,
            end,
            arrowstyle=head,
            mutation_scale=10,
            connectionstyle=f"arc3,rad={bend:.3f}",
            patchA=source,
            patchB=target,
            shrinkA=1,
            shrinkB=1,
            color=colour,
            linewidth=width,
            linestyle=dashes,
            zorder=1,
        )
        if gid is not None:
            arrow.set_gid(gid)
        self.add(arrow)
        return arrow

    def connect(
        self, source: FancyBboxPatch, target: FancyBboxPatch, **style: Any
    ) -> FancyArrowPatch:
        """An arrow from the edge of one box to the edge of another (centre to centre,
        clipped)."""
        return self.arrow(
            centre_of(source), centre_of(target), source=source, target=target, **style
        )

    def line(
        self,
        xs: Sequence[float],
        ys: Sequence[float],
        *,
        colour: str = EDGE,
        width: float = 1.0,
        dashes: Dashes = "-",
        zorder: float = 0.5,
    ) -> None:
        self.add(Line2D(xs, ys, color=colour, linewidth=width, linestyle=dashes, zorder=zorder))

    def text(self, x: float, y: float, words: str, **style: Any) -> None:
        # parse_math=False: a "$" in a value is text, not the start of a formula.
        style.setdefault("color", TEXT)
        self.ax.text(x, y, words, parse_math=False, **style)

    def title(self, words: str, *, top_room: float = 0.45) -> None:
        """``words`` centred in the top ``top_room`` inches (and the picture's text form)."""
        self.caption(words)
        self.text(
            self.width / 2,
            self.height - top_room / 2,
            words,
            ha="center",
            va="center",
            fontsize=TITLE_SIZE,
        )

    def caption(self, words: str) -> None:
        """Make ``words`` the text form of the picture (when the sheet made the figure)."""
        if isinstance(self.figure, Picture):
            self.figure.caption = words

    def legend(self, keys: Sequence[Key], *, bottom: float = 0.22, per_row: int = 4) -> None:
        """The keys in rows of up to ``per_row`` (fewer if the sheet is narrow), centred, the
        last row ``bottom`` inches up. Columns are as wide as the longest label needs."""
        if not keys:
            return
        column, per_row = _legend_grid(keys, self.width, per_row)
        start = (self.width - per_row * column) / 2
        rows = -(-len(keys) // per_row)
        for number, entry in enumerate(keys):
            x = start + (number % per_row) * column
            y = bottom + (rows - 1 - number // per_row) * LEGEND_ROW
            if entry.line:
                self.line(
                    [x, x + 0.34],
                    [y, y],
                    colour=entry.edge,
                    dashes=entry.dashes,
                    width=entry.width,
                    zorder=2,
                )
            else:
                self.add(
                    Rectangle(
                        (x, y - 0.07),
                        0.34,
                        0.14,
                        facecolor=entry.face,
                        edgecolor=entry.edge,
                        linestyle=entry.dashes,
                        linewidth=entry.width,
                    )
                )
            self.text(x + 0.44, y, entry.label, ha="left", va="center", fontsize=8)

    @staticmethod
    def legend_height(keys: Sequence[Key], width: float, *, per_row: int = 4) -> float:
        """The room, in inches, :meth:`legend` needs below the drawing on a sheet ``width``
        inches wide."""
        if not keys:
            return 0.1
        _, per_row = _legend_grid(keys, width, per_row)
        return 0.2 + -(-len(keys) // per_row) * LEGEND_ROW

    def add(self, artist: Artist) -> None:
        # add_artist, not add_patch: the limits are fixed already, and recomputing them for
        # every arrow costs time on each redraw of an explorer.
        self.ax.add_artist(artist)


def _legend_grid(keys: Sequence[Key], width: float, per_row: int) -> tuple[float, int]:
    """The width of a legend column, and how many fit in a row of ``width`` inches."""
    column = max(LEGEND_COLUMN, max(0.62 + CHAR_WIDTH * len(k.label) for k in keys))
    return column, max(1, min(per_row, len(keys), int((width - 0.2) // column)))


def centre_of(box: FancyBboxPatch) -> tuple[float, float]:
    """The centre of a box drawn by :meth:`Sheet.box`."""
    return (box.get_x() + box.get_width() / 2, box.get_y() + box.get_height() / 2)
