"""End to end in headless Chromium, after the sale: a shopper applies a promotion code and pays (with an email
for the receipt); staff make a partial refund on the order's refund page; the disputes list and the revenue
report, with screenshots under `artifacts/e2e/` (ignored by git). Stripe is the emulator over HTTP."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.utils import timezone
from djmoney.money import Money

from catalog.models import Item
from payments import intents, refunds
from payments.models import Discount, Dispute, Order, OrderLine, Payment, Refund, Tax
from payments.tests import test_e2e as e2e
from payments.tests.test_e2e import SHOTS, Shop, pay_on_page, wait_until

# The browser tests' fixtures: Chromium, a live server with the emulator over HTTP, a page, an item.
browser, shop, page, beans = e2e.browser, e2e.shop, e2e.page, e2e.beans

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def log_in_as_staff(shop: Shop, page: Any) -> None:
    get_user_model().objects.create_superuser("merchant", "merchant@example.com", "a-long-test-password")
    page.goto(f"{shop.url}/admin/login/?next=/admin/")
    page.fill("#id_username", "merchant")
    page.fill("#id_password", "a-long-test-password")
    page.click("input[type=submit]")
    page.wait_for_selector("#site-name")


def paid_order(shop: Shop, item: Item, card: str = "4242424242424242", owner: str = "e2e") -> Order:
    """An order paid without a browser (the API and the emulator, over HTTP): history for the admin views."""
    order = Order.objects.create(currency=item.currency, browser=owner)
    OrderLine.objects.create(order=order, item=item, quantity=1, unit_price=item.amount)
    payment = intents.open_intent(order).payment
    shop.emulator.confirm_payment_intent(payment.stripe_id, card=card)
    wait_until(lambda: Order.objects.get(pk=order.pk).status == "paid")
    return Order.objects.get(pk=order.pk)


def test_a_shopper_applies_a_promotion_code_and_pays(shop: Shop, page: Any, beans: Item) -> None:
    Discount.objects.create(name="Welcome 10%", percent_off=Decimal("10"), code="WELCOME10")
    Tax.objects.create(
        name="Sales tax", percentage=Decimal("8.875"), applies_to_every_order=True, currency="usd"
    )
    page.goto(f"{shop.url}/item/{beans.pk}")
    page.click("#add-to-order")
    page.wait_for_url("**/order/*")
    page.fill("input[name=quantity]", "2")
    page.click("text=Update")
    page.wait_for_selector("#order-total")
    assert page.inner_text("#order-total") == "$53.35"  # 49.00 + sales tax
    page.fill("#promo-code", "welcome10")
    page.click("#promo-apply")
    page.wait_for_selector("#promo-applied")
    assert page.inner_text("#promo-applied") == "WELCOME10"
    assert page.inner_text("#order-total") == "$48.01"  # 49.00 - 4.90 + 8.875% of 44.10
    page.fill("#receipt-email", "ada@example.com")
    pay_on_page(page, "4242424242424242")
    page.wait_for_url("**/return?**")
    assert page.inner_text("#result-title") == "Payment received"
    order = Order.objects.get()
    wait_until(lambda: Order.objects.get(pk=order.pk).status == "paid")
    order.refresh_from_db()
    assert order.snapshot is not None
    assert (order.total, order.email, order.snapshot["discount"]["code"]) == (
        4801,
        "ada@example.com",
        "WELCOME10",
    )
    intent = shop.emulator.get(order.payments.get().stripe_id)
    assert (intent["amount_received"], intent["receipt_email"]) == (4801, "ada@example.com")
    wait_until(lambda: len(mail.outbox) == 1)
    assert mail.outbox[0].to == ["ada@example.com"]


def test_a_wrong_code_is_refused_on_the_page(shop: Shop, page: Any, beans: Item) -> None:
    page.goto(f"{shop.url}/item/{beans.pk}")
    page.click("#add-to-order")
    page.wait_for_url("**/order/*")
    page.fill("#promo-code", "NOPE")
    page.click("#promo-apply")
    page.wait_for_selector(".message-error")
    assert "The code NOPE is not valid." in page.inner_text(".message-error")
    assert page.inner_text("#order-total") == "$24.50"


def test_staff_make_a_partial_refund(shop: Shop, page: Any, beans: Item) -> None:
    order = paid_order(shop, beans)
    log_in_as_staff(shop, page)
    page.goto(f"{shop.url}/admin/payments/order/{order.pk}/change/")
    page.click("#refund-page")
    page.wait_for_selector("#refund-form")
    assert page.inner_text("#left-to-refund") == "$24.50"
    page.fill("#id_amount", "10,00")  # a decimal comma is read as one
    page.select_option("#id_reason", "requested_by_customer")
    page.click("#refund-submit")
    # The amount as read, in its currency, before anything is sent to Stripe.
    page.wait_for_selector("#refund-confirm")
    assert page.inner_text("#confirm-amount") == "$10.00" and page.inner_text("#confirm-currency") == "USD"
    shot(page, "admin_refund_confirm")
    assert not Refund.objects.exists()
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.url) if r.method == "POST" and "/refund/" in r.url else None)
    # The confirmation sent twice (a double click that gets through, a resent POST): one refund.
    page.evaluate(
        """() => { const form = document.getElementById("refund-confirm");
                   fetch(location.href, {method: "POST", body: new FormData(form), credentials: "same-origin"});
                   form.requestSubmit(document.getElementById("refund-confirm-submit")); }"""
    )
    page.wait_for_selector(".messagelist li")
    assert "$10.00" in page.inner_text(".messagelist")
    wait_until(lambda: Order.objects.get(pk=order.pk).status == "partially_refunded")
    order.refresh_from_db()
    assert order.amount_refunded == 1000
    [refund] = Refund.objects.all()
    assert (refund.amount, refund.requested_by) == (1000, "merchant")
    charge = shop.emulator.get(shop.emulator.get(order.payments.get().stripe_id)["latest_charge"])
    assert charge["amount_refunded"] == 1000
    assert len(posts) == 2
    page.click("#refund-page")
    page.wait_for_selector("#refund-form")
    assert page.inner_text("#left-to-refund") == "$14.50"
    shot(page, "admin_refund_page")
    page.goto(f"{shop.url}/admin/payments/order/{order.pk}/change/")
    assert "Partially refunded" in page.inner_text("#content")


def test_the_dispute_and_revenue_views(shop: Shop, page: Any, beans: Item) -> None:
    grinder = Item.objects.create(name="Hand grinder", price=Money(Decimal("89.90"), "EUR"))
    kettle = Item.objects.create(name="Gooseneck kettle", price=Money(Decimal("45.00"), "USD"))
    disputed = paid_order(shop, beans, card="4000000000000259", owner="a")  # disputed as fraudulent
    paid = [
        paid_order(shop, kettle, owner="b"),
        paid_order(shop, beans, owner="c"),
        paid_order(shop, grinder, owner="d"),
        paid_order(shop, grinder, card="4000000000000259", owner="e"),
    ]
    wait_until(lambda: Dispute.objects.count() == 2)
    shop.emulator.close_dispute(Dispute.objects.get(currency="eur").stripe_id, won=False)
    wait_until(lambda: Dispute.objects.filter(status="lost").exists())
    refund = refunds.refund_order(paid[0], amount=1500)
    wait_until(lambda: Order.objects.get(pk=paid[0].pk).status == "partially_refunded")
    # A few days of history, so that the chart has something to show.
    for days, order in zip((6, 4, 3, 1), paid, strict=True):
        Payment.objects.filter(order=order).update(succeeded_at=timezone.now() - timedelta(days=days))
    Refund.objects.filter(pk=refund.pk).update(stripe_created=timezone.now() - timedelta(days=2))
    page.set_viewport_size({"width": 1440, "height": 900})

    page.goto(f"{shop.url}/order/{disputed.public_id}")  # staff see it too; the shopper's own page says so
    log_in_as_staff(shop, page)
    page.goto(f"{shop.url}/admin/payments/order/{disputed.pk}/refund/")
    assert "the card network holds the money" in page.inner_text("#refund-blocked")

    page.goto(f"{shop.url}/admin/payments/dispute/")
    page.click("#toggle-nav-sidebar")  # more room for the table
    table = page.inner_text("#result_list")
    assert "$24.50" in table and "€89.90" in table and "fraudulent" in table
    assert "Needs a response" in table and "Lost" in table
    usd = Dispute.objects.get(currency="usd")
    assert page.get_attribute(f"a[href$='/disputes/{usd.stripe_id}']", "target") == "_blank"
    shot(page, "admin_disputes")

    page.goto(f"{shop.url}/order/{disputed.public_id}")
    assert "This payment is disputed." in page.inner_text("#order-dispute")
    shot(page, "order_disputed")

    page.goto(f"{shop.url}/admin/payments/revenue/")
    page.wait_for_selector("#revenue-usd svg")
    assert page.locator("svg.revenue-chart").count() == 2
    # 24.50 (disputed, still open) + 45.00 + 24.50 - 15.00 refunded
    assert "USD: net $79.00" in page.inner_text("#revenue-usd")
    assert "EUR: net €89.90" in page.inner_text("#revenue-eur")  # 2 x 89.90 - 89.90 lost
    shot(page, "admin_revenue")
