"""`POST /webhooks/stripe/<currency>/`: signatures per account, events stored and processed once, and each
handler driven by the Stripe emulator's own events (or crafted ones, for what the emulator cannot produce)."""

from __future__ import annotations

import copy
import json
import time
import uuid
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from payments import lifecycle, refunds, webhooks
from payments.accounts import account_for
from payments.models import Order, OrderStatus, Payment, PaymentStatus, StripeEvent
from payments.tests.stripe_fake import signed_event
from payments.tests.support import WITHOUT_REFUND_EVENTS, make_event
from stripe_emulator import sign_payload

pytestmark = pytest.mark.django_db

USD_SECRET = settings.STRIPE_ACCOUNTS["usd"]["webhook_secret"]
EUR_SECRET = settings.STRIPE_ACCOUNTS["eur"]["webhook_secret"]


# ------------------------------------------------------------------------------------------------ helpers

_fake: Any = None


@pytest.fixture(autouse=True)
def _remember_fake(stripe_fake: Any) -> Any:
    global _fake
    _fake = stripe_fake
    yield
    _fake = None


def start_intent(client: Client, item: Any) -> tuple[Order, Payment]:
    """A one-item order with its open PaymentIntent, as the item page's Pay button makes it."""
    response = client.post(f"/item/{item.pk}/intent")
    assert response.status_code == 200, response.content
    order = Order.objects.get(public_id=response.json()["order_id"])
    _fake.deliver_webhooks()  # the `.created` events: nothing to do
    return order, order.payments.get()


def start_checkout(client: Client, item: Any) -> tuple[Order, Payment]:
    response = client.get(f"/buy/{item.pk}")
    assert response.status_code == 200, response.content
    order = Order.objects.get(public_id=response.json()["order_id"])
    _fake.deliver_webhooks()  # the `.created` events: nothing to do
    return order, order.payments.get()


def emitted(stripe_fake: Any, currency: str, event_type: str, object_id: str) -> dict[str, Any]:
    """The last event of `event_type` the emulator emitted for `object_id` (a snapshot, as Stripe sends it)."""
    found = [
        e
        for e in stripe_fake.emulator.events[currency]
        if e["type"] == event_type and e["data"]["object"]["id"] == object_id
    ]
    assert found, f"no {event_type} for {object_id}"
    return copy.deepcopy(found[-1])


def renumbered(event: dict[str, Any]) -> dict[str, Any]:
    """The same snapshot delivered as another event (a late or replayed event, not a duplicate delivery)."""
    event = copy.deepcopy(event)
    event["id"] = f"evt_test_{uuid.uuid4().hex[:20]}"
    return event


def post_raw(client: Client, currency: str, payload: bytes, signature: str | None) -> Any:
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature is not None else {}
    return client.post(
        f"/webhooks/stripe/{currency}/", data=payload, content_type="application/json", **headers
    )


def snapshot(order: Order) -> tuple[Any, ...]:
    order.refresh_from_db()
    payments = tuple(
        Payment.objects.filter(order=order)
        .order_by("id")
        .values_list(
            "status", "stripe_status", "amount_received", "amount_refunded", "last_error", "updated_at"
        )
    )
    return (
        order.status,
        order.paid_at,
        order.amount_refunded,
        order.needs_attention,
        order.updated_at,
        payments,
    )


# ------------------------------------------------------------------------------------------------ refused requests


def valid_payload() -> bytes:
    return json.dumps(make_event("customer.created", {"id": "cus_test", "object": "customer"})).encode()


def test_missing_signature_is_refused(client: Client) -> None:
    response = post_raw(client, "usd", valid_payload(), None)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_event"
    assert not StripeEvent.objects.exists()


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(lambda payload: sign_payload(payload, "whsec_forged_by_someone"), id="wrong-secret"),
        pytest.param(lambda payload: sign_payload(payload + b" ", USD_SECRET), id="other-body"),
        pytest.param(lambda payload: "t=1,v1=deadbeef", id="garbage-hmac"),
        pytest.param(lambda payload: "not a signature header", id="malformed-header"),
        pytest.param(
            lambda payload: sign_payload(payload, USD_SECRET).replace("v1=", "v0="), id="wrong-scheme"
        ),
    ],
)
def test_bad_signature_is_refused(client: Client, signature: Any) -> None:
    payload = valid_payload()
    response = post_raw(client, "usd", payload, signature(payload))
    assert response.status_code == 400
    assert not StripeEvent.objects.exists()


