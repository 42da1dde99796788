"""The checks of notebook 00: each fails on the notebook's stub and on another plausible wrong
answer, saying what to fix, and passes on the published solution."""

from __future__ import annotations

import pytest

from eda_lesson.book.exercises import Feedback
from eda_lesson.book.exercises import start_here as check
from eda_lesson.shop.events import OrderCreated

# ---------------------------------------------------------------------- exercise 1

OTHERS = ["PaymentRefunded", "ParcelShipped", "CustomerRegistered"]


def first_name_verdict(name: str) -> Feedback:
    return check.ex1([name, *OTHERS])


def test_ex1_commands_left_as_they_are_are_called_instructions() -> None:
    feedback = check.ex1(["PlaceOrder", "RefundPayment", "ShipParcel", "RegisterCustomer"])
    assert not feedback
    assert "'PlaceOrder' still reads as an instruction" in feedback.message
    assert "the command PlaceOrder itself" in feedback.message
    assert "OrderPlaced" in feedback.hint


@pytest.mark.parametrize(
    "names",
    [
        ["OrderPlaced", "PaymentRefunded", "ParcelShipped", "CustomerRegistered"],
        ["OrderCreated", "PaymentRefunded", "ParcelSent", "CustomerSignedUp"],
        ["OrderPlaced", "PaymentPaidBack", "ParcelDispatched", "CustomerJoined"],
        ["OrderCancelled", "PaymentRepaid", "ParcelHeld", "CustomerEnrolled"],
        ["OrderBuilt", "PaymentMade", "ParcelSent", "CustomerSignedUp"],
        ["OrderSplit", "PaymentReturned", "ParcelDelivered", "CustomerAdded"],
    ],
)
def test_ex1_regular_and_irregular_past_participles_pass(names: list[str]) -> None:
    feedback = check.ex1(names)
    assert feedback, feedback


@pytest.mark.parametrize(
    "word",
    [
        "Created",
        "Sent",
        "Paid",
        "Shipped",
        "Cancelled",
        "Placed",
        "Refunded",
        "Built",
        "Held",
        "Made",
        "Sold",
        "Written",
        "Succeeded",
        "Split",
        "Withdrawn",
        "Kept",
    ],
)
def test_past_participles_are_recognised(word: str) -> None:
    assert check.is_past_participle(word)


@pytest.mark.parametrize(
    "word", ["Create", "Send", "Ship", "Place", "Pay", "Build", "Hold", "Placing", "Speed", "Order"]
)
def test_base_forms_and_other_words_are_not_past_participles(word: str) -> None:
    assert not check.is_past_participle(word)


@pytest.mark.parametrize("name", ["CreateOrder", "SendOrder", "CancelOrder"])
def test_ex1_a_verb_before_the_thing_reads_as_an_instruction(name: str) -> None:
    feedback = first_name_verdict(name)
    assert not feedback
    assert f"{name!r} still reads as an instruction" in feedback.message
    assert "comes first, as a command's verb does" in feedback.message


@pytest.mark.parametrize(
    ("name", "hint"),
    [("OrderCreate", "OrderCreated"), ("OrderSend", "OrderSent"), ("OrderPlace", "OrderPlaced")],
)
def test_ex1_a_base_form_after_the_thing_is_not_past_tense(name: str, hint: str) -> None:
    feedback = first_name_verdict(name)
    assert not feedback
    assert f"{name!r} is not in the past tense" in feedback.message
    assert hint in feedback.hint


def test_ex1_a_regular_verb_without_ed_gets_the_suggested_name() -> None:
    feedback = check.ex1(["OrderPlaced", "PaymentRefund", "ParcelShipped", "CustomerRegistered"])
    assert not feedback
    assert "'PaymentRefund' is not in the past tense" in feedback.message
    assert "PaymentRefunded" in feedback.hint
    ship = check.ex1(["OrderPlaced", "PaymentRefunded", "ParcelShip", "CustomerRegistered"])
    assert "'ParcelShip' is not in the past tense" in ship.message


@pytest.mark.parametrize("name", ["OrderWasPlaced", "OrderHasBeenPlaced", "OrderIsCreated"])
def test_ex1_was_style_names_are_refused_as_sentences(name: str) -> None:
    feedback = first_name_verdict(name)
    assert not feedback
    assert f"{name!r} reads as a sentence" in feedback.message
    assert "without 'Was' or 'Has'" in feedback.message
    assert feedback.hint.endswith(": OrderPlaced") or feedback.hint.endswith(": OrderCreated")


def test_ex1_other_plausible_misses_each_get_their_own_message() -> None:
    assert "still going on" in first_name_verdict("OrderPlacing").message
    assert "ends in 'Event'" in first_name_verdict("OrderPlacedEvent").message
    assert "says the command failed" in first_name_verdict("OrderRejected").message
    assert "ends in an adverb" in first_name_verdict("OrderPlacedSuccessfully").message
    assert "does not say what happened to the order" in first_name_verdict("Order").message


