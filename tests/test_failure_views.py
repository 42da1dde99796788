"""Pictures of retries and dead letters, and the failure lab (eda_lesson.views.failures),
drawn headless from real retries on virtual clocks, with warnings as errors."""

from __future__ import annotations

import random
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from matplotlib.figure import Figure
from matplotlib.text import Text

from eda_lesson import EventBus
from eda_lesson.core.clock import VirtualClock
from eda_lesson.core.middleware import (
    DeadLetterStore,
    RetryLog,
    dead_letters,
    exponential,
    fixed,
    retry,
)
from eda_lesson.shop.events import OrderPaid
from eda_lesson.views.failures import (
    AttemptRow,
    FailureLab,
    ServiceUnavailableError,
    attempt_rows,
    draw_attempts,
    draw_dead_letters,
    event_label,
)
from eda_lesson.views.palette import INKS
from eda_lesson.views.sheet import figure_to_png

pytestmark = [
    pytest.mark.filterwarnings("error"),
    # hypothesis's pytest plugin imports mypy_extensions while reporting; not our code.
    pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"),
]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class CheckoutCompleted:
    order_id: str
    amount: float


class Bank:
    """A card processor that takes ``seconds`` per call and is busy for its first calls."""

    def __init__(self, clock: VirtualClock, busy: int, seconds: float = 0.2) -> None:
        self.clock, self.busy, self.seconds, self.calls = clock, busy, seconds, 0

    def charge(self, event: CheckoutCompleted) -> None:
        self.calls += 1
        self.clock.advance(self.seconds)
        if self.calls <= self.busy:
            raise TimeoutError(f"bank busy (call {self.calls})")


def retried_payment(busy: int, attempts: int = 3) -> tuple[RetryLog, DeadLetterStore, Any]:
    """Dispatch one payment through dead letters and exponential retries (1 s, 2 s...)."""
    clock = VirtualClock()
    store, log, bank = DeadLetterStore(clock=clock), RetryLog(), Bank(clock, busy)
    bus = EventBus()
    policy = retry(attempts, backoff=exponential(), retry_on=TimeoutError, clock=clock, log=log)
    bus.register(CheckoutCompleted, bank.charge, middleware=[dead_letters(store), policy])
    bus.dispatch(CheckoutCompleted("o-1", 30.0))
    return log, store, bus


def by_gid(figure: Figure) -> dict[str, Any]:
    return {a.get_gid(): a for a in figure.findobj(lambda a: a.get_gid() is not None)}


def texts(figure: Figure) -> list[str]:
    return [t.get_text() for t in figure.findobj(Text) if t.get_text()]


def bar_span(artist: Any) -> tuple[float, float]:
    return (round(artist.get_x(), 9), round(artist.get_x() + artist.get_width(), 9))


# ---------------------------------------------------------------------- rows


def test_attempts_are_grouped_per_handler_and_event_with_the_dead_letter_named() -> None:
    log, store, _ = retried_payment(busy=10)
    (row,) = attempt_rows(log, dead_letters=store)
    assert isinstance(row, AttemptRow)
    assert (row.handler, row.letter, row.outcome) == ("Bank.charge", 1, "dead letter #1")
    assert [a.number for a in row.attempts] == [1, 2, 3] and row.replays == 0
    assert attempt_rows(log)[0].outcome == "gave up"  # no store given: nobody kept it


def test_a_replay_joins_the_row_of_its_event() -> None:
    log, store, bus = retried_payment(busy=4)
    store.replay(bus)  # the bank's 4th call fails, then the replay's retry gets through
    (row,) = attempt_rows(log, dead_letters=store)
    assert [(a.number, a.ok) for a in row.attempts] == [
        (1, False),
        (2, False),
        (3, False),
        (1, False),
        (2, True),
    ]
    assert row.replays == 1 and row.outcome == "ok" and row.letter is None


def test_event_labels_name_the_type_and_its_first_field() -> None:
    assert event_label(OrderPaid("o-1", 42.0)) == "OrderPaid o-1"
    assert event_label(CheckoutCompleted("o-22", 1.0)) == "CheckoutCompleted o-22"
    assert event_label(object()) == "object"


# ---------------------------------------------------------------------- draw_attempts


