"""Promotion codes: entered by the shopper on their cart's page, applied identically through Checkout and
PaymentIntents; unknown, expired, used up or another currency's codes are refused alike and change nothing;
a use is held when the order is frozen and counted when it is paid, so the maximum is never exceeded and no
shopper is charged for a code that is then refused. (The race for the last use, on PostgreSQL, is in
test_merchant_concurrency.py.)"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from catalog.tests.factories import make_item
from payments import orders, promotions
from payments.models import Discount, Order, OrderLine, OrderStatus, Payment, PromotionRefusal
from payments.tests.support import JSON, cart_with, pay_order

pytestmark = pytest.mark.django_db


def apply(web: Client, order: Order, code: str) -> Any:
    return web.post(f"/order/{order.public_id}/promo", {"code": code}, **JSON)


def unchanged(order: Order) -> tuple[Any, ...]:
    order = Order.objects.get(pk=order.pk)
    return (
        order.status,
        order.discount_id,
        order.version,
        order.updated_at,
        Payment.objects.filter(order=order).count(),
        list(OrderLine.objects.filter(order=order).values_list("item_id", "quantity")),
    )


@pytest.fixture
def welcome() -> Discount:
    return Discount.objects.create(name="Welcome", percent_off=Decimal("10"), code="WELCOME10")


@pytest.fixture
def cart(client, usd_item) -> Order:
    return cart_with(client, (usd_item, 2))


# ------------------------------------------------------------------------------------------------ applying


def test_a_shopper_applies_a_code_on_the_cart_page(client, cart, welcome) -> None:
    page = client.get(f"/order/{cart.public_id}").content.decode()
    assert 'id="promo-code"' in page
    response = apply(client, cart, "  welcome10 ")
    assert response.status_code == 200 and response.json()["total"] == 4410
    cart.refresh_from_db()
    assert cart.discount == welcome
    page = client.get(f"/order/{cart.public_id}").content.decode()
    assert 'id="promo-applied">WELCOME10<' in page and 'id="order-total">$44.10<' in page
    assert 'id="promo-code"' not in page


def test_from_the_form_the_shopper_reads_what_happened(client, cart, welcome) -> None:
    response = client.post(f"/order/{cart.public_id}/promo", {"code": "welcome10"}, follow=True)
    page = response.content.decode()
    assert 'Code <strong id="promo-applied">WELCOME10</strong> applied: 10% off.' in page
    assert page.count("applied:") == 1  # said once, beside the code
    response = client.post(f"/order/{cart.public_id}/promo", {"code": "NOPE"}, follow=True)
    assert "The code NOPE is not valid." in response.content.decode()


def test_the_code_can_be_removed(client, cart, welcome) -> None:
    apply(client, cart, "WELCOME10")
    response = client.post(f"/order/{cart.public_id}/promo/remove", **JSON)
    assert response.status_code == 200 and response.json()["total"] == 4900
    cart.refresh_from_db()
    assert cart.discount is None


def used_once() -> Discount:
    """A one-use code whose use another shopper paid."""
    once = Discount.objects.create(name="Once", percent_off=Decimal("50"), code="ONCE", max_uses=1)
    paid = Order.objects.create(currency="usd", browser="someone", discount=once, status=OrderStatus.PAID)
    OrderLine.objects.create(
        order=paid, item=make_item("Tea", "5.00", "USD"), quantity=1, unit_price=Decimal("5")
    )
    return once


REFUSED: list[tuple[Any, str, str]] = [
    (lambda: None, "NOPE", ""),
    (
        lambda: Discount.objects.create(
            name="Old", percent_off=Decimal("5"), code="OLD", valid_until=timezone.now() - timedelta(days=1)
        ),
        "old",
        "expired",
    ),
    (
        lambda: Discount.objects.create(
            name="Soon", percent_off=Decimal("5"), code="SOON", valid_from=timezone.now() + timedelta(days=1)
        ),
        "SOON",
        "not_yet_valid",
    ),
    (
        lambda: Discount.objects.create(name="Off", percent_off=Decimal("5"), code="OFF", is_active=False),
        "OFF",
        "inactive",
    ),
    (
        lambda: Discount.objects.create(
            name="Five euros", amount_off=Decimal("5"), currency="eur", code="FIVEEUR"
        ),
        "FIVEEUR",
        "other_currency",
    ),
    (used_once, "once", "used_up"),
]


@pytest.mark.parametrize(("make", "code", "reason"), REFUSED, ids=[c for _, c, _ in REFUSED])
def test_a_code_that_cannot_apply_is_refused_the_same_way_whether_it_exists_or_not(
    client, cart, make, code, reason
) -> None:
    """Unknown, expired, not yet valid, switched off, another currency's or used up: one status, one code and one
    message (the code the shopper typed aside), so that a guess never learns that a code exists; nothing
    changes. Staff read the real reason on the discount's admin page."""
    make()
    before = unchanged(cart)
    response = apply(client, cart, code)
    assert response.status_code == 400
    assert response.json() == {
        "error": {"code": "code_not_valid", "message": f"The code {code.upper()} is not valid."}
    }
    assert unchanged(cart) == before
    refusals = list(PromotionRefusal.objects.values_list("discount__code", "reason", "count"))
    assert refusals == ([(code.upper(), reason, 1)] if reason else [])


