"""The checks of notebook 04's exercises: each fails on the notebook's starting point and on
plausible wrong answers, each with a message of its own, and passes on the published solution."""

from __future__ import annotations

import functools
import re

from feedback import correct, not_yet

from eda_lesson import EventBus
from eda_lesson.book.exercises import commands_and_the_message_bus as check
from eda_lesson.book.exercises.commands_and_the_message_bus import Cards
from eda_lesson.patterns.aggregate import DomainError
from eda_lesson.shop.commands import CancelOrder, PlaceOrder
from eda_lesson.shop.events import OrderCreated
from eda_lesson.shop.services import Inventory, OrderBook, OutOfStockError

# ---------------------------------------------------------------------- exercise 1

KINDS = dict(check.EXERCISE1_NAMES)


def test_ex1_the_solution_passes_with_any_imperative_refund_name() -> None:
    for name in ("RefundOrder", "RefundPayment", "IssueRefund"):
        correct(check.ex1(KINDS, name))


def test_ex1_the_stub_is_told_which_names_have_no_kind() -> None:
    stub = {"ReserveStock": "command", "StockReserved": ""}
    not_yet(check.ex1(stub, "OrderRefunded"), "no entry for SendReceipt")


def test_ex1_an_empty_kind_asks_for_one_of_the_two_words() -> None:
    not_yet(check.ex1({**KINDS, "SendReceipt": ""}, "RefundOrder"), "write 'command' or 'event'")


def test_ex1_an_event_taken_for_a_command_is_explained_by_its_tense() -> None:
    not_yet(check.ex1({**KINDS, "ParcelLost": "command"}, "RefundOrder"), "past tense", "event")


def test_ex1_a_command_taken_for_an_event_is_explained_by_its_mood() -> None:
    not_yet(check.ex1({**KINDS, "SendReceipt": "event"}, "RefundOrder"), "imperative", "command")


def test_ex1_kinds_are_read_without_caring_for_case_or_spaces() -> None:
    correct(check.ex1({name: f" {kind.upper()} " for name, kind in KINDS.items()}, "RefundOrder"))


def test_ex1_keeping_the_bad_name_is_refused() -> None:
    not_yet(check.ex1(KINDS, "OrderRefunded"), "still the name of something that happened")


def test_ex1_a_past_tense_name_is_refused() -> None:
    not_yet(check.ex1(KINDS, "RefundedOrder"), "past tense")
    not_yet(check.ex1(KINDS, "PaymentRefunded"), "past tense")


def test_ex1_a_noun_is_refused() -> None:
    not_yet(check.ex1(KINDS, "OrderRefund"), "starts with a verb")


def test_ex1_a_command_suffix_is_refused() -> None:
    not_yet(check.ex1(KINDS, "RefundOrderCommand"), "drop the suffix")


def test_ex1_a_name_that_forgets_the_refund_is_refused() -> None:
    not_yet(check.ex1(KINDS, "CancelOrder"), "a refund")


def test_ex1_not_a_class_name_is_refused() -> None:
    not_yet(check.ex1(KINDS, "refund the order"), "class name")
    not_yet(check.ex1(["ReserveStock"], "RefundOrder"), "dict of name")  # type: ignore[arg-type]


ANY_VERB = (
    "RequestRefund",
    "DoRefund",
    "IssueRefund",
    "RefundOrder",
    "GrantRefund",
    "GiveRefund",
    "MakeRefund",
    "ProcessRefund",
    "ApproveRefund",
    "IssueFullRefund",
    "RefundCustomer",
    "ReimburseCustomer",
    "RepayCustomer",
    "PayBack",
    "ReturnPayment",
    "ProceedWithRefund",
    "BringRefund",
    "MarkOrderRefunded",
    "Refund",  # a verb on its own, like Cosmic Python's Allocate
)


def test_ex1_any_verb_in_the_imperative_passes_not_only_a_listed_one() -> None:
    for name in ANY_VERB:
        correct(check.ex1(KINDS, name))