def test_event_signed_by_usd_account_is_refused_on_eur_endpoint(client: Client) -> None:
    payload = valid_payload()
    response = post_raw(client, "eur", payload, sign_payload(payload, USD_SECRET))
    assert response.status_code == 400
    assert not StripeEvent.objects.exists()
    # The same body signed by the EUR account is accepted there.
    assert post_raw(client, "eur", payload, sign_payload(payload, EUR_SECRET)).status_code == 200


def test_signature_older_than_tolerance_is_refused(client: Client) -> None:
    payload = valid_payload()
    old = int(time.time()) - 301 - 60
    response = post_raw(client, "usd", payload, sign_payload(payload, USD_SECRET, timestamp=old))
    assert response.status_code == 400
    assert not StripeEvent.objects.exists()
    # Within the tolerance it is fine.
    recent = int(time.time()) - 200
    assert (
        post_raw(client, "usd", payload, sign_payload(payload, USD_SECRET, timestamp=recent)).status_code
        == 200
    )


@pytest.mark.parametrize("currency", ["gbp", "xyz", "USDX", "u"])
def test_unknown_currency_is_refused(client: Client, currency: str) -> None:
    payload = valid_payload()
    response = post_raw(client, currency, payload, sign_payload(payload, USD_SECRET))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unknown_account"
    assert not StripeEvent.objects.exists()


@pytest.mark.parametrize(
    "payload",
    [
        b"not json",
        b"",
        b"\xff\xfe binary",
        b"[]",
        b"123",
        b"null",
        b'"evt_1"',
        b"{}",
        b'{"id": "evt_1"}',
        b'{"id": "evt_1", "type": "payment_intent.succeeded"}',
        b'{"id": "evt_1", "type": "payment_intent.succeeded", "data": "x"}',
        b'{"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": []}}',
        b'{"id": 1, "type": "payment_intent.succeeded", "data": {"object": {"id": "pi_1"}}}',
    ],
)
def test_signed_body_that_is_not_an_event_is_refused(client: Client, payload: bytes) -> None:
    response = post_raw(client, "usd", payload, sign_payload(payload, USD_SECRET))
    assert response.status_code == 400
    # Signed by Stripe but not an event: recorded as refused, never processed (a body that is not UTF-8
    # cannot even be checked against its signature: it is not recorded).
    statuses = set(StripeEvent.objects.values_list("status", flat=True))
    assert statuses == (set() if payload.startswith(b"\xff") else {StripeEvent.Status.INVALID})


def test_get_is_not_allowed(client: Client) -> None:
    assert client.get("/webhooks/stripe/usd/").status_code == 405
    assert not StripeEvent.objects.exists()


def test_webhook_is_csrf_exempt() -> None:
    payload = valid_payload()
    response = post_raw(Client(enforce_csrf_checks=True), "usd", payload, sign_payload(payload, USD_SECRET))
    assert response.status_code == 200
    assert StripeEvent.objects.count() == 1


# ------------------------------------------------------------------------------------------------ stored once


def test_event_is_stored_with_its_fields(client: Client, usd_item: Any, stripe_fake: Any) -> None:
    _, payment = start_intent(client, usd_item)
    stripe_fake.emulator.confirm_payment_intent(payment.stripe_id)
    event = emitted(stripe_fake, "usd", "payment_intent.succeeded", payment.stripe_id)
    stripe_fake.outbox.clear()

    payload, signature = signed_event("usd", event)
    response = post_raw(client, "usd", payload, signature)

    assert response.status_code == 200
    assert response.json() == {"received": True, "id": event["id"], "status": "processed"}
    row = StripeEvent.objects.get(event_id=event["id"])
    assert (row.account, row.event_id, row.type, row.object_id) == (
        "usd",
        event["id"],
        "payment_intent.succeeded",
        payment.stripe_id,
    )
    assert row.status == StripeEvent.Status.PROCESSED
    assert row.attempts == 1
    assert row.last_error == ""
    # Stored as received, but for the client secret (core.redact).
    assert row.payload["data"]["object"]["client_secret"] == "[redacted]"
    assert row.payload == {
        **event,
        "data": {**event["data"], "object": {**event["data"]["object"], "client_secret": "[redacted]"}},
    }
    assert row.stripe_created is not None and int(row.stripe_created.timestamp()) == event["created"]
    assert row.processed_at is not None


