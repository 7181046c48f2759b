"""Property: whatever a shopper's tabs do, in any order, and whatever order Stripe's events arrive in, however
often, every order is paid once for exactly what it holds.

Hypothesis drives random sequences of cart edits, "Change order", payment objects opened both ways (for the cart
and as one-item "buy now" orders), confirmations with good, declined and 3-D Secure cards (also of objects the
shop has since closed), return pages, reconciliation and webhook deliveries in any order with duplicates. After
every step: no order has two objects Stripe would let be paid, and Stripe never holds more than one payment of
an order. After every sequence, once every event has arrived: each paid order was charged exactly its total in
its currency, net of refunds; no unpaid order was charged; net charged never exceeds a total.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from catalog.models import Item
from catalog.tests.factories import make_item
from payments import states
from payments.models import Order
from payments.tests.support import (
    CARD_3DS,
    CARD_NO_FUNDS,
    CARD_OK,
    Shopper,
    charges_at_stripe,
    payable_at_stripe,
)

pytestmark = pytest.mark.django_db

CARDS = st.sampled_from([CARD_OK, CARD_OK, CARD_NO_FUNDS, CARD_3DS])

# Which of the objects handed out a step acts on: mostly the newest, sometimes an older (closed) one.
WHICH = st.one_of(st.just(-1), st.just(-1), st.integers(0, 50))
PAYING = [
    st.tuples(st.just("pay_cart"), st.sampled_from(["intent", "checkout"])),
    st.tuples(st.just("buy_now"), st.integers(0, 2), st.sampled_from(["intent", "checkout"])),
    st.tuples(st.just("confirm"), WHICH, CARDS),
    st.tuples(st.just("pay_session"), WHICH, CARDS),
    st.tuples(st.just("deliver"), st.integers(0, 50), st.booleans()),
]
STEP = st.one_of(
    *PAYING,
    *PAYING,
    st.tuples(st.just("add"), st.integers(0, 2), st.integers(1, 3)),
    st.tuples(st.just("add"), st.integers(0, 2), st.integers(1, 3)),
    st.tuples(st.just("set"), st.integers(0, 2), st.integers(1, 3)),
    st.tuples(st.just("remove"), st.integers(0, 2)),
    st.tuples(st.just("change")),
    st.tuples(st.just("authenticate"), WHICH, st.booleans()),
    st.tuples(st.just("return_page"), WHICH),
    st.tuples(st.just("reconcile")),
)


class Run:
    """One shopper's browser against the shop and the emulator, with Stripe's events held back so that they
    can be delivered late, out of order and more than once."""

    def __init__(self, stripe_fake: Any, items: list[Item]) -> None:
        self.fake = stripe_fake
        self.items = items
        self.shopper = Shopper(Client())
        self.webhooks = Client()
        self.intents: list[str] = []  # every PaymentIntent this browser was handed (client secret known)
        self.sessions: list[str] = []
        self.orders: set[str] = set()
        self.delivered: list[tuple[str, bytes, str]] = []

    def cart(self) -> Order | None:
        public_id = self.shopper.web.session.get("cart_order_id")
        return Order.objects.filter(public_id=public_id).first() if public_id else None

    def opened(self, response: Any, way: str) -> None:
        if response.status_code != 200:
            assert response.status_code in (409, 422), response.content
            return
        body = response.json()
        self.orders.add(body["order_id"])
        if way == "intent":
            self.intents.append(body["client_secret"].split("_secret_")[0])
        else:
            self.sessions.append(body["id"])

    def post(self, event: tuple[str, bytes, str]) -> None:
        currency, payload, signature = event
        response = self.webhooks.post(
            f"/webhooks/stripe/{currency}/",
            data=payload,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=signature,
        )
        assert response.status_code == 200, response.content

    def step(self, action: tuple[Any, ...]) -> None:
        name, *args = action
        cart = self.cart()
        emulator = self.fake.emulator
        if name == "add":
            response = self.shopper.add(self.items[args[0]], args[1])
            assert response.status_code in (200, 201, 409), response.content
            if self.cart() is not None:
                self.orders.add(str(self.cart().public_id))
        elif name == "set" and cart is not None:
            assert self.shopper.put(cart, self.items[args[0]], args[1], mode="set").status_code in (200, 409)
        elif name == "remove" and cart is not None:
            assert self.shopper.remove(cart, self.items[args[0]]).status_code in (200, 409)
        elif name == "change" and cart is not None:
            assert self.shopper.change(cart).status_code in (200, 409)
        elif name == "pay_cart" and cart is not None:
            way = args[0]
            self.opened(self.shopper.intent(cart) if way == "intent" else self.shopper.checkout(cart), way)
        elif name == "buy_now":
            item, way = self.items[args[0]], args[1]
            self.opened(self.shopper.intent(item) if way == "intent" else self.shopper.checkout(item), way)
        elif name in ("confirm", "authenticate", "return_page") and self.intents:
            pi = self.intents[args[0] % len(self.intents)]  # -1: the newest
            if name == "return_page":
                order = emulator.get(pi)["metadata"]["order_id"]
                assert self.shopper.web.get(f"/order/{order}/return?payment_intent={pi}").status_code == 200
                return
            status = emulator.get(pi)["status"]
            if name == "confirm" and status in ("requires_payment_method", "requires_confirmation"):
                emulator.confirm_payment_intent(pi, args[1])
            elif name == "authenticate" and status == "requires_action":
                emulator.complete_authentication(pi, args[1])
        elif name == "pay_session" and self.sessions:
            session = self.sessions[args[0] % len(self.sessions)]  # -1: the newest
            if emulator.get(session)["status"] == "open":
                try:
                    emulator.pay_checkout_session(session, args[1])
                except Exception as exc:  # a declined card on the hosted page
                    assert "declined" in str(exc).lower() or "insufficient" in str(exc).lower(), exc
        elif name == "deliver" and (self.fake.outbox or self.delivered):
            if self.fake.outbox:
                event = self.fake.outbox.pop(args[0] % len(self.fake.outbox))
                self.delivered.append(event)
            else:
                event = self.delivered[args[0] % len(self.delivered)]  # Stripe delivers it once more
            self.post(event)
            if args[1] and self.delivered:
                self.post(self.delivered[-1])
        elif name == "reconcile":
            call_command(
                "reconcile_payments", "--older-than", "0", stdout=io.StringIO(), stderr=io.StringIO()
            )

    def drain(self, order_of_delivery: list[int]) -> None:
        for pick in order_of_delivery:
            if not self.fake.outbox:
                break
            self.post(self.fake.outbox.pop(pick % len(self.fake.outbox)))
        while self.fake.outbox:  # the rest, and what their processing made (closings, refunds)
            self.post(self.fake.outbox.pop(0))

    def my_orders(self) -> list[Order]:
        return list(Order.objects.filter(public_id__in=self.orders))


def check_always(run: Run) -> None:
    for order in run.my_orders():
        payable = payable_at_stripe(run.fake, order)
        assert len(payable) <= 1, f"order {order.public_id} has {payable} payable at once"
        _, refunded = charges_at_stripe(run.fake, order)
        succeeded = [
            o
            for o in run.fake.emulator.objects.values()
            if o.get("object") == "payment_intent"
            and o["metadata"].get("order_id") == str(order.public_id)
            and o["status"] == "succeeded"
        ]
        assert len(succeeded) - (1 if refunded else 0) <= 1, (
            f"order {order.public_id} paid {len(succeeded)} times"
        )


def check_settled(run: Run) -> None:
    for order in run.my_orders():
        taken, refunded = charges_at_stripe(run.fake, order)
        net = taken - refunded
        if states.is_paid(order):
            assert order.snapshot is not None
            assert net == order.total, f"order {order.public_id}: Stripe kept {net}, total {order.total}"
            currencies = {
                o["currency"]
                for o in run.fake.emulator.objects.values()
                if o.get("object") == "payment_intent"
                and o["metadata"].get("order_id") == str(order.public_id)
                and o["status"] == "succeeded"
            }
            assert currencies == {order.currency}
        else:
            assert net == 0, f"unpaid order {order.public_id} ({order.status}) was charged {net}"
            assert not order.needs_attention, order.attention_note


@pytest.fixture
def items() -> list[Item]:
    return [make_item("Beans", "24.50"), make_item("Kettle", "59.00"), make_item("Grinder", "89.90", "EUR")]


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(steps=st.lists(STEP, min_size=6, max_size=30), delivery=st.lists(st.integers(0, 50), max_size=30))
def test_every_order_is_paid_once_for_exactly_what_it_holds(
    stripe_fake: Any, items: list[Item], steps: list[tuple[Any, ...]], delivery: list[int]
) -> None:
    stripe_fake.outbox.clear()
    run = Run(stripe_fake, items)
    for action in steps:
        run.step(action)
        check_always(run)
    run.drain(delivery)
    check_always(run)
    check_settled(run)
    mine = run.my_orders()
    event(f"orders paid: {sum(states.is_paid(o) for o in mine)}")
    event(f"objects opened: {min(len(run.intents) + len(run.sessions), 5)}")