def test_ex1_a_name_written_otherwise_than_capwords_is_refused_for_its_form() -> None:
    not_yet(check.ex1(KINDS, "refundOrder"), "small first letter", "CapWords")
    not_yet(check.ex1(KINDS, "refund_order"), "snake_case", "CapWords", "without underscores")
    not_yet(check.ex1(KINDS, "Refund_Order"), "without underscores (CapWords)")
    not_yet(check.ex1(KINDS, "REFUNDORDER"), "capitals", "constants")
    for name in ("refundOrder", "refund_order", "Refund_Order", "REFUNDORDER"):
        assert "a refund" not in check.ex1(KINDS, name).message  # the refund is there


def test_ex1_other_suffixes_that_say_what_it_is_are_refused() -> None:
    not_yet(check.ex1(KINDS, "RefundRequest"), "drop the suffix Request")
    not_yet(check.ex1(KINDS, "RefundOrderMessage"), "drop the suffix Message")


def test_ex1_a_past_participle_is_refused_first_last_or_irregular() -> None:
    not_yet(check.ex1(KINDS, "RefundIssued"), "past tense (Issued)")
    not_yet(check.ex1(KINDS, "RefundPaid"), "past tense (Paid)")


def test_ex1_an_ing_form_is_refused() -> None:
    not_yet(check.ex1(KINDS, "RefundingOrder"), "Refunding, an -ing form")
    not_yet(check.ex1(KINDS, "IssuingRefund"), "Issuing, an -ing form")


def test_ex1_a_statement_in_the_third_person_is_refused() -> None:
    not_yet(check.ex1(KINDS, "RefundsOrder"), "ending in -s", "plain form")


def test_ex1_a_modal_or_a_please_is_refused() -> None:
    not_yet(check.ex1(KINDS, "ShouldRefundOrder"), "starts with Should", "asks whether")
    not_yet(check.ex1(KINDS, "PleaseRefundOrder"), "drop the Please")


def test_ex1_an_adjective_or_article_before_the_refund_reads_as_a_noun() -> None:
    for name in ("FullRefund", "TheRefund", "CustomerRefund", "PaymentRefund"):
        not_yet(check.ex1(KINDS, name), "reads as a noun", "starts with a verb")


def test_ex1_returning_the_order_is_told_apart_from_a_refund() -> None:
    not_yet(check.ex1(KINDS, "ReturnOrder"), "goods coming back", "a refund")


def test_ex1_no_hint_hands_over_a_name_the_check_accepts() -> None:
    wrong = (
        "OrderRefunded",
        "refundOrder",
        "Refund_Order",
        "RefundOrderCommand",
        "RefundedOrder",
        "OrderRefund",
        "RefundingOrder",
        "CancelOrder",
        "ReturnOrder",
    )
    for name in wrong:
        hint = check.ex1(KINDS, name).hint
        for word in re.findall(r"[A-Z][a-z]+(?:[A-Z][a-z]+)+", hint):
            assert not check.ex1(KINDS, word).passed, f"the hint for {name} gives {word} away"
        assert "Refund" not in hint, hint


# ---------------------------------------------------------------------- exercise 2


def place_order(command: PlaceOrder, inventory: Inventory) -> str:
    inventory.reserve(command.order_id, command.items)
    return command.order_id


def bootstrap(inventory: Inventory) -> EventBus:
    bus = EventBus(dependencies={"inventory": inventory})
    bus.register(PlaceOrder, place_order)
    return bus


def test_ex2_the_solution_passes() -> None:
    correct(check.ex2(bootstrap))


def test_ex2_the_stub_has_no_handler_for_place_order() -> None:
    def stub(inventory: Inventory) -> EventBus:
        return EventBus()

    not_yet(check.ex2(stub), "no handler for PlaceOrder")


