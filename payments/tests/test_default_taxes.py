"""Taxes that apply to every order in a currency: shoppers' carts and one-item orders carry them, shown on the
order page and sent to Checkout exactly like taxes staff attach."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client

from payments.models import Order, OrderStatus, Tax
from payments.orders import with_pricing
from payments.pricing import price_order
from payments.tests.merchant import JSON, pay_item

pytestmark = pytest.mark.django_db


def cart_of(web: Client, *lines: tuple[Any, int]) -> Order:
    first, quantity = lines[0]
    order = Order.objects.get(
        public_id=web.post("/order/new/", {"item_id": first.pk, "quantity": quantity}, **JSON).json()["id"]
    )
    for product, count in lines[1:]:
        web.post(f"/order/put/{order.public_id}", {"item_id": product.pk, "quantity": count}, **JSON)
    return order


def page_amount(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert match, f"#{element_id} not on the page"
    return match.group(1)


@pytest.fixture
def sales_tax() -> Tax:
    return Tax.objects.create(
        name="Sales tax",
        percentage=Decimal("8.875"),
        inclusive=False,
        applies_to_every_order=True,
        currency="usd",
    )


def test_a_shoppers_cart_carries_the_currencys_default_tax(client, usd_item, usd_item_2, sales_tax) -> None:
    order = cart_of(client, (usd_item, 2), (usd_item_2, 1))
    priced = price_order(with_pricing().get(pk=order.pk))
    assert [t.tax.name for t in priced.taxes] == ["Sales tax"]
    assert priced.total == 6700 + 595
    page = client.get(f"/order/{order.public_id}").content.decode()
    assert "Sales tax 8.875%" in page and page_amount(page, "order-total") == "$72.95"


def test_it_is_sent_to_checkout_as_a_tax_rate_like_an_attached_one(
    client, usd_item, sales_tax, stripe_fake
) -> None:
    order = cart_of(client, (usd_item, 2))
    session = client.get(f"/order/buy/{order.public_id}", **JSON).json()
    [rate] = stripe_fake.calls("POST", "/v1/tax_rates")
    assert rate.params["display_name"] == "Sales tax" and rate.params["inclusive"] == "false"
    [created] = stripe_fake.calls("POST", "/v1/checkout/sessions")
    [tax_rate] = [o["id"] for o in stripe_fake.emulator.objects.values() if o.get("object") == "tax_rate"]
    assert created.params["line_items"][0]["tax_rates"] == [tax_rate]
    assert stripe_fake.emulator.get(session["id"])["amount_total"] == 4900 + 435


def test_a_default_tax_also_attached_counts_once(client, usd_item, sales_tax) -> None:
    order = cart_of(client, (usd_item, 2))
    order.taxes.add(sales_tax)
    priced = price_order(with_pricing().get(pk=order.pk))
    assert [t.tax.id for t in priced.taxes] == [sales_tax.id] and priced.total == 4900 + 435


def test_only_active_taxes_of_the_orders_currency_apply(client, usd_item, eur_item, sales_tax) -> None:
    Tax.objects.create(
        name="MwSt", percentage=Decimal("19"), inclusive=True, applies_to_every_order=True, currency="eur"
    )
    Tax.objects.create(
        name="Old levy", percentage=Decimal("1"), applies_to_every_order=True, currency="usd", is_active=False
    )
    usd = price_order(with_pricing().get(pk=cart_of(client, (usd_item, 1)).pk))
    eur = price_order(with_pricing().get(pk=cart_of(Client(), (eur_item, 1)).pk))
    assert [t.tax.name for t in usd.taxes] == ["Sales tax"]
    assert [t.tax.name for t in eur.taxes] == ["MwSt"] and eur.total == 8990 and eur.inclusive_tax == 1435


def test_a_frozen_order_keeps_the_taxes_it_was_frozen_with(client, usd_item, sales_tax, stripe_fake) -> None:
    order = cart_of(client, (usd_item, 2))
    answer = client.post(f"/order/intent/{order.public_id}", **JSON).json()
    assert answer["amount"] == 5335
    sales_tax.percentage = Decimal("10")
    sales_tax.save()
    assert price_order(with_pricing().get(pk=order.pk)).total == 5335
    stripe_fake.pay_intent(answer["client_secret"].split("_secret_")[0])
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID and order.total == 5335


def test_the_item_page_pays_its_price_with_the_default_tax_both_ways(
    client, usd_item, sales_tax, stripe_fake
) -> None:
    page = client.get(f"/item/{usd_item.pk}").content.decode()
    assert 'data-amount="2667"' in page and "Pay $26.67" in page and "Plus Sales tax 8.875%" in page
    answer = client.post(f"/item/{usd_item.pk}/intent", {"expected_amount": 2667}, **JSON)
    assert answer.status_code == 200 and answer.json()["amount"] == 2667
    order, payment = pay_item(Client(), stripe_fake, usd_item, checkout=True)
    assert order.status == OrderStatus.PAID and payment.amount_received == 2667


def test_a_default_tax_needs_its_currency() -> None:
    from django.core.exceptions import ValidationError
    from django.db import IntegrityError, transaction

    with pytest.raises(ValidationError, match="needs the orders' currency"):
        Tax(name="X", percentage=Decimal("5"), applies_to_every_order=True).full_clean()
    with pytest.raises(IntegrityError), transaction.atomic():
        Tax.objects.create(name="X", percentage=Decimal("5"), applies_to_every_order=True)