def test_each_attempt_and_each_wait_sits_at_its_time_on_the_clock() -> None:
    log, store, _ = retried_payment(busy=10)
    figure = draw_attempts(log, dead_letters=store)
    artists = by_gid(figure)
    assert [bar_span(artists[f"attempt-0-{n}"]) for n in (1, 2, 3)] == [
        (0.0, 0.2),
        (1.2, 1.4),
        (3.4, 3.6),
    ]
    waits = sorted(bar_span(a) for gid, a in artists.items() if gid.startswith("wait-"))
    assert waits == [(0.2, 1.2), (1.4, 3.4)]
    assert {"wait 1 s", "wait 2 s", "dead letter #1"} <= set(texts(figure))
    assert artists["outcome-0"].get_text() == "dead letter #1"
    red = INKS["failed"].fill
    assert all(tuple(artists[f"attempt-0-{n}"].get_facecolor()) == _rgba(red) for n in (1, 2, 3))


def test_a_success_after_retries_is_green_and_says_how_many_attempts_it_took() -> None:
    log, store, _ = retried_payment(busy=2)
    figure = draw_attempts(log, dead_letters=store)
    artists = by_gid(figure)
    assert tuple(artists["attempt-0-3"].get_facecolor()) == _rgba(INKS["call"].fill)
    assert artists["outcome-0"].get_text() == "ok after 3 attempts"
    assert figure.axes[0].get_title() == "attempts on the clock: 3 attempts, 1 handler call"


def test_a_replay_is_marked_and_its_first_attempt_outlined() -> None:
    log, store, bus = retried_payment(busy=4)
    store.replay(bus)  # fails once more, then its retry gets through
    figure = draw_attempts(log, dead_letters=store)
    assert "replay" in texts(figure)
    artists = by_gid(figure)
    purple = _rgba(INKS["current"].stroke)
    edges = [tuple(a.get_edgecolor()) for gid, a in artists.items() if gid.startswith("attempt-")]
    assert edges.count(purple) == 1  # the first attempt of the replay
    assert artists["outcome-0"].get_text() == "ok after 5 attempts"


def test_a_replay_that_succeeded_at_once_is_told_by_the_replay_outcomes() -> None:
    """A call that succeeds at its first attempt leaves no trace in a RetryLog, so the log
    alone would end on the failed attempts; the replay outcomes tell the rest."""
    log, store, bus = retried_payment(busy=3)
    outcomes = store.replay(bus)
    assert by_gid(draw_attempts(log, dead_letters=store))["outcome-0"].get_text() == "gave up"
    figure = draw_attempts(log, dead_letters=store, replayed=outcomes)
    assert by_gid(figure)["outcome-0"].get_text() == "replayed ok"


def test_jittered_waits_are_drawn_as_the_seeded_random_source_made_them() -> None:
    def run(seed: int) -> list[float]:
        clock, log = VirtualClock(), RetryLog()
        backoff = exponential(jitter=0.25, random=random.Random(seed))
        bus = EventBus()
        bus.register(
            CheckoutCompleted,
            Bank(clock, busy=3).charge,
            middleware=[retry(4, backoff=backoff, clock=clock, log=log)],
        )
        bus.dispatch(CheckoutCompleted("o-1", 30.0))
        labels = [t for t in texts(draw_attempts(log)) if t.startswith("wait ")]
        return [float(t.split()[1]) for t in labels]

    assert run(7) == run(7) != run(8)
    for plain, wait in zip((1.0, 2.0, 4.0), run(7), strict=True):
        assert 0.75 * plain <= wait <= 1.25 * plain


def test_draw_attempts_draws_into_a_given_axes_and_renders_to_png() -> None:
    log, store, _ = retried_payment(busy=10)
    figure = Figure(figsize=(6, 3))
    ax = figure.add_subplot()
    assert draw_attempts(log, dead_letters=store, ax=ax, title="mine") is figure
    assert ax.get_title() == "mine"
    assert figure_to_png(figure).startswith(PNG_SIGNATURE)


def test_draw_attempts_wants_attempt_records() -> None:
    with pytest.raises(TypeError, match="takes Attempt records"):
        draw_attempts([("Bank.charge", 1)])  # type: ignore[list-item]
    empty = draw_attempts([])
    assert "no attempts recorded" in texts(empty)


# ---------------------------------------------------------------------- draw_dead_letters


