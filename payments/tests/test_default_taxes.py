"""Taxes that apply to every order in a currency: shoppers' carts and one-item orders carry them, shown on the
order page and sent to Checkout exactly like taxes staff attach; and the same total both ways with a promotion
code and a default tax, in USD, EUR and JPY."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.test import Client

from catalog.tests.factories import make_item
from payments.models import Discount, OrderStatus, Payment, Tax
from payments.orders import with_pricing
from payments.pricing import price_order
from payments.tests.support import JSON, cart_with, pay_item, pay_order

pytestmark = pytest.mark.django_db


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
    order = cart_with(client, (usd_item, 2), (usd_item_2, 1))
    priced = price_order(with_pricing().get(pk=order.pk))
    assert [t.tax.name for t in priced.taxes] == ["Sales tax"]
    assert priced.total == 6700 + 595
    page = client.get(f"/order/{order.public_id}").content.decode()
    assert "Sales tax 8.875%" in page and page_amount(page, "order-total") == "$72.95"


def test_it_is_sent_to_checkout_as_a_tax_rate_like_an_attached_one(
    client, usd_item, sales_tax, stripe_fake
) -> None:
    order = cart_with(client, (usd_item, 2))
    session = client.get(f"/order/buy/{order.public_id}", **JSON).json()
    [rate] = stripe_fake.calls("POST", "/v1/tax_rates")
    assert rate.params["display_name"] == "Sales tax" and rate.params["inclusive"] == "false"
    [created] = stripe_fake.calls("POST", "/v1/checkout/sessions")
    [tax_rate] = [o["id"] for o in stripe_fake.emulator.objects.values() if o.get("object") == "tax_rate"]
    assert created.params["line_items"][0]["tax_rates"] == [tax_rate]
    assert stripe_fake.emulator.get(session["id"])["amount_total"] == 4900 + 435


def test_a_default_tax_also_attached_counts_once(client, usd_item, sales_tax) -> None:
    order = cart_with(client, (usd_item, 2))
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
    usd = price_order(with_pricing().get(pk=cart_with(client, (usd_item, 1)).pk))
    eur = price_order(with_pricing().get(pk=cart_with(Client(), (eur_item, 1)).pk))
    assert [t.tax.name for t in usd.taxes] == ["Sales tax"]
    assert [t.tax.name for t in eur.taxes] == ["MwSt"] and eur.total == 8990 and eur.inclusive_tax == 1435


def test_a_frozen_order_keeps_the_taxes_it_was_frozen_with(client, usd_item, sales_tax, stripe_fake) -> None:
    order = cart_with(client, (usd_item, 2))
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


# ------------------------------------------------------------------------------------------------ same total


SAME_TOTAL = {
    "usd": ([("24.50", 2), ("18.00", 1), ("3.99", 7)], ("percent", "12.5"), ("8.875", False)),
    "eur": ([("89.90", 1), ("12.35", 3)], ("amount", "7.50"), ("19", True)),
    "jpy": ([("1500", 3), ("999", 1), ("120", 11)], ("amount", "777"), ("10", False)),
}


@pytest.mark.parametrize("currency", list(SAME_TOTAL))
def test_the_same_total_both_ways_with_a_promotion_code_and_a_default_tax(more_currencies, currency) -> None:
    fake, web = more_currencies, Client()
    lines, (kind, value), (percentage, inclusive) = SAME_TOTAL[currency]
    products = [make_item(f"Item {i}", price, currency.upper()) for i, (price, _) in enumerate(lines)]
    order = cart_with(web, *[(p, q) for p, (_, q) in zip(products, lines, strict=True)])
    Discount.objects.create(
        name="Promo",
        code="PROMO",
        **(
            {"percent_off": Decimal(value)}
            if kind == "percent"
            else {"amount_off": Decimal(value), "currency": currency}
        ),
    )
    Tax.objects.create(
        name="Tax",
        percentage=Decimal(percentage),
        inclusive=inclusive,
        applies_to_every_order=True,
        currency=currency,
    )
    assert web.post(f"/order/{order.public_id}/promo", {"code": "promo"}, **JSON).status_code == 200
    priced = price_order(with_pricing().get(pk=order.pk))
    assert priced.discount_total > 0 and (priced.exclusive_tax or priced.inclusive_tax) > 0
    page = web.get(f"/order/{order.public_id}").content.decode()
    assert page_amount(page, "order-total") == priced.display(priced.total)

    session = web.get(f"/order/buy/{order.public_id}", **JSON).json()
    intent = web.post(f"/order/intent/{order.public_id}", **JSON).json()
    assert fake.emulator.get(session["id"])["amount_total"] == priced.total == intent["amount"]
    paid = pay_order(web, fake, order)
    assert order.status == OrderStatus.PAID and paid.amount_received == priced.total

    web2 = Client()  # another shopper's cart with the same code, paid on Checkout this time
    other = cart_with(web2, *[(p, q) for p, (_, q) in zip(products, lines, strict=True)])
    web2.post(f"/order/{other.public_id}/promo", {"code": "PROMO"}, **JSON)
    paid = pay_order(web2, fake, other, checkout=True)
    assert other.status == OrderStatus.PAID and paid.amount_received == priced.total
    assert Payment.objects.filter(status="succeeded").count() == 2
