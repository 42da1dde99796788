"""Words cut and wrapped to fit a box, a column or a line: written once for every picture,
table and caption of :mod:`eda_lesson.views`.

Plain functions of strings; nothing here draws or measures fonts (a label's room is counted
in characters, which the pictures' fixed font sizes make good enough).
"""

from __future__ import annotations

import textwrap

__all__ = ["shorten", "two_lines", "wrap"]


def shorten(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, an ellipsis marking the cut.

    A dotted name keeps only its last part (``Shop.request_shipment`` becomes
    ``request_shipment``), cut too if still too long: the last part is what a reader knows.
    """
    if len(text) <= limit:
        return text
    if "." in text and " " not in text:
        last = text.rsplit(".", 1)[1]
        if last:
            text = last
            if len(text) <= limit:
                return text
    return text[: max(limit - 1, 0)] + "…"


def wrap(text: str, width: int, lines: int = 2) -> list[str]:
    """``text`` wrapped at ``width`` characters on at most ``lines`` lines; when it needs
    more, the last line holds the rest, shortened."""
    wrapped = textwrap.wrap(text, width)
    if len(wrapped) <= lines:
        return wrapped
    return [*wrapped[: lines - 1], shorten(" ".join(wrapped[lines - 1 :]), width)]


def two_lines(first: str, second: str | None, limit: int) -> str:
    """``first`` and, under it, ``second`` (when given), each cut to ``limit`` characters."""
    first = shorten(first, limit)
    return first if second is None else f"{first}\n{shorten(second, limit)}"
