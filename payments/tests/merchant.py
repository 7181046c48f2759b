"""What the tests of the merchant's side (disputes, refunds, promotion codes, default taxes, receipts, revenue)
share: paid orders made through the shop's own endpoints and the emulator, more currencies, Stripe's events."""

from __future__ import annotations

import copy
import uuid
from decimal import Decimal
from typing import Any

import stripe
from django.test import Client
from djmoney.money import Money

from catalog.models import Item
from payments.accounts import account_for
from payments.models import Order, Payment

CARD_OK = "4242424242424242"
CARD_DISPUTED = "4000000000000259"
CARD_REFUND_PENDING = "4000000000007726"
CARD_REFUND_FAILS = "4000000000005126"
JSON = {"HTTP_ACCEPT": "application/json"}
# Every event type the shop's endpoints listen to (README): what a real endpoint would be sent.
SHOP_EVENTS = (
    "payment_intent.*",
    "checkout.session.*",
    "charge.refunded",
    "charge.refund.updated",
    "refund.*",
    "charge.dispute.*",
)


def item(name: str, price: str, currency: str = "USD") -> Item:
    return Item.objects.create(name=name, description=f"{name}.", price=Money(Decimal(price), currency))


def pay_item(
    web: Client, fake: Any, target: Item, *, card: str = CARD_OK, email: str = "", checkout: bool = False
) -> tuple[Order, Payment]:
    """Buy `target` now, as the item page does (the card form, or Checkout), and pay it at Stripe; the events
    are delivered."""
    if checkout:
        answer = web.get(f"/buy/{target.pk}", **JSON)
        assert answer.status_code == 200, answer.content
        payment = Payment.objects.get(stripe_id=answer.json()["id"])
        fake.emulator.pay_checkout_session(payment.stripe_id, card=card, email=email or None)
    else:
        data = {"receipt_email": email} if email else {}
        answer = web.post(f"/item/{target.pk}/intent", data, **JSON)
        assert answer.status_code == 200, answer.content
        payment = Payment.objects.get(stripe_id=answer.json()["client_secret"].split("_secret_")[0])
        fake.emulator.confirm_payment_intent(payment.stripe_id, card=card)
    fake.deliver_webhooks()
    payment.refresh_from_db()
    order = Order.objects.get(pk=payment.order_id)
    return order, payment


def pay_order(web: Client, fake: Any, order: Order, *, checkout: bool = False, email: str = "") -> Payment:
    if checkout:
        answer = web.get(f"/order/buy/{order.public_id}", **JSON)
        assert answer.status_code == 200, answer.content
        payment = Payment.objects.get(stripe_id=answer.json()["id"])
        fake.emulator.pay_checkout_session(payment.stripe_id, email=email or None)
    else:
        data = {"receipt_email": email} if email else {}
        answer = web.post(f"/order/intent/{order.public_id}", data, **JSON)
        assert answer.status_code == 200, answer.content
        payment = Payment.objects.get(stripe_id=answer.json()["client_secret"].split("_secret_")[0])
        fake.emulator.confirm_payment_intent(payment.stripe_id)
    fake.deliver_webhooks()
    order.refresh_from_db()
    payment.refresh_from_db()
    return payment


def stripe_client(currency: str) -> stripe.StripeClient:
    """The shop's client for `currency`'s account: what Stripe's dashboard would do, made with it."""
    return account_for(currency).client


def events_of(
    fake: Any, currency: str, event_type: str, object_id: str | None = None
) -> list[dict[str, Any]]:
    return [
        copy.deepcopy(e)
        for e in fake.emulator.events[currency]
        if e["type"] == event_type and (object_id is None or e["data"]["object"]["id"] == object_id)
    ]


def renumbered(event: dict[str, Any]) -> dict[str, Any]:
    event = copy.deepcopy(event)
    event["id"] = f"evt_test_{uuid.uuid4().hex[:20]}"
    return event
