"""Signed events whose fields are outside Stripe's limits (an amount of 10^30, a currency `usdx`, a 300-character
id, a deadline in the year 33658): each is a recorded 400 that changes nothing, never a 500 that Stripe would
retry for days. The same objects from Stripe's API are refused by the lifecycle with a 502-class error, and
nothing changes either (`payments.stripe_fields`)."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from payments import lifecycle, stripe_fields
from payments.models import Dispute, Order, OrderStatus, Payment, PaymentStatus, Refund, StripeEvent
from payments.tests.support import intent_id, make_event, pay_item
from payments.tests.test_webhook_input import post_raw

pytestmark = pytest.mark.django_db

HUGE = 10**30
LONG_ID = "x" * 300
FAR_FUTURE = 10**12  # the year 33658


def post(client: Client, event: dict[str, Any]) -> Any:
    return post_raw(client, json.dumps(event).encode())


def changed(obj: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `obj` with the field at dotted `path` set to `value` (`a.0.b`: item 0 of list a)."""
    copied = copy.deepcopy(obj)
    *parents, last = path.split(".")
    node: Any = copied
    for name in parents:
        if isinstance(node, list):
            node = node[int(name)]
        else:
            node[name] = node.get(name) or {}
            node = node[name]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return copied


def snapshot() -> tuple[Any, ...]:
    return (
        list(Order.objects.order_by("id").values_list("status", "amount_refunded", "dispute_status")),
        list(Payment.objects.order_by("id").values_list("status", "amount_received", "amount_refunded")),
        list(Refund.objects.values_list("id", "amount", "status")),
        list(Dispute.objects.values_list("id", "amount", "currency", "charge_id", "evidence_due_by")),
    )


def assert_refused(client: Client, event: dict[str, Any], field: str) -> None:
    before = snapshot()
    response = post(client, event)
    assert response.status_code == 400, response.content[:500]
    message = response.json()["error"]["message"]
    assert field in message, message
    row = StripeEvent.objects.get(event_id=event["id"])
    assert row.status == StripeEvent.Status.INVALID and row.last_error == message
    assert snapshot() == before
    again = post(client, event)  # Stripe's retry: refused again, on the same row
    assert again.status_code == 400
    assert StripeEvent.objects.get(event_id=event["id"]).attempts == 2


# ------------------------------------------------------------------------------------------------ PaymentIntents


@pytest.fixture
def open_intent(client: Client, usd_item: Any, stripe_fake: Any) -> dict[str, Any]:
    """The PaymentIntent a shopper's Pay opened, as Stripe would report it succeeded."""
    answer = client.post(f"/item/{usd_item.pk}/intent", HTTP_ACCEPT="application/json").json()
    stripe_fake.deliver_webhooks()
    intent = stripe_fake.emulator.get(intent_id(answer))
    return {**intent, "status": "succeeded", "amount_received": intent["amount"]}


INTENT_CASES = [
    ("amount_received", HUGE),
    ("amount_received", 100_000_000),
    ("amount_received", -1),
    ("amount_received", 2450.0),
    ("amount_received", "2450"),
    ("amount", 10**20),
    ("currency", "usdx"),
    ("currency", "US"),
    ("currency", 840),
    ("id", "pi_" + LONG_ID),
    ("status", "succeeded" * 10),
    ("created", FAR_FUTURE),
    ("receipt_email", "a" * 6000 + "@example.com"),
    ("last_payment_error", "card declined"),
    ("last_payment_error.message", ["declined"]),
]


@pytest.mark.parametrize(("path", "value"), INTENT_CASES, ids=[f"{p}={v!r}"[:40] for p, v in INTENT_CASES])
def test_a_payment_intent_event_out_of_range_is_a_recorded_400(
    client: Client, open_intent: dict[str, Any], path: str, value: Any
) -> None:
    event = make_event("payment_intent.succeeded", changed(open_intent, path, value))
    assert_refused(client, event, path)
    assert Payment.objects.get().status == PaymentStatus.OPEN


def test_the_largest_values_stripe_sends_are_taken(client: Client, open_intent: dict[str, Any]) -> None:
    """The limits are Stripe's, not tighter: a payment of 99,999,999 minor units is applied (and flagged, as
    it is not the order's total), a timestamp of 9999-12-31 is a timestamp."""
    intent = {**open_intent, "amount_received": 99_999_999, "created": 253402300799}
    response = post(client, make_event("payment_intent.succeeded", intent))
    assert response.status_code == 200 and response.json()["status"] == "processed"
    payment = Payment.objects.get()
    assert (payment.status, payment.amount_received) == (PaymentStatus.SUCCEEDED, 99_999_999)
    assert payment.order.needs_attention and payment.order.status != OrderStatus.PAID