def test_ex2_a_handler_registered_for_the_event_is_named() -> None:
    def on_event(event: OrderCreated, inventory: Inventory) -> None: ...

    def wrong_type(inventory: Inventory) -> EventBus:
        bus = EventBus(dependencies={"inventory": inventory})
        bus.register(OrderCreated, on_event)
        return bus

    not_yet(check.ex2(wrong_type), "no handler for PlaceOrder", "handlers for OrderCreated")


def test_ex2_a_dependency_the_bus_does_not_provide_shows_the_bus_fix() -> None:
    def no_dependencies(inventory: Inventory) -> EventBus:
        bus = EventBus()
        bus.register(PlaceOrder, place_order)
        return bus

    not_yet(check.ex2(no_dependencies), "building the bus failed", "needs 'inventory'")


def test_ex2_a_parameter_named_otherwise_is_refused_by_the_bus() -> None:
    def place(command: PlaceOrder, stock: Inventory) -> str:
        stock.reserve(command.order_id, command.items)
        return command.order_id

    def misnamed(inventory: Inventory) -> EventBus:
        bus = EventBus(dependencies={"inventory": inventory})
        bus.register(PlaceOrder, place)
        return bus

    not_yet(check.ex2(misnamed), "needs 'stock'")


def test_ex2_an_inventory_of_its_own_is_caught() -> None:
    def own_inventory(inventory: Inventory) -> EventBus:
        bus = EventBus(dependencies={"inventory": Inventory(stock={"book": 9, "pen": 9})})
        bus.register(PlaceOrder, place_order)
        return bus

    not_yet(check.ex2(own_inventory), "did not reserve the items in the inventory the bus gave")


def test_ex2_taking_stock_by_hand_without_a_reservation_is_caught() -> None:
    def by_hand(command: PlaceOrder, inventory: Inventory) -> str:
        for item in command.items:
            inventory.stock[item.sku] -= item.quantity
        return command.order_id

    def wired(inventory: Inventory) -> EventBus:
        bus = EventBus(dependencies={"inventory": inventory})
        bus.register(PlaceOrder, by_hand)
        return bus

    not_yet(check.ex2(wired), "no reservation for o-5")


def test_ex2_no_answer_is_caught() -> None:
    def silent(command: PlaceOrder, inventory: Inventory) -> None:
        inventory.reserve(command.order_id, command.items)

    def wired(inventory: Inventory) -> EventBus:
        bus = EventBus(dependencies={"inventory": inventory})
        bus.register(PlaceOrder, silent)
        return bus

    not_yet(check.ex2(wired), "the caller got None back")


def test_ex2_swallowing_out_of_stock_is_caught() -> None:
    def swallowing(command: PlaceOrder, inventory: Inventory) -> str | None:
        try:
            inventory.reserve(command.order_id, command.items)
        except OutOfStockError:
            return None
        return command.order_id

    def wired(inventory: Inventory) -> EventBus:
        bus = EventBus(dependencies={"inventory": inventory})
        bus.register(PlaceOrder, swallowing)
        return bus

    not_yet(check.ex2(wired), "the caller was not told")


def test_ex2_not_returning_the_bus_is_caught() -> None:
    def forgets(inventory: Inventory) -> EventBus:
        EventBus(dependencies={"inventory": inventory}).register(PlaceOrder, place_order)
        return None  # type: ignore[return-value]

    not_yet(check.ex2(forgets), "return the EventBus")


def test_ex2_a_closure_over_the_inventory_is_refused_for_not_being_injected() -> None:
    def closing_over(inventory: Inventory) -> EventBus:
        def place(command: PlaceOrder) -> str:
            inventory.reserve(command.order_id, command.items)
            return command.order_id

        bus = EventBus()
        bus.register(PlaceOrder, place)
        return bus

    not_yet(
        check.ex2(closing_over),
        "the bus gives",
        "nothing",
        "closure",
        "pass the dependency by name",
        "a handler parameter inventory",
        "EventBus(dependencies=...)",
    )


