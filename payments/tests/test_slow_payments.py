"""Payments that take days: a bank debit stays processing, then succeeds or fails, through a PaymentIntent and
through Checkout (completed unpaid, then `checkout.session.async_payment_succeeded` or `_failed`), as the
emulator gives them the way Stripe does. The order is processing meanwhile (not payable a second time), paid
when the money arrived, and payable again when the debit failed."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from payments.models import Order, OrderStatus, Payment
from payments.tests.support import JSON

pytestmark = pytest.mark.django_db

SUCCEEDS, FAILS = "DE89370400440532013000", "DE62370400440532013001"


def order_of(answer: dict[str, Any]) -> Order:
    return Order.objects.get(public_id=answer["order_id"])


def open_intent(client: Client, item: Any) -> dict[str, Any]:
    client.get(item.get_absolute_url())
    response = client.post(f"/item/{item.pk}/intent", **JSON)
    assert response.status_code == 200, response.content
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.parametrize(
    ("iban", "final"), [(SUCCEEDS, OrderStatus.PAID), (FAILS, OrderStatus.AWAITING_PAYMENT)]
)
def test_a_bank_debit_through_a_payment_intent(client, usd_item, stripe_fake, iban: str, final: str) -> None:
    answer = open_intent(client, usd_item)
    intent_id = answer["client_secret"].split("_secret_")[0]
    stripe_fake.emulator.pay_by_bank_debit(intent_id, iban)
    stripe_fake.deliver_webhooks()
    order = order_of(answer)
    assert order.status == OrderStatus.PROCESSING
    refused = client.post(f"/order/intent/{order.public_id}", **JSON)  # not payable a second time meanwhile
    assert refused.status_code == 409, refused.content
    stripe_fake.emulator.settle_bank_debit(intent_id)
    assert set(stripe_fake.deliver_webhooks()) == {200}
    order.refresh_from_db()
    assert order.status == final
    payment = Payment.objects.get(stripe_id=intent_id)
    if final == OrderStatus.PAID:
        assert payment.amount_received == 2450
    else:  # the debit failed: the order can be paid again, by card
        retry = client.post(f"/order/intent/{order.public_id}", **JSON)
        assert retry.status_code == 200, retry.content
        stripe_fake.pay_intent(retry.json()["client_secret"].split("_secret_")[0])
        order.refresh_from_db()
        assert order.status == OrderStatus.PAID


def test_a_failed_debit_after_the_shopper_opened_another_order_never_collides_with_it(
    client, usd_item, stripe_fake
) -> None:
    """Found by the emulator's bank debits: the item page's Pay, clicked again while the first order was
    processing, opens a second order for the item; when the debit then failed, moving the first order back to
    payable broke "one open order per browser and item" and the webhook answered 500 on every delivery. The
    first order gave up being the browser's current one for good when it started processing: it is payable
    again (from its own page), and the item page's Pay stays with the second one."""
    answer = open_intent(client, usd_item)
    intent_id = answer["client_secret"].split("_secret_")[0]
    stripe_fake.emulator.pay_by_bank_debit(intent_id, FAILS)
    stripe_fake.deliver_webhooks()
    second = open_intent(client, usd_item)
    assert second["order_id"] != answer["order_id"]
    stripe_fake.emulator.settle_bank_debit(intent_id)
    assert set(stripe_fake.deliver_webhooks()) == {200}
    first = order_of(answer)
    assert (first.status, first.needs_attention, first.buy_now_key) == (
        OrderStatus.AWAITING_PAYMENT,
        False,
        None,
    )
    assert order_of(second).buy_now_key and not order_of(second).needs_attention
    assert open_intent(client, usd_item)["order_id"] == second["order_id"]


@pytest.mark.parametrize(
    ("iban", "final"), [(SUCCEEDS, OrderStatus.PAID), (FAILS, OrderStatus.AWAITING_PAYMENT)]
)
def test_a_bank_debit_through_checkout(client, usd_item, stripe_fake, iban: str, final: str) -> None:
    client.get(usd_item.get_absolute_url())
    session = client.get(f"/buy/{usd_item.pk}", **JSON).json()
    stripe_fake.emulator.pay_checkout_session_by_bank_debit(session["id"], iban)
    assert set(stripe_fake.deliver_webhooks()) == {200}
    payment = Payment.objects.get(stripe_id=session["id"])
    order = payment.order
    assert order.status == OrderStatus.PROCESSING  # completed, unpaid: the money is not there yet
    stripe_fake.emulator.settle_bank_debit(session["id"])
    assert set(stripe_fake.deliver_webhooks()) == {200}
    order.refresh_from_db()
    assert order.status == final


def test_an_older_paid_order_of_the_item_is_not_another_open_one(client, usd_item, stripe_fake) -> None:
    """An order paid earlier for the same item changes nothing for the failed debit's order."""
    earlier = open_intent(client, usd_item)
    stripe_fake.pay_intent(earlier["client_secret"].split("_secret_")[0])
    assert order_of(earlier).status == OrderStatus.PAID
    answer = open_intent(client, usd_item)
    assert answer["order_id"] != earlier["order_id"]
    intent_id = answer["client_secret"].split("_secret_")[0]
    stripe_fake.emulator.pay_by_bank_debit(intent_id, FAILS)
    stripe_fake.deliver_webhooks()
    stripe_fake.emulator.settle_bank_debit(intent_id)
    assert set(stripe_fake.deliver_webhooks()) == {200}
    order = order_of(answer)
    assert (order.status, order.needs_attention) == (OrderStatus.AWAITING_PAYMENT, False)


def test_a_failed_debit_of_a_cart_is_payable_again_beside_the_shoppers_new_cart(
    client, usd_item, stripe_fake
) -> None:
    """Only one-item orders are one per browser and item: a cart whose debit failed is payable again, whatever
    other cart the shopper started meanwhile."""
    from payments.tests.support import cart_with

    cart = cart_with(client, (usd_item, 1))
    answer = client.post(f"/order/intent/{cart.public_id}", **JSON).json()
    intent_id = answer["client_secret"].split("_secret_")[0]
    stripe_fake.emulator.pay_by_bank_debit(intent_id, FAILS)
    stripe_fake.deliver_webhooks()
    newer = Order.objects.create(currency="usd", browser=cart.browser)  # the shopper's next cart
    stripe_fake.emulator.settle_bank_debit(intent_id)
    assert set(stripe_fake.deliver_webhooks()) == {200}
    cart.refresh_from_db()
    assert (cart.status, cart.needs_attention) == (OrderStatus.AWAITING_PAYMENT, False)
    assert newer.status == OrderStatus.DRAFT