def test_ex1_a_name_that_forgets_what_it_is_about_is_refused() -> None:
    feedback = check.ex1(["Placed", "PaymentRefunded", "ParcelShipped", "CustomerRegistered"])
    assert not feedback
    assert "should contain 'Order'" in feedback.message


def test_ex1_snake_case_capitals_and_wrong_lengths_are_refused() -> None:
    assert "CamelCase" in check.ex1(["order_placed", "b", "c", "d"]).message
    assert "CamelCase" in first_name_verdict("ORDERPLACED").message
    assert "a list of 4 names" in check.ex1(["OrderPlaced"]).message


# ---------------------------------------------------------------------- exercise 2


def test_ex2_the_stub_with_a_command_in_it_is_told_which_one() -> None:
    feedback = check.ex2({"OrderPlaced", "SendInvoice"})
    assert not feedback
    assert feedback.message.startswith("SendInvoice is a command")
    assert "past tense" in feedback.hint


def test_ex2_a_missing_event_is_named() -> None:
    feedback = check.ex2({"OrderPlaced", "ParcelDelivered"})
    assert not feedback
    assert feedback.message.startswith("PaymentDeclined is missing")


def test_ex2_a_misspelt_name_is_pointed_out() -> None:
    feedback = check.ex2({"OrderPlaced", "PaymentDeclined", "ParcelDelivred"})
    assert not feedback
    assert "'ParcelDelivred'" in feedback.message and "ParcelDelivered" in feedback.hint


def test_ex2_a_single_string_is_not_a_set_of_names() -> None:
    assert "should be a set of names" in check.ex2("OrderPlaced").message


def test_ex2_the_three_events_pass_in_any_collection() -> None:
    assert check.ex2({"OrderPlaced", "PaymentDeclined", "ParcelDelivered"})
    assert check.ex2(["ParcelDelivered", "OrderPlaced", "PaymentDeclined"])


# ---------------------------------------------------------------------- exercise 3


def stub_thank_customer(event: OrderCreated) -> None:
    pass


def thanks_without_names(event: OrderCreated) -> None:
    print("Thank you for your order!")


def returns_its_thanks(event: OrderCreated) -> str:
    return f"Thank you, {event.customer_id}! Order {event.order_id} is confirmed."


def takes_no_event() -> None:
    print("hello")


def thank_customer(event: OrderCreated) -> None:
    print(f"Thank you, {event.customer_id}! Order {event.order_id} is confirmed.")


def test_ex3_the_stub_prints_nothing() -> None:
    feedback = check.ex3(stub_thank_customer)
    assert not feedback
    assert feedback.message == "your handler printed nothing"
    assert "print(" in feedback.hint


def test_ex3_a_fixed_sentence_does_not_name_the_customer() -> None:
    feedback = check.ex3(thanks_without_names)
    assert not feedback
    assert "does not mention 'c-3'" in feedback.message
    assert "event.customer_id" in feedback.hint


def test_ex3_returning_text_instead_of_printing_it_fails_in_the_bus() -> None:
    feedback = check.ex3(returns_its_thanks)
    assert not feedback
    assert feedback.message.startswith("your handler failed: TypeError")
    assert "returns nothing" in feedback.hint


def test_ex3_a_function_without_a_parameter_is_refused_by_the_bus() -> None:
    feedback = check.ex3(takes_no_event)
    assert not feedback
    assert "the bus refused your handler" in feedback.message


def test_ex3_passing_the_result_of_a_call_is_explained() -> None:
    assert "pass your handler function itself" in check.ex3(None).message


def test_ex3_a_handler_that_thanks_the_customer_by_name_passes() -> None:
    feedback = check.ex3(thank_customer)
    assert feedback, feedback
    assert repr(feedback).startswith("Correct!")


def test_a_first_miss_nudges_and_only_a_second_miss_prints_the_hint() -> None:
    """A notebook saved after one run shows no hint (it often holds half the answer)."""
    from eda_lesson.book.exercises import exercise, expect

    @exercise("Exercise 99: a test of the feedback itself")
    def check(answer: int) -> str:
        expect(answer == 42, f"got {answer}", hint="the answer is forty-two")
        return "right"

    first, second = check(1), check(2)
    assert "Hint:" not in repr(first) and "Try again" in repr(first)
    assert first.hint == "the answer is forty-two" and not first.hint_shown
    assert repr(second).endswith("Hint: the answer is forty-two") and second.misses == 2
    assert repr(check(42)) == "Correct! Exercise 99: a test of the feedback itself: right"
