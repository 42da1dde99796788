"""The optional parts of eda-lesson, and the error that says how to install one.

The core (the buses, the patterns, the pictures) needs only what ``pip install eda-lesson``
brings. Two extras add the rest:

- ``broker``: redis-py, for :mod:`eda_lesson.transport.redis_streams`,
  :mod:`eda_lesson.transport.worker` and :mod:`eda_lesson.views.broker`;
- ``notebooks``: JupyterLab and the broker extra, everything the notebook series uses.
"""

from __future__ import annotations

__all__ = ["EXTRAS", "MissingExtraError", "missing_extra"]

EXTRAS = {
    "broker": "redis-py, to talk to Redis Streams",
    "notebooks": "JupyterLab and redis-py, for the notebook series",
}


class MissingExtraError(ModuleNotFoundError):
    """An optional dependency is not installed; the message names the extra to install."""


def missing_extra(extra: str, module: str, error: ImportError) -> MissingExtraError:
    """The error a module raises when ``extra`` is not installed (raise it ``from error``)."""
    what = EXTRAS[extra]
    missing = error.name or "a package"
    return MissingExtraError(
        f"{module} needs the '{extra}' extra ({what}), but {missing} is not installed: "
        f"pip install 'eda-lesson[{extra}]', or in a clone of the repository "
        f"pip install -e '.[{extra}]'",
        name=error.name,
    )
