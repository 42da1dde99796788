"""Exercise checks: run a learner's answer, say what is wrong and give a hint.

Each notebook has a module here, named by its chapter's slug (``domain_events``,
``handlers_and_registration``, ...), whose check functions the notebook calls on the learner's
code: ``check.ex1(OrderShipped)``. A check is a plain function decorated with :func:`exercise`;
inside, :func:`expect` states one requirement at a time, in the order a learner meets them, so
the feedback names the first thing to fix. Whatever the learner's code raises
becomes feedback too, never a traceback.

The checks never change the learner's objects and print nothing: they return :class:`Feedback`,
whose text is the same on every run (notebooks are compared against their saved outputs).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import ParamSpec

__all__ = ["Feedback", "RequirementNotMetError", "exercise", "expect"]

P = ParamSpec("P")


@dataclass(frozen=True)
class Feedback:
    """The verdict on one exercise: passed or not, what is wrong, and a hint.

    The hint is shown from the second miss of an exercise on: a first try gets what is
    wrong and a nudge to try again, so a notebook saved after one run (what a reader sees on
    GitHub) never prints the hint, which often holds half the answer. ``hint`` always has it.
    """

    exercise: str
    passed: bool
    message: str
    hint: str = ""
    misses: int = 1
    """How many times this exercise has been missed in this session, this time included."""

    def __bool__(self) -> bool:
        return self.passed

    @property
    def hint_shown(self) -> bool:
        return bool(self.hint) and self.misses >= HINT_AFTER

    def __repr__(self) -> str:
        if self.passed:
            return f"Correct! {self.exercise}: {self.message}"
        lines = [f"Not yet. {self.exercise}: {self.message}"]
        if self.hint_shown:
            lines.append(f"Hint: {self.hint}")
        elif self.hint:
            lines.append("Try again; if this check still says no, it will add a hint.")
        return "\n".join(lines)


HINT_AFTER = 2
"""The miss of an exercise from which its feedback shows the hint."""

_misses: dict[str, int] = {}


class RequirementNotMetError(Exception):
    """Raised by :func:`expect` inside a check: the answer misses one requirement."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


def expect(condition: object, message: str, hint: str = "") -> None:
    """Require ``condition``; otherwise stop the check with ``message`` and ``hint``."""
    if not condition:
        raise RequirementNotMetError(message, hint)


def exercise(title: str) -> Callable[[Callable[P, str | None]], Callable[P, Feedback]]:
    """Turn a check function into one that returns :class:`Feedback`.

    The check returns a short sentence of praise (or None) when everything holds.
    """

    def decorate(check: Callable[P, str | None]) -> Callable[P, Feedback]:
        @functools.wraps(check)
        def run(*args: P.args, **kwargs: P.kwargs) -> Feedback:
            try:
                praise = check(*args, **kwargs)
            except RequirementNotMetError as miss:
                return Feedback(title, False, miss.message, miss.hint, _missed(title))
            except Exception as error:  # the learner's code raised: explain, do not crash
                return Feedback(
                    title,
                    False,
                    f"running your code raised {type(error).__name__}: {error}",
                    "read the error message above; run your cell on its own to see the traceback",
                    _missed(title),
                )
            return Feedback(title, True, praise or "all checks pass")

        return run

    return decorate


def _missed(title: str) -> int:
    _misses[title] = _misses.get(title, 0) + 1
    return _misses[title]