def test_repeated_delivery_answers_duplicate_and_changes_nothing(
    client: Client, usd_item: Any, stripe_fake: Any
) -> None:
    order, payment = start_intent(client, usd_item)
    stripe_fake.emulator.confirm_payment_intent(payment.stripe_id)
    currency, payload, signature = stripe_fake.outbox[-1]
    assert json.loads(payload)["type"] == "payment_intent.succeeded"
    stripe_fake.deliver_webhooks()
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    events_before = list(StripeEvent.objects.values_list("event_id", "status", "attempts", "processed_at"))
    state_before = snapshot(order)

    for _ in range(3):
        response = post_raw(client, currency, payload, signature)
        assert response.status_code == 200
        assert response.json()["status"] == "duplicate"

    assert (
        list(StripeEvent.objects.values_list("event_id", "status", "attempts", "processed_at"))
        == events_before
    )
    assert snapshot(order) == state_before


def test_same_event_id_in_each_account_is_stored_per_account(post_event: Any) -> None:
    event = make_event("customer.created", {"id": "cus_1", "object": "customer"}, event_id="evt_same")
    assert post_event("usd", event).json()["status"] == "ignored"
    assert post_event("eur", event).json()["status"] == "ignored"
    assert post_event("eur", event).json()["status"] == "duplicate"
    assert sorted(StripeEvent.objects.values_list("account", flat=True)) == ["eur", "usd"]


def test_unknown_event_type_is_recorded_and_ignored(post_event: Any) -> None:
    event = make_event("customer.created", {"id": "cus_1", "object": "customer"})
    response = post_event("usd", event)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    row = StripeEvent.objects.get()
    assert (row.type, row.status, row.object_id) == ("customer.created", StripeEvent.Status.IGNORED, "cus_1")


@pytest.mark.parametrize(
    ("event_type", "obj"),
    [
        ("payment_intent.succeeded", {"id": "pi_unknown", "object": "payment_intent", "status": "succeeded"}),
        (
            "checkout.session.completed",
            {"id": "cs_unknown", "object": "checkout.session", "status": "complete"},
        ),
        ("charge.refunded", {"id": "ch_unknown", "object": "charge", "payment_intent": None}),
    ],
)
def test_event_for_an_object_naming_no_order_is_recorded_and_ignored(
    post_event: Any, event_type: str, obj: Any
) -> None:
    response = post_event("usd", make_event(event_type, obj))
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert StripeEvent.objects.get().status == StripeEvent.Status.IGNORED


@pytest.mark.parametrize(
    ("event_type", "obj"),
    [
        (
            "payment_intent.succeeded",
            {
                "id": "pi_unknown",
                "object": "payment_intent",
                "status": "succeeded",
                "metadata": {"order_id": "6f1d5c3e-2b7a-4f0e-9a51-3c8e2d4b7a10", "payment_ref": "x"},
            },
        ),
        (
            "checkout.session.completed",
            {
                "id": "cs_unknown",
                "object": "checkout.session",
                "status": "complete",
                "client_reference_id": "6f1d5c3e-2b7a-4f0e-9a51-3c8e2d4b7a10",
            },
        ),
        ("charge.refunded", {"id": "ch_unknown", "object": "charge", "payment_intent": "pi_unknown"}),
        ("refund.created", {"id": "re_unknown", "object": "refund", "payment_intent": "pi_unknown"}),
        ("charge.dispute.created", {"id": "du_unknown", "object": "dispute", "payment_intent": "pi_unknown"}),
    ],
)
def test_event_for_an_object_the_shop_does_not_know_yet_is_kept_pending(
    post_event: Any, event_type: str, obj: Any
) -> None:
    # Named order not in the database (yet), or money that moved through a PaymentIntent the shop has not
    # recorded: Stripe is answered 200 (the event is the shop's to keep), and the event waits to be tried again.
    response = post_event("usd", make_event(event_type, obj))
    assert response.status_code == 200
    assert response.json()["status"] == "pending"
    row = StripeEvent.objects.get()
    assert row.status == StripeEvent.Status.PENDING and row.processed_at is None and row.last_error
    # A redelivery is tried again (not a duplicate), and stays pending while nothing is known.
    assert post_event("usd", make_event(event_type, obj, row.event_id)).json()["status"] == "pending"
    assert StripeEvent.objects.get().attempts == 2