# ------------------------------------------------------------------------------------------------ Checkout


@pytest.fixture
def open_session(client: Client, usd_item: Any, stripe_fake: Any) -> dict[str, Any]:
    answer = client.get(f"/buy/{usd_item.pk}", HTTP_ACCEPT="application/json").json()
    session = stripe_fake.emulator.get(answer["id"])
    return {**session, "status": "complete", "payment_status": "paid"}


SESSION_CASES = [
    ("amount_total", 10**20),
    ("currency", "usdx"),
    ("expires_at", FAR_FUTURE),
    ("payment_status", "paid_" * 10),
    ("payment_intent", "pi_" + LONG_ID),
    ("customer_details", "someone"),
]


@pytest.mark.parametrize(("path", "value"), SESSION_CASES, ids=[p for p, _ in SESSION_CASES])
def test_a_checkout_session_event_out_of_range_is_a_recorded_400(
    client: Client, open_session: dict[str, Any], path: str, value: Any
) -> None:
    event = make_event("checkout.session.completed", changed(open_session, path, value))
    assert_refused(client, event, path)
    assert Payment.objects.get().status == PaymentStatus.OPEN


# ------------------------------------------------------------------------------------------------ refunds, disputes


@pytest.fixture
def paid(client: Client, usd_item: Any, stripe_fake: Any) -> Payment:
    return pay_item(client, stripe_fake, usd_item)[1]


def a_refund(payment: Payment) -> dict[str, Any]:
    return {
        "id": "re_3OutOfRange000000000001",
        "object": "refund",
        "amount": 1000,
        "currency": "usd",
        "payment_intent": payment.payment_intent_id,
        "charge": "ch_3OutOfRange0000000000001",
        "status": "succeeded",
        "created": int(time.time()),
        "metadata": {},
    }


REFUND_CASES = [
    ("amount", 10**20),
    ("currency", "usdx"),
    ("created", FAR_FUTURE),
    ("id", "re_" + LONG_ID),
    ("status", "Succeeded!"),
    ("metadata.refund_ref", "r" * 600),
]


@pytest.mark.parametrize(("path", "value"), REFUND_CASES, ids=[p for p, _ in REFUND_CASES])
@pytest.mark.parametrize("event_type", ["refund.created", "charge.refund.updated"])
def test_a_refund_event_out_of_range_is_a_recorded_400(
    client: Client, paid: Payment, event_type: str, path: str, value: Any
) -> None:
    assert_refused(client, make_event(event_type, changed(a_refund(paid), path, value)), path)


def test_a_charge_refunded_beyond_stripes_maximum_is_a_recorded_400(client: Client, paid: Payment) -> None:
    charge = {
        "id": "ch_3OutOfRange0000000000001",
        "object": "charge",
        "amount": 2450,
        "amount_refunded": HUGE,
        "currency": "usd",
        "payment_intent": paid.payment_intent_id,
    }
    assert_refused(client, make_event("charge.refunded", charge), "amount_refunded")


@pytest.fixture
def dispute(paid: Payment, stripe_fake: Any) -> dict[str, Any]:
    """A dispute as Stripe would report it, not delivered yet."""
    opened = stripe_fake.emulator.open_dispute(paid.stripe_id)
    stripe_fake.outbox.clear()
    assert "payment_intent" in opened and "evidence_details" in opened
    return opened


DISPUTE_CASES: list[tuple[str, Any]] = [
    ("amount", 10**20),
    ("currency", "usdx"),
    ("charge", "ch_" + LONG_ID),
    ("id", "dp_" + LONG_ID),
    ("evidence_details.due_by", FAR_FUTURE),
    ("created", FAR_FUTURE),
    ("balance_transactions", [{"id": "txn_1", "amount": -(10**20), "currency": "usd"}]),
    ("balance_transactions", [{"id": "txn_1", "amount": -2450, "currency": "dollars"}]),
    ("reason", "r" * 100),
    ("is_charge_refundable", "yes"),
]


@pytest.mark.parametrize(("path", "value"), DISPUTE_CASES, ids=[f"{p}={v!r}"[:40] for p, v in DISPUTE_CASES])
@pytest.mark.parametrize("event_type", ["charge.dispute.created", "charge.dispute.funds_withdrawn"])
def test_a_dispute_event_out_of_range_is_a_recorded_400(
    client: Client, dispute: dict[str, Any], event_type: str, path: str, value: Any
) -> None:
    assert_refused(client, make_event(event_type, changed(dispute, path, value)), path.split(".")[0])
    assert not Dispute.objects.exists()