def test_ex2_a_partial_or_a_default_argument_is_refused_the_same_way() -> None:
    def with_partial(inventory: Inventory) -> EventBus:
        bus = EventBus()
        bus.register(PlaceOrder, functools.partial(place_order, inventory=inventory))
        return bus

    def with_default(inventory: Inventory) -> EventBus:
        def place(command: PlaceOrder, stock: Inventory = inventory) -> str:
            stock.reserve(command.order_id, command.items)
            return command.order_id

        bus = EventBus()
        bus.register(PlaceOrder, place)
        return bus

    for bootstrapping in (with_partial, with_default):
        not_yet(check.ex2(bootstrapping), "nothing", "pass the dependency by name")


def test_ex2_a_dependency_that_is_not_the_inventory_is_named() -> None:
    def stock_only(inventory: Inventory) -> EventBus:
        bus = EventBus(dependencies={"inventory": inventory.stock})
        bus.register(PlaceOrder, place_order)
        return bus

    not_yet(check.ex2(stock_only), "inventory={'book': 3", "but no Inventory")


# ---------------------------------------------------------------------- exercise 3

CANCELLABLE = ("created", "paid")


def cancel_order(command: CancelOrder, orders: OrderBook) -> None:
    status = orders.status.get(command.order_id)
    if status not in CANCELLABLE:
        raise ValueError(f"order {command.order_id} cannot be cancelled: it is {status}")
    orders.status[command.order_id] = "cancelled"


def test_ex3_the_solution_passes() -> None:
    correct(check.ex3(cancel_order))


def test_ex3_a_domain_error_is_a_refusal_too() -> None:
    def with_domain_error(command: CancelOrder, orders: OrderBook) -> None:
        if orders.status.get(command.order_id) not in CANCELLABLE:
            raise DomainError(f"{command.order_id} cannot be cancelled")
        orders.status[command.order_id] = "cancelled"

    correct(check.ex3(with_domain_error))


def test_ex3_the_stub_cancels_a_shipped_order() -> None:
    def stub(command: CancelOrder, orders: OrderBook) -> None:
        orders.status[command.order_id] = "cancelled"

    not_yet(check.ex3(stub), "o-2 has shipped", "changed the order book", "did not raise")


def test_ex3_returning_false_instead_of_raising_is_caught() -> None:
    def returns_false(command: CancelOrder, orders: OrderBook) -> bool:
        if orders.status.get(command.order_id) not in CANCELLABLE:
            return False
        orders.status[command.order_id] = "cancelled"
        return True

    not_yet(check.ex3(returns_false), "dispatch did not raise", "refuse by raising")


def test_ex3_raising_after_the_change_is_caught() -> None:
    def too_late(command: CancelOrder, orders: OrderBook) -> None:
        status = orders.status.get(command.order_id)
        orders.status[command.order_id] = "cancelled"
        if status not in CANCELLABLE:
            raise ValueError(f"order {command.order_id} cannot be cancelled")

    not_yet(check.ex3(too_late), "only after changing", "decide first")


def test_ex3_refusing_paid_orders_is_caught() -> None:
    def only_created(command: CancelOrder, orders: OrderBook) -> None:
        if orders.status.get(command.order_id) != "created":
            raise ValueError(f"order {command.order_id} cannot be cancelled")
        orders.status[command.order_id] = "cancelled"

    not_yet(check.ex3(only_created), "cancelling the paid order o-1 raised")


def test_ex3_a_key_error_for_an_unknown_order_is_called_a_bug() -> None:
    def reads_blindly(command: CancelOrder, orders: OrderBook) -> None:
        if orders.status[command.order_id] == "shipped":
            raise ValueError(f"order {command.order_id} has shipped")
        orders.status[command.order_id] = "cancelled"

    not_yet(check.ex3(reads_blindly), "o-404 raised KeyError", "bug")


