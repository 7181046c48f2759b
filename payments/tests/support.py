"""What the payments tests share: a shopper driving the shop through its HTTP endpoints, as a browser tab would,
and Stripe's side of a payment (confirming, paying, events) through the emulator."""

from __future__ import annotations

import copy
import time
import uuid
from typing import Any

from django.test import Client

from catalog.models import Item
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
