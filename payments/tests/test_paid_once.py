"""Every order is paid once, for exactly what it holds.

The seven ways a shopper or an attacker with two tabs could be charged the wrong amount or twice, each replayed
against the emulator: the order's snapshot is frozen while a payment object is open (a cart edit closes it at
Stripe first, and is refused when Stripe says it is processing or paid), at most one object is payable, a processing order is not payable, a new amount never meets an old idempotency key, a paid order is
read-only for staff too, the shopper is never stuck, and every path locks the order before its payments.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from catalog.models import Item
from catalog.tests.factories import make_item
from payments.models import Order, OrderStatus, Payment, PaymentKind, PaymentStatus
from payments.tests.support import (
    CARD_OK,
    Shopper,
    charges_at_stripe,
    intent_id,
    make_event,
    payable_at_stripe,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def one_dollar_item() -> Item:
    return make_item("Sticker", "1.00")


@pytest.fixture
def kettle() -> Item:
    return make_item("Pour-over kettle", "59.00")


@pytest.fixture
def tab() -> Shopper:
    return Shopper()


def cart_of(shopper: Shopper, item: Item, quantity: int = 1) -> Order:
    assert shopper.add(item, quantity).status_code in (200, 201)
    return shopper.cart()


# 1 ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("way", ["intent", "checkout"])
def test_a_cart_changes_under_an_open_payment_object_only_once_it_is_closed_at_stripe(
    tab: Shopper, one_dollar_item: Item, kettle: Item, stripe_fake: Any, way: str
) -> None:
    """A declined card or a Checkout left: the cart is edited as a cart. The open object is closed at Stripe
    first, so the old snapshot can no longer be paid."""
    cart = cart_of(tab, one_dollar_item)
    opened = (tab.intent(cart) if way == "intent" else tab.checkout(cart)).json()
    stripe_id = intent_id(opened) if way == "intent" else opened["id"]

    other_tab = Shopper(tab.web)  # same browser, another tab
    assert other_tab.put(cart, kettle, 99).status_code == 200
    assert stripe_fake.emulator.get(stripe_id)["status"] == ("canceled" if way == "intent" else "expired")
    with pytest.raises(Exception, match=r"canceled|expired"):
        if way == "intent":
            stripe_fake.emulator.confirm_payment_intent(stripe_id, CARD_OK)
        else:
            stripe_fake.emulator.pay_checkout_session(stripe_id, card=CARD_OK)
    cart.refresh_from_db()
    assert cart.status == OrderStatus.DRAFT
    assert sorted(cart.lines.values_list("item_id", "quantity")) == sorted(
        [(one_dollar_item.pk, 1), (kettle.pk, 99)]
    )
    assert charges_at_stripe(stripe_fake, cart) == (0, 0)

    stripe_fake.pay_intent(intent_id(tab.intent(cart).json()), CARD_OK)
    cart.refresh_from_db()
    assert cart.status == OrderStatus.PAID and cart.total == 100 + 99 * 5900
    assert charges_at_stripe(stripe_fake, cart) == (cart.total, 0)


@pytest.mark.parametrize("at_stripe", ["succeeded", "processing"])
def test_a_cart_endpoint_refuses_when_stripe_says_its_payment_went_through_or_is_processing(
    tab: Shopper, one_dollar_item: Item, kettle: Item, stripe_fake: Any, post_event: Any, at_stripe: str
) -> None:
    """Paid at Stripe before the shop heard (no webhook yet): closing the intent is refused and Stripe's state
    is applied. Processing (an async payment method, still settling): the shop heard. Either way 409, and the
    cart's contents do not change."""
    cart = cart_of(tab, one_dollar_item)
    pi = intent_id(tab.intent(cart).json())
    if at_stripe == "succeeded":
        stripe_fake.emulator.confirm_payment_intent(pi, CARD_OK)
    else:
        processing = stripe_fake.emulator.get(pi)
        processing["status"] = "processing"
        post_event("usd", make_event("payment_intent.processing", processing))
    stripe_fake.outbox.clear()
    refused = tab.put(cart, kettle, 1)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "order_not_editable"
    assert tab.remove(cart, one_dollar_item).status_code == 409
    cart.refresh_from_db()
    assert list(cart.lines.values_list("item_id", "quantity")) == [(one_dollar_item.pk, 1)]
    assert cart.status == (OrderStatus.PAID if at_stripe == "succeeded" else OrderStatus.PROCESSING)
    assert charges_at_stripe(stripe_fake, cart) == ((100, 0) if at_stripe == "succeeded" else (0, 0))
    # "Add to order" from an item page starts a new cart instead.
    assert tab.add(kettle).status_code == 201 and tab.cart() != cart


