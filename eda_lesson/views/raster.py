"""Figures to PNG bytes, fast enough to redraw at every step of an explorer, and byte-stable.

Three things make a step cheap:

- The figure keeps one Agg canvas from one step to the next, and the size of every line of
  text measured is kept (matplotlib measures by laying the glyphs out again).
- Each line of text is rasterised once for each place it takes within a pixel. Matplotlib
  renders text glyph by glyph through Python; a picture of twenty boxes spends most of its
  drawing time there. This module's renderer keeps the coverage mask of every line it has
  drawn, keyed by everything the mask depends on (the words, the font and its size, the
  exact sub-pixel offset, the hinting), and paints the mask in the text's colour. The mask
  is the one matplotlib draws, shifted by whole pixels, so the picture is as sharp as
  before, and since the key holds every input, the bytes never depend on what was drawn
  earlier. Lines at an angle, and mathtext, are drawn the usual way.
- The PNG is written by hand: the canvas's rows as they are, zlib at a low level, and no
  metadata, so the same picture always gives the same bytes (no date, no version).

Nothing here knows what a picture shows; :mod:`eda_lesson.views.sheet` draws them.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
from matplotlib import rc_context, rcParams
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties

__all__ = ["PNG_SIGNATURE", "attach_canvas", "render_png"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# A mask is a few kilobytes; this many cover every label of a notebook's explorers.
_MASKS_KEPT = 4096
_PAD = 4  # pixels around a line of text, for glyphs that reach past its measured box


class _Mask:
    """The coverage of one line of text: alpha values, bottom row first (the order Agg's
    draw_image reads), and where its top left pixel sits relative to the whole-pixel part
    of the text's anchor."""

    __slots__ = ("alpha", "left", "top")

    def __init__(self, alpha: np.ndarray[Any, np.dtype[np.uint8]], left: int, top: int) -> None:
        self.alpha, self.left, self.top = alpha, left, top


class _Kept(OrderedDict[tuple[object, ...], Any]):
    """The last ``limit`` results of a pure function, by its arguments."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def keep(self, key: tuple[object, ...], value: Any) -> Any:
        self[key] = value
        if len(self) > self.limit:
            self.popitem(last=False)
        return value

    def find(self, key: tuple[object, ...]) -> Any:
        found = self.get(key)
        if found is not None:
            self.move_to_end(key)
        return found


_masks = _Kept(_MASKS_KEPT)
_sizes = _Kept(_MASKS_KEPT)


def _font_key(s: str, prop: FontProperties, dpi: float) -> tuple[object, ...]:
    """Everything the size and the glyphs of a line of plain text depend on."""
    return (
        s,
        tuple(prop.get_family()),
        prop.get_style(),
        prop.get_variant(),
        prop.get_weight(),
        prop.get_stretch(),
        prop.get_size_in_points(),
        prop.get_file(),
        dpi,
        rcParams["text.hinting"],
        rcParams["text.hinting_factor"],
        rcParams.get("text.kerning_factor"),
    )


@dataclass(frozen=True)
class _Line:
    """A line of plain text to draw: its words and font, and where it falls within a pixel."""

    words: str
    prop: FontProperties
    mtext: Any
    fraction_x: float
    fraction_y: float
    antialiased: bool

    def key(self, dpi: float) -> tuple[object, ...]:
        """Everything the line's mask depends on."""
        return (
            *_font_key(self.words, self.prop, dpi),
            # The exact offsets, not rounded: glyphs are placed from them plus their own
            # offsets, so two offsets that look alike can still give different pixels.
            self.fraction_x,
            self.fraction_y,
            self.antialiased,
            _features(self.mtext),
        )


# Matplotlib's Agg backend carries no type annotations: this module calls it through Any.
_Agg: Any = RendererAgg


