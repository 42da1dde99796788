"""The one drawing kit of the series: a sheet measured in inches with boxes, arrows, text, a
title and a legend, a chart on a time axis, and the figure that shows itself in Jupyter.

- :class:`NotebookFigure` is a matplotlib ``Figure`` that Jupyter shows as a PNG and whose
  text form (``text/plain``) says what it shows: ``<picture: dispatch of OrderPaid: ...>``.
  :func:`figure_to_png` renders any figure for a widget, fast and byte-stable.
- :class:`Sheet` is an area whose units are inches, origin at the bottom left, so a label's
  size on the page is known while laying it out and a picture's size follows from its
  content. A box takes its colours and its shape from an :class:`~eda_lesson.views.palette.Ink`:
  rounded for an event, square for a handler call, an arrow for a command; dashes and hatching
  come with the ink too, so meaning is never carried by colour alone.
- :class:`Key` is one entry of a legend; :meth:`Sheet.legend` lays out every legend.
- :class:`Chart` is a plot with a time axis (bars on rows), with its title and legend.

Everything draws with matplotlib's object API, never pyplot, so nothing is left open and a
picture is shown once. The kit knows nothing about events, stores or sagas; it places shapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch, Rectangle
from matplotlib.path import Path
from matplotlib.text import Text
from matplotlib.transforms import Affine2D, Transform

from eda_lesson.views.labels import shorten
from eda_lesson.views.palette import EDGE, GRID, MUTED_TEXT, TEXT, Dashes, Ink, Shape
from eda_lesson.views.raster import attach_canvas, render_png

__all__ = [
    "FONT_SIZE",
    "SMALL",
    "Chart",
    "Key",
    "NotebookFigure",
    "Sheet",
    "centre_of",
    "describe",
    "figure_to_png",
    "paint",
    "placeholder_png",
    "root_figure",
]

FONT_SIZE = 8.5
"""Points: the size of a box's label."""
SMALL = 7.5
"""Points: notes beside arrows and bars."""
TITLE_SIZE = 10.0
TITLE_HEIGHT = 0.45  # inches at the top of a sheet for its title
LEGEND_ROW = 0.26
LEGEND_COLUMN = 1.5
LEGEND_BOTTOM = 0.22
CHAR_WIDTH = 0.066  # inches per character of 8-point legend text, on average
SWATCH = (0.34, 0.14)


# ---------------------------------------------------------------------- the figure