def test_ex3_only_refusing_shipped_lets_unknown_orders_in() -> None:
    def only_shipped(command: CancelOrder, orders: OrderBook) -> None:
        if orders.status.get(command.order_id) == "shipped":
            raise ValueError(f"order {command.order_id} has shipped")
        orders.status[command.order_id] = "cancelled"

    not_yet(check.ex3(only_shipped), "o-404 is not an order the shop knows", "changed")


def test_ex3_an_assert_is_refused() -> None:
    def asserts(command: CancelOrder, orders: OrderBook) -> None:
        assert orders.status.get(command.order_id) in CANCELLABLE, command.order_id
        orders.status[command.order_id] = "cancelled"

    not_yet(check.ex3(asserts), "python -O")


def test_ex3_a_refusal_that_names_no_order_is_caught() -> None:
    def vague(command: CancelOrder, orders: OrderBook) -> None:
        if orders.status.get(command.order_id) not in CANCELLABLE:
            raise ValueError("cannot cancel")
        orders.status[command.order_id] = "cancelled"

    not_yet(check.ex3(vague), "does not say which order", "name o-2")


def test_ex3_a_dependency_named_otherwise_shows_the_bus_fix() -> None:
    def misnamed(command: CancelOrder, book: OrderBook) -> None: ...

    not_yet(check.ex3(misnamed), "misnamed failed", "needs 'book'")


def test_ex3_cancelling_an_already_cancelled_order_again_is_refused() -> None:
    def shipped_or_unknown(command: CancelOrder, orders: OrderBook) -> None:
        if orders.status.get(command.order_id) in ("shipped", None):
            raise ValueError(f"order {command.order_id} cannot be cancelled")
        orders.status[command.order_id] = "cancelled"

    not_yet(
        check.ex3(shipped_or_unknown),
        "o-4 is already cancelled",
        "changed nothing and said nothing",
        "did not raise",
    )


def test_ex3_a_list_of_forbidden_statuses_misses_the_ones_it_does_not_name() -> None:
    def forbidden(command: CancelOrder, orders: OrderBook) -> None:
        if orders.status.get(command.order_id) in ("shipped", "cancelled", None):
            raise ValueError(f"order {command.order_id} cannot be cancelled")
        orders.status[command.order_id] = "cancelled"

    not_yet(
        check.ex3(forbidden),
        "o-5 is 'delivered'",
        "orders.status['o-5'] went from 'delivered' to 'cancelled'",
        "statuses that may be cancelled",
    )


def test_ex3_an_answer_instead_of_a_refusal_for_a_cancelled_order_is_named() -> None:
    def answers(command: CancelOrder, orders: OrderBook) -> str | None:
        status = orders.status.get(command.order_id)
        if status == "cancelled":
            return "already cancelled"
        if status not in CANCELLABLE:
            raise ValueError(f"order {command.order_id} cannot be cancelled")
        orders.status[command.order_id] = "cancelled"
        return None

    not_yet(check.ex3(answers), "o-4 is already cancelled", "returned 'already cancelled'")


def test_ex3_changing_another_field_on_a_refusal_is_caught() -> None:
    def forgets_customer(command: CancelOrder, orders: OrderBook) -> None:
        if orders.status.get(command.order_id) not in CANCELLABLE:
            orders.customer.pop(command.order_id, None)
            raise ValueError(f"order {command.order_id} cannot be cancelled")
        orders.status[command.order_id] = "cancelled"

    def zeroes_total(command: CancelOrder, orders: OrderBook) -> None:
        if orders.status.get(command.order_id) not in CANCELLABLE:
            orders.total[command.order_id] = 0.0
            raise ValueError(f"order {command.order_id} cannot be cancelled")
        orders.status[command.order_id] = "cancelled"

    not_yet(
        check.ex3(forgets_customer),
        "refused o-2, but only after changing",
        "orders.customer['o-2'] removed (it was 'c-2')",
    )
    not_yet(
        check.ex3(zeroes_total), "only after changing", "orders.total['o-2'] went from 20.0 to 0.0"
    )


