"""Staff work in the admin: orders created for a customer, totals from pricing, filters, read-only records."""

from __future__ import annotations

import pytest

from payments.models import Order, Payment

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