def test_an_emptied_usd_cart_refilled_in_eur_is_never_paid_by_its_old_intent(
    tab: Shopper, usd_item: Item, eur_item: Item, stripe_fake: Any
) -> None:
    cart = cart_of(tab, usd_item)
    opened = tab.intent(cart).json()
    assert tab.remove(cart, usd_item).status_code == 200  # the USD intent is canceled first
    assert tab.put(cart, eur_item).status_code == 200
    with pytest.raises(Exception, match="canceled"):
        stripe_fake.emulator.confirm_payment_intent(intent_id(opened), CARD_OK)
    cart.refresh_from_db()
    assert (cart.status, cart.currency) == (OrderStatus.DRAFT, "eur")
    assert charges_at_stripe(stripe_fake, cart) == (0, 0)


def test_an_object_of_an_earlier_snapshot_never_pays_the_changed_order(
    tab: Shopper, one_dollar_item: Item, kettle: Item, stripe_fake: Any
) -> None:
    cart = cart_of(tab, one_dollar_item)
    old = intent_id(tab.intent(cart).json())
    assert tab.change(cart).status_code == 200
    assert tab.put(cart, kettle, 99).status_code == 200

    # The old PaymentIntent was canceled at Stripe before the cart thawed: paying it is refused by Stripe.
    assert stripe_fake.emulator.get(old)["status"] == "canceled"
    with pytest.raises(Exception, match="canceled"):
        stripe_fake.emulator.confirm_payment_intent(old, CARD_OK)
    cart.refresh_from_db()
    assert cart.status == OrderStatus.DRAFT
    assert charges_at_stripe(stripe_fake, cart) == (0, 0)


def test_a_success_for_another_amount_than_the_snapshot_leaves_the_order_unpaid_and_says_why(
    tab: Shopper, one_dollar_item: Item, stripe_fake: Any, post_event: Any
) -> None:
    cart = cart_of(tab, one_dollar_item, 2)
    pi = intent_id(tab.intent(cart).json())
    stripe_fake.emulator.confirm_payment_intent(pi)
    stripe_fake.outbox.clear()
    succeeded = stripe_fake.emulator.get(pi)
    succeeded["amount_received"] = 100  # Stripe reports another amount than the snapshot's total
    post_event("usd", make_event("payment_intent.succeeded", succeeded))
    cart.refresh_from_db()
    assert cart.status == OrderStatus.AWAITING_PAYMENT and cart.needs_attention
    assert "Stripe took $1.00" in cart.attention_note and "$2.00" in cart.attention_note
    assert "$1.00 short" in cart.attention_note
    # A held order cannot be paid again until staff look at it.
    assert tab.intent(cart).status_code == 409 and tab.checkout(cart).status_code == 409


# 2 ------------------------------------------------------------------------------------------------------------


def test_opening_checkout_closes_the_card_forms_payment_intent(
    tab: Shopper, usd_item: Item, stripe_fake: Any
) -> None:
    card_form = intent_id(tab.intent(usd_item).json())  # tab 1: the item page's card form
    session = Shopper(tab.web).checkout(usd_item).json()  # tab 2: Pay on Stripe Checkout
    order = Order.objects.get(public_id=session["order_id"])
    assert stripe_fake.emulator.get(card_form)["status"] == "canceled"
    assert payable_at_stripe(stripe_fake, order) == [session["id"]]

    stripe_fake.pay_session(session["id"])
    with pytest.raises(Exception, match="canceled"):  # tab 1 pays with the card form: Stripe refuses
        stripe_fake.emulator.confirm_payment_intent(card_form, CARD_OK)
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert charges_at_stripe(stripe_fake, order) == (2450, 0)


def test_switching_between_the_card_form_and_checkout_leaves_only_the_newest_payable(
    tab: Shopper, usd_item: Item, stripe_fake: Any
) -> None:
    opened = []
    for way in ("intent", "checkout", "intent", "checkout", "intent"):
        answer = (tab.intent(usd_item) if way == "intent" else tab.checkout(usd_item)).json()
        opened.append(intent_id(answer) if way == "intent" else answer["id"])
        order = Order.objects.get(public_id=answer["order_id"])
        assert payable_at_stripe(stripe_fake, order) == [opened[-1]]
    assert len(set(opened)) == 5
    assert Payment.objects.filter(status=PaymentStatus.OPEN).count() == 1


