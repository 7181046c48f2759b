"""The catalog's admin: prices as Stripe shows them (list, read-only and in the edit form), the shop's own page
behind "View on site"."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.urls import reverse

from catalog.models import Item
from catalog.tests.factories import make_item

pytestmark = pytest.mark.django_db

SHOWN = {"USD": "$24.50", "EUR": "€89.90", "JPY": "¥1,500", "KWD": "12.500 KWD"}
TYPED = {"USD": "24.50", "EUR": "89.90", "JPY": "1500", "KWD": "12.500"}
PRICES = {"USD": "24.50", "EUR": "89.90", "JPY": "1500", "KWD": "12.5"}


@pytest.fixture
def items() -> dict[str, Item]:
    return {code: make_item(f"Item in {code}", price, code) for code, price in PRICES.items()}


def test_the_list_shows_prices_as_stripe_does(admin_client, items) -> None:
    html = admin_client.get("/admin/catalog/item/").content.decode()
    prices = re.findall(r'<td class="field-price_with_currency">(.*?)</td>', html)
    assert sorted(prices) == sorted(SHOWN.values())
    assert "89.900" not in html and "1500.000" not in html and "24.500" not in html


@pytest.mark.parametrize("code", list(SHOWN))
def test_the_item_page_shows_the_price_with_the_currency_decimals(admin_client, items, code) -> None:
    page = admin_client.get(f"/admin/catalog/item/{items[code].pk}/change/").content.decode()
    assert f'name="price_0" value="{TYPED[code]}"' in page  # the input: 89.90, not the database's 89.900
    assert f'<div class="readonly">{SHOWN[code]}</div>' in page  # what shoppers see
    assert "1500 (JPY), 12.500 (KWD)" in page  # the help text says how to type it


def test_a_price_typed_in_the_form_is_kept_exactly(admin_client, items) -> None:
    grinder = items["EUR"]
    response = admin_client.post(
        f"/admin/catalog/item/{grinder.pk}/change/",
        {"name": grinder.name, "description": "", "price_0": "79.90", "price_1": "EUR", "is_active": "on"},
    )
    assert response.status_code == 302
    grinder.refresh_from_db()
    assert (grinder.amount, grinder.currency, grinder.display_price) == (Decimal("79.90"), "eur", "€79.90")
    refused = admin_client.post(
        f"/admin/catalog/item/{grinder.pk}/change/",
        {"name": grinder.name, "description": "", "price_0": "79.905", "price_1": "EUR", "is_active": "on"},
    )
    assert "cannot be charged exactly in EUR" in refused.content.decode()


def test_view_on_site_opens_the_item_page_in_the_shop(admin_client, items, settings) -> None:
    settings.SITE_URL = "https://shop.example.com"
    item = items["USD"]
    page = admin_client.get(f"/admin/catalog/item/{item.pk}/change/").content.decode()
    url = "https://shop.example.com" + reverse("catalog:item", args=[item.pk])
    assert f'<a href="{url}" class="viewsitelink">' in page and "/admin/r/" not in page
