"""The shop's pages: the catalog by currency, the item page with both ways to pay, the 404 page."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from djmoney.money import Money

from catalog.models import Item
from catalog.tests.factories import make_item

pytestmark = pytest.mark.django_db


def test_index_lists_items_grouped_by_currency(client, usd_item, usd_item_2, eur_item) -> None:
    response = client.get("/")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.index("Priced in EUR") < html.index("Hand grinder") < html.index("Priced in USD")
    assert html.index("Priced in USD") < html.index("Ceramic dripper") < html.index("Espresso beans")
    assert f'href="/item/{eur_item.pk}"' in html
    assert "$24.50" in html and "€89.90" in html


def test_index_hides_inactive_items(client, usd_item) -> None:
    usd_item.is_active = False
    usd_item.save()
    assert "Espresso beans" not in client.get("/").content.decode()


def test_index_queries_do_not_grow_with_items(client, django_assert_max_num_queries) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def render_cost() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/").status_code == 200  # a miss: rendered and stored in the cache
        return len(ctx.captured_queries)

    make_item("Item", "1.00")
    few = render_cost()
    for n in range(30):
        make_item(f"Item {n}", f"{1 + n}.00")
    assert render_cost() == few
    with django_assert_max_num_queries(1):  # a hit: the cache only
        assert client.get("/").status_code == 200


def test_item_page_shows_the_item_and_both_ways_to_pay(client, usd_item) -> None:
    response = client.get(f"/item/{usd_item.pk}")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Espresso beans" in html and "1 kg, roasted for espresso." in html
    assert '<p class="price big" id="item-price">$24.50</p>' in html
    assert 'id="pay-button"' in html and "Pay $24.50" in html
    assert 'id="checkout-button"' in html and f'<form method="get" action="/buy/{usd_item.pk}"' in html
    assert f'data-intent-url="/item/{usd_item.pk}/intent"' in html
    assert 'id="add-to-order"' in html
    assert '<script src="https://js.stripe.com/endive/stripe.js"></script>' in html
    assert "csrfmiddlewaretoken" in html


def test_item_page_carries_only_its_own_currency_publishable_key(
    client, usd_item, eur_item, settings
) -> None:
    usd_pk = settings.STRIPE_ACCOUNTS["usd"]["publishable_key"]
    eur_pk = settings.STRIPE_ACCOUNTS["eur"]["publishable_key"]
    eur_html = client.get(f"/item/{eur_item.pk}").content.decode()
    assert f'data-publishable-key="{eur_pk}"' in eur_html and usd_pk not in eur_html
    usd_html = client.get(f"/item/{usd_item.pk}").content.decode()
    assert f'data-publishable-key="{usd_pk}"' in usd_html and eur_pk not in usd_html
    for html in (eur_html, usd_html):
        assert "sk_test_" not in html and "whsec_" not in html


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        ("24.50", "USD", "$24.50"),
        ("89.90", "EUR", "€89.90"),
        ("1500", "JPY", "¥1,500"),
        ("12.500", "KWD", "KWD\xa012.500"),  # CLDR's English pattern, the code kept apart from the digits
    ],
)
def test_price_format_per_currency(client, amount, currency, shown) -> None:
    item = make_item("Thing", amount, currency)
    assert shown in client.get(f"/item/{item.pk}").content.decode()


def test_item_page_without_an_account_says_payments_are_not_set_up(client) -> None:
    item = make_item("Tea", "5.00", "GBP")
    html = client.get(f"/item/{item.pk}").content.decode()
    assert "Payments in GBP are not set up" in html and 'id="pay-button"' not in html


@pytest.mark.parametrize("path", ["/item/424242", "/item/0", "/item/abc", "/item/-3", "/nowhere"])
def test_unknown_pages_are_a_friendly_404(client, path) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert "Not found" in response.content.decode()


def test_item_page_refuses_post(client, usd_item) -> None:
    assert client.post(f"/item/{usd_item.pk}").status_code == 405


def test_pages_carry_stripes_content_security_policy(client, usd_item) -> None:
    policy = client.get(f"/item/{usd_item.pk}")["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
    assert directives["script-src"] == ["'self'", "https://js.stripe.com", "https://*.js.stripe.com"]
    assert directives["frame-src"] == [
        "'self'",
        "https://js.stripe.com",
        "https://*.js.stripe.com",
        "https://hooks.stripe.com",
    ]
    assert directives["connect-src"] == ["'self'", "https://api.stripe.com"]
    assert "https://checkout.stripe.com" in directives["form-action"]
    assert directives["frame-ancestors"] == ["'none'"] and directives["object-src"] == ["'none'"]
    assert "Content-Security-Policy" not in client.get("/admin/login/")  # the admin keeps Django's own pages


def test_a_local_stand_in_for_stripe_is_allowed_instead(client, usd_item, settings) -> None:
    from core import csp

    settings.CONTENT_SECURITY_POLICY = csp.policy(
        "http://127.0.0.1:12111/js/stripe.js", "http://127.0.0.1:12111"
    )
    policy = client.get("/")["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
    assert directives["script-src"] == [
        "'self'",
        "https://js.stripe.com",
        "https://*.js.stripe.com",
        "http://127.0.0.1:12111",
    ]
    assert (
        "http://127.0.0.1:12111" in directives["connect-src"]
        and "http://127.0.0.1:12111" in directives["frame-src"]
    )


def test_healthz_answers_when_the_database_does(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}


class TestItemModel:
    def test_currency_reads_the_price_currency(self, eur_item) -> None:
        assert eur_item.currency == "eur"

    def test_price_must_be_in_a_configured_currency(self) -> None:
        with pytest.raises(ValidationError, match="GBP has no Stripe account"):
            Item(name="Tea", price=Money(Decimal("5.00"), "GBP")).full_clean()

    def test_price_must_be_chargeable_exactly(self) -> None:
        with pytest.raises(ValidationError, match="cannot be charged exactly"):
            Item(name="Odd", price=Money(Decimal("5.005"), "USD")).full_clean()


class TestAdmin:
    def test_item_list_shows_prices_with_currency_and_filters(self, admin_client, usd_item, eur_item) -> None:
        html = admin_client.get("/admin/catalog/item/").content.decode()
        assert "$24.50" in html and "€89.90" in html
        assert "price_currency__exact=EUR" in html  # the currency filter
        filtered = admin_client.get("/admin/catalog/item/?price_currency__exact=EUR").content.decode()
        assert "Hand grinder" in filtered and "Espresso beans" not in filtered

    def test_item_search_by_name(self, admin_client, usd_item, eur_item) -> None:
        html = admin_client.get("/admin/catalog/item/?q=grinder").content.decode()
        assert "Hand grinder" in html and "Espresso beans" not in html