def test_ex3_cancelling_changes_only_the_status() -> None:
    def forgets_customer(command: CancelOrder, orders: OrderBook) -> None:
        if orders.status.get(command.order_id) not in CANCELLABLE:
            raise ValueError(f"order {command.order_id} cannot be cancelled")
        orders.status[command.order_id] = "cancelled"
        del orders.customer[command.order_id]

    not_yet(
        check.ex3(forgets_customer),
        "cancelling o-1 should change only its status",
        "orders.customer['o-1'] removed",
    )


def test_ex3_removing_the_status_is_said_as_what_the_handler_did() -> None:
    def deletes(command: CancelOrder, orders: OrderBook) -> None:
        del orders.status[command.order_id]

    feedback = check.ex3(deletes)
    not_yet(feedback, "has no status for o-1", "removed the order's entry")
    assert "running your code raised" not in feedback.message


def test_ex3_replacing_a_whole_table_is_said_as_what_the_handler_did() -> None:
    def replaces(command: CancelOrder, orders: OrderBook) -> None:
        orders.status = {command.order_id: "cancelled"}

    def breaks(command: CancelOrder, orders: OrderBook) -> None:
        orders.status = "cancelled"  # type: ignore[assignment]

    not_yet(check.ex3(replaces), "orders.status['o-3'] removed", "changed")
    feedback = check.ex3(breaks)
    not_yet(feedback, "orders.status is 'cancelled' (a str)", "replaced the whole table")
    assert "running your code raised" not in feedback.message


# ---------------------------------------------------------------------- exercise 4


def place_all_or_nothing(command: PlaceOrder, inventory: Inventory, cards: Cards) -> str:
    cards.hold(command.order_id, command.customer_id, command.total)
    try:
        inventory.reserve(command.order_id, command.items)
    except OutOfStockError:
        cards.release(command.order_id)
        raise
    return command.order_id


def test_ex4_the_solution_passes() -> None:
    correct(check.ex4(place_all_or_nothing))


def test_ex4_checking_the_stock_first_passes_too() -> None:
    def stock_first(command: PlaceOrder, inventory: Inventory, cards: Cards) -> str:
        for item in command.items:
            if inventory.stock.get(item.sku, 0) < item.quantity:
                raise OutOfStockError(f"{command.order_id}: not enough {item.sku}")
        cards.hold(command.order_id, command.customer_id, command.total)
        inventory.reserve(command.order_id, command.items)
        return command.order_id

    correct(check.ex4(stock_first))


def test_ex4_the_stub_leaves_stock_reserved_when_the_card_declines() -> None:
    def stub(command: PlaceOrder, inventory: Inventory, cards: Cards) -> str:
        inventory.reserve(command.order_id, command.items)
        cards.hold(command.order_id, command.customer_id, command.total)
        return command.order_id

    not_yet(check.ex4(stub), "c-broke declined", "1 x book is still reserved for o-2")


def test_ex4_holding_first_without_releasing_leaves_a_hold() -> None:
    def hold_first(command: PlaceOrder, inventory: Inventory, cards: Cards) -> str:
        cards.hold(command.order_id, command.customer_id, command.total)
        inventory.reserve(command.order_id, command.items)
        return command.order_id

    not_yet(check.ex4(hold_first), "only 2 are in stock", "a hold of 30 stays on the card")


def test_ex4_releasing_without_raising_again_is_caught() -> None:
    def swallows(command: PlaceOrder, inventory: Inventory, cards: Cards) -> str | None:
        cards.hold(command.order_id, command.customer_id, command.total)
        try:
            inventory.reserve(command.order_id, command.items)
        except OutOfStockError:
            cards.release(command.order_id)
            return None
        return command.order_id

    not_yet(check.ex4(swallows), "dispatch did not raise", "re-raise")


