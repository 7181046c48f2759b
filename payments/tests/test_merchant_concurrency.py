"""Races of the merchant's side that only PostgreSQL's row locks and concurrent connections can show, with real
threads: carts racing for a promotion code's last uses, confirmations under concurrent events, the same refund
form sent from several threads, dispute events delivered together. PostgreSQL only."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django.test import Client

from payments import checkout, followups, intents, promotions, refunds, sync
from payments.models import (
    Discount,
    Dispute,
    DisputeState,
    FollowUp,
    Order,
    OrderLine,
    OrderStatus,
    Payment,
    Refund,
)
from payments.tests.stripe_fake import signed_event
from payments.tests.support import JSON, events_of, pay_item, require_postgres, run_together
from payments.tests.worker import run_tasks

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 8


@pytest.fixture(autouse=True)
def _postgres_only() -> None:
    require_postgres()


def cart_with_code(item: Any, discount: Discount, browser: str) -> Order:
    order = Order.objects.create(currency=item.currency, browser=browser, discount=discount)
    OrderLine.objects.create(order=order, item=item, quantity=1, unit_price=item.price.amount)
    return order


# ------------------------------------------------------------------------------------------------ promotion codes


@pytest.mark.parametrize(("uses", "carts"), [(1, 2), (3, THREADS)])
def test_carts_racing_for_a_codes_last_uses_never_exceed_its_maximum(
    usd_item, stripe_fake, uses, carts
) -> None:
    code = Discount.objects.create(name="Few", percent_off=Decimal("50"), code="FEW", max_uses=uses)
    orders = [cart_with_code(usd_item, code, f"browser-{i}") for i in range(carts)]

    def pay(i: int) -> str:
        order = Order.objects.get(pk=orders[i].pk)
        if i % 2:
            return intents.open_intent(order).payment.stripe_id
        return checkout.create_session(
            order, success_url="http://t/ok", cancel_url="http://t/no"
        ).payment.stripe_id

    results = run_together(pay, carts)
    won = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if not isinstance(r, str)]
    assert len(won) == uses, results
    assert all(
        isinstance(r, promotions.PromotionCodeRefused) and r.code == "code_used_up" for r in refused
    ), results
    # The refused carts are untouched: still carts, nothing created at Stripe for them.
    losers = [o for o, r in zip(orders, results, strict=True) if not isinstance(r, str)]
    for order in losers:
        order.refresh_from_db()
        assert (order.status, order.version, order.payments.count()) == (OrderStatus.DRAFT, 0, 0)
    created = len(stripe_fake.calls("POST", "/v1/payment_intents")) + len(
        stripe_fake.calls("POST", "/v1/checkout/sessions")
    )
    assert created == uses

    for payment in Payment.objects.all():  # every winner pays
        if payment.kind == "payment_intent":
            stripe_fake.emulator.confirm_payment_intent(payment.stripe_id)
        else:
            stripe_fake.emulator.pay_checkout_session(payment.stripe_id)
    stripe_fake.deliver_webhooks()
    assert promotions.paid_uses(code) == uses
    assert Order.objects.filter(status=OrderStatus.PAID).count() == uses


def test_shoppers_racing_through_the_pay_button_for_the_last_use(usd_item, stripe_fake) -> None:
    code = Discount.objects.create(name="Last", percent_off=Decimal("50"), code="LAST", max_uses=1)
    webs = [Client() for _ in range(2)]
    orders = []
    for web in webs:
        order = Order.objects.get(
            public_id=web.post("/order/new/", {"item_id": usd_item.pk}, **JSON).json()["id"]
        )
        assert web.post(f"/order/{order.public_id}/promo", {"code": "last"}, **JSON).status_code == 200
        orders.append(order)

    def click(i: int) -> tuple[int, str]:
        response = webs[i].post(f"/order/intent/{orders[i].public_id}", {"expected_amount": 1225}, **JSON)
        return response.status_code, response.json().get("error", {}).get("message", "")

    results = sorted(run_together(click, 2))
    assert results == [(200, ""), (409, "The code LAST has been used up. Remove it to pay the full price.")]
    assert promotions.holders(code).count() == 1


# ------------------------------------------------------------------------------------------------ confirmations


def test_one_confirmation_under_concurrent_tidy_ups(usd_item, stripe_fake) -> None:
    order, _ = pay_item(Client(), stripe_fake, usd_item, email="ada@example.com")
    assert len(mail.outbox) == 1
    mail.outbox.clear()
    Order.objects.filter(pk=order.pk).update(confirmation_sent_at=None)  # as if none had been sent yet

    # Every thread queues the confirmation and runs the queue (as workers on other machines would).
    run_together(lambda i: followups.enqueue(FollowUp.Kind.CONFIRMATION, order_id=order.pk))
    run_tasks()
    assert len(mail.outbox) == 1


def test_one_confirmation_when_the_events_of_a_payment_arrive_together(usd_item, stripe_fake) -> None:
    """The session's completion, the async success and a stale duplicate, each from several threads."""
    web = Client()
    session_id = web.get(f"/buy/{usd_item.pk}", **JSON).json()["id"]
    stripe_fake.deliver_webhooks()
    stripe_fake.emulator.pay_checkout_session(session_id, email="grace@example.com")
    stripe_fake.outbox.clear()
    [completed] = events_of(stripe_fake, "usd", "checkout.session.completed")
    succeeded = {**completed, "id": completed["id"] + "x", "type": "checkout.session.async_payment_succeeded"}
    payloads = [signed_event("usd", e) for e in (completed, succeeded)]

    def deliver(i: int) -> int:
        payload, signature = payloads[i % 2]
        return (
            Client()
            .post(
                "/webhooks/stripe/usd/",
                data=payload,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=signature,
            )
            .status_code
        )

    results = run_together(deliver)
    assert set(results) <= {200, 503}, results
    sync.tidy_up(Order.objects.get().pk)
    assert Order.objects.get().status == OrderStatus.PAID
    assert [m.to for m in mail.outbox] == [["grace@example.com"]]