class _Renderer(RendererAgg):
    """Matplotlib's Agg renderer, drawing each line of text from its kept mask."""

    def draw_text(
        self,
        gc: Any,
        x: float,
        y: float,
        s: str,
        prop: FontProperties,
        angle: float,
        ismath: bool | str = False,
        mtext: Any = None,
    ) -> None:
        if ismath or angle % 360 or not s.strip():
            _Agg.draw_text(self, gc, x, y, s, prop, angle, ismath, mtext)
            return
        # x grows rightwards and y downwards, both from the top left; they mark the baseline.
        whole_x, whole_y = math.floor(x), math.floor(y)
        line = _Line(s, prop, mtext, x - whole_x, y - whole_y, bool(gc.get_antialiased()))
        mask = self._mask(line)
        if mask is None:
            return
        red, green, blue, alpha = gc.get_rgb()
        if gc.get_forced_alpha():
            alpha = gc.get_alpha()
        rows, columns = mask.alpha.shape
        sprite = np.empty((rows, columns, 4), np.uint8)
        sprite[:, :, 0] = round(red * 255)
        sprite[:, :, 1] = round(green * 255)
        sprite[:, :, 2] = round(blue * 255)
        sprite[:, :, 3] = mask.alpha if alpha >= 1 else (mask.alpha * alpha).astype(np.uint8)
        top = whole_y + mask.top
        # draw_image takes the bottom left corner, counted from the bottom.
        self.draw_image(gc, whole_x + mask.left, self.height - top - rows, sprite)

    def _mask(self, line: _Line) -> _Mask | None:
        key = line.key(self.dpi)
        mask = _masks.find(key)
        if mask is None:
            mask = _masks.keep(key, self._rasterise(line))
        return mask if mask.alpha.size else None

    def get_text_width_height_descent(
        self, s: str, prop: FontProperties, ismath: bool | str
    ) -> tuple[float, float, float]:
        # Matplotlib keeps these per renderer; kept here for every figure, since measuring
        # a line means laying out its glyphs again.
        if ismath:
            return cast(
                tuple[float, float, float],
                _Agg.get_text_width_height_descent(self, s, prop, ismath),
            )
        key = _font_key(s, prop, self.dpi)
        size = _sizes.find(key)
        if size is None:
            size = _sizes.keep(key, _Agg.get_text_width_height_descent(self, s, prop, False))
        return cast(tuple[float, float, float], size)

    def _rasterise(self, line: _Line) -> _Mask:
        """Draw the line in black on a small transparent renderer, at the same sub-pixel
        offset, and keep its alpha channel, cropped to what the glyphs cover."""
        width, height, descent = self.get_text_width_height_descent(line.words, line.prop, False)
        above = math.ceil(height - descent) + _PAD
        scratch = _Agg(
            math.ceil(width) + 2 * _PAD + 1, above + math.ceil(descent) + _PAD + 1, self.dpi
        )
        scratch.clear()
        ink = scratch.new_gc()
        ink.set_foreground((0.0, 0.0, 0.0, 1.0))
        ink.set_antialiased(line.antialiased)
        x, y = _PAD + line.fraction_x, above + line.fraction_y
        scratch.draw_text(ink, x, y, line.words, line.prop, 0, False, line.mtext)
        ink.restore()
        alpha = np.asarray(scratch.buffer_rgba())[:, :, 3]
        rows = np.flatnonzero(alpha.any(axis=1))
        columns = np.flatnonzero(alpha.any(axis=0))
        if not rows.size:
            return _Mask(np.zeros((0, 0), np.uint8), 0, 0)
        cropped = np.ascontiguousarray(
            alpha[rows[-1] : (rows[0] - 1 if rows[0] else None) : -1, columns[0] : columns[-1] + 1]
        )
        return _Mask(cropped, int(columns[0]) - _PAD, int(rows[0]) - above)


def _features(mtext: Any) -> tuple[object, ...]:
    """The text's font features and language (matplotlib 3.10 and later), which change the
    glyphs chosen."""
    found: list[object] = []
    for getter in ("get_fontfeatures", "get_language"):
        method = getattr(mtext, getter, None)
        value = method() if callable(method) else None
        found.append(tuple(value) if isinstance(value, (list, tuple)) else value)
    return tuple(found)


class _Canvas(FigureCanvasAgg):
    """An Agg canvas whose renderer keeps text masks, reused while the size stays."""

    _size: tuple[int, int, float] | None = None

    def get_renderer(self) -> RendererAgg:
        width, height = self.get_width_height(physical=True)
        size = (width, height, self.figure.dpi)
        if self._size != size:
            self.renderer = cast(Any, _Renderer)(width, height, self.figure.dpi)
            self._size = size
        return cast(RendererAgg, self.renderer)


def attach_canvas(figure: Figure) -> None:
    """Give ``figure`` the canvas :func:`render_png` draws with (our figures get it at birth)."""
    _Canvas(figure)


def render_png(figure: Figure, *, dpi: float = 100, compress_level: int = 1) -> bytes:
    """``figure`` as PNG bytes at ``dpi``: the same figure always gives the same bytes.

    Text is rasterised without font hinting (barely visible at 100 dpi, and a third quicker),
    under a temporary setting: the global ones are left alone. A figure that has another
    canvas (pyplot's, a GUI's) gets it back afterwards.
    """
    previous = figure.canvas
    canvas: Any = previous if isinstance(previous, _Canvas) else _Canvas(figure)
    kept_dpi = figure.dpi
    try:
        if kept_dpi != dpi:
            figure.dpi = dpi
        with rc_context({"text.hinting": "no_hinting"}):
            canvas.draw()
        pixels = np.asarray(canvas.buffer_rgba())
        return _encode(pixels, compress_level)
    finally:
        if figure.dpi != kept_dpi:
            figure.dpi = kept_dpi
        if canvas is not previous:
            figure.set_canvas(previous)


def _encode(rgba: np.ndarray[Any, np.dtype[np.uint8]], level: int) -> bytes:
    """A PNG of ``rgba`` (rows of RGBA pixels) with only the chunks PNG requires.

    Rows go to zlib unfiltered and straight from the canvas's buffer, one by one: flat
    colours compress well as they are, and leaving the alpha channel in costs zlib less time
    than copying the pixels out without it.
    """
    height, width, _ = rgba.shape
    stride = width * 4
    pixels = np.ascontiguousarray(rgba).data.cast("B")
    deflate = zlib.compressobj(level)
    parts = []
    for start in range(0, height * stride, stride):
        parts.append(deflate.compress(_NO_FILTER))
        parts.append(deflate.compress(pixels[start : start + stride]))
    parts.append(deflate.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )


_NO_FILTER = b"\x00"  # the byte before each row: PNG filter type 0


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