def test_ex4_reserving_item_by_item_leaves_part_of_the_stock_taken() -> None:
    def item_by_item(command: PlaceOrder, inventory: Inventory, cards: Cards) -> str:
        cards.hold(command.order_id, command.customer_id, command.total)
        try:
            for n, item in enumerate(command.items):
                inventory.reserve(f"{command.order_id}/{n}", (item,))
        except OutOfStockError:
            cards.release(command.order_id)
            raise
        return command.order_id

    feedback = check.ex4(item_by_item)
    not_yet(feedback, "reservations are")  # o-1 is reserved under other keys


def test_ex4_a_handler_that_never_holds_is_caught() -> None:
    def no_hold(command: PlaceOrder, inventory: Inventory, cards: Cards) -> str:
        inventory.reserve(command.order_id, command.items)
        return command.order_id

    not_yet(check.ex4(no_hold), "expected both for o-1")


def test_ex4_wrapping_the_declined_card_in_another_error_is_caught() -> None:
    def wraps(command: PlaceOrder, inventory: Inventory, cards: Cards) -> str:
        try:
            cards.hold(command.order_id, command.customer_id, command.total)
        except check.PaymentDeclinedError:
            raise RuntimeError("payment problem") from None
        inventory.reserve(command.order_id, command.items)
        return command.order_id

    not_yet(check.ex4(wraps), "the caller got RuntimeError")


def test_ex4_undoing_the_reservation_with_release_passes_too() -> None:
    def reserve_first(command: PlaceOrder, inventory: Inventory, cards: Cards) -> str:
        inventory.reserve(command.order_id, command.items)
        try:
            cards.hold(command.order_id, command.customer_id, command.total)
        except check.PaymentDeclinedError:
            inventory.release(command.order_id)
            raise
        return command.order_id

    correct(check.ex4(reserve_first))


def test_ex4_raising_the_caught_error_by_name_keeps_it_and_passes() -> None:
    def by_name(command: PlaceOrder, inventory: Inventory, cards: Cards) -> str:
        cards.hold(command.order_id, command.customer_id, command.total)
        try:
            inventory.reserve(command.order_id, command.items)
        except OutOfStockError as error:
            cards.release(command.order_id)
            raise error from None
        return command.order_id

    correct(check.ex4(by_name))


def test_ex4_a_new_error_in_place_of_the_original_is_refused() -> None:
    def replaces(command: PlaceOrder, inventory: Inventory, cards: Cards) -> str:
        cards.hold(command.order_id, command.customer_id, command.total)
        try:
            inventory.reserve(command.order_id, command.items)
        except OutOfStockError:
            cards.release(command.order_id)
            raise ValueError("out of stock") from None
        return command.order_id

    not_yet(
        check.ex4(replaces),
        "the service raised OutOfStockError: order o-3 wants 3 x book, only 2 left",
        "the caller got ValueError: out of stock, a new error in its place",
        "the original error",
        "traceback",
    )


def test_ex4_a_copy_of_the_error_of_the_same_type_is_still_a_new_error() -> None:
    def copies(command: PlaceOrder, inventory: Inventory, cards: Cards) -> str:
        try:
            cards.hold(command.order_id, command.customer_id, command.total)
        except check.PaymentDeclinedError as error:
            raise check.PaymentDeclinedError(str(error)) from None
        inventory.reserve(command.order_id, command.items)
        return command.order_id

    not_yet(check.ex4(copies), "c-broke declined", "a new error in its place")


def test_ex4_refusing_before_the_service_with_another_type_is_named() -> None:
    def own_value_error(command: PlaceOrder, inventory: Inventory, cards: Cards) -> str:
        for item in command.items:
            if inventory.stock.get(item.sku, 0) < item.quantity:
                raise ValueError(f"{command.order_id}: not enough {item.sku}")
        cards.hold(command.order_id, command.customer_id, command.total)
        inventory.reserve(command.order_id, command.items)
        return command.order_id

    not_yet(
        check.ex4(own_value_error),
        "the caller got ValueError: o-3: not enough book",
        "the service refuses this with OutOfStockError",
    )