def test_refusals_are_counted_per_code_and_reason_and_shown_to_staff(client, cart, admin_client) -> None:
    old = Discount.objects.create(
        name="Old", percent_off=Decimal("5"), code="OLD", valid_until=timezone.now() - timedelta(days=1)
    )
    for _ in range(3):
        apply(client, cart, "OLD")
    apply(client, cart, "NOPE")  # unknown codes are logged only
    assert list(PromotionRefusal.objects.values_list("discount", "reason", "count")) == [
        (old.pk, "expired", 3)
    ]
    page = admin_client.get(f"/admin/payments/discount/{old.pk}/change/").content.decode()
    assert "Refused tries" in page and "Expired" in page and ">3<" in page


def test_a_code_used_up_is_refused(client, cart, usd_item, stripe_fake) -> None:
    Discount.objects.create(name="Once", percent_off=Decimal("50"), code="ONCE", max_uses=1)
    other = Client(REMOTE_ADDR="198.51.100.7")
    first = cart_with(other, (usd_item, 1))
    assert apply(other, first, "ONCE").status_code == 200
    pay_order(other, stripe_fake, first)
    assert first.status == OrderStatus.PAID
    before = unchanged(cart)
    response = apply(client, cart, "ONCE")
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "code_not_valid", "message": "The code ONCE is not valid."}
    assert unchanged(cart) == before


def test_only_the_carts_owner_applies_a_code_and_only_to_a_cart(client, cart, welcome, stripe_fake) -> None:
    before = unchanged(cart)
    assert apply(Client(), cart, "WELCOME10").status_code in (403, 404)
    assert unchanged(cart) == before
    pi = client.post(f"/order/intent/{cart.public_id}").json()["client_secret"].split("_secret_")[0]
    stripe_fake.pay_intent(pi)  # paid: no longer a cart
    before = unchanged(cart)
    response = apply(client, cart, "WELCOME10")
    assert response.status_code == 409 and "paid" in response.json()["error"]["message"]
    assert client.post(f"/order/{cart.public_id}/promo/remove", **JSON).status_code == 409
    assert unchanged(cart) == before
    assert 'id="promo-code"' not in client.get(f"/order/{cart.public_id}").content.decode()


def test_a_code_entered_on_a_cart_waiting_for_payment_closes_its_payment_first(
    client, cart, welcome, stripe_fake
) -> None:
    """After a declined card the page still offers the code; entering it cancels the open PaymentIntent at
    Stripe, and paying then charges the discounted total."""
    pi = client.post(f"/order/intent/{cart.public_id}").json()["client_secret"].split("_secret_")[0]
    stripe_fake.emulator.confirm_payment_intent(pi, "4000000000000002")  # declined
    stripe_fake.deliver_webhooks()
    assert 'id="promo-code"' in client.get(f"/order/{cart.public_id}").content.decode()
    assert apply(client, cart, "WELCOME10").json()["total"] == 4410
    assert stripe_fake.emulator.get(pi)["status"] == "canceled"
    answer = client.post(f"/order/intent/{cart.public_id}").json()
    assert answer["amount"] == 4410 and not answer["client_secret"].startswith(pi)