def test_a_well_formed_dispute_is_still_applied(client: Client, dispute: dict[str, Any]) -> None:
    response = post(client, make_event("charge.dispute.created", dispute))
    assert response.status_code == 200 and response.json()["status"] == "processed"
    assert Dispute.objects.get().stripe_id == dispute["id"]


# ------------------------------------------------------------------------------------------------ from the API


@pytest.mark.parametrize(
    ("apply", "field", "value"),
    [
        (lambda p, o: lifecycle.apply_payment_intent(p, o), "amount_received", HUGE),
        (lambda p, o: lifecycle.apply_payment_intent(p, o), "currency", "usdx"),
    ],
    ids=["amount", "currency"],
)
def test_an_api_answer_out_of_range_changes_nothing(
    open_intent: dict[str, Any], apply: Callable[[Payment, dict[str, Any]], Any], field: str, value: Any
) -> None:
    payment = Payment.objects.get()
    before = snapshot()
    with pytest.raises(stripe_fields.OutOfRange) as refused:
        apply(payment, {**open_intent, field: value})
    assert field in refused.value.reason and refused.value.status == 502
    assert snapshot() == before


# ------------------------------------------------------------------------------------------------ the limits


@pytest.mark.parametrize(
    ("kind", "fine", "out"),
    [
        (stripe_fields.amount, [0, 99_999_999], [-1, 100_000_000, True, 1.0, "1", None]),
        (stripe_fields.balance_amount, [-999_999_999_999, 999_999_999_999], [10**12, -(10**12), False]),
        (stripe_fields.unix_time, [0, 253402300799], [-1, 253402300800, 1.5, "1"]),
        (stripe_fields.currency, ["usd", "jpy"], ["USD", "us", "usdx", "u$d", 840, ""]),
        (stripe_fields.identifier, ["pi_1", "x" * 255, {"id": "ch_1"}], ["", "x" * 256, 5, {"id": 5}, {}]),
        (stripe_fields.word(20), ["open", "no_payment_required"], ["Open", "x" * 21, "a b", "", 1]),
        (stripe_fields.flag, [True, False], [0, "false"]),
    ],
    ids=["amount", "balance", "time", "currency", "id", "word", "flag"],
)
def test_each_kind_of_field_takes_stripes_range_and_nothing_else(
    kind: Callable[[Any], str], fine: list[Any], out: list[Any]
) -> None:
    for value in fine:
        assert kind(value) == "", value
    for value in out:
        assert kind(value), value


def test_a_missing_or_null_field_is_read_as_nothing() -> None:
    stripe_fields.check(stripe_fields.DISPUTE, {"id": "dp_1", "amount": None, "evidence_details": None})
    stripe_fields.check(stripe_fields.PAYMENT_INTENT, {})
    assert stripe_fields.timestamp(None) is None and stripe_fields.timestamp(FAR_FUTURE) is None
    assert stripe_fields.object_id({"id": "pi_1"}) == "pi_1" and stripe_fields.object_id(None) == ""


def test_the_readers_take_what_stripe_sends_either_way_and_nothing_else() -> None:
    """One reader per kind of field, used by every module (`lifecycle`, `disputes`, `matching`, `sweep`, ...)."""
    assert stripe_fields.integer(1200) == 1200 and stripe_fields.integer(-5) == -5
    assert (
        stripe_fields.integer(True) == 0
        and stripe_fields.integer("12") == 0
        and stripe_fields.integer(None) == 0
    )
    assert stripe_fields.object_id("ch_1") == "ch_1" and stripe_fields.object_id({"id": "ch_1"}) == "ch_1"
    assert stripe_fields.object_id(12) == "" and stripe_fields.object_id({"id": 12}) == ""
    intent = {"object": "payment_intent", "id": "pi_1", "payment_intent": "pi_other"}
    assert stripe_fields.payment_intent_id(intent) == "pi_1"
    assert stripe_fields.payment_intent_id({"object": "charge", "payment_intent": {"id": "pi_2"}}) == "pi_2"
    assert stripe_fields.payment_intent_id({"object": "checkout.session", "payment_intent": None}) == ""
    assert stripe_fields.timestamp(0) is not None and stripe_fields.timestamp(True) is None