def test_each_letter_is_a_card_with_its_handler_event_attempts_and_last_error() -> None:
    _, store, _ = retried_payment(busy=10)
    figure = draw_dead_letters(store)
    assert "letter-1" in by_gid(figure)
    words = texts(figure)
    assert "dead-letter store: 1 letter waiting" in words
    assert "3 attempts at t = 0, 1.2, 3.4 s" in words
    assert "last error: TimeoutError: bank busy (call 3)" in words
    assert any(w.startswith("Bank.charge  <-  CheckoutCompleted(order_id='o-1'") for w in words)


def test_replayed_letters_are_shown_leaving_the_store() -> None:
    _, store, bus = retried_payment(busy=3)
    outcomes = store.replay(bus)
    figure = draw_dead_letters(store, replayed=outcomes)
    words = texts(figure)
    assert "dead-letter store: 0 letters waiting, 1 replayed and gone" in words
    assert "replayed: handled, left the store" in words
    assert tuple(by_gid(figure)["letter-1"].get_facecolor()) == _rgba(INKS["pending"].fill)


def test_an_empty_store_says_so() -> None:
    figure = draw_dead_letters(DeadLetterStore())
    assert "empty-store" in by_gid(figure)
    assert "empty: no event is waiting for a fix" in texts(figure)
    with pytest.raises(TypeError, match="takes a DeadLetterStore"):
        draw_dead_letters([])  # type: ignore[arg-type]


# ---------------------------------------------------------------------- the failure lab


@pytest.fixture
def lab() -> FailureLab:
    return FailureLab()


def test_with_nothing_broken_the_order_ships_and_every_call_is_one_attempt(
    lab: FailureLab,
) -> None:
    assert repr(lab) == "FailureLab: nothing fails; 3 attempts, exponential backoff; not run yet"
    lab.run()
    assert lab.order_status == "shipped" and len(lab.store) == 0
    assert [a.handler.removeprefix("Shop.") for a in lab.attempts] == [
        "record_order",
        "send_confirmation",
        "reserve_stock",
        "mark_paid",
        "send_receipt",
        "request_shipment",
        "ship_order",
        "notify_shipped",
    ]
    assert [a.started for a in lab.attempts] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    assert all(a.ok and a.number == 1 for a in lab.attempts)


def test_a_transient_failure_is_retried_away_on_the_backoff_schedule(lab: FailureLab) -> None:
    lab.set_failure("send_receipt", 2)
    lab.run()
    receipt = [a for a in lab.attempts if a.handler == "Shop.send_receipt"]
    assert [(a.number, a.started, a.ok, a.wait) for a in receipt] == [
        (1, 0.4, False, 1.0),
        (2, 1.5, False, 2.0),
        (3, 3.6, True, None),
    ]
    assert isinstance(receipt[0].error, ServiceUnavailableError)
    assert str(receipt[1].error) == ("Shop.send_receipt: service did not answer (failure 2 of 2)")
    assert lab.order_status == "shipped" and len(lab.store) == 0


def test_a_permanent_failure_ends_in_the_store_until_fixed_and_replayed(
    lab: FailureLab,
) -> None:
    lab.set_failure("ship_order", "always")
    lab.run()
    assert lab.order_status == "paid"
    (letter,) = lab.store
    assert (letter.handler, len(letter.attempts)) == ("Shop.ship_order", 3)
    assert repr(lab) == (
        "FailureLab: Shop.ship_order fails always; 3 attempts, exponential backoff; "
        "order o-1 paid, 1 dead letter"
    )

    (again,) = lab.replay()  # not fixed yet: three more attempts, still failing
    assert not again.ok and len(next(iter(lab.store)).attempts) == 6

    lab.fix("ship_order")
    (done,) = lab.replay()
    assert done.ok and len(lab.store) == 0 and lab.order_status == "shipped"
    rows = attempt_rows(lab.attempts, dead_letters=lab.store)
    ship = next(r for r in rows if r.handler == "Shop.ship_order")
    assert ship.replays == 2 and ship.outcome == "ok"
    assert rows[-1].handler == "Shop.notify_shipped"  # the replayed call's event, dispatched
    assert "replay" in texts(lab.draw_attempts())


def test_a_transient_failure_longer_than_the_retries_is_finished_by_a_replay(
    lab: FailureLab,
) -> None:
    lab.set_failure("ship_order", 4)
    lab.run()
    assert len(lab.store) == 1
    (outcome,) = lab.replay()  # the service came back on its own: the 5th call works
    assert outcome.ok and lab.order_status == "shipped"