def test_a_discount_staff_attached_is_not_replaced_by_a_code(client, cart, welcome) -> None:
    staff = Discount.objects.create(name="Staff deal", percent_off=Decimal("20"))
    cart.discount = staff
    cart.save()
    response = apply(client, cart, "WELCOME10")
    assert response.status_code == 409
    assert "already has the discount Staff deal" in response.json()["error"]["message"]
    cart.refresh_from_db()
    assert cart.discount == staff


def test_codes_are_unique_whatever_their_case() -> None:
    from django.db import IntegrityError, transaction

    Discount.objects.create(name="A", percent_off=Decimal("5"), code="SPRING")
    with pytest.raises(IntegrityError), transaction.atomic():
        Discount.objects.create(name="B", percent_off=Decimal("5"), code="spring")
    plain = Discount(name="C", percent_off=Decimal("5"), code=" summer-24 ")
    plain.full_clean()
    assert plain.code == "SUMMER-24"


# ------------------------------------------------------------------------------------------------ paying


def test_the_code_applies_identically_through_checkout_and_payment_intents(
    client, cart, usd_item_2, welcome, stripe_fake
) -> None:
    client.post(f"/order/put/{cart.public_id}", {"item_id": usd_item_2.pk, "quantity": 1}, **JSON)
    apply(client, cart, "WELCOME10")
    expected = 6700 - 670
    session = client.get(f"/order/buy/{cart.public_id}", **JSON).json()
    intent = client.post(f"/order/intent/{cart.public_id}", **JSON).json()
    assert stripe_fake.emulator.get(session["id"])["amount_total"] == expected == intent["amount"]
    [coupon] = stripe_fake.calls("POST", "/v1/coupons")
    assert coupon.params["name"] == "Welcome (WELCOME10)" and coupon.params["amount_off"] == "670"
    cart.refresh_from_db()
    assert cart.snapshot["discount"]["code"] == "WELCOME10" and cart.total == expected


def test_a_code_that_expired_before_paying_refuses_the_payment_before_stripe(
    client, cart, welcome, stripe_fake
) -> None:
    apply(client, cart, "WELCOME10")
    welcome.valid_until = timezone.now() - timedelta(minutes=1)
    welcome.save()
    before = unchanged(cart)
    response = client.post(f"/order/intent/{cart.public_id}", **JSON)
    assert response.status_code == 409 and "The code WELCOME10 expired" in response.json()["error"]["message"]
    assert client.get(f"/order/buy/{cart.public_id}", **JSON).status_code == 409
    assert unchanged(cart) == before
    assert stripe_fake.calls("POST", "/v1/payment_intents") == []
    assert stripe_fake.calls("POST", "/v1/checkout/sessions") == []


def test_a_code_used_up_while_in_the_cart_refuses_the_payment_before_stripe(
    client, cart, usd_item, stripe_fake
) -> None:
    Discount.objects.create(name="Last one", percent_off=Decimal("50"), code="LAST", max_uses=1)
    apply(client, cart, "LAST")
    other = Client()
    rival = cart_with(other, (usd_item, 1))
    apply(other, rival, "LAST")
    pay_order(other, stripe_fake, rival)  # the other shopper pays first: the last use is theirs
    before = unchanged(cart)
    response = client.post(f"/order/intent/{cart.public_id}", **JSON)
    assert response.status_code == 409
    assert (
        response.json()["error"]["message"]
        == "The code LAST has been used up. Remove it to pay the full price."
    )
    assert unchanged(cart) == before and cart.payments.count() == 0
    client.post(f"/order/{cart.public_id}/promo/remove", **JSON)  # the shopper pays the full price instead
    assert pay_order(client, stripe_fake, cart).amount_received == 4900


