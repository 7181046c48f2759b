"""Staff work in the admin: orders created for a customer, totals from pricing, filters, read-only records."""

from __future__ import annotations

import re
from decimal import Decimal
from html import unescape
from typing import Any

import pytest
from django.contrib import admin
from django.urls import reverse

from catalog.tests.factories import make_item
from payments.admin.disputes import DisputeInline
from payments.admin.order_actions import StaffActionInline
from payments.admin.payments import PaymentInline, RefundInline
from payments.admin.promotions import PromotionRefusalInline
from payments.models import (
    Discount,
    Dispute,
    FollowUp,
    Order,
    Payment,
    Refund,
    Revenue,
    StrayPayment,
    StripeEvent,
    StripeObject,
)
from payments.tests.factories import make_cart

pytestmark = pytest.mark.django_db


def order_form(
    item_id: int, *, currency: str = "usd", quantity: int = 2, unit_price: str = ""
) -> dict[str, object]:
    return {
        "currency": currency,
        "status": "draft",
        "discount": "",
        "attention_note": "",
        "lines-TOTAL_FORMS": "1",
        "lines-INITIAL_FORMS": "0",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
        "lines-0-item": str(item_id),
        "lines-0-quantity": str(quantity),
        "lines-0-unit_price": unit_price,
        "payments-TOTAL_FORMS": "0",
        "payments-INITIAL_FORMS": "0",
        "payments-MIN_NUM_FORMS": "0",
        "payments-MAX_NUM_FORMS": "0",
        "refunds-TOTAL_FORMS": "0",
        "refunds-INITIAL_FORMS": "0",
        "refunds-MIN_NUM_FORMS": "0",
        "refunds-MAX_NUM_FORMS": "0",
    }


def test_staff_create_an_order_for_a_customer(admin_client, client, usd_item, stripe_fake) -> None:
    response = admin_client.post("/admin/payments/order/add/", order_form(usd_item.pk))
    assert response.status_code == 302, response.content.decode()[:2000]
    order = Order.objects.get()
    line = order.lines.get()
    assert (line.item, line.quantity, line.unit_price) == (usd_item, 2, usd_item.amount)
    # The customer opens the link and can pay it either way.
    page = client.get(f"/order/{order.public_id}").content.decode()
    assert 'id="order-total">$49.00<' in page and 'id="checkout-button"' in page
    assert client.get(f"/order/buy/{order.public_id}").status_code == 200


def test_staff_cannot_mix_currencies_in_an_order(admin_client, eur_item) -> None:
    response = admin_client.post("/admin/payments/order/add/", order_form(eur_item.pk, currency="usd"))
    assert response.status_code == 200
    assert "priced in EUR; this order is in USD" in response.content.decode()
    assert not Order.objects.exists()


def test_order_list_shows_totals_and_filters(admin_client, client, usd_item, eur_item) -> None:
    client.get(f"/buy/{usd_item.pk}")
    client.get(f"/buy/{eur_item.pk}")
    html = admin_client.get("/admin/payments/order/").content.decode()
    assert "$24.50" in html and "€89.90" in html
    assert "?currency=eur" in html and "status__exact=paid" in html
    filtered = admin_client.get("/admin/payments/order/?currency=eur").content.decode()
    assert "€89.90" in filtered and "$24.50" not in filtered


def test_payments_and_events_are_read_only(admin_client, client, usd_item) -> None:
    client.get(f"/buy/{usd_item.pk}")
    payment = Payment.objects.get()
    assert admin_client.get("/admin/payments/payment/add/").status_code == 403
    assert admin_client.get("/admin/payments/stripeevent/add/").status_code == 403
    html = admin_client.get(f"/admin/payments/payment/{payment.pk}/change/").content.decode()
    assert "https://dashboard.stripe.com/test" in html


# The records staff only read: what Stripe reported, the ledger, what the shop counted.
READ_ONLY_MODELS = (Payment, Refund, Dispute, StripeEvent, StripeObject, StrayPayment, FollowUp, Revenue)
READ_ONLY_INLINES = {
    Order: (PaymentInline, RefundInline, DisputeInline, StaffActionInline),
    Discount: (PromotionRefusalInline,),
}