class NotebookFigure(Figure):
    """A Figure that Jupyter shows as a PNG, whether or not pyplot was imported, and whose
    text form is its :attr:`description`: short, stable, and what a reader without images
    (or a notebook test) sees."""

    def __init__(self, *args: Any, description: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.description = description
        attach_canvas(self)

    def _repr_png_(self) -> bytes:
        # What a notebook saves, rendered once: zlib's default level makes the file smaller
        # than the fast setting that explorers use at every step.
        return render_png(self, compress_level=6)

    def __repr__(self) -> str:
        return f"<picture: {self.description}>" if self.description else super().__repr__()


def figure_to_png(figure: Figure, *, dpi: float = 100) -> bytes:
    """The figure rendered to PNG bytes (for an ``ipywidgets.Image``, a file, a test): the
    same figure always gives the same bytes, quickly enough to redraw at every step."""
    return render_png(figure, dpi=dpi, compress_level=1)


def describe(figure: Figure, words: str) -> None:
    """Make ``words`` the text form of ``figure`` (when it is a :class:`NotebookFigure`; a
    figure of yours, drawn into with ``ax=``, keeps its own)."""
    if isinstance(figure, NotebookFigure):
        figure.description = words


def root_figure(ax: Axes) -> Figure:
    """The figure an Axes given as ``ax=`` belongs to."""
    figure = ax.get_figure(root=True)
    if figure is None:
        raise ValueError("the Axes given as ax= belongs to no Figure; create it with a Figure")
    return figure


def placeholder_png(words: str, *, width: float = 6.8) -> bytes:
    """A strip ``width`` inches wide saying ``words``: what a widget shows before its first
    picture."""
    figure = NotebookFigure(figsize=(width, 0.8), description=words)
    figure.text(0.5, 0.5, words, ha="center", va="center", fontsize=TITLE_SIZE, color=MUTED_TEXT)
    return figure_to_png(figure)


# ---------------------------------------------------------------------- legends


@dataclass(frozen=True)
class Key:
    """One entry of a legend: a swatch in an ink (its shape, dashes and hatching included),
    or with ``line=True`` a short line in the ink's stroke, and its words."""

    label: str
    ink: Ink
    line: bool = False


def _legend_grid(keys: Sequence[Key], width: float, per_row: int) -> tuple[float, int]:
    """The width of a legend column, and how many fit in a row of ``width`` inches."""
    column = max(LEGEND_COLUMN, max(0.62 + CHAR_WIDTH * len(k.label) for k in keys))
    return column, max(1, min(per_row, len(keys), int((width - 0.2) // column)))


# ---------------------------------------------------------------------- box outlines


def _arrow_outline(x0: float, y0: float, width: float, height: float, mutation_size: float) -> Path:
    """A box whose right end is a point, inside its own bounds: how a command is drawn."""
    tip = min(width / 3, height * 0.45)
    corners = [
        (x0, y0),
        (x0 + width - tip, y0),
        (x0 + width, y0 + height / 2),
        (x0 + width - tip, y0 + height),
        (x0, y0 + height),
        (x0, y0),
    ]
    return Path(corners, closed=True)


def _outline(shape: Shape, size: tuple[float, float], corner: float | None) -> Any:
    """The boxstyle of a shape: an event's corners are round (nearly a pill), a call's
    almost square, a command's an arrow; ``corner`` (inches) overrides the rounding."""
    if shape == "arrow":
        return _arrow_outline
    if corner is None:
        short = min(size)
        corner = min(0.2, 0.45 * short) if shape == "rounded" else min(0.04, 0.2 * short)
    return f"round,pad=0,rounding_size={corner:.3f}"


def paint(patch: Patch, ink: Ink) -> None:
    """Give ``patch`` the colours, line style, width and hatching of ``ink``."""
    patch.set_facecolor(ink.fill)
    patch.set_edgecolor(ink.stroke)
    patch.set_linewidth(ink.width)
    patch.set_linestyle(ink.dashes)
    patch.set_hatch(ink.hatch)
    if ink.hatch and hasattr(patch, "set_hatchcolor"):  # matplotlib 3.10 and later
        patch.set_hatchcolor(ink.hatch_colour or ink.stroke)
        patch.set_hatch_linewidth(0.8)


# ---------------------------------------------------------------------- the sheet


@dataclass
class Sheet:
    """An area whose units are inches, origin at its bottom left: an Axes set up so (the
    pictures), or a region of a figure drawn on directly (a chart's title and legend)."""

    figure: Figure
    ax: Axes | None
    width: float
    height: float
    _transform: Transform | None = None

    @classmethod
    def new(cls, width: float, height: float, ax: Axes | None = None) -> Sheet:
        """A sheet of ``width`` x ``height`` inches: a new figure, or ``ax`` set up as one."""
        if ax is None:
            figure: Figure = NotebookFigure(figsize=(width, height))
            ax = figure.add_axes((0, 0, 1, 1))
        else:
            figure = root_figure(ax)
        ax.set_xlim(0, width)
        ax.set_ylim(0, height)
        ax.set_aspect("equal")
        ax.set_axis_off()
        return cls(figure, ax, width, height)

    @classmethod
    def over(cls, figure: Figure, origin: tuple[float, float], size: tuple[float, float]) -> Sheet:
        """A region of ``figure``, ``size`` inches from ``origin`` (inches from its bottom
        left), drawn on the figure itself: no Axes is added."""
        where = Affine2D().translate(*origin) + figure.dpi_scale_trans
        return cls(figure, None, size[0], size[1], where)

    # -- shapes ------------------------------------------------------------------------------

    def box(
        self,
        centre: tuple[float, float],
        size: tuple[float, float],
        label: str = "",
        *,
        ink: Ink,
        text: str = TEXT,
        fontsize: float = FONT_SIZE,
        corner: float | None = None,
        gid: str | None = None,
        zorder: float = 2,
        **text_style: Any,
    ) -> FancyBboxPatch:
        """A box centred on ``centre`` in ``ink`` (its shape too), with ``label`` in its middle
        (id ``gid + "-label"``); returns the patch, which :meth:`arrow` can take as an end."""
        x, y = centre
        w, h = size
        patch = FancyBboxPatch(
            (x - w / 2, y - h / 2), w, h, boxstyle=_outline(ink.shape, size, corner), zorder=zorder
        )
        paint(patch, ink)
        patch.set_gid(gid)
        self.add(patch)
        if label:
            self.text(
                x,
                y,
                label,
                fontsize=fontsize,
                colour=text,
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
        corner: bool = False,
        source: Patch | None = None,
        target: Patch | None = None,
        head: str = "-|>",
        gid: str | None = None,
    ) -> FancyArrowPatch:
        """An arrow from ``start`` to ``end``, clipped to the ``source`` and ``target`` boxes
        when given. ``bend`` curves it (a fraction of its length, positive bends left);
        ``corner`` makes it go across first, then up or down, with a right angle."""
        style = "angle,angleA=0,angleB=90,rad=0" if corner else f"arc3,rad={bend:.3f}"
        arrow = FancyArrowPatch(
            start,
            end,
            arrowstyle=head,
            mutation_scale=10,
            connectionstyle=style,
            patchA=source,
            patchB=target,
            # No shrinking: matplotlib would split the curve to shrink it, at every redraw.
            shrinkA=0,
            shrinkB=0,
            color=colour,
            linewidth=width,
            linestyle=dashes,
            zorder=1,
        )
        arrow.set_gid(gid)
        self.add(arrow)
        return arrow

    def connect(
        self, source: FancyBboxPatch, target: FancyBboxPatch, **style: Any
    ) -> FancyArrowPatch:
        """An arrow from the edge of one box to the edge of another."""
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
        gid: str | None = None,
    ) -> Line2D:
        """A line through the points ``xs``, ``ys`` (lifelines, brackets, separators)."""
        line = Line2D(xs, ys, color=colour, linewidth=width, linestyle=dashes, zorder=zorder)
        line.set_gid(gid)
        self.add(line)
        return line

    def dot(self, at: tuple[float, float], *, colour: str = TEXT, size: float = 8) -> Line2D:
        """A filled dot (where a state machine starts)."""
        dot = Line2D([at[0]], [at[1]], marker="o", markersize=size, color=colour, zorder=3)
        self.add(dot)
        return dot

    def text(
        self,
        x: float,
        y: float,
        words: str,
        *,
        fontsize: float = FONT_SIZE,
        colour: str = TEXT,
        ha: str = "center",
        va: str = "center",
        gid: str | None = None,
        zorder: float = 3,
        **style: Any,
    ) -> Text:
        """``words`` at (``x``, ``y``), centred there unless ``ha``/``va`` say otherwise."""
        # parse_math=False: a "$" in a handler's name or a value is text, not a formula.
        options: dict[str, Any] = {
            "ha": ha,
            "va": va,
            "fontsize": fontsize,
            "color": colour,
            "zorder": zorder,
        }
        options.update(style, parse_math=False, gid=gid)
        if self.ax is not None:
            return self.ax.text(x, y, words, **options)
        return self.figure.text(x, y, words, transform=self._transform, **options)

    def title(self, words: str, *, top_room: float = TITLE_HEIGHT) -> Text:
        """``words`` centred in the top ``top_room`` inches, shortened to fit; the words in
        full become the picture's text form."""
        title = self.text(self.width / 2, self.height - top_room / 2, "", fontsize=TITLE_SIZE)
        self.retitle(title, words)
        return title

    def retitle(self, title: Text, words: str) -> None:
        """Change the words of a title :meth:`title` wrote (and the picture's text form)."""
        describe(self.figure, words)
        title.set_text(shorten(words, int(self.width * 11)))

    def legend(
        self, keys: Sequence[Key], *, bottom: float = LEGEND_BOTTOM, per_row: int = 4
    ) -> None:
        """The keys in rows of up to ``per_row`` (fewer if the sheet is narrow), centred, the
        last row ``bottom`` inches up. Columns are as wide as the longest label needs."""
        # Drawn by hand: matplotlib's legend costs about ten milliseconds a redraw.
        if not keys:
            return
        column, per_row = _legend_grid(keys, self.width, per_row)
        start = (self.width - per_row * column) / 2
        rows = -(-len(keys) // per_row)
        swatch_width, swatch_height = SWATCH
        for number, entry in enumerate(keys):
            x = start + (number % per_row) * column
            y = bottom + (rows - 1 - number // per_row) * LEGEND_ROW
            ink = entry.ink
            if entry.line:
                self.line(
                    [x, x + swatch_width],
                    [y, y],
                    colour=ink.stroke,
                    dashes=ink.dashes,
                    width=ink.width,
                    zorder=2,
                )
            else:
                # An arrow-shaped swatch a little narrower, so its point reads as a point.
                narrow = 0.7 if ink.shape == "arrow" else 1.0
                self.box(
                    (x + swatch_width * narrow / 2, y),
                    (swatch_width * narrow, swatch_height),
                    ink=ink.but(width=min(ink.width, 2.5)),
                    corner=0.04 if ink.shape == "rounded" else None,
                )
            self.text(x + swatch_width + 0.1, y, entry.label, ha="left", fontsize=8)

    @staticmethod
    def legend_height(keys: Sequence[Key], width: float, *, per_row: int = 4) -> float:
        """The room, in inches, :meth:`legend` needs below a drawing ``width`` inches wide."""
        if not keys:
            return 0.1
        _, per_row = _legend_grid(keys, width, per_row)
        return 0.2 + -(-len(keys) // per_row) * LEGEND_ROW

    def add(self, artist: Artist) -> None:
        """Put ``artist`` (in inch coordinates) on the sheet."""
        if self.ax is None:
            artist.set_transform(self._transform)
            self.figure.add_artist(artist)
        else:
            # add_artist, not add_patch: the limits are fixed already, and recomputing them
            # for every arrow costs time on each redraw of an explorer.
            self.ax.add_artist(artist)


def centre_of(box: FancyBboxPatch) -> tuple[float, float]:
    """The centre of a box drawn by :meth:`Sheet.box`."""
    return (box.get_x() + box.get_width() / 2, box.get_y() + box.get_height() / 2)


# ---------------------------------------------------------------------- charts


@dataclass
class Chart:
    """A plot whose x axis is time and whose rows are handler calls (or events): bars in
    inks, row labels on the left, a quiet frame, the title on top and the legend below.

    Made by :meth:`new`: a figure of its own whose plot leaves ``margins`` (inches: left,
    bottom, right, top) around it, or the ``ax`` given, whose legend then sits in its top.
    """

    figure: Figure
    ax: Axes
    notes: Sheet
    """Inches over the whole figure (or over ``ax``), where the legend is drawn."""
    own: bool

    @classmethod
    def new(
        cls,
        width: float,
        height: float,
        *,
        margins: tuple[float, float, float, float],
        ax: Axes | None = None,
    ) -> Chart:
        if ax is None:
            figure: Figure = NotebookFigure(figsize=(width, height))
            left, bottom, right, top = margins
            ax = figure.add_axes(
                (
                    left / width,
                    bottom / height,
                    1 - (left + right) / width,
                    1 - (bottom + top) / height,
                )
            )
            notes = Sheet.over(figure, (0.0, 0.0), (width, height))
            return cls(figure, ax, notes, own=True)
        figure = root_figure(ax)
        inches = ax.get_position().transformed(
            figure.transSubfigure + figure.dpi_scale_trans.inverted()
        )
        notes = Sheet.over(figure, (inches.x0, inches.y0), (inches.width, inches.height))
        return cls(figure, ax, notes, own=False)

    def bar(
        self,
        row: float,
        start: float,
        length: float,
        ink: Ink,
        *,
        height: float = 0.6,
        gid: str | None = None,
    ) -> Rectangle:
        """A bar on ``row`` from ``start`` for ``length`` in ``ink`` (hatching included)."""
        (bar,) = self.ax.barh(row, length, left=start, height=height, gid=gid)
        paint(bar, ink)
        return cast(Rectangle, bar)

    def line(self, xs: Sequence[float], ys: Sequence[float], ink: Ink) -> Line2D:
        """A line through the plot's points ``xs``, ``ys`` in the ink's stroke and dashes."""
        (line,) = self.ax.plot(xs, ys, color=ink.stroke, linestyle=ink.dashes, linewidth=ink.width)
        return line

    def note(
        self, x: float, y: float, words: str, *, colour: str = MUTED_TEXT, **style: Any
    ) -> Text:
        """Words at a place of the plot (in its data units), beside a bar or a row: small,
        muted and left-aligned unless ``style`` says otherwise."""
        options: dict[str, Any] = {"fontsize": SMALL, "ha": "left", "va": "center", **style}
        return self.ax.text(x, y, words, color=colour, parse_math=False, **options)

    def frame(
        self,
        rows: Sequence[tuple[float, str]],
        *,
        xlabel: str,
        xlim: tuple[float, float],
        ylim: tuple[float, float],
        row_size: float = FONT_SIZE,
    ) -> None:
        """Label the ``rows`` (position, words) on the left, and give the plot its limits,
        its x label and a quiet frame: a light grid along time, no top or right border."""
        ax = self.ax
        ax.set_yticks([at for at, _ in rows], [words for _, words in rows])
        ax.tick_params(axis="y", labelsize=row_size, length=0)
        ax.tick_params(axis="x", labelsize=FONT_SIZE)
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_xlabel(xlabel, fontsize=FONT_SIZE)
        ax.grid(axis="x", color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)

    def title(self, words: str) -> None:
        """The chart's title above the plot, and its text form."""
        self.ax.set_title(words, fontsize=TITLE_SIZE)
        describe(self.figure, words)

    def legend(self, keys: Sequence[Key]) -> None:
        """The legend in one row where it fits: at the bottom of a figure of its own, at
        the top of an Axes given."""
        notes = self.notes
        per_row = len(keys)
        if self.own:
            notes.legend(keys, bottom=LEGEND_BOTTOM - 0.05, per_row=per_row)
            return
        height = Sheet.legend_height(keys, notes.width, per_row=per_row)
        notes.legend(keys, bottom=notes.height - height + LEGEND_BOTTOM, per_row=per_row)