def test_the_policy_sets_attempts_and_waits(lab: FailureLab) -> None:
    lab.set_failure("mark_paid", "always")
    lab.set_policy(attempts=4, backoff="fixed")
    lab.run()
    assert [a.wait for a in next(iter(lab.store)).attempts] == [1.0, 1.0, 1.0, None]
    lab.set_policy(attempts=1)
    lab.run()
    assert len(next(iter(lab.store)).attempts) == 1


def test_jittered_waits_repeat_run_after_run(lab: FailureLab) -> None:
    lab.set_failure("mark_paid", "always")
    lab.set_policy(attempts=4, backoff="jitter")
    lab.run()
    first = [a.wait for a in next(iter(lab.store)).attempts]
    lab.run()
    assert [a.wait for a in next(iter(lab.store)).attempts] == first
    assert first[:3] != [1.0, 2.0, 4.0] and first[3] is None


def test_the_lab_refuses_what_it_cannot_do(lab: FailureLab) -> None:
    with pytest.raises(ValueError, match="no handler 'charge_card'; it has record_order"):
        lab.set_failure("charge_card", 1)
    with pytest.raises(ValueError, match='or "always"'):
        lab.set_failure("ship_order", 0)
    with pytest.raises(ValueError, match="from 1 to 6"):
        lab.set_policy(attempts=9)
    with pytest.raises(ValueError, match="backoff is one of 'fixed', 'exponential', 'jitter'"):
        lab.set_policy(backoff="linear")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="run the lab first"):
        lab.replay()
    with pytest.raises(ValueError, match="no handler is set to fail"):
        lab.fix()
    lab.set_failure("ship_order", "always")
    with pytest.raises(ValueError, match=r"Shop\.mark_paid is not the broken handler"):
        lab.fix("mark_paid")
    with pytest.raises(ValueError, match="latency"):
        FailureLab(latency=-1)


# ---------------------------------------------------------------------- the lab as a widget


def walk(widget: Any) -> Iterator[Any]:
    yield widget
    for child in getattr(widget, "children", ()):
        yield from walk(child)


def button(lab: FailureLab, description: str) -> Any:
    (found,) = [
        w
        for w in walk(lab.widget)
        if isinstance(w, widgets.Button) and w.description == description
    ]
    return found


def test_the_buttons_run_fix_and_replay(lab: FailureLab) -> None:
    lab.set_failure("ship_order", "always")
    button(lab, "Run").click()
    assert lab.order_status == "paid" and len(lab.store) == 1
    button(lab, "Fix handler").click()
    button(lab, "Replay dead letters").click()
    assert lab.order_status == "shipped" and len(lab.store) == 0
    status = next(w.value for w in walk(lab.widget) if isinstance(w, widgets.Label))
    assert status.endswith("replayed 1 letter: 1 handled, 0 failed again")
    state = next(w.value for w in walk(lab.widget) if isinstance(w, widgets.HTML))
    assert "orders:    o-1=shipped" in state


def test_a_button_that_cannot_act_says_why_in_the_status_line(lab: FailureLab) -> None:
    button(lab, "Replay dead letters").click()
    status = next(w.value for w in walk(lab.widget) if isinstance(w, widgets.Label))
    assert "run the lab first" in status


def test_controls_and_the_python_api_agree(lab: FailureLab) -> None:
    dropdowns = [w for w in walk(lab.widget) if isinstance(w, widgets.Dropdown)]
    breaks = next(d for d in dropdowns if d.description == "breaks")
    mode = next(w for w in walk(lab.widget) if isinstance(w, widgets.ToggleButtons))
    lab.set_failure("ship_order", "always")
    assert (breaks.value, mode.value) == ("Shop.ship_order", "permanent")
    breaks.value = "Shop.send_receipt"
    mode.value = "transient"
    assert repr(lab).startswith("FailureLab: Shop.send_receipt fails 1 time;")
    attempts = next(
        w
        for w in walk(lab.widget)
        if isinstance(w, widgets.IntSlider) and w.description == "attempts"
    )
    attempts.value = 5
    assert "5 attempts" in repr(lab)


def test_the_widget_shows_pictures_as_png_values_and_no_output_area(lab: FailureLab) -> None:
    lab.set_failure("ship_order", "always")
    lab.run()
    images = [w for w in walk(lab.widget) if isinstance(w, widgets.Image)]
    assert len(images) == 2 and all(bytes(i.value).startswith(PNG_SIGNATURE) for i in images)
    assert not any(isinstance(w, widgets.Output) for w in walk(lab.widget))
    bundle = lab._repr_mimebundle_()
    assert bundle["text/plain"] == repr(lab)
    assert "application/vnd.jupyter.widget-view+json" in bundle