def test_every_record_of_the_books_is_read_only_for_superusers_too(rf, admin_user) -> None:
    """Nobody adds, changes or deletes a payment, refund, dispute, event, stray payment, follow-up or revenue
    row in the admin, on its own pages or on an order's or a discount's (the `ReadOnly` mixin)."""
    request = rf.get("/admin/")
    request.user = admin_user
    for model in READ_ONLY_MODELS:
        model_admin = admin.site._registry[model]
        assert not model_admin.has_add_permission(request), model
        assert not model_admin.has_change_permission(request, None), model
        assert not model_admin.has_delete_permission(request, None), model
    for parent, inlines in READ_ONLY_INLINES.items():
        registered = admin.site._registry[parent]
        assert set(inlines) <= set(registered.inlines), parent
        for inline_class in inlines:
            inline = inline_class(parent, admin.site)
            assert not inline.has_add_permission(request, None), inline_class
            assert not inline.has_change_permission(request, None), inline_class
            assert not inline.has_delete_permission(request, None), inline_class
            assert inline.get_extra(request) == 0 and not inline.can_delete, inline_class


# ------------------------------------------------------------------------------------------------ reading well


def cells(html: str, column: str) -> list[str]:
    """The text of one column of an admin table (`<td class="field-<column>">`), row by row."""
    found = re.findall(rf'<t[dh] class="field-{column}[^"]*">(.*?)</t[dh]>', html, re.S)
    return [" ".join(unescape(re.sub(r"<[^>]+>", " ", c)).split()) for c in found]


def record(order: Order, minor: int, **fields: Any) -> Payment:
    """A payment of `minor` units as the webhooks leave it (succeeded), without asking Stripe."""
    defaults: dict[str, Any] = {
        "kind": "payment_intent",
        "account": order.currency,
        "stripe_id": f"pi_3MtwBwLkdIwHu7ix{order.pk:08d}",
        "currency": order.currency,
        "amount": minor,
        "amount_received": minor,
        "status": "succeeded",
        "stripe_status": "succeeded",
        "idempotency_key": f"key-{order.pk}",
    }
    return Payment.objects.create(order=order, **{**defaults, **fields})


@pytest.fixture
def four_currencies(more_currencies: Any) -> dict[str, Order]:
    """A paid order in each of USD, EUR, JPY (no decimals) and KWD (three), each with its payment; the USD one
    partly refunded and disputed, the EUR one paid through Checkout."""
    made = {}
    for currency, price, minor in [
        ("USD", "133.50", 13350),
        ("EUR", "89.90", 8990),
        ("JPY", "1500", 1500),
        ("KWD", "12.500", 12500),
    ]:
        item = make_item(f"Item in {currency}", price, currency)
        order = make_cart((item, 1))
        Order.objects.filter(pk=order.pk).update(status="paid")
        order.refresh_from_db()
        made[currency.lower()] = order
        payment = record(order, minor)
        if currency == "USD":
            Refund.objects.create(
                order=order,
                payment=payment,
                amount=1000,
                currency="usd",
                reason="requested_by_staff",
                status="succeeded",
                stripe_id="re_3MtwBwLkdIwHu7ix0refund1",
                idempotency_key="refund-1",
                requested_by="merchant",
                description="$10.00",
            )
            Payment.objects.filter(pk=payment.pk).update(amount_refunded=1000)
            Order.objects.filter(pk=order.pk).update(
                amount_refunded=1000, status="partially_refunded", dispute_status="open"
            )
            Dispute.objects.create(
                order=order,
                payment=payment,
                account="usd",
                stripe_id="du_3MtwBwLkdIwHu7ix0dispute",
                amount=12350,
                currency="usd",
                reason="fraudulent",
                status="needs_response",
                funds_withdrawn=12350,
            )
        if currency == "EUR":
            Payment.objects.filter(pk=payment.pk).update(
                kind="checkout_session",
                stripe_id="cs_test_" + "a1B2c3D4e5" * 6,
                stripe_amount_total=8990,
                stripe_status="complete/paid",
            )
    return made


