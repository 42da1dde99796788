"""What the exercise-check tests assert about a verdict: not yet (with the words it must
name), or correct."""

from __future__ import annotations

from eda_lesson.book.exercises import Feedback


def not_yet(feedback: Feedback, *words: str) -> None:
    text = f"{feedback!r}\nHint: {feedback.hint}"  # the hint is printed from the second miss
    assert text.startswith("Not yet."), text
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"


def correct(feedback: Feedback) -> None:
    assert repr(feedback).startswith("Correct!"), repr(feedback)
