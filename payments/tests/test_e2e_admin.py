"""End to end in headless Chromium, the admin at 1280 x 900: the order, payment, refund, dispute, event and item
lists and an order's page (lines, payments, refunds, disputes) fit the window, with the left navigation open; no
table scrolls sideways. Screenshots go to `artifacts/e2e/admin_*.png` (ignored by git)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.urls import reverse

from catalog.tests.factories import make_item
from payments import checkout, refunds
from payments.models import Order, OrderLine, Payment, Refund, StripeEvent
from payments.tests import test_e2e as e2e
from payments.tests.factories import make_tax, percent_off, with_taxes
from payments.tests.test_e2e import Shop, wait_until
from payments.tests.test_e2e_merchant import log_in_as_staff, paid_order, shot

browser, shop, page = e2e.browser, e2e.shop, e2e.page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Every element that would scroll sideways (its content wider than its box), and the document itself.
OVERFLOW = """() => {
    const out = [];
    const doc = document.documentElement;
    if (doc.scrollWidth > window.innerWidth) out.push(`document ${doc.scrollWidth} > ${window.innerWidth}`);
    for (const el of document.querySelectorAll("#content *")) {
        const style = getComputedStyle(el);
        if (style.display === "none" || el.closest("[hidden], .empty-form")) continue;
        const scrolls = ["auto", "scroll"].includes(style.overflowX);
        if (scrolls && el.scrollWidth > el.clientWidth + 1)
            out.push(`${el.tagName}.${el.className} scrolls: ${el.scrollWidth} > ${el.clientWidth}`);
        if (el.tagName === "TABLE" && el.getBoundingClientRect().right > window.innerWidth)
            out.push(`table ${el.id || el.className} ends at ${el.getBoundingClientRect().right}`);
    }
    return out;
}"""


def overflow(page: Any, name: str) -> list[str]:
    """What scrolls sideways on the page (nothing, when it fits), after saving its screenshot."""
    shot(page, name)
    return [f"{name}: {problem}" for problem in page.evaluate(OVERFLOW)]


def test_admin_pages_fit_1280_px(shop: Shop, page: Any) -> None:
    beans = make_item("Espresso beans", "24.50", description="1 kg, roasted for espresso.")
    kettle = make_item("Gooseneck pour-over kettle with thermometer, 1 litre, brushed steel", "64.00")
    grinder = make_item("Hand grinder", "89.90", "EUR", description="Steel burrs.")
    make_item("Filter papers, box of 100", "4.75")
    # A paid order of two lines with a discount and taxes, partly refunded.
    big = Order.objects.create(currency="usd", browser="a")
    OrderLine.objects.create(order=big, item=beans, quantity=2, unit_price=beans.amount)
    OrderLine.objects.create(order=big, item=kettle, quantity=1, unit_price=kettle.amount)
    with_taxes(big, [make_tax("VAT", "20", inclusive=True), make_tax("City levy", "1.5", inclusive=False)])
    big.discount = percent_off("10", name="Welcome 10%")
    big.save()
    from payments import intents

    payment = intents.open_intent(big).payment
    shop.emulator.confirm_payment_intent(payment.stripe_id)
    wait_until(lambda: Order.objects.get(pk=big.pk).status == "paid")
    refunds.refund_order(Order.objects.get(pk=big.pk), amount=1500)
    wait_until(lambda: Order.objects.get(pk=big.pk).status == "partially_refunded")
    # Paid through Checkout (its session id is long), disputed, flagged, and a cart staff are making.
    eur = Order.objects.create(currency="eur", browser="b")
    OrderLine.objects.create(order=eur, item=grinder, quantity=1, unit_price=grinder.amount)
    session = checkout.create_session(
        eur, success_url=f"{shop.url}/ok", cancel_url=f"{shop.url}/no", owner="b"
    ).payment
    shop.emulator.pay_checkout_session(session.stripe_id)
    wait_until(lambda: Order.objects.get(pk=eur.pk).status == "paid")
    paid_order(shop, beans, card="4000000000000259", owner="c")
    flagged = paid_order(shop, kettle, owner="d")
    flagged.flag("Stripe took $63.00; the order's total is $64.00. Check the payment in Stripe's dashboard.")
    flagged.save()
    draft = Order.objects.create(currency="usd")
    OrderLine.objects.create(order=draft, item=beans, quantity=3, unit_price=Decimal("24.50"))
    assert Payment.objects.count() >= 4

    page.set_viewport_size({"width": 1280, "height": 900})
    log_in_as_staff(shop, page)
    problems: list[str] = []
    for name, path in [
        ("admin_orders", "payments/order/"),
        ("admin_payments", "payments/payment/"),
        ("admin_refunds", "payments/refund/"),
        ("admin_disputes_1280", "payments/dispute/"),
        ("admin_events", "payments/stripeevent/"),
        ("admin_items", "catalog/item/"),
        ("admin_discounts", "payments/discount/"),
        ("admin_taxes", "payments/tax/"),
        ("admin_stripe_objects", "payments/stripeobject/"),
        ("admin_order_paid", f"payments/order/{big.pk}/change/"),
        ("admin_order_checkout", f"payments/order/{eur.pk}/change/"),
        ("admin_order_flagged", f"payments/order/{flagged.pk}/change/"),
        ("admin_order_draft", f"payments/order/{draft.pk}/change/"),
        ("admin_order_add", "payments/order/add/"),
        ("admin_order_refund_1280", f"payments/order/{big.pk}/refund/"),
        ("admin_revenue_1280", "payments/revenue/"),
        ("admin_payment", f"payments/payment/{session.pk}/change/"),
        ("admin_refund", f"payments/refund/{Refund.objects.get().pk}/change/"),
        (
            "admin_event",
            f"payments/stripeevent/{StripeEvent.objects.filter(type='charge.refunded').get().pk}/change/",
        ),
        ("admin_item", f"catalog/item/{grinder.pk}/change/"),
    ]:
        response = page.goto(f"{shop.url}/admin/{path}")
        if response is None or response.status != 200:
            problems.append(f"{name}: {path} answered {response and response.status}")
            continue
        problems += overflow(page, name)
    assert not problems, "\n".join(problems)

    # The customer link of the cart staff are making: the shop's page of the order, copied with one click.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=shop.url)
    page.goto(f"{shop.url}/admin/payments/order/{draft.pk}/change/")
    url = settings.SITE_URL + reverse("payments:order", args=[draft.public_id])
    assert page.input_value("#customer-link") == url
    assert page.get_attribute("a.viewsitelink", "href") == url
    page.click("#copy-customer-link")
    assert page.inner_text("#copy-customer-link") == "Copied"
    assert page.evaluate("navigator.clipboard.readText()") == url
    page.click("a.viewsitelink")
    page.wait_for_url(url)
    assert page.inner_text("#order-total") == "$73.50"