def test_every_amount_is_shown_in_its_currency(admin_client, four_currencies) -> None:
    shown = {"usd": "$133.50", "eur": "€89.90", "jpy": "¥1,500", "kwd": "12.500 KWD"}
    raw = ["13350", "8990", ">1500<", "12500", "133.500", "89.900", "1500.000"]
    for url in ["/admin/payments/order/", "/admin/payments/payment/"]:
        html = admin_client.get(url).content.decode()
        assert all(amount in html for amount in shown.values()), url
        assert not [r for r in raw if r in html], url
    payments = admin_client.get("/admin/payments/payment/").content.decode()
    assert "refunded $10.00" in payments
    orders = admin_client.get("/admin/payments/order/").content.decode()
    assert "refunded $10.00" in orders

    for currency, order in four_currencies.items():
        page = admin_client.get(f"/admin/payments/order/{order.pk}/change/").content.decode()
        amounts = re.search(r'<table class="shop-amounts" id="order-amounts">(.*?)</table>', page, re.S)
        assert amounts is not None and f"<td>{shown[currency]}</td>" in amounts.group(1)
        # The line: its unit price and amount in the currency, never the database's three decimals.
        assert cells(page, "unit_price_display") == [shown[currency]]
        assert cells(page, "amount_display")[0] == shown[currency]
        assert not [r for r in raw[4:] if r in page]
        payment = order.payments.get()
        detail = admin_client.get(f"/admin/payments/payment/{payment.pk}/change/").content.decode()
        assert re.search(rf'<div class="readonly">{re.escape(shown[currency])}', detail), currency
        assert f'<div class="readonly">{shown[currency]}</div>' in detail  # received

    usd = four_currencies["usd"]
    page = admin_client.get(f"/admin/payments/order/{usd.pk}/change/").content.decode()
    assert "<td>\u2212$10.00</td>" in page  # refunded, in the amounts
    assert cells(page, "amount_display")[-2].startswith("$10.00")  # the refund's row
    assert "$123.50" in cells(page, "amount_display")[-1]  # the dispute's row
    assert "$123.50 / $0.00" in page
    eur = four_currencies["eur"].payments.get()
    detail = admin_client.get(f"/admin/payments/payment/{eur.pk}/change/").content.decode()
    assert '<div class="readonly">€89.90</div>' in detail  # Stripe's total (Checkout)
    refunds_list = admin_client.get("/admin/payments/refund/").content.decode()
    assert "$10.00" in refunds_list and "re_3Mtw…und1" in refunds_list
    disputes = admin_client.get("/admin/payments/dispute/").content.decode()
    assert "$123.50" in disputes and "$123.50 / $0.00" in disputes


def test_long_stripe_ids_are_shortened_with_the_whole_id_at_hand(admin_client, four_currencies) -> None:
    session = four_currencies["eur"].payments.get()
    html = admin_client.get("/admin/payments/payment/").content.decode()
    assert f'title="{session.stripe_id}">cs_test_a1B2…D4e5</span>' in html
    assert "Checkout Session" in cells(html, "payment_id")[0] or "Checkout Session" in html
    detail = admin_client.get(f"/admin/payments/payment/{session.pk}/change/").content.decode()
    assert f"https://dashboard.stripe.com/test/checkout/sessions/{session.stripe_id}" in detail
    # Read-only records: viewed, never edited.
    assert 'name="_save"' not in detail
    assert admin_client.get("/admin/payments/refund/add/").status_code == 403


def test_the_attention_column_marks_only_flagged_orders(admin_client, usd_item) -> None:
    normal = make_cart(usd_item, browser="a")
    flagged = make_cart(usd_item, browser="b")
    flagged.flag("Stripe took $23.50; the order's total is $24.50.")
    flagged.save()
    html = admin_client.get("/admin/payments/order/").content.decode()
    ids = cells(html, "order_id")
    marks = dict(zip(ids, cells(html, "attention"), strict=True))
    assert marks[str(normal.public_id)[:8]] == ""
    assert "\u26a0 Needs attention" in marks[str(flagged.public_id)[:8]]
    tooltip = r'<span class="shop-flag" title="[^"]* Stripe took \$23.50;'
    assert re.search(tooltip, html)  # the note as the marker's tooltip
    assert "icon-no.svg" not in html and "icon-yes.svg" not in html  # no red crosses, no green ticks

    only = admin_client.get("/admin/payments/order/?attention=flagged").content.decode()
    assert str(flagged.public_id)[:8] in only and str(normal.public_id)[:8] not in only
    others = admin_client.get("/admin/payments/order/?attention=none").content.decode()
    assert str(normal.public_id)[:8] in others and str(flagged.public_id)[:8] not in others

    page = admin_client.get(f"/admin/payments/order/{flagged.pk}/change/").content.decode()
    note = re.search(r'<div class="shop-attention" id="attention-note">(.*?)</div></div>', page, re.S)
    assert note is not None and "Stripe took $23.50; the order&#x27;s total is $24.50." in note.group(1)
    assert (
        'id="attention-note"'
        not in admin_client.get(f"/admin/payments/order/{normal.pk}/change/").content.decode()
    )


