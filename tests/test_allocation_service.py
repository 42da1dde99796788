"""A small allocation service in the style of *Architecture Patterns with Python* (chapters
9, 10 and 13), written with eda_lesson's public API directly: commands with one handler,
events heard by many, handlers taking a ``uow`` and ``notifications`` by name, events
collected from the aggregate by the unit of work, and reallocation through a cascade.

No adapter: the bootstrap is one ``EventBus(...)`` call and the registrations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from eda_lesson import Command, Event, EventBus, UnhandledCommandError
from eda_lesson.patterns.state_unit_of_work import StateUnitOfWork, TrackingRepository

# ---------------------------------------------------------------------- messages


@dataclass(frozen=True)
class CreateBatch(Command):
    reference: str
    sku: str
    quantity: int


@dataclass(frozen=True)
class Allocate(Command):
    order_id: str
    sku: str
    quantity: int


@dataclass(frozen=True)
class ChangeBatchQuantity(Command):
    reference: str
    quantity: int


@dataclass(frozen=True)
class Allocated(Event):
    order_id: str
    sku: str
    quantity: int
    batch_reference: str


@dataclass(frozen=True)
class Deallocated(Event):
    order_id: str
    sku: str
    quantity: int


@dataclass(frozen=True)
class OutOfStock(Event):
    sku: str


# ---------------------------------------------------------------------- the domain


@dataclass(frozen=True)
class OrderLine:
    order_id: str
    sku: str
    quantity: int


class Batch:
    def __init__(self, reference: str, sku: str, quantity: int) -> None:
        self.reference, self.sku, self.purchased = reference, sku, quantity
        self.allocations: list[OrderLine] = []

    @property
    def available(self) -> int:
        return self.purchased - sum(line.quantity for line in self.allocations)


class Product:
    """The aggregate: a plain object with its state and a list of new events."""

    def __init__(self, sku: str, batches: list[Batch] | None = None) -> None:
        self.sku = sku
        self.batches = batches or []
        self.events: list[object] = []

    def allocate(self, line: OrderLine) -> str | None:
        batch = next((b for b in self.batches if b.available >= line.quantity), None)
        if batch is None:
            self.events.append(OutOfStock(line.sku))
            return None
        batch.allocations.append(line)
        self.events.append(Allocated(line.order_id, line.sku, line.quantity, batch.reference))
        return batch.reference

    def change_batch_quantity(self, reference: str, quantity: int) -> None:
        batch = next(b for b in self.batches if b.reference == reference)
        batch.purchased = quantity
        while batch.available < 0:
            line = batch.allocations.pop()
            self.events.append(Deallocated(line.order_id, line.sku, line.quantity))


class InvalidSku(Exception):  # noqa: N818 - the book's name
    pass


# ---------------------------------------------------------------------- fakes


class FakeRepository(TrackingRepository[Product]):
    def __init__(self) -> None:
        super().__init__()
        self.products: dict[str, Product] = {}

    def _add(self, product: Product) -> None:
        self.products[product.sku] = product

    def _get(self, sku: str) -> Product | None:
        return self.products.get(sku)

    def for_batch(self, reference: str) -> Product:
        product = next(
            p for p in self.products.values() if any(b.reference == reference for b in p.batches)
        )
        self._remember(product)
        return product


class FakeUnitOfWork(StateUnitOfWork):
    def __init__(self) -> None:
        self.products = FakeRepository()
        self.commits = 0

    def _commit(self) -> None:
        self.commits += 1

    def _rollback(self) -> None:
        pass


@dataclass
class FakeNotifications:
    sent: list[tuple[str, str]] = field(default_factory=list)
    broken: bool = False

    def send(self, to: str, text: str) -> None:
        if self.broken:
            raise ConnectionError("the mail server is down")
        self.sent.append((to, text))


# ---------------------------------------------------------------------- handlers


def add_batch(command: CreateBatch, uow: FakeUnitOfWork) -> None:
    with uow:
        product = uow.products.get(command.sku)
        if product is None:
            product = Product(command.sku)
            uow.products.add(product)
        product.batches.append(Batch(command.reference, command.sku, command.quantity))
        uow.commit()


def allocate(command: Allocate, uow: FakeUnitOfWork) -> str | None:
    line = OrderLine(command.order_id, command.sku, command.quantity)
    with uow:
        product = uow.products.get(command.sku)
        if product is None:
            raise InvalidSku(f"Invalid sku {command.sku}")
        reference = product.allocate(line)
        uow.commit()
    return reference


def change_batch_quantity(command: ChangeBatchQuantity, uow: FakeUnitOfWork) -> None:
    with uow:
        product = uow.products.for_batch(command.reference)
        product.change_batch_quantity(command.reference, command.quantity)
        uow.commit()


def reallocate(event: Deallocated) -> Allocate:
    """An event handler answering with a command: the cascade takes it from here."""
    return Allocate(event.order_id, event.sku, event.quantity)


def send_out_of_stock_notification(event: OutOfStock, notifications: FakeNotifications) -> None:
    notifications.send("stock@made.com", f"Out of stock for {event.sku}")


allocations_view: list[tuple[str, str]] = []


def add_allocation_to_read_model(event: Allocated) -> None:
    allocations_view.append((event.order_id, event.batch_reference))


def bootstrap(uow: FakeUnitOfWork, notifications: FakeNotifications) -> EventBus:
    bus = EventBus(dependencies={"uow": uow, "notifications": notifications}, collect_from=[uow])
    bus.register(CreateBatch, add_batch)
    bus.register(Allocate, allocate)
    bus.register(ChangeBatchQuantity, change_batch_quantity)
    bus.register(Allocated, add_allocation_to_read_model)
    bus.register(Deallocated, reallocate)
    bus.register(OutOfStock, send_out_of_stock_notification)
    return bus


@pytest.fixture
def world() -> tuple[EventBus, FakeUnitOfWork, FakeNotifications]:
    allocations_view.clear()
    uow, notifications = FakeUnitOfWork(), FakeNotifications()
    return bootstrap(uow, notifications), uow, notifications


World = tuple[EventBus, FakeUnitOfWork, FakeNotifications]


# ---------------------------------------------------------------------- tests


def test_add_batch_for_a_new_product(world: World) -> None:
    bus, uow, _ = world
    bus.dispatch(CreateBatch("b1", "CRUNCHY-ARMCHAIR", 100))
    assert uow.products.get("CRUNCHY-ARMCHAIR") is not None
    assert uow.commits == 1


def test_allocate_returns_the_batch_reference_to_the_caller(world: World) -> None:
    bus, _, _ = world
    bus.dispatch(CreateBatch("batch1", "COMPLICATED-LAMP", 100))
    result = bus.dispatch(Allocate("o1", "COMPLICATED-LAMP", 10))
    assert result.returned == "batch1"
    assert result.calls[0].returned == "batch1"  # kept in the record too
    assert "returned 'batch1' (a str)" in result.describe() and result.ok


def test_allocate_errors_for_an_invalid_sku_reach_the_caller_as_themselves(world: World) -> None:
    bus, uow, _ = world
    bus.dispatch(CreateBatch("b1", "AREALSKU", 100))
    with pytest.raises(InvalidSku, match="Invalid sku NONEXISTENTSKU") as caught:
        bus.dispatch(Allocate("o1", "NONEXISTENTSKU", 10))
    assert type(caught.value) is InvalidSku  # not wrapped in an ExceptionGroup
    assert uow.commits == 1  # only the batch was committed


def test_events_recorded_on_the_aggregate_are_collected_and_handled(world: World) -> None:
    bus, _, _ = world
    bus.dispatch(CreateBatch("b1", "POPULAR-CURTAINS", 9))
    result = bus.dispatch(Allocate("o1", "POPULAR-CURTAINS", 2))
    assert [record.type_name for record in result.events] == ["Allocate", "Allocated"]
    assert result.events[1].caused_by == 1  # caused by the allocate call
    assert allocations_view == [("o1", "b1")]


def test_sends_an_email_on_out_of_stock(world: World) -> None:
    bus, _, notifications = world
    bus.dispatch(CreateBatch("b1", "POPULAR-CURTAINS", 9))
    result = bus.dispatch(Allocate("o1", "POPULAR-CURTAINS", 10))
    assert result.returned is None
    assert notifications.sent == [("stock@made.com", "Out of stock for POPULAR-CURTAINS")]


def test_an_event_handler_failing_is_isolated_and_the_command_still_answers(world: World) -> None:
    bus, uow, notifications = world
    notifications.broken = True
    bus.dispatch(CreateBatch("b1", "LAMP", 1))
    bus.dispatch(Allocate("o1", "LAMP", 1))
    result = bus.dispatch(Allocate("o2", "LAMP", 1))  # out of stock: the email fails
    assert result.returned is None and not result.ok
    (failure,) = result.failures
    assert failure.name == "send_out_of_stock_notification"
    assert isinstance(failure.error, ConnectionError)
    assert uow.commits == 3  # the command's work stands


def test_reallocates_through_the_cascade_when_a_batch_shrinks(world: World) -> None:
    bus, uow, _ = world
    bus.dispatch(CreateBatch("batch1", "INDIFFERENT-TABLE", 50))
    bus.dispatch(CreateBatch("batch2", "INDIFFERENT-TABLE", 50))
    bus.dispatch(Allocate("order1", "INDIFFERENT-TABLE", 20))
    bus.dispatch(Allocate("order2", "INDIFFERENT-TABLE", 20))
    product = uow.products.get("INDIFFERENT-TABLE")
    assert product is not None
    batch1, batch2 = product.batches
    assert (batch1.available, batch2.available) == (10, 50)

    result = bus.dispatch(ChangeBatchQuantity("batch1", 25))
    assert [r.type_name for r in result.events] == [
        "ChangeBatchQuantity",
        "Deallocated",
        "Allocate",
        "Allocated",
    ]
    assert [r.is_command for r in result.events] == [True, False, True, False]
    assert (batch1.available, batch2.available) == (5, 30)
    assert result.calls[2].returned == "batch2"  # the reallocation's answer is in the record


def test_a_command_takes_exactly_one_handler_and_an_unhandled_one_is_an_error(
    world: World,
) -> None:
    bus, _, _ = world
    with pytest.raises(ValueError, match="already has its handler, allocate"):
        bus.register(Allocate, change_batch_quantity)
    bus.register(Allocate, allocate)  # the same handler again (a re-run cell) is fine

    @dataclass(frozen=True)
    class Deallocate(Command):
        order_id: str

    with pytest.raises(UnhandledCommandError, match="no handler is registered for it"):
        bus.dispatch(Deallocate("o1"))
