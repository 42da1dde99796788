"""Words for numbers and values, the same in every message, table and caption.

Tiny on purpose and free of imports, so that every module can use it: the core, the
patterns, the broker and the pictures.
"""

from __future__ import annotations

__all__ = ["plural"]


def plural(count: int, word: str, words: str = "") -> str:
    """``"1 event"``, ``"3 events"``; ``words`` for a plural that is not ``word + "s"``
    (``plural(2, "entry", "entries")``)."""
    return f"{count} {word if count == 1 else words or word + 's'}"
