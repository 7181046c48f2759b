"""What the payments tests share: a shopper driving the shop through its HTTP endpoints, as a browser tab would;
Stripe's side of a payment (confirming, paying, events, what its dashboard does) through the emulator; paid
orders for the merchant's side; running requests together in threads (PostgreSQL)."""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import stripe
from django.db import connection
from django.test import Client

from catalog.models import Item
from payments import events
from payments.accounts import account_for
from payments.models import Order, Payment

CARD_OK = "4242424242424242"
CARD_DECLINED = "4000000000000002"
CARD_NO_FUNDS = "4000000000009995"
CARD_3DS = "4000002500003155"


class Shopper:
    """One browser (its cookies); every call is what one of its tabs sends."""

    def __init__(self, client: Client | None = None) -> None:
        self.web = client or Client()

    # -------------------------------------------------------------------------------- cart

    def add(self, item: Item, quantity: int = 1) -> Any:
        """ "Add to order" on an item page."""
        return self.web.post(
            "/cart/add", {"item_id": item.pk, "quantity": quantity}, HTTP_ACCEPT="application/json"
        )

    def new_order(self, item: Item, quantity: int = 1) -> Any:
        return self.web.post(
            "/order/new/", {"item_id": item.pk, "quantity": quantity}, HTTP_ACCEPT="application/json"
        )

    def put(self, order: Order, item: Item, quantity: int = 1, mode: str = "add") -> Any:
        return self.web.post(
            f"/order/put/{order.public_id}",
            {"item_id": item.pk, "quantity": quantity, "mode": mode},
            HTTP_ACCEPT="application/json",
        )

    def remove(self, order: Order, item: Item) -> Any:
        return self.web.post(
            f"/order/remove/{order.public_id}", {"item_id": item.pk}, HTTP_ACCEPT="application/json"
        )

    def change(self, order: Order) -> Any:
        """ "Change order" on a frozen order's page."""
        return self.web.post(f"/order/{order.public_id}/change", HTTP_ACCEPT="application/json")

    def cart(self) -> Order:
        return Order.objects.get(public_id=self.web.session["cart_order_id"])

    # -------------------------------------------------------------------------------- paying

    def intent(self, target: Item | Order, expected_amount: int | None = None) -> Any:
        """The Pay button: the PaymentIntent for an item (buy now) or an order."""
        data = {} if expected_amount is None else {"expected_amount": expected_amount}
        url = f"/item/{target.pk}/intent" if isinstance(target, Item) else f"/order/intent/{target.public_id}"
        return self.web.post(url, data, HTTP_ACCEPT="application/json")

    def checkout(self, target: Item | Order) -> Any:
        """ "Pay on Stripe Checkout": the Checkout Session for an item (buy now) or an order."""
        url = f"/buy/{target.pk}" if isinstance(target, Item) else f"/order/buy/{target.public_id}"
        return self.web.get(url, HTTP_ACCEPT="application/json")

    def page(self, order: Order) -> str:
        response = self.web.get(f"/order/{order.public_id}")
        assert response.status_code == 200, response.status_code
        return response.content.decode()


def intent_id(answer: dict[str, Any]) -> str:
    return str(answer["client_secret"]).split("_secret_")[0]


def payment_of(answer: dict[str, Any]) -> Payment:
    stripe_id = answer.get("id") or intent_id(answer)
    return Payment.objects.get(stripe_id=stripe_id)


def make_event(event_type: str, obj: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or f"evt_test_{uuid.uuid4().hex[:20]}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "livemode": False,
        "type": event_type,
        "data": {"object": copy.deepcopy(obj)},
    }


def charges_at_stripe(stripe_fake: Any, order: Order) -> tuple[int, int]:
    """What Stripe (the emulator) took for `order` and gave back: (succeeded payments, refunds), in minor
    units, found by the order id Stripe holds in each PaymentIntent's metadata."""
    taken = refunded = 0
    for obj in list(stripe_fake.emulator.objects.values()):
        if obj.get("object") != "payment_intent" or obj["metadata"].get("order_id") != str(order.public_id):
            continue
        if obj["status"] == "succeeded":
            taken += obj["amount_received"]
            charge = stripe_fake.emulator.objects.get(obj.get("latest_charge") or "")
            refunded += charge["amount_refunded"] if charge else 0
    return taken, refunded


def payable_at_stripe(stripe_fake: Any, order: Order) -> list[str]:
    """The order's objects that Stripe would still let a shopper pay (open sessions, PaymentIntents waiting
    for a payment method or an action and not behind a session)."""
    found = []
    behind_sessions = set()
    for obj in list(stripe_fake.emulator.objects.values()):
        if obj.get("object") == "checkout.session" and obj.get("client_reference_id") == str(order.public_id):
            if obj.get("payment_intent"):
                behind_sessions.add(obj["payment_intent"])
            if obj["status"] == "open":
                found.append(obj["id"])
    for obj in list(stripe_fake.emulator.objects.values()):
        if (
            obj.get("object") == "payment_intent"
            and obj["metadata"].get("order_id") == str(order.public_id)
            and obj["id"] not in behind_sessions
            and obj["status"] in ("requires_payment_method", "requires_confirmation", "requires_action")
        ):
            found.append(obj["id"])
    return found


# ------------------------------------------------------------------------------------------------ after the sale

CARD_DISPUTED = "4000000000000259"
CARD_REFUND_PENDING = "4000000000007726"
CARD_REFUND_FAILS = "4000000000005126"
JSON = {"HTTP_ACCEPT": "application/json"}
# The fake Stripe's endpoint listens to every type the shop handles (`payments.events`), as a real endpoint
# should; this one is an endpoint set up without the refund events, which learns refunds from `charge.refunded`.
WITHOUT_REFUND_EVENTS = tuple(e for e in events.HANDLED if e not in events.REFUND)


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


# ------------------------------------------------------------------------------------------------ races


def require_postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.skip(
            f"needs PostgreSQL row locks and concurrent connections (database is {connection.vendor}); "
            "run with DATABASE_URL=postgres://..."
        )


def run_together(target: Callable[[int], Any], n: int = 8) -> list[Any]:
    """Run `target(i)` in `n` threads released at the same moment; each closes its DB connection."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = target(i)
        except BaseException as exc:  # reported by the test
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a thread is stuck (deadlock?)"
    return results


def cart_with(web: Client, *lines: tuple[Item, int]) -> Order:
    """A new cart of these lines, made through the cart endpoints."""
    first, quantity = lines[0]
    answer = web.post("/order/new/", {"item_id": first.pk, "quantity": quantity}, **JSON)
    order = Order.objects.get(public_id=answer.json()["id"])
    for product, count in lines[1:]:
        web.post(f"/order/put/{order.public_id}", {"item_id": product.pk, "quantity": count}, **JSON)
    return order