def test_a_success_closes_the_orders_other_open_objects_at_once(
    tab: Shopper, usd_item: Item, stripe_fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from payments import sync

    session = tab.checkout(usd_item).json()
    with monkeypatch.context() as patched:  # a state no path makes, to show the webhook closes what is left
        patched.setattr(sync, "close_others", lambda order, keep=None: None)
        pi = intent_id(tab.intent(usd_item).json())
    stripe_fake.pay_intent(pi)
    assert stripe_fake.emulator.get(session["id"])["status"] == "expired"
    assert Payment.objects.get(stripe_id=session["id"]).status == PaymentStatus.EXPIRED


def test_a_second_success_inside_stripes_window_is_refunded_automatically(
    tab: Shopper, usd_item: Item, stripe_fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from payments import sync

    session = tab.checkout(usd_item).json()
    with monkeypatch.context() as patched:  # both objects payable: as if both were paid at the same instant
        patched.setattr(sync, "close_others", lambda order, keep=None: None)
        pi = intent_id(tab.intent(usd_item).json())
    stripe_fake.emulator.confirm_payment_intent(pi, CARD_OK)
    stripe_fake.emulator.pay_checkout_session(session["id"], CARD_OK)
    stripe_fake.deliver_webhooks()

    order = Order.objects.get(public_id=session["order_id"])
    assert order.status == OrderStatus.PAID and order.needs_attention
    assert "Paid twice" in order.attention_note and "refund" in order.attention_note
    [refund] = order.refunds.all()
    assert (refund.reason, refund.amount, refund.status) == ("duplicate", 2450, "succeeded")
    assert refund.idempotency_key.startswith("refund-duplicate:")
    assert charges_at_stripe(stripe_fake, order) == (4900, 2450)
    assert order.amount_refunded == 2450
    # The refund's own events change nothing more, and a repeated event refunds nothing twice.
    stripe_fake.deliver_webhooks()
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID and order.refunds.count() == 1
    assert len(stripe_fake.calls("POST", "/v1/refunds")) == 1


# 3 ------------------------------------------------------------------------------------------------------------


def test_a_processing_order_is_not_payable(
    tab: Shopper, usd_item: Item, stripe_fake: Any, post_event: Any
) -> None:
    cart = cart_of(tab, usd_item)
    pi = intent_id(tab.intent(cart).json())
    processing = stripe_fake.emulator.get(pi)
    processing["status"] = "processing"
    post_event("usd", make_event("payment_intent.processing", processing))
    cart.refresh_from_db()
    assert cart.status == OrderStatus.PROCESSING
    calls = len(stripe_fake.requests)

    for response in (tab.intent(cart), tab.checkout(cart), tab.change(cart), tab.put(cart, usd_item)):
        assert response.status_code == 409, response.content
    assert "being processed" in tab.intent(cart).json()["error"]["message"]
    assert len(stripe_fake.requests) == calls
    page = tab.page(cart)
    assert 'id="order-processing"' in page and 'id="payment-form"' not in page


# 4 ------------------------------------------------------------------------------------------------------------


def test_each_new_amount_gets_its_own_payment_intent_and_idempotency_key(
    tab: Shopper, usd_item: Item, stripe_fake: Any
) -> None:
    cart = cart_of(tab, usd_item)
    answers = []
    for quantity in (1, 3, 1, 3):
        if cart.lines.exists():
            tab.change(cart)
        assert tab.put(cart, usd_item, quantity, mode="set").status_code == 200
        answers.append(tab.intent(cart).json())
    assert [a["amount"] for a in answers] == [2450, 7350, 2450, 7350]
    last = stripe_fake.emulator.get(intent_id(answers[-1]))
    assert (last["amount"], last["status"]) == (7350, "requires_payment_method")
    creates = [c for c in stripe_fake.calls("POST", "/v1/payment_intents") if c.path == "/v1/payment_intents"]
    assert len(creates) == 4 and len({c.idempotency_key for c in creates}) == 4
    assert not [
        c
        for c in stripe_fake.requests
        if c.method == "POST" and c.path.count("/") == 3 and c.path.startswith("/v1/payment_intents/")
    ]
    stripe_fake.pay_intent(intent_id(answers[-1]))
    cart.refresh_from_db()
    assert cart.status == OrderStatus.PAID and charges_at_stripe(stripe_fake, cart) == (7350, 0)


def test_a_retry_of_an_unanswered_request_is_a_new_attempt(
    tab: Shopper, usd_item: Item, stripe_fake: Any
) -> None:
    cart = cart_of(tab, usd_item)
    stripe_fake.client.fail_next(
        "lost", times=2
    )  # Stripe created it; every answer (and the SDK's retry) lost
    assert tab.intent(cart).status_code == 502
    cart.refresh_from_db()
    assert cart.status == OrderStatus.DRAFT  # nothing is known to be open: the cart is still a cart
    answer = tab.intent(cart).json()
    creates = [c for c in stripe_fake.calls("POST", "/v1/payment_intents") if c.path == "/v1/payment_intents"]
    assert (
        len(creates) == 3
        and creates[0].idempotency_key == creates[1].idempotency_key != creates[2].idempotency_key
    )
    assert Payment.objects.get().stripe_id == intent_id(answer)
    intents = [o for o in stripe_fake.emulator.objects.values() if o.get("object") == "payment_intent"]
    assert len(intents) == 2 and {i["metadata"]["order_id"] for i in intents} == {str(cart.public_id)}


# 5 ------------------------------------------------------------------------------------------------------------


def paid_cart(shopper: Shopper, item: Item, stripe_fake: Any) -> Order:
    cart = cart_of(shopper, item)
    stripe_fake.pay_intent(intent_id(shopper.intent(cart).json()))
    cart.refresh_from_db()
    assert cart.status == OrderStatus.PAID
    return cart


def test_staff_cannot_edit_a_paid_order(
    admin_client: Client, tab: Shopper, usd_item: Item, usd_item_2: Item, stripe_fake: Any
) -> None:
    order = paid_cart(tab, usd_item, stripe_fake)
    [line] = order.lines.all()
    url = f"/admin/payments/order/{order.pk}/change/"
    page = admin_client.get(url).content.decode()
    assert 'name="_save"' not in page and 'name="lines-0-quantity"' not in page  # shown read-only
    response = admin_client.post(
        url,
        {
            "currency": "usd",
            "status": "draft",
            "lines-TOTAL_FORMS": "1",
            "lines-INITIAL_FORMS": "1",
            "lines-0-id": str(line.pk),
            "lines-0-order": str(order.pk),
            "lines-0-item": str(usd_item_2.pk),
            "lines-0-quantity": "5",
        },
    )
    assert response.status_code == 302  # back to the order, saying nothing was saved
    assert "Nothing was saved" in admin_client.get(response["Location"]).content.decode()
    order.refresh_from_db()
    line.refresh_from_db()
    assert (order.status, line.item_id, line.quantity) == (OrderStatus.PAID, usd_item.pk, 1)
    page = tab.page(order)
    assert 'id="order-paid"' in page and 'id="payment-form"' not in page and 'id="change-order"' not in page
    assert tab.intent(order).status_code == 409


@pytest.mark.parametrize(
    "status", [OrderStatus.AWAITING_PAYMENT, OrderStatus.PROCESSING, OrderStatus.REFUNDED]
)
def test_the_admin_shows_orders_being_paid_or_paid_read_only(
    admin_client: Client, tab: Shopper, usd_item: Item, status: str
) -> None:
    order = cart_of(tab, usd_item)
    Order.objects.filter(pk=order.pk).update(status=status)
    page = admin_client.get(f"/admin/payments/order/{order.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    draft = cart_of(Shopper(), usd_item)
    assert 'name="_save"' in admin_client.get(f"/admin/payments/order/{draft.pk}/change/").content.decode()


def test_staff_cancel_the_open_payment_and_clear_the_flag_through_actions(
    admin_client: Client, tab: Shopper, usd_item: Item, stripe_fake: Any
) -> None:
    cart = cart_of(tab, usd_item)
    pi = intent_id(tab.intent(cart).json())
    admin_client.post(
        "/admin/payments/order/", {"action": "cancel_open_payment", "_selected_action": [cart.pk]}
    )
    cart.refresh_from_db()
    assert cart.status == OrderStatus.DRAFT and stripe_fake.emulator.get(pi)["status"] == "canceled"

    Order.objects.filter(pk=cart.pk).update(needs_attention=True)
    selected = {"action": "mark_reviewed", "_selected_action": [cart.pk]}
    page = admin_client.post("/admin/payments/order/", selected).content.decode()
    assert 'id="review-confirm"' in page  # a note is asked for first
    cart.refresh_from_db()
    assert cart.needs_attention
    admin_client.post(
        "/admin/payments/order/", {**selected, "confirm": "yes", "note": "Called the customer."}
    )
    cart.refresh_from_db()
    assert not cart.needs_attention and "Reviewed by admin: Called the customer." in cart.attention_note
    assert [(a.kind, a.who) for a in cart.staff_actions.all()] == [("close", "admin"), ("reviewed", "admin")]


# 6 ------------------------------------------------------------------------------------------------------------


def test_after_a_paid_cart_the_next_add_to_order_starts_a_new_cart(
    tab: Shopper, usd_item: Item, usd_item_2: Item, stripe_fake: Any
) -> None:
    paid = paid_cart(tab, usd_item, stripe_fake)
    response = tab.add(usd_item_2)
    assert response.status_code == 201
    new = tab.cart()
    assert new != paid and list(new.lines.values_list("item_id", flat=True)) == [usd_item_2.pk]
    listing = tab.web.get("/orders/").content.decode()
    assert str(paid.public_id)[:8] in listing and str(new.public_id)[:8] in listing


def test_an_item_in_another_currency_offers_a_new_order_in_that_currency(
    tab: Shopper, usd_item: Item, eur_item: Item
) -> None:
    usd_cart = cart_of(tab, usd_item)
    refused = tab.add(eur_item)
    assert refused.status_code == 409
    body = refused.json()
    assert body["error"]["code"] == "currency_mismatch" and "new EUR order" in body["error"]["message"]
    assert body["error"]["new_order"] == {"url": "/order/new/", "item_id": eur_item.pk, "quantity": 1}
    page = tab.web.post("/cart/add", {"item_id": eur_item.pk, "quantity": 1}, HTTP_ACCEPT="text/html")
    assert page.status_code == 409 and 'id="start-new-order"' in page.content.decode()

    assert tab.new_order(eur_item).status_code == 201
    eur_cart = tab.cart()
    assert eur_cart.currency == "eur" and eur_cart != usd_cart
    assert list(usd_cart.lines.values_list("item_id", flat=True)) == [usd_item.pk]
    listing = tab.web.get("/orders/").content.decode()
    assert str(usd_cart.public_id)[:8] in listing and str(eur_cart.public_id)[:8] in listing


def test_add_to_a_cart_waiting_for_payment_closes_its_payment_first(
    tab: Shopper, usd_item: Item, usd_item_2: Item, stripe_fake: Any
) -> None:
    cart = cart_of(tab, usd_item)
    pi = intent_id(tab.intent(cart).json())
    stripe_fake.emulator.confirm_payment_intent(pi, "4000000000000002")  # declined: not paid yet
    stripe_fake.deliver_webhooks()
    page = tab.page(cart)
    assert "Not paid yet" in page and 'id="change-order"' not in page
    assert 'name="quantity"' in page and 'id="promo-code"' in page  # still a cart to the shopper
    assert tab.add(usd_item_2).status_code == 200
    assert stripe_fake.emulator.get(pi)["status"] == "canceled"
    cart.refresh_from_db()
    assert cart.status == OrderStatus.DRAFT and cart.lines.count() == 2


# 7 ------------------------------------------------------------------------------------------------------------


def first_row_lock(queries: list[dict[str, Any]]) -> str:
    locks = [q["sql"] for q in queries if "FOR UPDATE" in q["sql"]]
    assert locks, "no row lock taken"
    return locks[0].split(" FROM ")[1].split()[0].strip('"')


@pytest.mark.postgres
def test_every_path_locks_the_order_before_its_payments(
    tab: Shopper, usd_item: Item, stripe_fake: Any, post_event: Any
) -> None:
    """The SQL of two paths, as PostgreSQL receives it. Every other path is checked in every test that drives it:
    the autouse fixture `_lock_order_checked` fails a test whose code takes a lock against the order of
    `payments/locks.py` (or, on PostgreSQL, a row lock that did not go through it), and
    `test_lock_order.py` checks that no module takes a row lock by itself."""
    if connection.vendor != "postgresql":
        pytest.skip("row locks (SELECT ... FOR UPDATE) are PostgreSQL's; SQLite locks the whole database")
    cart = cart_of(tab, usd_item)
    with CaptureQueriesContext(connection) as opening:
        pi = intent_id(tab.intent(cart).json())
    stripe_fake.emulator.confirm_payment_intent(pi)
    stripe_fake.outbox.clear()
    with CaptureQueriesContext(connection) as webhook:
        post_event("usd", make_event("payment_intent.succeeded", stripe_fake.emulator.get(pi)))
    assert first_row_lock(opening.captured_queries) == "payments_order"
    locks = [
        q["sql"].split(" FROM ")[1].split()[0].strip('"')
        for q in webhook.captured_queries
        if "FOR UPDATE" in q["sql"]
    ]
    assert locks[:3] == ["payments_stripeevent", "payments_order", "payments_payment"], locks
    assert Payment.objects.get(kind=PaymentKind.PAYMENT_INTENT).status == PaymentStatus.SUCCEEDED