def test_order_lines_read_as_what_was_bought(admin_client, usd_item, usd_item_2, more_currencies) -> None:
    cart = make_cart((usd_item, 2), (usd_item_2, 1))
    assert [str(line) for line in cart.lines.order_by("id")] == [
        "2 \u00d7 Espresso beans ($24.50 each)",
        "1 \u00d7 Ceramic dripper ($18.00 each)",
    ]
    yen = make_cart((make_item("Dripper", "1500", "JPY"), 3))
    assert str(yen.lines.get()) == "3 \u00d7 Dripper (¥1,500 each)"

    # A cart: its lines can be edited; the unit price has the currency's decimals, the label says the rest.
    page = admin_client.get(f"/admin/payments/order/{cart.pk}/change/").content.decode()
    assert "2 \u00d7 Espresso beans ($24.50 each)" in page
    assert 'name="lines-0-unit_price" value="24.50"' in page and 'name="lines-0-quantity"' in page
    assert cells(page, "amount_display") == ["$49.00", "$18.00", ""]  # the last: the empty new line's
    assert "In the order&#x27;s currency (USD)" in page
    assert 'name="_save"' in page

    # Being paid: read-only, in words.
    Order.objects.filter(pk=cart.pk).update(status="awaiting_payment")
    page = admin_client.get(f"/admin/payments/order/{cart.pk}/change/").content.decode()
    assert 'name="_save"' not in page and 'name="lines-0-quantity"' not in page
    assert cells(page, "item_name") == ["Espresso beans", "Ceramic dripper"]
    assert cells(page, "unit_price_display") == ["$24.50", "$18.00"]
    assert cells(page, "amount_display") == ["$49.00", "$18.00"]
    assert "2 \u00d7 Espresso beans ($24.50 each)" in page
    assert re.search(r"\b\d+ x \d+\b", page) is None  # the old "1 x 4"
    summary = cells(admin_client.get("/admin/payments/order/").content.decode(), "lines_summary")
    assert "2 \u00d7 Espresso beans, 1 \u00d7 Ceramic dripper" in summary


def test_the_customer_link_and_view_on_site_go_to_the_shop(admin_client, client, usd_item, settings) -> None:
    settings.SITE_URL = "https://shop.example.com"
    response = admin_client.post("/admin/payments/order/add/", order_form(usd_item.pk))
    order = Order.objects.get()
    shop_page = "https://shop.example.com" + reverse("payments:order", args=[order.public_id])
    assert response.status_code == 302
    page = admin_client.get(f"/admin/payments/order/{order.pk}/change/").content.decode()
    link = re.search(r'<input type="text" readonly id="customer-link" value="([^"]+)"', page)
    assert link is not None and link.group(1) == shop_page
    assert f'<a href="{shop_page}" class="viewsitelink">' in page  # not the admin's /admin/r/ redirect
    assert "/admin/r/" not in page
    assert "anyone who has it can see and pay the order" in page  # staff made it: no owner yet
    # The link works for the customer (any browser, not logged in) until someone pays it.
    assert client.get(reverse("payments:order", args=[order.public_id])).status_code == 200

    # A shopper's own order: the same link, with a word on who can open it; also once paid.
    Order.objects.filter(pk=order.pk).update(browser="someone", status="paid")
    page = admin_client.get(f"/admin/payments/order/{order.pk}/change/").content.decode()
    assert (
        f'id="customer-link" value="{shop_page}"' in page
        and f'href="{shop_page}" class="viewsitelink"' in page
    )
    assert "opens in the browser of the shopper who made the order" in page


