"""Pictures of handlers that fail, and a lab to make them fail on purpose.

- :func:`draw_attempts` draws retry attempts on the clock they ran on: one row per handler
  call, a bar per attempt (green ok, hatched failed), the backoff waited between attempts, a
  replay marked where one happened, and how each call ended: ok, given up, or parked in the
  dead-letter store.
- :func:`draw_dead_letters` draws a :class:`~eda_lesson.core.middleware.DeadLetterStore`: one card
  per letter with its handler, event, attempts and last error, and the letters a replay took
  out of it.
- :class:`FailureLab` is a widget around the shop: choose which handler fails, how often and
  with what retry policy, press Run, watch the attempts, the dead letters and the shop's
  state; fix the handler and replay. Every control has a Python twin (``set_failure``,
  ``set_policy``, ``run``, ``fix``, ``replay``) for notebook cells and tests.

The drawings read records (:class:`~eda_lesson.core.middleware.Attempt`,
:class:`~eda_lesson.core.middleware.DeadLetter`); they never dispatch or retry anything. They use
the palette of :mod:`eda_lesson.views.palette` and the kit of :mod:`eda_lesson.views.sheet`, so
they work headless and leave no pyplot state behind. The lab runs on a
:class:`~eda_lesson.core.clock.VirtualClock`, so its pictures are the same on every run.
"""

from __future__ import annotations

import dataclasses
import html
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import ipywidgets as widgets  # type: ignore[import-untyped]
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from eda_lesson.core.bus import EventBus, Handler, Subscription
from eda_lesson.core.clock import VirtualClock
from eda_lesson.core.middleware import (
    Attempt,
    DeadLetterStore,
    ExponentialBackoff,
    FixedBackoff,
    Replayed,
    RetryLog,
    dead_letters,
    exponential,
    fixed,
    retry,
)
from eda_lesson.core.result import DispatchResult
from eda_lesson.core.text import plural
from eda_lesson.shop.events import (
    LineItem,
    OrderCreated,
    OrderPaid,
    OrderShipped,
    ShipmentRequested,
)
from eda_lesson.shop.services import Shop
from eda_lesson.views.labels import shorten
from eda_lesson.views.palette import CALL, CURRENT, FAILED, MUTED_TEXT, PENDING, TEXT, UNHANDLED
from eda_lesson.views.sheet import (
    FONT_SIZE,
    SMALL,
    Chart,
    Key,
    Sheet,
    figure_to_png,
    placeholder_png,
)
from eda_lesson.views.stepper import Explorer, Quiet

__all__ = [
    "AttemptRow",
    "FailureLab",
    "ServiceUnavailableError",
    "attempt_rows",
    "draw_attempts",
    "draw_dead_letters",
    "event_label",
]


# ---------------------------------------------------------------------- attempts, row by row


@dataclass(frozen=True)
class AttemptRow:
    """The attempts of one handler at one event, in the order they were made.

    ``letter`` is the number of the dead letter that holds this event for this handler now
    (None when the store given does not hold it, or no store was given); ``replayed_ok``
    says a replay handled it after the last attempt recorded here.
    """

    handler: str
    event: object
    attempts: tuple[Attempt, ...]
    letter: int | None = None
    replayed_ok: bool = False

    @property
    def outcome(self) -> str:
        """``ok``, ``replayed ok``, ``dead letter #n`` or ``gave up``: how things ended."""
        if self.attempts[-1].ok:
            return "ok"
        if self.replayed_ok:
            return "replayed ok"
        if self.letter is not None:
            return f"dead letter #{self.letter}"
        return "gave up"

    @property
    def replays(self) -> int:
        """How many times the event was delivered again after the retries had stopped."""
        return sum(1 for before in self.attempts[:-1] if before.wait is None)


