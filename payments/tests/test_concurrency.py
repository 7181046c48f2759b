"""Races that only a real database with row locks can show: the same webhook delivered from several threads at
once, a double click opening PaymentIntents, and concurrent adds to one cart. PostgreSQL only."""

from __future__ import annotations

import threading
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.test import Client

from payments import checkout, intents, lifecycle, orders
from payments.errors import ShopError
from payments.models import Order, OrderLine, OrderStatus, Payment, PaymentKind, PaymentStatus, StripeEvent
from payments.tests.factories import make_cart
from payments.tests.stripe_fake import signed_event
from payments.tests.support import charges_at_stripe, require_postgres, run_together
from stripe_emulator import EmulatorError

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 8


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    require_postgres()


def draft_order(item: Any, browser: str = "concurrency-browser") -> Order:
    return make_cart(item, browser=browser)


def test_same_event_from_many_threads_is_processed_once(
    usd_item: Any, stripe_fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = draft_order(usd_item)
    payment = intents.open_intent(order).payment
    stripe_fake.emulator.confirm_payment_intent(payment.stripe_id)
    event = [e for e in stripe_fake.emulator.events["usd"] if e["type"] == "payment_intent.succeeded"][-1]
    stripe_fake.outbox.clear()
    payload, signature = signed_event("usd", event)

    committed: list[str] = []
    lock = threading.Lock()
    real = lifecycle.apply_payment_intent

    def counted(p: Payment, intent: Any, **kwargs: Any) -> Payment:
        result = real(p, intent, **kwargs)

        def done() -> None:
            with lock:
                committed.append(p.stripe_id)

        transaction.on_commit(done)  # dropped when the delivery's work is rolled back
        return result

    monkeypatch.setattr(lifecycle, "apply_payment_intent", counted)

    def deliver(i: int) -> tuple[int, str]:
        response = Client().post(
            "/webhooks/stripe/usd/",
            data=payload,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=signature,
        )
        return response.status_code, response.json()["status"]

    results = run_together(deliver)

    assert all(not isinstance(r, BaseException) for r in results), results
    assert [code for code, _ in results] == [200] * THREADS, results
    statuses = sorted(status for _, status in results)
    assert statuses == ["duplicate"] * (THREADS - 1) + ["processed"], results
    assert StripeEvent.objects.filter(event_id=event["id"]).count() == 1
    row = StripeEvent.objects.get(event_id=event["id"])
    assert (row.status, row.attempts) == (StripeEvent.Status.PROCESSED, 1)
    assert committed == [payment.stripe_id]
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert not order.needs_attention


def test_open_intent_from_many_threads_creates_one_payment_intent(usd_item: Any, stripe_fake: Any) -> None:
    order = draft_order(usd_item)

    def open_one(i: int) -> str:
        return intents.open_intent(Order.objects.get(pk=order.pk)).payment.stripe_id

    results = run_together(open_one)

    assert all(isinstance(r, str) for r in results), results
    assert len(set(results)) == 1
    creates = [r for r in stripe_fake.requests if r.method == "POST" and r.path == "/v1/payment_intents"]
    assert len(creates) == 1
    payments = Payment.objects.filter(order=order, kind=PaymentKind.PAYMENT_INTENT)
    assert payments.count() == 1
    assert payments.get().status == PaymentStatus.OPEN


def test_concurrent_adds_to_one_cart_lose_no_update(usd_item: Any) -> None:
    order = Order.objects.create(currency="usd", browser="cart-browser")
    request = SimpleNamespace(session={"browser": "cart-browser"}, user=AnonymousUser())

    def add(i: int) -> bool:
        orders.put_item(request, Order.objects.get(pk=order.pk), usd_item, 1, add=True)  # type: ignore[arg-type]
        return True

    results = run_together(add)

    unexpected = [r for r in results if r is not True and not isinstance(r, ShopError)]
    assert not unexpected, unexpected
    successes = sum(1 for r in results if r is True)
    assert successes >= 1
    line = OrderLine.objects.get(order=order, item=usd_item)
    assert line.quantity == successes


# ------------------------------------------------------------------------------------------------ paid once


def frozen_with_intent(item: Any, stripe_fake: Any) -> tuple[Order, str]:
    order = draft_order(item)
    opened = intents.open_intent(order)
    stripe_fake.deliver_webhooks()
    return order, opened.payment.stripe_id


def test_a_webhook_racing_the_reuse_of_an_intent_pays_once(usd_item: Any, stripe_fake: Any) -> None:
    # The shopper paid in one tab; the success webhook and a reload of the other tab (which reuses the open
    # PaymentIntent) arrive together. Either the reload sees Stripe's success and refuses, or it is served
    # first; never is a second object created, and the order ends paid once.
    for _ in range(5):
        order, pi = frozen_with_intent(usd_item, stripe_fake)
        stripe_fake.emulator.confirm_payment_intent(pi)

        def race(i: int, order: Order = order) -> Any:
            if i == 0:
                return stripe_fake.deliver_webhooks()
            try:
                return intents.open_intent(Order.objects.get(pk=order.pk)).payment.stripe_id
            except ShopError as exc:
                return exc.code

        results = run_together(race, n=2)
        assert not any(isinstance(r, BaseException) for r in results), results
        assert results[0] == [200] * len(results[0])
        assert results[1] in (pi, "order_not_payable"), results
        order.refresh_from_db()
        assert order.status == OrderStatus.PAID and not order.needs_attention
        assert list(order.payments.values_list("stripe_id", flat=True)) == [pi]


def test_two_tabs_paying_two_ways_at_once_charge_once(usd_item: Any, stripe_fake: Any) -> None:
    # Tab 1 opens the card form's PaymentIntent and confirms it; tab 2 opens Checkout and pays it, at the same
    # moment. Opening either closes the other under the order's lock; Stripe refuses the closed one.
    for _ in range(5):
        order = draft_order(usd_item)
        first = intents.open_intent(order).payment.stripe_id

        def tab(i: int, order: Order = order, first: str = first) -> str:
            try:
                if i == 0:
                    stripe_fake.emulator.confirm_payment_intent(first)
                    return "card"
                session = checkout.create_session(
                    Order.objects.get(pk=order.pk), success_url="http://shop/s", cancel_url="http://shop/c"
                )
                stripe_fake.emulator.pay_checkout_session(session.payment.stripe_id)
                return "checkout"
            except (ShopError, EmulatorError) as exc:
                return f"refused: {exc}"

        results = run_together(tab, n=2)
        assert not any(isinstance(r, BaseException) for r in results), results
        stripe_fake.deliver_webhooks()
        order.refresh_from_db()
        taken, refunded = charges_at_stripe(stripe_fake, order)
        assert order.status == OrderStatus.PAID, results
        assert taken - refunded == order.total == 2450, (results, taken, refunded)


def test_change_order_racing_a_payment_never_thaws_a_paid_order(usd_item: Any, stripe_fake: Any) -> None:
    for _ in range(5):
        order, pi = frozen_with_intent(usd_item, stripe_fake)

        def race(i: int, order: Order = order, pi: str = pi) -> str:
            try:
                if i == 0:
                    orders.change_order(Order.objects.get(pk=order.pk), may_change=True)
                    return "changed"
                stripe_fake.emulator.confirm_payment_intent(pi)
                return "paid"
            except (ShopError, EmulatorError) as exc:
                return f"refused: {type(exc).__name__}"

        results = run_together(race, n=2)
        assert not any(isinstance(r, BaseException) for r in results), results
        stripe_fake.deliver_webhooks()
        order.refresh_from_db()
        taken, _ = charges_at_stripe(stripe_fake, order)
        if results[0] == "changed":  # canceled first: Stripe refused the payment
            assert results[1].startswith("refused") and taken == 0
            assert order.status == OrderStatus.DRAFT
        else:  # paid first: the change was refused, the order is paid
            assert results[1] == "paid" and taken == 2450
            assert order.status == OrderStatus.PAID