def test_handler_error_rolls_back_records_failure_and_redelivery_processes(
    client: Client, usd_item: Any, stripe_fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    order, payment = start_intent(client, usd_item)
    stripe_fake.emulator.confirm_payment_intent(payment.stripe_id)
    currency, payload, signature = stripe_fake.outbox[-1]
    stripe_fake.outbox.clear()
    before = snapshot(order)

    real = lifecycle.apply_payment_intent

    def half_done_then_broken(p: Payment, intent: Any, **kwargs: Any) -> Payment:
        real(p, intent, **kwargs)  # the order is marked paid ... then the handler fails
        raise RuntimeError("database hiccup in handler")

    monkeypatch.setattr(lifecycle, "apply_payment_intent", half_done_then_broken)
    response = post_raw(client, currency, payload, signature)

    assert response.status_code == 500
    assert response.json()["status"] == "failed"
    assert snapshot(order) == before  # rolled back: not paid
    row = StripeEvent.objects.get(event_id=json.loads(payload)["id"])
    assert row.status == StripeEvent.Status.FAILED
    assert row.attempts == 1
    assert "database hiccup in handler" in row.last_error
    assert row.processed_at is None

    # Still broken: the retry fails again and counts the attempt.
    assert post_raw(client, currency, payload, signature).status_code == 500
    row.refresh_from_db()
    assert (row.status, row.attempts) == (StripeEvent.Status.FAILED, 2)
    assert snapshot(order) == before

    monkeypatch.setattr(lifecycle, "apply_payment_intent", real)
    response = post_raw(client, currency, payload, signature)
    assert response.status_code == 200
    assert response.json()["status"] == "processed"
    row.refresh_from_db()
    assert (row.status, row.attempts, row.last_error) == (StripeEvent.Status.PROCESSED, 3, "")
    assert row.processed_at is not None
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    # And once processed, it is a duplicate.
    assert post_raw(client, currency, payload, signature).json()["status"] == "duplicate"


def test_handler_error_then_single_redelivery_counts_two_attempts(
    client: Client, usd_item: Any, stripe_fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    order, payment = start_intent(client, usd_item)
    stripe_fake.emulator.confirm_payment_intent(payment.stripe_id)

    def broken(acct: Any, obj: Any, event_type: str) -> bool:
        raise ValueError("boom")

    monkeypatch.setitem(webhooks.HANDLERS, "payment_intent.succeeded", broken)
    assert 500 in stripe_fake.deliver_webhooks()
    row = StripeEvent.objects.get(type="payment_intent.succeeded")
    assert (row.status, row.attempts, row.last_error) == (StripeEvent.Status.FAILED, 1, "ValueError: boom")
    order.refresh_from_db()
    assert order.status == OrderStatus.AWAITING_PAYMENT

    monkeypatch.undo()
    event = emitted(stripe_fake, "usd", "payment_intent.succeeded", payment.stripe_id)
    payload, signature = signed_event("usd", event)
    assert post_raw(client, "usd", payload, signature).status_code == 200
    row.refresh_from_db()
    assert (row.status, row.attempts) == (StripeEvent.Status.PROCESSED, 2)
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID


# ------------------------------------------------------------------------------------------------ PaymentIntent handlers


def test_payment_intent_succeeded_marks_order_paid(client: Client, usd_item: Any, stripe_fake: Any) -> None:
    order, payment = start_intent(client, usd_item)
    stripe_fake.emulator.confirm_payment_intent(payment.stripe_id)
    order.refresh_from_db()
    assert order.status == OrderStatus.AWAITING_PAYMENT  # Stripe said nothing yet: not paid
    assert stripe_fake.deliver_webhooks() == [200]

    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert order.paid_at is not None
    assert not order.needs_attention
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.stripe_status == "succeeded"
    assert payment.amount_received == payment.amount == 2450


def test_declined_card_keeps_the_order_payable_then_another_card_pays_same_intent(
    client: Client, usd_item: Any, stripe_fake: Any
) -> None:
    order, payment = start_intent(client, usd_item)
    stripe_fake.pay_intent(payment.stripe_id, "4000000000009995")

    order.refresh_from_db()
    payment.refresh_from_db()
    assert (
        order.status == OrderStatus.AWAITING_PAYMENT
    )  # frozen: the shopper can pay again or change the order
    assert payment.last_error == "Your card has insufficient funds."
    assert payment.status == PaymentStatus.OPEN  # Stripe lets the same PaymentIntent be paid again
    assert (
        StripeEvent.objects.get(type="payment_intent.payment_failed").status == StripeEvent.Status.PROCESSED
    )

    stripe_fake.pay_intent(payment.stripe_id, "4242424242424242")
    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.last_error == ""
    assert order.payments.count() == 1


def test_3ds_authentication_completed_pays(client: Client, usd_item: Any, stripe_fake: Any) -> None:
    order, payment = start_intent(client, usd_item)
    stripe_fake.pay_intent(payment.stripe_id, "4000002500003155")
    order.refresh_from_db()
    payment.refresh_from_db()
    assert payment.stripe_status == "requires_action"
    assert payment.status == PaymentStatus.OPEN
    assert order.status == OrderStatus.AWAITING_PAYMENT

    stripe_fake.emulator.complete_authentication(payment.stripe_id, True)
    stripe_fake.deliver_webhooks()
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID


def test_3ds_authentication_failed_keeps_the_order_payable(
    client: Client, usd_item: Any, stripe_fake: Any
) -> None:
    order, payment = start_intent(client, usd_item)
    stripe_fake.pay_intent(payment.stripe_id, "4000002500003155")
    stripe_fake.emulator.complete_authentication(payment.stripe_id, False)
    stripe_fake.deliver_webhooks()

    order.refresh_from_db()
    payment.refresh_from_db()
    assert (
        order.status == OrderStatus.AWAITING_PAYMENT
    )  # frozen: the shopper can pay again or change the order
    assert payment.status == PaymentStatus.OPEN
    assert "unable to authenticate" in payment.last_error


def test_payment_intent_canceled_leaves_the_order_frozen_with_nothing_open(
    client: Client, usd_item: Any, stripe_fake: Any
) -> None:
    order, payment = start_intent(client, usd_item)
    account_for("usd").client.v1.payment_intents.cancel(payment.stripe_id)
    assert stripe_fake.deliver_webhooks() == [200]

    order.refresh_from_db()
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.CANCELED
    assert (
        order.status == OrderStatus.AWAITING_PAYMENT
    )  # frozen: the shopper can pay again or change the order


def test_payment_intent_processing_makes_order_processing(
    client: Client, usd_item: Any, post_event: Any
) -> None:
    order, payment = start_intent(client, usd_item)
    intent = {
        "id": payment.stripe_id,
        "object": "payment_intent",
        "status": "processing",
        "amount": 2450,
        "amount_received": 0,
        "currency": "usd",
        "last_payment_error": None,
    }
    assert post_event("usd", make_event("payment_intent.processing", intent)).status_code == 200

    order.refresh_from_db()
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PROCESSING
    assert order.status == OrderStatus.PROCESSING


# ------------------------------------------------------------------------------------------------ Checkout handlers


def test_checkout_session_completed_and_paid_marks_order_paid(
    client: Client, usd_item: Any, stripe_fake: Any
) -> None:
    order, payment = start_checkout(client, usd_item)
    stripe_fake.pay_session(payment.stripe_id)

    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.amount_received == 2450
    assert payment.payment_intent_id.startswith("pi_")
    # The PaymentIntent behind the session is not one of the shop's PaymentIntent payments: ignored.
    assert StripeEvent.objects.get(type="payment_intent.succeeded").status == StripeEvent.Status.IGNORED
    assert StripeEvent.objects.get(type="checkout.session.completed").status == StripeEvent.Status.PROCESSED


def unpaid_completed_session(stripe_fake: Any, cs_id: str) -> dict[str, Any]:
    session = stripe_fake.emulator.get(cs_id)
    session.update(status="complete", payment_status="unpaid", payment_intent=f"pi_delayed_{cs_id[-6:]}")
    return session


def test_checkout_completed_but_unpaid_is_pending(
    client: Client, usd_item: Any, stripe_fake: Any, post_event: Any
) -> None:
    order, payment = start_checkout(client, usd_item)
    session = unpaid_completed_session(stripe_fake, payment.stripe_id)
    assert post_event("usd", make_event("checkout.session.completed", session)).status_code == 200

    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == OrderStatus.PROCESSING
    assert payment.status == PaymentStatus.PROCESSING
    assert order.paid_at is None


def test_checkout_async_payment_succeeded_pays(
    client: Client, usd_item: Any, stripe_fake: Any, post_event: Any
) -> None:
    order, payment = start_checkout(client, usd_item)
    session = unpaid_completed_session(stripe_fake, payment.stripe_id)
    post_event("usd", make_event("checkout.session.completed", session))
    session["payment_status"] = "paid"
    assert (
        post_event("usd", make_event("checkout.session.async_payment_succeeded", session)).status_code == 200
    )

    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.amount_received == 2450


def test_checkout_async_payment_failed_makes_the_order_payable_again(
    client: Client, usd_item: Any, stripe_fake: Any, post_event: Any
) -> None:
    order, payment = start_checkout(client, usd_item)
    session = unpaid_completed_session(stripe_fake, payment.stripe_id)
    post_event("usd", make_event("checkout.session.completed", session))
    assert post_event("usd", make_event("checkout.session.async_payment_failed", session)).status_code == 200

    order.refresh_from_db()
    payment.refresh_from_db()
    assert (
        order.status == OrderStatus.AWAITING_PAYMENT
    )  # frozen: the shopper can pay again or change the order
    assert payment.status == PaymentStatus.FAILED
    assert payment.last_error


def test_checkout_session_expired_leaves_the_order_frozen_with_nothing_open(
    client: Client, usd_item: Any, stripe_fake: Any
) -> None:
    order, payment = start_checkout(client, usd_item)
    stripe_fake.emulator.expire_checkout_session(payment.stripe_id)
    assert stripe_fake.deliver_webhooks() == [200]

    order.refresh_from_db()
    payment.refresh_from_db()
    assert (
        order.status == OrderStatus.AWAITING_PAYMENT
    )  # frozen: the shopper can pay again or change the order
    assert payment.status == PaymentStatus.EXPIRED


# ------------------------------------------------------------------------------------------------ refunds


def test_charge_refunded_in_full(client: Client, usd_item: Any, stripe_fake: Any) -> None:
    stripe_fake.emulator.enabled_events = WITHOUT_REFUND_EVENTS  # `charge.refunded` alone tells of the refund
    order, payment = start_intent(client, usd_item)
    stripe_fake.pay_intent(payment.stripe_id)
    order.refresh_from_db()
    refunds.refund_order(order)
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID  # until Stripe's event arrives
    assert stripe_fake.deliver_webhooks() == [200]

    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED
    assert order.amount_refunded == payment.amount_refunded == 2450


def test_charge_refunded_partially_then_rest(client: Client, usd_item: Any, stripe_fake: Any) -> None:
    order, payment = start_intent(client, usd_item)
    stripe_fake.pay_intent(payment.stripe_id)
    order.refresh_from_db()
    refunds.refund_order(order, amount=450)
    stripe_fake.deliver_webhooks()
    order.refresh_from_db()
    assert order.status == OrderStatus.PARTIALLY_REFUNDED
    assert order.amount_refunded == 450
    partial_event = emitted(
        stripe_fake, "usd", "charge.refunded", stripe_fake.emulator.get(payment.stripe_id)["latest_charge"]
    )

    refunds.refund_order(order)
    stripe_fake.deliver_webhooks()
    order.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED
    assert order.amount_refunded == 2450

    # The older partial-refund snapshot arriving late does not undo the full refund.
    payload, signature = signed_event("usd", renumbered(partial_event))
    assert post_raw(client, "usd", payload, signature).status_code == 200
    order.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED
    assert order.amount_refunded == 2450


# ------------------------------------------------------------------------------------------------ out of order


def test_payment_failed_after_succeeded_leaves_order_paid(
    client: Client, usd_item: Any, stripe_fake: Any
) -> None:
    order, payment = start_intent(client, usd_item)
    stripe_fake.emulator.confirm_payment_intent(payment.stripe_id, "4000000000009995")
    stripe_fake.emulator.confirm_payment_intent(payment.stripe_id, "4242424242424242")
    failed, succeeded = stripe_fake.outbox[-2:]
    assert json.loads(failed[1])["type"] == "payment_intent.payment_failed"
    assert json.loads(succeeded[1])["type"] == "payment_intent.succeeded"
    stripe_fake.outbox[:] = [succeeded, failed]  # delivered in the wrong order
    assert stripe_fake.deliver_webhooks() == [200, 200]

    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.last_error == ""


@pytest.mark.parametrize(
    "late_type",
    [
        "payment_intent.payment_failed",
        "payment_intent.processing",
        "payment_intent.canceled",
        "payment_intent.requires_action",
    ],
)
def test_stale_intent_snapshot_after_succeeded_never_moves_back(
    client: Client, usd_item: Any, stripe_fake: Any, late_type: str
) -> None:
    order, payment = start_intent(client, usd_item)
    stripe_fake.pay_intent(payment.stripe_id, "4000000000009995")
    stripe_fake.pay_intent(payment.stripe_id, "4242424242424242")
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    failed = emitted(stripe_fake, "usd", "payment_intent.payment_failed", payment.stripe_id)
    failed["type"] = late_type
    failed["data"]["object"]["status"] = {
        "payment_intent.payment_failed": "requires_payment_method",
        "payment_intent.processing": "processing",
        "payment_intent.canceled": "canceled",
        "payment_intent.requires_action": "requires_action",
    }[late_type]
    paid_at = order.paid_at

    payload, signature = signed_event("usd", renumbered(failed))
    assert post_raw(client, "usd", payload, signature).status_code == 200

    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert order.paid_at == paid_at
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.amount_received == 2450


def test_expired_after_completed_leaves_order_paid(
    client: Client, usd_item: Any, stripe_fake: Any, post_event: Any
) -> None:
    order, payment = start_checkout(client, usd_item)
    stripe_fake.pay_session(payment.stripe_id)
    session = stripe_fake.emulator.get(payment.stripe_id)
    session.update(status="expired", payment_status="unpaid")
    post_event("usd", make_event("checkout.session.expired", session))
    post_event("usd", make_event("checkout.session.async_payment_failed", session))

    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert payment.status == PaymentStatus.SUCCEEDED


def test_unpaid_completed_after_paid_completed_leaves_order_paid(
    client: Client, usd_item: Any, stripe_fake: Any, post_event: Any
) -> None:
    order, payment = start_checkout(client, usd_item)
    session = unpaid_completed_session(stripe_fake, payment.stripe_id)
    paid = dict(session, payment_status="paid")
    post_event("usd", make_event("checkout.session.async_payment_succeeded", paid))
    post_event("usd", make_event("checkout.session.completed", session))  # the older event, delivered late

    order.refresh_from_db()
    assert order.status == OrderStatus.PAID


def test_refund_event_before_paid_event_keeps_amount_and_order_ends_refunded(
    client: Client, usd_item: Any, stripe_fake: Any
) -> None:
    stripe_fake.emulator.enabled_events = WITHOUT_REFUND_EVENTS  # `charge.refunded` alone tells of the refund
    order, payment = start_intent(client, usd_item)
    stripe_fake.emulator.confirm_payment_intent(payment.stripe_id)
    account_for("usd").client.v1.refunds.create(params={"payment_intent": payment.stripe_id})
    succeeded, refunded = stripe_fake.outbox[-2:]
    assert json.loads(refunded[1])["type"] == "charge.refunded"
    stripe_fake.outbox[:] = [refunded, succeeded]
    assert stripe_fake.deliver_webhooks() == [200, 200]

    order.refresh_from_db()
    payment.refresh_from_db()
    assert payment.amount_refunded == 2450
    assert order.amount_refunded == 2450
    assert order.status == OrderStatus.REFUNDED


# ------------------------------------------------------------------------------------------------ money checks


def test_amount_mismatch_leaves_order_unpaid_and_flagged(
    client: Client, usd_item: Any, stripe_fake: Any
) -> None:
    order, payment = start_intent(client, usd_item)
    stripe_fake.emulator.confirm_payment_intent(payment.stripe_id)
    event = emitted(stripe_fake, "usd", "payment_intent.succeeded", payment.stripe_id)
    stripe_fake.outbox.clear()
    event["data"]["object"]["amount_received"] = 1000

    payload, signature = signed_event("usd", renumbered(event))
    assert post_raw(client, "usd", payload, signature).status_code == 200

    order.refresh_from_db()
    assert order.status != OrderStatus.PAID
    assert order.paid_at is None
    assert order.needs_attention
    assert (
        "$10.00" in order.attention_note
        and "$24.50" in order.attention_note
        and "$14.50 short" in order.attention_note
    )


def test_currency_mismatch_leaves_order_unpaid_and_flagged(
    client: Client, usd_item: Any, stripe_fake: Any
) -> None:
    order, payment = start_intent(client, usd_item)
    stripe_fake.emulator.confirm_payment_intent(payment.stripe_id)
    event = emitted(stripe_fake, "usd", "payment_intent.succeeded", payment.stripe_id)
    stripe_fake.outbox.clear()
    event["data"]["object"]["currency"] = "eur"

    payload, signature = signed_event("usd", renumbered(event))
    assert post_raw(client, "usd", payload, signature).status_code == 200

    order.refresh_from_db()
    assert order.status != OrderStatus.PAID
    assert order.needs_attention
    assert "EUR" in order.attention_note


def test_checkout_amount_mismatch_leaves_order_unpaid_and_flagged(
    client: Client, usd_item: Any, stripe_fake: Any, post_event: Any
) -> None:
    order, payment = start_checkout(client, usd_item)
    session = stripe_fake.emulator.get(payment.stripe_id)
    session.update(status="complete", payment_status="paid", amount_total=1)
    post_event("usd", make_event("checkout.session.completed", session))

    order.refresh_from_db()
    assert order.status != OrderStatus.PAID
    assert order.needs_attention


# ------------------------------------------------------------------------------------------------ accounts


def test_eur_account_events_only_touch_eur_payments(
    client: Client, usd_item: Any, eur_item: Any, stripe_fake: Any
) -> None:
    usd_order, usd_payment = start_intent(client, usd_item)
    stripe_fake.emulator.confirm_payment_intent(usd_payment.stripe_id)
    usd_event = emitted(stripe_fake, "usd", "payment_intent.succeeded", usd_payment.stripe_id)
    stripe_fake.outbox.clear()
    before = snapshot(usd_order)

    # A USD PaymentIntent's event through the EUR endpoint, signed by the EUR account: not one of its payments.
    payload, signature = signed_event("eur", usd_event)
    response = post_raw(client, "eur", payload, signature)
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    assert snapshot(usd_order) == before
    assert StripeEvent.objects.get(event_id=usd_event["id"]).account == "eur"

    # The EUR account's own events pay EUR orders.
    eur_order, eur_payment = start_intent(client, eur_item)
    assert eur_payment.account == "eur"
    stripe_fake.pay_intent(eur_payment.stripe_id)
    eur_order.refresh_from_db()
    assert eur_order.status == OrderStatus.PAID
    assert snapshot(usd_order) == before
    assert (
        StripeEvent.objects.filter(account="eur", type="payment_intent.succeeded", status="processed").count()
        == 1
    )


def test_signed_event_with_a_nul_character_is_refused(post_event) -> None:
    event = {
        "id": "evt_\u0000",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": 1,
        "data": {"object": {"id": "pi_x", "object": "payment_intent"}},
    }
    response = post_event("usd", event)
    assert response.status_code == 400
    assert set(StripeEvent.objects.values_list("status", flat=True)) == {StripeEvent.Status.INVALID}


def test_signed_event_with_an_unpaired_surrogate_is_refused(post_event) -> None:
    event = {
        "id": "evt_surrogate",
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": 1,
        "data": {"object": {"id": "pi_x", "object": "payment_intent", "description": "\ud800"}},
    }
    response = post_event("usd", event)
    assert response.status_code == 400
    assert set(StripeEvent.objects.values_list("status", flat=True)) == {StripeEvent.Status.INVALID}


def test_signed_event_with_an_absurd_id_is_refused(post_event) -> None:
    event = {
        "id": "evt_" + "x" * 300,
        "object": "event",
        "type": "payment_intent.succeeded",
        "created": 1,
        "data": {"object": {"id": "pi_x", "object": "payment_intent"}},
    }
    assert post_event("usd", event).status_code == 400
    assert set(StripeEvent.objects.values_list("status", flat=True)) == {StripeEvent.Status.INVALID}


def test_refund_event_before_checkout_completed_is_applied_once_the_session_completes(
    client: Client, usd_item: Any, stripe_fake: Any
) -> None:
    session_id = client.get(f"/buy/{usd_item.pk}").json()["id"]
    stripe_fake.outbox.clear()
    stripe_fake.emulator.pay_checkout_session(session_id)
    intent_id = stripe_fake.emulator.get(session_id)["payment_intent"]
    account_for("usd").client.v1.refunds.create(params={"payment_intent": intent_id, "amount": 1000})
    refunded = [m for m in stripe_fake.outbox if json.loads(m[1])["type"] == "charge.refunded"]
    others = [m for m in stripe_fake.outbox if m not in refunded]
    stripe_fake.outbox[:] = refunded + others  # Stripe retried the completion: the refund arrives first
    assert set(stripe_fake.deliver_webhooks()) == {200}

    order = Order.objects.get()
    assert (order.status, order.amount_refunded) == (OrderStatus.PARTIALLY_REFUNDED, 1000)
    assert StripeEvent.objects.get(type="charge.refunded").status == StripeEvent.Status.PROCESSED
    client.post(  # a duplicate delivery of the refund changes nothing
        "/webhooks/stripe/usd/",
        data=refunded[0][1],
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=refunded[0][2],
    )
    order.refresh_from_db()
    assert order.amount_refunded == 1000


def test_webhook_events_lists_exactly_the_handled_types_for_the_dashboard() -> None:
    """What an operator enables on each account's endpoint (README, Deploy): every handled type, nothing else."""
    from io import StringIO

    from django.core.management import call_command

    lines, comma = StringIO(), StringIO()
    call_command("webhook_events", stdout=lines)
    call_command("webhook_events", "--comma", stdout=comma)
    listed = lines.getvalue().split()
    assert listed == sorted(webhooks.HANDLERS)
    assert {"payment_intent.succeeded", "checkout.session.completed", "charge.dispute.created"} <= set(listed)
    assert "payment_intent.created" not in listed
    assert comma.getvalue().strip() == ",".join(listed)