def attempt_rows(
    attempts: Iterable[Attempt],
    *,
    dead_letters: DeadLetterStore | None = None,
    replayed: Iterable[Replayed] = (),
) -> list[AttemptRow]:
    """Group attempts by handler and event (the very event object), in order of appearance.

    A later delivery of the same event to the same handler (a replay) joins its row: it
    follows an attempt after which no wait was planned. A replay that succeeded at once
    left no attempt in a :class:`~eda_lesson.core.middleware.RetryLog`; pass what
    ``store.replay(...)`` returned as ``replayed`` and such rows end ``replayed ok``.
    """
    grouped: dict[tuple[str, int], list[Attempt]] = {}
    for attempt in attempts:
        if not isinstance(attempt, Attempt):
            raise TypeError(
                "draw_attempts() takes Attempt records: a RetryLog, a dead letter's .attempts, "
                f"or a list of them; got {type(attempt).__name__}"
            )
        grouped.setdefault((attempt.handler, id(attempt.event)), []).append(attempt)
    letters = dead_letters.list() if dead_letters is not None else []
    handled_later = {
        (outcome.letter.handler, id(outcome.letter.event)) for outcome in replayed if outcome.ok
    }
    rows = []
    for key, made in grouped.items():
        handler, event = key[0], made[0].event
        number = next(
            (n.number for n in letters if n.event is event and n.handler == handler), None
        )
        rows.append(AttemptRow(handler, event, tuple(made), number, key in handled_later))
    return rows


def event_label(event: object) -> str:
    """A short name for an event: its type and its first field (``ShipmentRequested o-1``)."""
    name = type(event).__name__
    if dataclasses.is_dataclass(event) and not isinstance(event, type):
        # Fields left out of the repr (a Message's ids) are left out of the label too.
        shown = [field for field in dataclasses.fields(event) if field.repr]
        if shown:
            value = getattr(event, shown[0].name)
            if isinstance(value, (str, int)) and not isinstance(value, bool):
                return shorten(f"{name} {value}", 34)
    return shorten(name, 34)