def test_stripe_events_are_readable(admin_client, client, usd_item, stripe_fake) -> None:
    client.get(f"/buy/{usd_item.pk}")
    payment = Payment.objects.get()
    stripe_fake.emulator.pay_checkout_session(payment.stripe_id)
    stripe_fake.deliver_webhooks()
    event = StripeEvent.objects.filter(type="checkout.session.completed").get()
    html = admin_client.get("/admin/payments/stripeevent/").content.decode()
    assert "checkout.<wbr>session.<wbr>completed" in html and f'title="{event.event_id}"' in html
    detail = admin_client.get(f"/admin/payments/stripeevent/{event.pk}/change/").content.decode()
    assert (
        '<pre class="shop-payload">{\n  &quot;api_version&quot;' in detail
        or '<pre class="shop-payload">{\n' in detail
    )
    assert 'name="_save"' not in detail


def test_staff_edit_a_cart_and_its_lines(admin_client, usd_item, usd_item_2) -> None:
    cart = make_cart((usd_item, 2))
    line = cart.lines.get()
    form = {
        "currency": "usd",
        "discount": "",
        "email": "ada@example.com",
        "attention_note": "",
        "lines-TOTAL_FORMS": "2",
        "lines-INITIAL_FORMS": "1",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
        "lines-0-id": str(line.pk),
        "lines-0-order": str(cart.pk),
        "lines-0-item": str(usd_item.pk),
        "lines-0-quantity": "3",
        "lines-0-unit_price": "24.50",  # as the form shows it
        "lines-1-order": str(cart.pk),
        "lines-1-item": str(usd_item_2.pk),
        "lines-1-quantity": "1",
        "lines-1-unit_price": "",  # the item's current price
    }
    response = admin_client.post(f"/admin/payments/order/{cart.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    lines = [
        (str(line), line.unit_price) for line in cart.lines.select_related("item", "order").order_by("id")
    ]
    assert lines == [
        ("3 \u00d7 Espresso beans ($24.50 each)", Decimal("24.500")),
        ("1 \u00d7 Ceramic dripper ($18.00 each)", Decimal("18.000")),
    ]
    cart.refresh_from_db()
    assert cart.email == "ada@example.com"
    page = admin_client.get(f"/admin/payments/order/{cart.pk}/change/").content.decode()
    assert "<td>$91.50</td>" in page  # the amounts: 3 x 24.50 + 18.00


def test_a_refund_of_an_amount_says_its_amount_once(admin_client, four_currencies) -> None:
    """Its "what" was the amount again ("$10.00 / $10.00"); refunds of lines keep theirs as small print."""
    html = admin_client.get("/admin/payments/refund/").content.decode()
    assert html.count("$10.00") == 1


def test_currencies_are_written_as_staff_read_them(admin_client, four_currencies) -> None:
    """USD, not usd: in every list's filter, on an order's and a payment's page, and in a new order's form."""
    for url in ("/admin/payments/order/", "/admin/payments/payment/", "/admin/payments/refund/"):
        html = admin_client.get(url).content.decode()
        assert ">USD</a>" in html and ">usd</a>" not in html, url
    order = four_currencies["jpy"]
    page = admin_client.get(f"/admin/payments/order/{order.pk}/change/").content.decode()
    assert '<div class="readonly">JPY</div>' in page
    payment = order.payments.get()
    page = admin_client.get(f"/admin/payments/payment/{payment.pk}/change/").content.decode()
    assert '<div class="readonly">JPY</div>' in page
    add = admin_client.get("/admin/payments/order/add/").content.decode()
    assert '<option value="usd">USD</option>' in add and '<option value="eur">EUR</option>' in add


def test_every_admin_page_links_the_shops_icon(admin_client) -> None:
    """Without a link, browsers ask every admin page for /favicon.ico, which is a 404."""
    from django.test import Client

    pages = [admin_client.get(url) for url in ("/admin/", "/admin/payments/order/")]
    pages.append(Client().get("/admin/login/"))
    for page in pages:
        assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page.content.decode()
