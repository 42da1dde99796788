"""Errors that reach a caller in another process whole: pickled, unpickled, attributes kept.

A process pool sends a task's exception back to the caller pickled. An exception whose
``__init__`` takes more than its message used to fail to unpickle there, and the caller got
``BrokenProcessPool`` (and a dead pool) instead of the error that said what went wrong.
"""

from __future__ import annotations

import inspect
import multiprocessing
import pickle
import sqlite3
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import ModuleType

import pytest

from eda_lesson import EventBus
from eda_lesson.core.clock import VirtualClock
from eda_lesson.core.middleware import Attempt, RetriesExhaustedError, retry
from eda_lesson.patterns import serialization, store
from eda_lesson.patterns.serialization import EventRegistry, UnwritableEventError
from eda_lesson.patterns.store import ConcurrencyError, CorruptEventError, SQLiteEventStore
from eda_lesson.shop.events import OrderPaid

# One example of every exception class the two modules define, made as they make them.
EXAMPLES: dict[str, BaseException] = {
    "EventFormatError": serialization.EventFormatError("bad data"),
    "UnknownEventTypeError": serialization.UnknownEventTypeError("unknown event type 'X'"),
    "FutureEventVersionError": serialization.FutureEventVersionError("X v9 is newer"),
    "MissingUpcasterError": serialization.MissingUpcasterError("no upcaster"),
    "MalformedEventError": serialization.MalformedEventError("not valid JSON"),
    "UnregisteredEventError": serialization.UnregisteredEventError("X is not registered"),
    "UnwritableEventError": UnwritableEventError(
        "OrderPaid", "OrderPaid.amount should be a number", "append to 'order-o-1'"
    ),
    "_MismatchError": serialization._MismatchError("x should be a string"),
    "ConcurrencyError": ConcurrencyError("order-o-1", 1, 2),
    "CorruptEventError": CorruptEventError("order-o-1", 2, 7, "not valid JSON"),
    "ReadOnlyStoreError": store.ReadOnlyStoreError("/data/events.db", "opened read-only"),
    "StoreLockedError": store.StoreLockedError("/data/events.db", 0.5, "appending"),
    "StoreOpenError": store.StoreOpenError("/data/events.db", "no such folder"),
}


def _exception_classes(module: ModuleType) -> list[str]:
    return [
        name
        for name, value in vars(module).items()
        if inspect.isclass(value)
        and issubclass(value, BaseException)
        and value.__module__ == module.__name__
    ]


def test_every_exception_class_of_the_store_and_serialization_has_an_example() -> None:
    defined = _exception_classes(serialization) + _exception_classes(store)
    assert sorted(defined) == sorted(EXAMPLES), "add an example for each new exception class"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_exception_class_pickles_and_unpickles_with_its_attributes(name: str) -> None:
    error = EXAMPLES[name]
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert str(back) == str(error)
    assert back.args == error.args
    assert vars(back) == vars(error)


def _retries_exhausted() -> RetriesExhaustedError:
    bus, clock = EventBus(), VirtualClock()

    def charge(event: OrderPaid) -> None:
        raise TimeoutError(f"bank did not answer for {event.order_id}")

    bus.register(OrderPaid, charge, middleware=[retry(3, clock=clock)])
    error = bus.dispatch(OrderPaid("o-1", 5.0)).failures[0].error
    assert isinstance(error, RetriesExhaustedError)
    return error


def test_retries_exhausted_error_pickles_with_its_attempts_and_cause() -> None:
    error = _retries_exhausted()
    back = pickle.loads(pickle.dumps(error))
    assert (type(back), str(back), back.handler, back.reason) == (
        RetriesExhaustedError,
        str(error),
        error.handler,
        error.reason,
    )
    assert [(a.number, a.outcome) for a in back.attempts] == [
        (a.number, a.outcome) for a in error.attempts
    ]
    assert all(isinstance(a, Attempt) for a in back.attempts)
    assert isinstance(back.__cause__, TimeoutError) and back.last_error is back.__cause__


# -- the same through a real process pool: the task fails in the worker, the caller sees why


def _read_corrupt_store(path: str) -> None:
    with SQLiteEventStore(path, EventRegistry.of(OrderPaid)) as events:
        events.read("order-o-1")


def _dispatch_with_retries() -> None:
    raise _retries_exhausted()


def _append_stale(path: str) -> None:
    with SQLiteEventStore(path, EventRegistry.of(OrderPaid)) as events:
        events.append("order-o-1", [OrderPaid("o-1", 1.0)], expected_version=0)


def _append_unwritable(path: str) -> None:
    with SQLiteEventStore(path, EventRegistry.of(OrderPaid)) as events:
        events.append("order-o-2", [OrderPaid("o-2", "lots")], expected_version=0)  # type: ignore[arg-type]


def test_errors_raised_in_a_process_pool_reach_the_caller_whole(tmp_path: Path) -> None:
    path = str(tmp_path / "events.db")
    with SQLiteEventStore(path, EventRegistry.of(OrderPaid)) as events:
        events.append("order-o-1", [OrderPaid("o-1", 1.0)], expected_version=0)
    with sqlite3.connect(path) as db:
        db.execute(
            "INSERT INTO events (stream_id, version, event_type, schema_version, payload) "
            "VALUES ('order-o-1', 2, 'OrderPaid', 1, 'not json')"
        )
    db.close()
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        with pytest.raises(CorruptEventError) as corrupt:
            pool.submit(_read_corrupt_store, path).result(timeout=60)
        assert (corrupt.value.stream_id, corrupt.value.version, corrupt.value.position) == (
            "order-o-1",
            2,
            2,
        )
        with pytest.raises(RetriesExhaustedError, match="failed 3 attempts") as exhausted:
            pool.submit(_dispatch_with_retries).result(timeout=60)
        assert len(exhausted.value.attempts) == 3
        with pytest.raises(ConcurrencyError) as stale:
            pool.submit(_append_stale, path).result(timeout=60)
        assert stale.value.actual_version == 2
        with pytest.raises(UnwritableEventError, match=r"amount should be a number") as bad:
            pool.submit(_append_unwritable, path).result(timeout=60)
        assert bad.value.event_type == "OrderPaid"
        # The pool survived all four: it still runs tasks.
        assert pool.submit(len, "four").result(timeout=60) == 4