def test_importing_the_views_does_not_import_pyplot() -> None:
    code = (
        "import sys, eda_lesson.views.failures, eda_lesson.views.concurrency; "
        "assert 'matplotlib.pyplot' not in sys.modules; "
        "import eda_lesson; assert eda_lesson"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_importing_eda_lesson_does_not_import_the_views() -> None:
    code = (
        "import sys, eda_lesson; "
        "assert 'eda_lesson.views.failures' not in sys.modules; "
        "assert 'ipywidgets' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _rgba(colour: str) -> tuple[float, ...]:
    from matplotlib.colors import to_rgba

    return tuple(to_rgba(colour))


def test_a_fixed_backoff_is_drawn_with_equal_waits() -> None:
    clock, log = VirtualClock(), RetryLog()
    bus = EventBus()
    bus.register(
        CheckoutCompleted,
        Bank(clock, busy=2).charge,
        middleware=[retry(3, backoff=fixed(0.5), clock=clock, log=log)],
    )
    bus.dispatch(CheckoutCompleted("o-1", 30.0))
    assert [t for t in texts(draw_attempts(log)) if t.startswith("wait")] == [
        "wait 0.5 s",
        "wait 0.5 s",
    ]


# ---------------------------------------------------------------------- invariants


@settings(max_examples=40, deadline=None)
@given(busy=st.integers(min_value=0, max_value=6), attempts=st.integers(min_value=1, max_value=5))
def test_the_picture_has_a_bar_per_attempt_a_span_per_wait_and_the_right_ending(
    busy: int, attempts: int
) -> None:
    log, store, _ = retried_payment(busy=busy, attempts=attempts)
    made = min(busy + 1, attempts)
    if busy == 0:  # succeeded at once: the log is empty, nothing to draw
        assert len(log) == 0
        return
    artists = by_gid(draw_attempts(log, dead_letters=store))
    assert sum(gid.startswith("attempt-") for gid in artists) == made
    assert sum(gid.startswith("wait-") for gid in artists) == made - 1
    ending = artists["outcome-0"].get_text()
    assert ending == (f"ok after {made} attempts" if busy < attempts else "dead letter #1")


@settings(max_examples=12, deadline=None)
@given(
    handler=st.sampled_from(["record_order", "mark_paid", "ship_order", "notify_shipped"]),
    times=st.integers(min_value=1, max_value=6),
    attempts=st.integers(min_value=1, max_value=6),
)
def test_in_the_lab_replaying_until_the_store_is_empty_handles_the_event_once(
    handler: str, times: int, attempts: int
) -> None:
    lab = FailureLab(attempts=attempts)
    lab.set_failure(handler, times)
    lab.run()
    assert len(lab.store) == (0 if times < attempts else 1)
    while len(lab.store):  # a transient failure ends: each replay brings it closer
        lab.replay()
    mine = [a for a in lab.attempts if a.handler == f"Shop.{handler}"]
    assert [a.ok for a in mine] == [False] * times + [True]
    assert all(a.ok for a in lab.attempts if a.handler != f"Shop.{handler}")
    assert lab.shop.shipping.shipped == ["o-1"]


def test_a_late_replay_lands_after_the_events_that_followed_it() -> None:
    """mark_paid failed, the rest of the story went on (the order shipped), and the replayed
    payment then set the status back to "paid": a replay is a late delivery, and the shop's
    mark_paid assumes it comes before shipping."""
    lab = FailureLab()
    lab.set_failure("mark_paid", "always")
    lab.run()
    assert lab.order_status == "shipped" and len(lab.store) == 1
    lab.fix()
    (outcome,) = lab.replay()
    assert outcome.ok and lab.order_status == "paid"
    assert lab.shop.shipping.shipped == ["o-1"]


def test_while_shipping_waits_in_the_store_nothing_after_it_happens() -> None:
    lab = FailureLab()
    lab.set_failure("ship_order", 5)
    lab.run()
    assert lab.order_status == "paid" and "Shop.notify_shipped" not in {
        a.handler for a in lab.attempts
    }
    while len(lab.store):
        lab.replay()
    assert lab.order_status == "shipped"