def test_a_frozen_order_holds_its_use_and_change_order_gives_it_back(
    client, cart, usd_item, stripe_fake
) -> None:
    once = Discount.objects.create(name="Once", percent_off=Decimal("50"), code="ONCE", max_uses=1)
    apply(client, cart, "ONCE")
    assert client.post(f"/order/intent/{cart.public_id}", **JSON).status_code == 200  # frozen: holds the use
    other = Client()
    rival = cart_with(other, (usd_item, 1))
    assert apply(other, rival, "ONCE").status_code == 400
    assert promotions.paid_uses(once) == 0 and promotions.holders(once).count() == 1

    client.post(f"/order/{cart.public_id}/change", **JSON)  # back to a cart: the use is free again
    assert apply(other, rival, "ONCE").status_code == 200
    pay_order(other, stripe_fake, rival)
    assert promotions.paid_uses(once) == 1
    response = client.post(f"/order/intent/{cart.public_id}", **JSON)
    assert response.status_code == 409 and "used up" in response.json()["error"]["message"]


def test_an_order_frozen_before_the_code_expired_is_paid_with_it(client, cart, welcome, stripe_fake) -> None:
    apply(client, cart, "WELCOME10")
    answer = client.post(f"/order/intent/{cart.public_id}", **JSON).json()
    welcome.valid_until = timezone.now() - timedelta(seconds=1)
    welcome.save()
    stripe_fake.pay_intent(answer["client_secret"].split("_secret_")[0])
    cart.refresh_from_db()
    assert cart.status == OrderStatus.PAID and cart.total == 4410
    assert promotions.paid_uses(welcome) == 1


def test_uses_are_counted_when_orders_are_paid_both_ways(client, usd_item, stripe_fake, admin_client) -> None:
    limited = Discount.objects.create(name="Two", percent_off=Decimal("10"), code="TWO", max_uses=2)
    for checkout in (False, True):
        web = Client()
        order = cart_with(web, (usd_item, 1))
        apply(web, order, "TWO")
        pay_order(web, stripe_fake, order, checkout=checkout)
        assert order.status == OrderStatus.PAID and order.total == 2205
    assert promotions.paid_uses(limited) == 2
    html = admin_client.get("/admin/payments/discount/").content.decode()
    assert "TWO" in html and "2 of 2" in html
    web = Client()
    late = cart_with(web, (usd_item, 1))
    assert apply(web, late, "TWO").status_code == 400


def test_abandoned_frozen_orders_give_their_uses_back(client, cart, stripe_fake) -> None:
    once = Discount.objects.create(name="Once", percent_off=Decimal("50"), code="ONCE", max_uses=1)
    apply(client, cart, "ONCE")
    answer = client.post(f"/order/intent/{cart.public_id}", **JSON).json()
    stripe_fake.deliver_webhooks()
    Order.objects.filter(pk=cart.pk).update(updated_at=timezone.now() - timedelta(hours=2))
    Payment.objects.update(
        created_at=timezone.now() - timedelta(hours=2), updated_at=timezone.now() - timedelta(hours=2)
    )
    call_command("reconcile_payments", stdout=open("/dev/null", "w"))  # noqa: SIM115
    cart.refresh_from_db()
    assert cart.status == OrderStatus.DRAFT and cart.discount == once  # a cart again, its code still there
    intent_id = answer["client_secret"].split("_secret_")[0]
    assert stripe_fake.emulator.get(intent_id)["status"] == "canceled"
    assert promotions.holders(once).count() == 0


def test_a_hold_is_kept_while_its_payment_is_processing_or_paid(client, cart, stripe_fake) -> None:
    once = Discount.objects.create(name="Once", percent_off=Decimal("50"), code="ONCE", max_uses=1)
    apply(client, cart, "ONCE")
    pay_order(client, stripe_fake, cart)
    Order.objects.filter(pk=cart.pk).update(updated_at=timezone.now() - timedelta(hours=2))
    assert orders.release_stale_holds() == 0
    assert promotions.paid_uses(once) == 1


def test_a_code_in_the_orders_currency_works_in_jpy(more_currencies) -> None:
    web, fake = Client(), more_currencies
    tea = make_item("Matcha", "1500", "JPY")
    Discount.objects.create(name="Yen off", amount_off=Decimal("300"), currency="jpy", code="YEN300")
    order = cart_with(web, (tea, 2))
    assert apply(web, order, "yen300").json()["total"] == 2700
    session = web.get(f"/order/buy/{order.public_id}", **JSON).json()
    assert fake.emulator.get(session["id"])["amount_total"] == 2700
    [coupon] = fake.calls("POST", "/v1/coupons")
    assert coupon.params["amount_off"] == "300" and coupon.params["currency"] == "jpy"