def draw_attempts(
    attempts: Iterable[Attempt],
    *,
    dead_letters: DeadLetterStore | None = None,
    replayed: Iterable[Replayed] = (),
    title: str | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Draw attempts on the time axis of the clock they were made on.

    ``attempts`` is a :class:`~eda_lesson.core.middleware.RetryLog`, a dead letter's
    ``.attempts``, or any list of :class:`~eda_lesson.core.middleware.Attempt`. Each handler call
    gets a row: a bar per attempt, numbered (a failed one hatched); a dashed grey span for
    each backoff wait; a dotted line before a replay; at the end ``ok``, ``gave up``, or, when
    ``dead_letters`` holds the event, ``dead letter #n``; ``replayed ok`` when ``replayed``
    (what ``store.replay(...)`` returned) says a replay handled it. Draws into ``ax`` when
    given.
    """
    rows = attempt_rows(attempts, dead_letters=dead_letters, replayed=replayed)
    # In inches: 0.45 for the title, 0.5 a row, 0.9 for the time axis and the legend.
    height = 1.35 + 0.5 * max(len(rows), 1)
    chart = Chart.new(8.0, height, margins=(2.3, 0.9, 0.15, 0.45), ax=ax)
    start, finish = _time_span(rows)
    span = finish - start
    for number, row in enumerate(rows):
        _draw_row(chart, number, row, span)
    chart.frame(
        [
            (float(n), f"{shorten(r.handler, 28)}\n{event_label(r.event)}")
            for n, r in enumerate(rows)
        ],
        xlabel="time (s) on the clock the attempts ran on",
        xlim=(start - span * 0.02, finish + span * 0.3),
        ylim=(max(len(rows), 1) - 0.45, -0.75),
        row_size=SMALL,
    )
    if not rows:
        chart.note(0.5, 0, "no attempts recorded", ha="center", fontsize=FONT_SIZE)
    chart.title(title or _attempts_title(rows))
    chart.legend(
        [
            Key("attempt ok", CALL),
            Key("attempt failed", FAILED),
            Key("backoff wait", _WAIT),
            Key("replay", _REPLAY, line=True),
            Key("dead letter", _LETTER),
        ]
    )
    return chart.figure


_WAIT = PENDING.but(stroke=MUTED_TEXT, dashes="--", width=0.8)
_REPLAY = CURRENT.but(dashes=":", width=1.4)
_LETTER = UNHANDLED.but(dashes="-", width=1.2, shape="square")
"""A letter waiting in the store: the orange of "not handled", with a plain border."""


def _time_span(rows: list[AttemptRow]) -> tuple[float, float]:
    moments = [a.started for r in rows for a in r.attempts]
    moments += [a.ended + (a.wait or 0.0) for r in rows for a in r.attempts]
    if not moments:
        return 0.0, 1.0
    start, finish = min(moments), max(moments)
    return start, finish if finish > start else start + 1.0


def _draw_row(chart: Chart, y: int, row: AttemptRow, span: float) -> None:
    thinnest = span * 0.006
    previous: Attempt | None = None
    for position, attempt in enumerate(row.attempts, start=1):
        replayed = previous is not None and previous.wait is None
        if previous is not None and replayed:
            chart.line([previous.ended, attempt.started], [y, y], _REPLAY)
            middle = (previous.ended + attempt.started) / 2
            chart.note(
                middle,
                y + 0.27,
                "replay",
                ha="center",
                va="top",
                fontsize=6.5,
                colour=_REPLAY.words,
            )
        ink = CALL if attempt.ok else FAILED
        length = max(attempt.ended - attempt.started, thinnest)
        # Numbers restart at a replay; positions do not.
        bar_ink = ink.but(stroke=CURRENT.stroke, width=2.0) if replayed else ink
        chart.bar(y, attempt.started, length, bar_ink, height=0.42, gid=f"attempt-{y}-{position}")
        if len(row.attempts) > 1:
            x = attempt.started + length / 2
            chart.note(
                x,
                y - 0.3,
                str(attempt.number),
                ha="center",
                va="bottom",
                fontsize=7,
                colour=ink.words,
            )
        if attempt.wait is not None:
            chart.bar(
                y,
                attempt.ended,
                attempt.wait,
                _WAIT,
                height=0.16,
                gid=f"wait-{y}-{attempt.ended:g}",
            )
            x = attempt.ended + attempt.wait / 2
            chart.note(
                x,
                y + 0.27,
                f"wait {attempt.wait:g} s",
                ha="center",
                va="top",
                fontsize=6.5,
                colour=TEXT,
            )
        previous = attempt
    last = row.attempts[-1]
    _outcome_tag(chart, y, max(last.ended, last.started + thinnest) + span * 0.015, row)


def _outcome_tag(chart: Chart, y: int, x: float, row: AttemptRow) -> None:
    words = row.outcome
    style: dict[str, Any] = {"colour": FAILED.words}  # gave up
    if words == "ok":
        style = {"colour": CALL.words}
        if len(row.attempts) > 1:
            words = f"ok after {plural(len(row.attempts), 'attempt')}"
    elif words == "replayed ok":
        style = {"colour": CURRENT.words}
    elif row.letter is not None:
        box = {"boxstyle": "round,pad=0.25", "facecolor": _LETTER.fill, "edgecolor": _LETTER.stroke}
        style = {"colour": _LETTER.words, "bbox": box}
    chart.note(x, y, words, fontsize=SMALL, gid=f"outcome-{y}", **style)


def _attempts_title(rows: list[AttemptRow]) -> str:
    made = sum(len(r.attempts) for r in rows)
    parts = [plural(made, "attempt"), plural(len(rows), "handler call")]
    letters = sum(1 for r in rows if r.letter is not None and not r.attempts[-1].ok)
    if letters:
        parts.append(plural(letters, "dead letter"))
    return "attempts on the clock: " + ", ".join(parts)


# ---------------------------------------------------------------------- the dead-letter store

CARD_WIDTH = 7.4
CARD_HEIGHT = 0.86
CARD_GAP = 0.14
STORE_WIDTH = 8.0
STORE_TITLE = 0.55


def draw_dead_letters(
    store: DeadLetterStore,
    *,
    replayed: Iterable[Replayed] = (),
    title: str | None = None,
) -> Figure:
    """Draw the letters in ``store`` as cards: number, handler, event, attempts, last error.

    ``replayed`` (what ``store.replay(...)`` returned) adds the letters a replay took out, as
    faded cards marked "replayed: left the store"; those that failed again are in the store.
    """
    if not isinstance(store, DeadLetterStore):
        raise TypeError(f"draw_dead_letters() takes a DeadLetterStore, got {type(store).__name__}")
    letters = store.list()
    gone = [outcome for outcome in replayed if outcome.ok]
    cards = max(len(letters) + len(gone), 1)
    height = STORE_TITLE + cards * (CARD_HEIGHT + CARD_GAP) + 0.15
    sheet = Sheet.new(STORE_WIDTH, height)
    top = height - STORE_TITLE
    for position, letter in enumerate(letters):
        _letter_card(sheet, top - position * (CARD_HEIGHT + CARD_GAP), letter, faded=False)
    for position, outcome in enumerate(gone, start=len(letters)):
        _letter_card(sheet, top - position * (CARD_HEIGHT + CARD_GAP), outcome.letter, faded=True)
    if not letters and not gone:
        middle = (STORE_WIDTH / 2, top - CARD_HEIGHT / 2)
        empty = PENDING.but(dashes="--", width=1.2)
        sheet.box(middle, (CARD_WIDTH, CARD_HEIGHT), ink=empty, corner=0.08, gid="empty-store")
        sheet.text(*middle, "empty: no event is waiting for a fix", fontsize=9, colour=MUTED_TEXT)
    sheet.title(title or _store_title(len(letters), len(gone)), top_room=STORE_TITLE)
    return sheet.figure


def _letter_card(sheet: Sheet, top: float, letter: Any, *, faded: bool) -> None:
    ink = PENDING.but(width=1.2) if faded else _LETTER
    left = (STORE_WIDTH - CARD_WIDTH) / 2
    middle = top - CARD_HEIGHT / 2
    centre = (STORE_WIDTH / 2, middle)
    sheet.box(
        centre, (CARD_WIDTH, CARD_HEIGHT), ink=ink, corner=0.08, gid=f"letter-{letter.number}"
    )
    colour = MUTED_TEXT if faded else TEXT
    number_colour = MUTED_TEXT if faded else ink.words
    sheet.text(
        left + 0.3, middle, f"#{letter.number}", fontsize=12, colour=number_colour, weight="bold"
    )
    attempts = letter.attempts
    times = ", ".join(f"{a.started:g}" for a in attempts[:8]) + (
        ", ..." if len(attempts) > 8 else ""
    )
    lines = [
        (f"{shorten(letter.handler, 34)}  <-  {shorten(repr(letter.event), 52)}", "bold"),
        (f"{plural(len(attempts), 'attempt')} at t = {times} s", "normal"),
        ("last error: " + shorten(attempts[-1].outcome, 92), "normal"),
    ]
    if faded:
        lines[2] = ("replayed: handled, left the store", "normal")
    for row, (words, weight) in enumerate(lines):
        line_colour = CALL.words if faded and row == 2 else colour
        sheet.text(
            left + 0.65,
            top - 0.2 - row * 0.23,
            words,
            ha="left",
            fontsize=8,
            colour=line_colour,
            weight=weight,
        )
    _attempt_squares(sheet, left + CARD_WIDTH - 0.2, top - 0.2, attempts, replayed=faded)


def _attempt_squares(
    sheet: Sheet, right: float, y: float, attempts: Any, *, replayed: bool
) -> None:
    """A small square per attempt (the last 12), right-aligned: a failed one hatched, an ok
    one plain; a replayed letter ends with an ok square for the delivery that succeeded."""
    shown = [attempt.ok for attempt in attempts][-11 if replayed else -12 :]
    if replayed:
        shown.append(True)
    for position, ok in enumerate(reversed(shown)):
        ink = (CALL if ok else FAILED).but(width=1.0, dashes="-")
        sheet.box((right - 0.09 - position * 0.2, y), (0.14, 0.14), ink=ink)


def _store_title(waiting: int, gone: int) -> str:
    title = f"dead-letter store: {plural(waiting, 'letter')} waiting"
    if gone:
        title += f", {gone} replayed and gone"
    return title


# ---------------------------------------------------------------------- the failure lab


class ServiceUnavailableError(ConnectionError):
    """What a handler that the :class:`FailureLab` breaks raises: its service did not answer."""


BackoffName = Literal["fixed", "exponential", "jitter"]
FailureTimes = int | Literal["always"]

#: The retry backoffs the lab offers, by name, and how its controls say them.
BACKOFFS: dict[str, str] = {
    "fixed": "fixed: 1 s every time",
    "exponential": "exponential: 1 s, 2 s, 4 s...",
    "jitter": "exponential, ±25 % jitter (seeded)",
}
JITTER_SEED = 7


class FailureLab(Explorer):
    """Break one of the shop's handlers on purpose and watch retries and dead letters.

    Each run starts afresh: a shop with 3 books, a virtual clock at 0, an empty dead-letter
    store; it dispatches ``OrderCreated`` then ``OrderPaid`` for order ``o-1`` through a bus
    whose every handler is wrapped in ``dead_letters(store)`` and ``retry(...)`` (retrying
    :class:`ServiceUnavailableError`). Each handler call takes ``latency`` seconds of virtual
    time; the handler chosen by :meth:`set_failure` fails its first ``times`` calls (or
    ``"always"``, until :meth:`fix`). :meth:`replay` then redelivers the dead letters through
    the same bus, one second of virtual time later.
    """

    def __init__(
        self,
        *,
        attempts: int = 3,
        backoff: BackoffName = "exponential",
        latency: float = 0.1,
    ) -> None:
        if isinstance(latency, bool) or not isinstance(latency, (int, float)) or latency < 0:
            raise ValueError(f"latency is a number of seconds >= 0, got {latency!r}")
        self.latency = float(latency)
        self._handlers = _story_handlers()
        self._failing: str | None = None
        self._times: FailureTimes = 0
        self._failures_left: int | None = 0
        self._fixed: set[str] = set()
        self._tries: list[_Try] = []
        self.clock = VirtualClock()
        self.shop = Shop(stock={"book": 3})
        self.store = DeadLetterStore(clock=self.clock)
        self.log = RetryLog()
        self.results: list[DispatchResult] = []
        self.replayed: list[Replayed] = []
        self._bus: EventBus | None = None
        self._quiet = Quiet()
        self._build_controls()
        self.set_policy(attempts=attempts, backoff=backoff)
        self._show()

    # -- the Python API -----------------------------------------------------------------------

    @property
    def handler_names(self) -> list[str]:
        """The handlers the story calls, in the order it calls them."""
        return list(self._handlers)

    @property
    def attempts(self) -> list[Attempt]:
        """Every attempt of every handler call so far (runs and replays), in order."""
        return self._attempt_records()

    @property
    def ran(self) -> bool:
        return self._bus is not None

    def set_failure(self, handler: str | None, times: FailureTimes = 1) -> None:
        """Make ``handler`` fail its first ``times`` calls (``"always"``: until fixed).

        ``handler`` is a name such as ``"ship_order"`` or ``"Shop.ship_order"``; None makes
        no handler fail. Takes effect at the next :meth:`run`.
        """
        if handler is None:
            self._failing, self._times = None, 0
        else:
            name = self._full_name(handler)
            if times != "always" and (
                isinstance(times, bool) or not isinstance(times, int) or times < 1
            ):
                raise ValueError(
                    f'times is how many calls fail (a whole number >= 1) or "always", got {times!r}'
                )
            self._failing, self._times = name, times
            self._fixed.discard(name)
        self._sync_controls()

    def set_policy(
        self, *, attempts: int | None = None, backoff: BackoffName | None = None
    ) -> None:
        """Set the retry policy for the next run: ``attempts`` in all (1 to 6), and the
        ``backoff``: ``"fixed"`` (1 s), ``"exponential"`` (1, 2, 4 s) or ``"jitter"``
        (exponential, each wait stretched or shrunk up to 25 % by a seeded random source)."""
        if attempts is not None:
            if (
                isinstance(attempts, bool)
                or not isinstance(attempts, int)
                or not 1 <= attempts <= 6
            ):
                raise ValueError(f"attempts counts every try, from 1 to 6 here; got {attempts!r}")
            self._attempts = attempts
        if backoff is not None:
            if backoff not in BACKOFFS:
                known = ", ".join(repr(name) for name in BACKOFFS)
                raise ValueError(f"backoff is one of {known}; got {backoff!r}")
            self._backoff: BackoffName = backoff
        self._sync_controls()

    def run(self) -> list[DispatchResult]:
        """Start afresh and dispatch the story; return the two dispatch results."""
        self.clock = VirtualClock()
        self.shop = Shop(stock={"book": 3})
        self.store = DeadLetterStore(clock=self.clock)
        self.log = RetryLog()
        self.replayed = []
        self._tries = []
        self._failures_left = None if self._times == "always" else self._times
        if self._failing in self._fixed:
            self._failures_left = 0
        self._bus = self._build_bus()
        self.shop.register(self._bus)
        self.results = [
            self._bus.dispatch(OrderCreated("o-1", "c-7", 42.0, (LineItem("book", 1),))),
            self._bus.dispatch(OrderPaid("o-1", 42.0)),
        ]
        self._status_note = ""
        self._show()
        return self.results

    def fix(self, handler: str | None = None) -> None:
        """Repair the failing handler (or the one named): from now on it works."""
        if self._failing is None:
            raise ValueError("no handler is set to fail; choose one with set_failure(...) first")
        name = self._failing if handler is None else self._full_name(handler)
        if name != self._failing:
            raise ValueError(f"{name} is not the broken handler; {self._failing} is")
        self._fixed.add(name)
        self._failures_left = 0
        self._status_note = f"{name} fixed: replay the dead letters to finish the order"
        self._show()

    def replay(self) -> list[Replayed]:
        """Redeliver every dead letter through the lab's bus, one virtual second later."""
        if self._bus is None:
            raise ValueError("nothing to replay yet: run the lab first (press Run or .run())")
        self.clock.advance(1.0)  # time to notice and fix: keeps the replay apart in the picture
        outcomes = self.store.replay(self._bus)
        self.replayed.extend(outcomes)
        ok = sum(1 for outcome in outcomes if outcome.ok)
        self._status_note = (
            f"replayed {plural(len(outcomes), 'letter')}: {ok} handled, {len(outcomes) - ok} "
            "failed again"
        )
        self._show()
        return outcomes

    @property
    def order_status(self) -> str:
        return self.shop.orders.status.get("o-1", "unknown")

    def summary(self) -> str:
        """The lab's state in a few stable lines: policy, outcome, dead letters, shop."""
        lines = [
            f"failing:      {self._failure_words()}",
            f"retry policy: {self._policy_words()}",
        ]
        if self.ran:
            lines += [
                f"order o-1:    {self.order_status} (virtual time now {self.clock.now():g} s)",
                f"attempts:     {len(self.attempts)}, of which "
                f"{sum(1 for a in self.attempts if not a.ok)} failed",
                f"dead letters: {len(self.store)}",
            ]
        return "\n".join(lines)

    def draw_attempts(self) -> Figure:
        """The attempts of the last run and its replays, as :func:`draw_attempts` draws them."""
        return draw_attempts(self.attempts, dead_letters=self.store, title=self._picture_title())

    def draw_dead_letters(self) -> Figure:
        """The dead-letter store now, with the letters replays took out."""
        return draw_dead_letters(self.store, replayed=self.replayed)

    def __repr__(self) -> str:
        state = "not run yet"
        if self.ran:
            state = f"order o-1 {self.order_status}, {plural(len(self.store), 'dead letter')}"
        return f"FailureLab: {self._failure_words()}; {self._policy_words()}; {state}"

    # -- the bus ------------------------------------------------------------------------------

    def _build_bus(self) -> EventBus:
        policy = retry(
            self._attempts,
            backoff=self._backoff_function(),
            retry_on=ServiceUnavailableError,
            clock=self.clock,
            log=self.log,
        )
        return EventBus(middleware=[dead_letters(self.store), policy, self._service])

    def _backoff_function(self) -> FixedBackoff | ExponentialBackoff:
        if self._backoff == "fixed":
            return fixed(1.0)
        if self._backoff == "exponential":
            return exponential(1.0, 2.0)
        return exponential(1.0, 2.0, jitter=0.25, random=random.Random(JITTER_SEED))

    def _service(self, call: Handler, subscription: Subscription) -> Handler:
        """Innermost middleware: each try takes ``latency``, may fail, and is recorded."""
        name = subscription.name

        def try_once(event: object) -> object:
            started = self.clock.now()
            self.clock.advance(self.latency)
            try:
                if name == self._failing and self._should_fail():
                    raise ServiceUnavailableError(self._failure_message(name))
                produced = call(event)
            except Exception as error:
                self._tries.append(_Try(name, event, started, self.clock.now(), error))
                raise
            self._tries.append(_Try(name, event, started, self.clock.now(), None))
            return produced

        return try_once

    def _should_fail(self) -> bool:
        if self._failures_left is None:
            return True
        if self._failures_left > 0:
            self._failures_left -= 1
            return True
        return False

    def _failure_message(self, name: str) -> str:
        if self._times == "always":
            return f"{name}: service down until fixed"
        failed = self._times - (self._failures_left or 0) if isinstance(self._times, int) else 0
        return f"{name}: service did not answer (failure {failed} of {self._times})"

    def _attempt_records(self) -> list[Attempt]:
        """The tries as Attempt records: numbered and with their waits as the retry logged
        them; a call that succeeded at once (absent from the retry log) is one attempt."""
        logged = {(a.handler, id(a.event), a.started): a for a in self.log}
        records = []
        for attempt in self._tries:
            found = logged.get((attempt.handler, id(attempt.event), attempt.started))
            records.append(
                found
                or Attempt(
                    attempt.event,
                    attempt.handler,
                    1,
                    attempt.started,
                    attempt.ended,
                    attempt.error,
                )
            )
        return records

    # -- words --------------------------------------------------------------------------------

    def _full_name(self, handler: str) -> str:
        for name in self._handlers:
            if handler in (name, name.rsplit(".", 1)[-1]):
                return name
        known = ", ".join(name.rsplit(".", 1)[-1] for name in self._handlers)
        raise ValueError(f"the lab's story has no handler {handler!r}; it has {known}")

    def _failure_words(self) -> str:
        if self._failing is None:
            return "nothing fails"
        if self._failing in self._fixed:
            return f"{self._failing} fixed"
        if self._times == "always":
            return f"{self._failing} fails always"
        return f"{self._failing} fails {plural(int(self._times), 'time')}"

    def _policy_words(self) -> str:
        return f"{plural(self._attempts, 'attempt')}, {self._backoff} backoff"

    def _picture_title(self) -> str:
        if not self.ran:
            return "press Run"
        rows = attempt_rows(self.attempts, dead_letters=self.store)
        return f"order o-1 {self.order_status}: {_attempts_title(rows)}"

    # -- the widget ---------------------------------------------------------------------------

    def _build_controls(self) -> None:
        short = [(name.rsplit(".", 1)[-1], name) for name in self._handlers]
        self._handler_choice = widgets.Dropdown(
            options=[("(none)", None), *short], description="breaks"
        )
        self._mode = widgets.ToggleButtons(
            options=[("transient", "transient"), ("permanent", "permanent")],
            description="failure",
            style={"button_width": "90px"},
        )
        self._times_slider = widgets.IntSlider(value=1, min=1, max=6, description="fails (times)")
        self._attempts_slider = widgets.IntSlider(value=3, min=1, max=6, description="attempts")
        self._backoff_choice = widgets.Dropdown(
            options=[(words, name) for name, words in BACKOFFS.items()], description="backoff"
        )
        for control in (
            self._handler_choice,
            self._mode,
            self._times_slider,
            self._attempts_slider,
            self._backoff_choice,
        ):
            control.observe(self._on_control, "value")
        self._run_button = widgets.Button(description="Run", button_style="primary")
        self._fix_button = widgets.Button(description="Fix handler", icon="wrench")
        self._replay_button = widgets.Button(description="Replay dead letters", icon="repeat")
        self._run_button.on_click(lambda _: self.run())
        self._fix_button.on_click(lambda _: self._click(self.fix))
        self._replay_button.on_click(lambda _: self._click(self.replay))
        self._status = widgets.Label(value="")
        self._attempts_image = widgets.Image(format="png")
        self._letters_image = widgets.Image(format="png", layout=widgets.Layout(width="60%"))
        self._state = widgets.HTML(value="")
        self._status_note = ""
        self._root = widgets.VBox(
            [
                widgets.HBox([self._handler_choice, self._mode, self._times_slider]),
                widgets.HBox([self._attempts_slider, self._backoff_choice]),
                widgets.HBox([self._run_button, self._fix_button, self._replay_button]),
                self._status,
                self._attempts_image,
                widgets.HBox([self._letters_image, self._state]),
            ]
        )

    def _sync_controls(self) -> None:
        """Show the lab's settings on its controls (after a change made from Python)."""
        if not hasattr(self, "_attempts") or not hasattr(self, "_backoff"):
            return
        with self._quiet.hold():
            self._handler_choice.value = self._failing
            self._mode.value = "permanent" if self._times == "always" else "transient"
            if isinstance(self._times, int) and self._times >= 1:
                self._times_slider.value = min(self._times, self._times_slider.max)
            self._times_slider.disabled = self._times == "always"
            self._attempts_slider.value = self._attempts
            self._backoff_choice.value = self._backoff
        self._status.value = self._status_line()

    def _on_control(self, _change: Mapping[str, Any]) -> None:
        if self._quiet:
            return
        # Read every control before applying any: applying one redraws them all.
        failing = self._handler_choice.value
        times: FailureTimes = (
            "always" if self._mode.value == "permanent" else int(self._times_slider.value)
        )
        attempts, backoff = int(self._attempts_slider.value), self._backoff_choice.value
        self.set_failure(failing, times)
        self.set_policy(attempts=attempts, backoff=backoff)
        self._status_note = "settings changed: press Run"
        self._status.value = self._status_line()

    def _click(self, action: Callable[[], object]) -> None:
        """Run a button's action; what it cannot do goes to the status line (a click has
        nobody to raise to)."""
        try:
            action()
        except ValueError as error:
            self._status_note = str(error)
            self._status.value = self._status_line()

    def _status_line(self) -> str:
        head = repr(self).removeprefix("FailureLab: ")
        return f"{head} · {self._status_note}" if self._status_note else head

    def _show(self) -> None:
        self._status.value = self._status_line()
        if not self.ran:
            self._attempts_image.value = placeholder_png(
                "choose a handler to break, then press Run", width=8.0
            )
            self._letters_image.value = figure_to_png(self.draw_dead_letters())
            self._state.value = _state_html(self.summary(), None)
            return
        self._attempts_image.value = figure_to_png(self.draw_attempts())
        self._letters_image.value = figure_to_png(self.draw_dead_letters())
        self._state.value = _state_html(self.summary(), self.shop.summary())


@dataclass(frozen=True)
class _Try:
    """One call of a handler as the innermost layer saw it."""

    handler: str
    event: object
    started: float
    ended: float
    error: Exception | None


def _story_handlers() -> list[str]:
    """The handlers the lab's story reaches (created, paid, shipped), in the order it calls them."""
    story = (OrderCreated, OrderPaid, ShipmentRequested, OrderShipped)
    return [
        handler.__qualname__ for event_type, handler in Shop().handlers() if event_type in story
    ]


def _state_html(lab: str, shop: str | None) -> str:
    parts = ["<b>lab</b>", f"<pre style='margin:0'>{html.escape(lab)}</pre>"]
    if shop is not None:
        parts += ["<b>shop</b>", f"<pre style='margin:0'>{html.escape(shop)}</pre>"]
    return "<div style='font-size:12px'>" + "\n".join(parts) + "</div>"