# ------------------------------------------------------------------------------------------------ refunds, disputes


def test_the_same_refund_form_sent_from_many_threads_is_one_refund(usd_item, stripe_fake) -> None:
    order, payment = pay_item(Client(), stripe_fake, usd_item)
    results = run_together(
        lambda i: refunds.staff_refund(Order.objects.get(pk=order.pk), 500, request_key="f" * 32)
    )
    assert all(isinstance(r, refunds.StaffRefund) for r in results), results
    assert len({r.refund.pk for r in results}) == 1 and Refund.objects.count() == 1
    charge = stripe_fake.emulator.get(stripe_fake.emulator.get(payment.stripe_id)["latest_charge"])
    assert charge["amount_refunded"] == 500


def test_refund_forms_racing_never_refund_more_than_was_paid(usd_item, stripe_fake) -> None:
    order, payment = pay_item(Client(), stripe_fake, usd_item)  # $24.50: four forms of $10 each, at once
    results = run_together(
        lambda i: refunds.staff_refund(Order.objects.get(pk=order.pk), 1000, request_key=f"{i:032x}"), 4
    )
    made = [r for r in results if isinstance(r, refunds.StaffRefund)]
    assert len(made) == 2, results
    charge = stripe_fake.emulator.get(stripe_fake.emulator.get(payment.stripe_id)["latest_charge"])
    assert charge["amount_refunded"] == 2000


def test_dispute_events_delivered_together_end_in_the_last_state(usd_item, stripe_fake) -> None:
    order, payment = pay_item(Client(), stripe_fake, usd_item)
    du = stripe_fake.emulator.open_dispute(payment.stripe_id)
    stripe_fake.emulator.close_dispute(du["id"], won=True)
    messages = list(stripe_fake.outbox)
    stripe_fake.outbox.clear()
    assert len(messages) == 4

    def deliver(i: int) -> int:
        currency, payload, signature = messages[i % 4]
        return (
            Client()
            .post(
                f"/webhooks/stripe/{currency}/",
                data=payload,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=signature,
            )
            .status_code
        )

    results = run_together(deliver)
    assert set(results) <= {200, 503}, results
    stripe_fake.outbox[:] = messages  # Stripe delivers again what got a 503
    stripe_fake.deliver_webhooks()
    dispute = Dispute.objects.get()
    assert (dispute.status, dispute.funds_withdrawn, dispute.funds_reinstated) == ("won", 2450, 2450)
    assert Order.objects.get(pk=order.pk).dispute_status == DisputeState.WON
