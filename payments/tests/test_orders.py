"""Orders of several items: the cart endpoints, their rules, and paying one total through Checkout (with a
coupon and tax rates) or a PaymentIntent (with the total computed by `payments.pricing`)."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from djmoney.money import Money
from stripe.params.checkout import SessionCreateParams

from catalog.models import Item
from catalog.tests.factories import make_item
from payments.models import (
    Discount,
    Order,
    OrderLine,
    OrderStatus,
    Payment,
    PaymentKind,
    PaymentStatus,
    StripeObject,
    Tax,
)
from payments.orders import with_pricing
from payments.pricing import price_order
from payments.tests.factories import amount_off, make_tax, percent_off
from stripe_emulator.params import validate_params

pytestmark = pytest.mark.django_db

JSON = {"HTTP_ACCEPT": "application/json"}
USD_KEY = settings.STRIPE_ACCOUNTS["usd"]["secret_key"]
EUR_KEY = settings.STRIPE_ACCOUNTS["eur"]["secret_key"]


# ------------------------------------------------------------------------------------------ helpers


def new_cart(web: Client, **data: Any) -> Order:
    response = web.post("/order/new/", data, **JSON)
    assert response.status_code == 201, response.content
    return Order.objects.get(public_id=response.json()["id"])


def put(web: Client, order: Order, item: Item | int | str, quantity: Any = 1, mode: str | None = None) -> Any:
    data: dict[str, Any] = {"item_id": item.pk if isinstance(item, Item) else item, "quantity": quantity}
    if mode:
        data["mode"] = mode
    return web.post(f"/order/put/{order.public_id}", data, **JSON)


def remove(web: Client, order: Order, item: Item) -> Any:
    return web.post(f"/order/remove/{order.public_id}", {"item_id": item.pk}, **JSON)


def buy(web: Client, order: Order) -> Any:
    return web.get(f"/order/buy/{order.public_id}")


def change(web: Client, order: Order) -> Any:
    return web.post(f"/order/{order.public_id}/change", HTTP_ACCEPT="application/json")


def intent(web: Client, order: Order) -> Any:
    return web.post(f"/order/intent/{order.public_id}")


def state(order: Order) -> tuple[Any, ...]:
    """Everything a refused request must leave as it was."""
    order = Order.objects.get(pk=order.pk)
    lines = list(OrderLine.objects.filter(order=order).values_list("item_id", "quantity", "unit_price"))
    return (
        order.status,
        order.currency,
        order.updated_at,
        order.discount_id,
        lines,
        Payment.objects.filter(order=order).count(),
        Order.objects.count(),
    )


def error_of(response: Any) -> dict[str, str]:
    return response.json()["error"]


def total_of(order: Order) -> int:
    return price_order(with_pricing().get(pk=order.pk)).total


def page_amount(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert match, f"#{element_id} not on the page"
    return match.group(1)


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture
def cart(client) -> Order:
    """An empty draft owned by the test client's session."""
    return new_cart(client)


@pytest.fixture
def cart_with_two_items(client, cart, usd_item, usd_item_2) -> Order:
    """2 x Espresso beans ($24.50) + 1 x Ceramic dripper ($18.00) = $67.00."""
    assert put(client, cart, usd_item, 2).status_code == 200
    assert put(client, cart, usd_item_2, 1).status_code == 200
    cart.refresh_from_db()
    return cart


@pytest.fixture
def ten_percent_off() -> Discount:
    return percent_off("10")


@pytest.fixture
def five_dollars_off() -> Discount:
    return amount_off("5.00", "usd", "Five dollars off")


@pytest.fixture
def vat_included() -> Tax:
    return make_tax("VAT", "20", inclusive=True)


@pytest.fixture
def sales_tax() -> Tax:
    return make_tax("Sales tax", "8.875", inclusive=False)


@pytest.fixture
def levy() -> Tax:
    return make_tax("City levy", "2.5", inclusive=False)


@pytest.fixture
def discounted_taxed_cart(cart_with_two_items, ten_percent_off, levy, sales_tax) -> Order:
    """10% off 67.00 (670 split 490/180 over the lines), then 2.5% and 8.875% added on each discounted line:
    4410 + 110 + 391 and 1620 + 41 + 144, 6716 in all."""
    order = cart_with_two_items
    order.discount = ten_percent_off
    order.save()
    order.taxes.add(levy, sales_tax)
    return order


@pytest.fixture
def other_browser() -> Client:
    return Client()


# ------------------------------------------------------------------------------------------ the cart


def test_new_order_answers_its_id_and_page_as_json(client) -> None:
    response = client.post("/order/new/", **JSON)
    assert response.status_code == 201
    body = response.json()
    order = Order.objects.get(public_id=body["id"])
    assert body["url"] == f"/order/{order.public_id}" == order.get_absolute_url()
    assert order.status == OrderStatus.DRAFT
    assert order.currency == "usd"
    assert order.browser and order.browser == client.session["browser"]
    assert not order.lines.exists()


def test_order_ids_are_random_uuids_not_row_numbers(client) -> None:
    order = new_cart(client)
    assert uuid.UUID(str(order.public_id)).version == 4
    assert client.get(f"/order/{order.pk}").status_code == 404


def test_new_order_from_a_form_redirects_to_its_page(client) -> None:
    response = client.post("/order/new/")
    order = Order.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/order/{order.public_id}"


def test_new_order_with_an_item_puts_it_in(client, eur_item) -> None:
    order = new_cart(client, item_id=eur_item.pk, quantity=3)
    assert order.currency == "eur"
    assert list(order.lines.values_list("item_id", "quantity", "unit_price")) == [
        (eur_item.pk, 3, Decimal("89.900"))
    ]


def test_put_adds_an_item_with_its_quantity(client, cart, usd_item) -> None:
    response = put(client, cart, usd_item, 2)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(cart.public_id)
    assert body["lines"] == [{"item_id": usd_item.pk, "quantity": 2}]
    assert body["total"] == 4900
    line = cart.lines.get()
    assert (line.item_id, line.quantity, line.unit_price) == (usd_item.pk, 2, Decimal("24.50"))


def test_put_again_adds_to_the_quantity(client, cart, usd_item) -> None:
    put(client, cart, usd_item, 2)
    put(client, cart, usd_item, 3)
    assert cart.lines.get().quantity == 5


def test_put_with_mode_set_changes_the_quantity(client, cart_with_two_items, usd_item) -> None:
    response = put(client, cart_with_two_items, usd_item, 7, mode="set")
    assert response.status_code == 200
    assert cart_with_two_items.lines.get(item=usd_item).quantity == 7
    assert response.json()["total"] == 7 * 2450 + 1800


def test_put_from_a_form_redirects_to_the_order_page(client, cart, usd_item) -> None:
    response = client.post(f"/order/put/{cart.public_id}", {"item_id": usd_item.pk, "quantity": 1})
    assert response.status_code == 302
    assert response["Location"] == f"/order/{cart.public_id}"
    assert cart.lines.count() == 1


def test_the_line_keeps_the_price_it_was_added_at(client, cart, usd_item) -> None:
    put(client, cart, usd_item, 1)
    usd_item.price = Money(Decimal("30.00"), "USD")
    usd_item.save()
    assert cart.lines.get().unit_price == Decimal("24.50")
    assert total_of(cart) == 2450


def test_remove_takes_the_line_out(client, cart_with_two_items, usd_item, usd_item_2) -> None:
    response = remove(client, cart_with_two_items, usd_item)
    assert response.status_code == 200
    assert response.json()["lines"] == [{"item_id": usd_item_2.pk, "quantity": 1}]
    assert list(cart_with_two_items.lines.values_list("item_id", flat=True)) == [usd_item_2.pk]


def test_an_emptied_order_takes_the_currency_of_the_next_item(client, cart, usd_item, eur_item) -> None:
    put(client, cart, usd_item)
    remove(client, cart, usd_item)
    assert put(client, cart, eur_item).status_code == 200
    cart.refresh_from_db()
    assert cart.currency == "eur"


def test_an_emptied_order_with_a_fixed_discount_keeps_its_currency(
    client, cart, usd_item, eur_item, five_dollars_off
) -> None:
    """A fixed discount must be in the order's currency: the emptied order cannot switch to EUR under it."""
    put(client, cart, usd_item)
    cart.discount = five_dollars_off
    cart.save()
    remove(client, cart, usd_item)
    before = state(cart)
    response = put(client, cart, eur_item)
    assert response.status_code == 409
    assert error_of(response)["code"] == "currency_mismatch"
    assert "discount Five dollars off is in USD" in error_of(response)["message"]
    assert state(cart) == before
    assert client.get(f"/order/{cart.public_id}").status_code == 200
    assert put(client, cart, usd_item).status_code == 200


def test_order_page_shows_lines_subtotal_discount_each_tax_and_total(client, discounted_taxed_cart) -> None:
    response = client.get(f"/order/{discounted_taxed_cart.public_id}")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Espresso beans" in html and "Ceramic dripper" in html
    assert "$49.00" in html  # 2 x $24.50
    assert page_amount(html, "order-subtotal") == "$67.00"
    assert page_amount(html, "order-discount") == "\u2212$6.70"  # a minus sign
    assert "Discount: Ten percent off" in html
    # The levy is 2.5% of the discounted lines: 4410 x 2.5% = 110.25 -> 110, 1620 x 2.5% = 40.5 -> 41
    assert re.search(r"City levy 2\.5\d*%</th>(<td[^>]*></td>)*<td class=\"num amount\">\$1\.51<", html)
    # Sales tax 8.875% of 4410 = 391.39 -> 391, of 1620 = 143.78 -> 144
    # (the template shows the rate as "8.8750%": floatformat:"-4" pads a fractional rate to four places)
    assert re.search(r"Sales tax 8\.875\d*%</th>(<td[^>]*></td>)*<td class=\"num amount\">\$5\.35<", html)
    assert page_amount(html, "order-total") == "$67.16"
    assert total_of(discounted_taxed_cart) == 6716


def test_order_page_of_an_empty_order(client, cart) -> None:
    response = client.get(f"/order/{cart.public_id}")
    assert response.status_code == 200
    assert "This order is empty" in response.content.decode()


def test_buy_answers_the_checkout_session_id_and_url(client, cart_with_two_items, stripe_fake) -> None:
    response = buy(client, cart_with_two_items)
    assert response.status_code == 200
    body = response.json()
    assert body["id"].startswith("cs_")
    assert body["url"] == f"http://stripe-emulator.test/checkout/{body['id']}"
    assert body["order_id"] == str(cart_with_two_items.public_id)
    assert stripe_fake.emulator.get(body["id"])["amount_total"] == 6700


# ------------------------------------------------------------------------------------------ rules


def test_item_in_another_currency_is_refused(client, cart_with_two_items, eur_item) -> None:
    before = state(cart_with_two_items)
    response = put(client, cart_with_two_items, eur_item)
    assert response.status_code == 409
    error = error_of(response)
    assert error["code"] == "currency_mismatch"
    assert "EUR" in error["message"] and "USD" in error["message"]
    assert state(cart_with_two_items) == before


def test_item_in_another_currency_from_a_form_says_why(client, cart_with_two_items, eur_item) -> None:
    before = state(cart_with_two_items)
    page = f"http://testserver/order/{cart_with_two_items.public_id}"
    response = client.post(
        f"/order/put/{cart_with_two_items.public_id}",
        {"item_id": eur_item.pk, "quantity": 1},
        HTTP_ACCEPT="text/html",
        HTTP_REFERER=page,
        follow=True,
    )
    assert response.redirect_chain[-1][0] == page  # back to the order page, which says why
    assert "priced in EUR" in response.content.decode()
    assert state(cart_with_two_items) == before


def test_a_refused_form_from_a_cached_page_gets_a_page_saying_why(client, usd_item) -> None:
    item_page = f"http://testserver/item/{usd_item.pk}"
    response = client.post(
        "/cart/add",
        {"item_id": usd_item.pk, "quantity": "0"},
        HTTP_ACCEPT="text/html",
        HTTP_REFERER=item_page,
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "Quantity must be a whole number" in html and f'href="{item_page}"' in html


@pytest.mark.parametrize("quantity", [0, 100, -1, "abc", "1.5"])
@pytest.mark.parametrize("mode", ["add", "set"])
def test_bad_quantity_is_refused(client, cart_with_two_items, usd_item, quantity, mode) -> None:
    before = state(cart_with_two_items)
    response = put(client, cart_with_two_items, usd_item, quantity, mode=mode)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_quantity"
    assert "whole number" in error["message"]
    assert state(cart_with_two_items) == before


def test_adding_beyond_99_in_all_is_refused(client, cart_with_two_items, usd_item) -> None:
    before = state(cart_with_two_items)
    response = put(client, cart_with_two_items, usd_item, 98)  # 2 already in
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_quantity"
    assert state(cart_with_two_items) == before


def test_new_order_with_a_bad_quantity_in_text_creates_nothing(client, usd_item) -> None:
    response = client.post("/order/new/", {"item_id": usd_item.pk, "quantity": "abc"}, **JSON)
    assert response.status_code == 400
    assert not Order.objects.exists()


@pytest.mark.parametrize("quantity", [0, 100])
def test_new_order_with_an_out_of_range_quantity_creates_nothing(client, usd_item, quantity) -> None:
    response = client.post("/order/new/", {"item_id": usd_item.pk, "quantity": quantity}, **JSON)
    assert response.status_code == 400
    assert not Order.objects.exists()


@pytest.mark.parametrize("item_id", ["abc", "0", "-3", ""])
def test_put_without_a_valid_item_is_refused(client, cart_with_two_items, item_id) -> None:
    before = state(cart_with_two_items)
    response = put(client, cart_with_two_items, item_id)
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_item"
    assert state(cart_with_two_items) == before


def test_put_of_an_unknown_or_inactive_item_is_not_found(client, cart_with_two_items, usd_item_2) -> None:
    before = state(cart_with_two_items)
    assert put(client, cart_with_two_items, 999_999).status_code == 404
    Item.objects.filter(pk=usd_item_2.pk).update(is_active=False)
    assert put(client, cart_with_two_items, usd_item_2).status_code == 404
    assert state(cart_with_two_items) == before


def test_another_browser_cannot_see_or_change_a_draft(
    client, other_browser, cart_with_two_items, usd_item, usd_item_2, stripe_fake
) -> None:
    """A draft belongs to its browser session: to anyone else it does not exist (404, not 403, so an id that
    leaked does not even confirm the order)."""
    before = state(cart_with_two_items)
    oid = cart_with_two_items.public_id
    assert other_browser.get(f"/order/{oid}").status_code == 404
    assert put(other_browser, cart_with_two_items, usd_item, 5).status_code == 404
    assert put(other_browser, cart_with_two_items, usd_item, 5, mode="set").status_code == 404
    assert remove(other_browser, cart_with_two_items, usd_item_2).status_code == 404
    assert other_browser.get(f"/order/buy/{oid}").status_code == 404
    assert other_browser.post(f"/order/intent/{oid}").status_code == 404
    assert state(cart_with_two_items) == before
    assert stripe_fake.requests == []
    assert client.get(f"/order/{oid}").status_code == 200


def test_a_draft_without_an_owner_session_is_refused_with_403(client, usd_item) -> None:
    """An order created in the admin has no session: shoppers may view and pay it, not change it."""
    order = Order.objects.create(currency="usd")
    OrderLine.objects.create(order=order, item=usd_item, quantity=1, unit_price=usd_item.price.amount)
    before = state(order)
    response = put(client, order, usd_item, 2)
    assert response.status_code == 403
    assert error_of(response)["code"] == "not_your_order"
    assert error_of(remove(client, order, usd_item))["code"] == "not_your_order"
    assert state(order) == before
    assert client.get(f"/order/{order.public_id}").status_code == 200


def test_staff_can_change_a_shoppers_draft(other_browser, cart_with_two_items, usd_item) -> None:
    staff = get_user_model().objects.create_user("clerk", password="pw", is_staff=True)
    other_browser.force_login(staff)
    assert put(other_browser, cart_with_two_items, usd_item, 4, mode="set").status_code == 200
    assert cart_with_two_items.lines.get(item=usd_item).quantity == 4


@pytest.mark.parametrize("status", [OrderStatus.PAID, OrderStatus.PROCESSING, OrderStatus.REFUNDED])
def test_paid_or_pending_order_is_read_only(
    client, cart_with_two_items, usd_item, usd_item_2, status
) -> None:
    Order.objects.filter(pk=cart_with_two_items.pk).update(status=status)
    before = state(cart_with_two_items)
    for response in (
        put(client, cart_with_two_items, usd_item, 1),
        put(client, cart_with_two_items, usd_item, 1, mode="set"),
        remove(client, cart_with_two_items, usd_item_2),
    ):
        assert response.status_code == 409
        assert error_of(response)["code"] == "order_not_editable"
        assert "can no longer be changed" in error_of(response)["message"]
    assert state(cart_with_two_items) == before


def test_paid_order_is_not_paid_again(client, cart_with_two_items, stripe_fake) -> None:
    Order.objects.filter(pk=cart_with_two_items.pk).update(status=OrderStatus.PAID)
    before = state(cart_with_two_items)
    for response in (buy(client, cart_with_two_items), intent(client, cart_with_two_items)):
        assert response.status_code == 409
        assert error_of(response)["code"] == "order_not_payable"
    assert state(cart_with_two_items) == before
    assert stripe_fake.requests == []
    page = client.get(f"/order/{cart_with_two_items.public_id}").content.decode()
    assert "Update</button>" not in page and "Remove</button>" not in page


def test_an_empty_order_cannot_be_paid(client, cart, stripe_fake) -> None:
    before = state(cart)
    for response in (buy(client, cart), intent(client, cart)):
        assert response.status_code == 409
        assert error_of(response) == {
            "code": "empty_order",
            "message": "This order is empty: add an item before paying.",
        }
    assert state(cart) == before
    assert stripe_fake.requests == []


@pytest.mark.parametrize("order_id", [str(uuid.uuid4()), "not-a-uuid", "1", "%20"])
def test_unknown_or_malformed_order_id_is_not_found(client, cart_with_two_items, usd_item, order_id) -> None:
    before = state(cart_with_two_items)
    assert client.get(f"/order/{order_id}").status_code == 404
    assert client.post(f"/order/put/{order_id}", {"item_id": usd_item.pk, "quantity": 1}).status_code == 404
    assert client.post(f"/order/remove/{order_id}", {"item_id": usd_item.pk}).status_code == 404
    assert client.get(f"/order/buy/{order_id}").status_code == 404
    assert client.post(f"/order/intent/{order_id}").status_code == 404
    assert state(cart_with_two_items) == before


def test_wrong_methods_are_refused(client, cart_with_two_items) -> None:
    oid = cart_with_two_items.public_id
    before = state(cart_with_two_items)
    assert client.get("/order/new/").status_code == 405
    assert client.get(f"/order/put/{oid}").status_code == 405
    assert client.get(f"/order/remove/{oid}").status_code == 405
    assert client.post(f"/order/buy/{oid}").status_code == 405
    assert client.get(f"/order/intent/{oid}").status_code == 405
    assert client.post(f"/order/{oid}").status_code == 405
    assert client.delete(f"/order/{oid}").status_code == 405
    assert state(cart_with_two_items) == before


# ------------------------------------------------------------------------------------------ Checkout


def test_checkout_params_for_an_order_with_a_discount_and_two_taxes(
    client, discounted_taxed_cart, ten_percent_off, levy, sales_tax, stripe_fake
) -> None:
    body = buy(client, discounted_taxed_cart).json()

    [coupon_call] = stripe_fake.calls("POST", "/v1/coupons")
    assert coupon_call.api_key == USD_KEY
    # The discount the shop computed, as a fixed amount: Stripe has no percentage to round.
    assert (coupon_call.params["amount_off"], coupon_call.params["currency"]) == ("670", "usd")
    assert "percent_off" not in coupon_call.params
    assert coupon_call.params["duration"] == "once"
    assert coupon_call.params["metadata"] == {"discount_id": str(ten_percent_off.pk)}
    coupon = stripe_fake.emulator.get(body and StripeObject.objects.get(kind="coupon").stripe_id)
    assert coupon["amount_off"] == 670

    rate_calls = stripe_fake.calls("POST", "/v1/tax_rates")
    assert [
        (c.api_key, c.params["display_name"], c.params["percentage"], c.params["inclusive"])
        for c in rate_calls
    ] == [
        (USD_KEY, "City levy", "2.5", "false"),
        (USD_KEY, "Sales tax", "8.875", "false"),
    ]
    rate_ids = [
        StripeObject.objects.get(kind="tax_rate", local_id=tax.pk, account="usd").stripe_id
        for tax in (levy, sales_tax)
    ]

    [call] = stripe_fake.calls("POST", "/v1/checkout/sessions")
    assert call.api_key == USD_KEY
    assert validate_params(call.params, SessionCreateParams) == []
    assert call.params["discounts"] == [{"coupon": coupon["id"]}]
    assert [(li["price_data"]["unit_amount"], li["quantity"]) for li in call.params["line_items"]] == [
        ("2450", "2"),
        ("1800", "1"),
    ]
    assert all(li["tax_rates"] == rate_ids for li in call.params["line_items"])

    session = stripe_fake.emulator.get(body["id"])
    assert session["amount_subtotal"] == 6700
    assert session["total_details"]["amount_discount"] == 670
    assert session["amount_total"] == 6716 == total_of(discounted_taxed_cart)


def test_checkout_has_one_line_item_per_order_line(client, cart, stripe_fake) -> None:
    items = [make_item(f"Thing {i}", f"{i}.25") for i in range(1, 6)]
    for i, item in enumerate(items, start=1):
        put(client, cart, item, i)
    buy(client, cart)
    [call] = stripe_fake.calls("POST", "/v1/checkout/sessions")
    assert [
        (li["price_data"]["product_data"]["name"], li["quantity"]) for li in call.params["line_items"]
    ] == [(f"Thing {i}", str(i)) for i in range(1, 6)]
    assert "discounts" not in call.params
    assert all("tax_rates" not in li for li in call.params["line_items"])
    assert stripe_fake.calls("POST", "/v1/coupons") == stripe_fake.calls("POST", "/v1/tax_rates") == []


def test_fixed_discount_becomes_a_coupon_in_the_orders_currency(
    client, cart_with_two_items, five_dollars_off, stripe_fake
) -> None:
    cart_with_two_items.discount = five_dollars_off
    cart_with_two_items.save()
    body = buy(client, cart_with_two_items).json()
    [coupon_call] = stripe_fake.calls("POST", "/v1/coupons")
    assert coupon_call.params["amount_off"] == "500"
    assert coupon_call.params["currency"] == "usd"
    assert "percent_off" not in coupon_call.params
    assert stripe_fake.emulator.get(body["id"])["amount_total"] == 6200 == total_of(cart_with_two_items)


def test_coupons_and_tax_rates_are_created_in_the_account_of_the_orders_currency(
    client, eur_item, ten_percent_off, vat_included, stripe_fake
) -> None:
    order = new_cart(client, item_id=eur_item.pk, quantity=2)
    order.discount = ten_percent_off
    order.save()
    order.taxes.add(vat_included)
    body = buy(client, order).json()

    assert [c.api_key for c in stripe_fake.calls("POST", "/v1/coupons")] == [EUR_KEY]
    assert [c.api_key for c in stripe_fake.calls("POST", "/v1/tax_rates")] == [EUR_KEY]
    assert [c.api_key for c in stripe_fake.calls("POST", "/v1/checkout/sessions")] == [EUR_KEY]
    assert set(StripeObject.objects.values_list("account", flat=True)) == {"eur"}
    # 2 x 89.90 = 179.80, 10% off = 161.82, VAT included
    assert stripe_fake.emulator.get(body["id"])["amount_total"] == 16182 == total_of(order)


def test_the_same_discount_gets_a_coupon_in_each_account(
    client, usd_item, eur_item, ten_percent_off, sales_tax, stripe_fake
) -> None:
    for item in (usd_item, eur_item):
        order = new_cart(client, item_id=item.pk)
        order.discount = ten_percent_off
        order.save()
        order.taxes.add(sales_tax)
        assert buy(client, order).status_code == 200
    assert [c.api_key for c in stripe_fake.calls("POST", "/v1/coupons")] == [USD_KEY, EUR_KEY]
    assert [c.api_key for c in stripe_fake.calls("POST", "/v1/tax_rates")] == [USD_KEY, EUR_KEY]
    assert sorted(StripeObject.objects.values_list("kind", "account")) == [
        ("coupon", "eur"),
        ("coupon", "usd"),
        ("tax_rate", "eur"),
        ("tax_rate", "usd"),
    ]


def test_coupons_and_tax_rates_are_remembered(
    client, usd_item, ten_percent_off, levy, sales_tax, stripe_fake
) -> None:
    sessions = []
    for _ in range(2):  # two carts of the same total: the same coupon amount and the same rates
        order = new_cart(client, item_id=usd_item.pk, quantity=2)
        order.discount = ten_percent_off
        order.save()
        order.taxes.add(levy, sales_tax)
        assert buy(client, order).status_code == 200
    assert len(stripe_fake.calls("POST", "/v1/coupons")) == 1
    assert len(stripe_fake.calls("POST", "/v1/tax_rates")) == 2
    sessions = stripe_fake.calls("POST", "/v1/checkout/sessions")
    assert len(sessions) == 2
    assert sessions[0].params["discounts"] == sessions[1].params["discounts"]
    assert (
        sessions[0].params["line_items"][0]["tax_rates"] == sessions[1].params["line_items"][0]["tax_rates"]
    )


def test_an_edited_discount_or_tax_gets_a_new_coupon_or_tax_rate(
    client, discounted_taxed_cart, usd_item, ten_percent_off, sales_tax, stripe_fake
) -> None:
    first = buy(client, discounted_taxed_cart).json()
    old_coupon = stripe_fake.calls("POST", "/v1/checkout/sessions")[0].params["discounts"][0]["coupon"]

    ten_percent_off.percent_off = Decimal("15")
    ten_percent_off.save()
    sales_tax.percentage = Decimal("7.25")
    sales_tax.save()
    # The order was frozen when Checkout opened: staff's edits do not change what it is being paid for.
    assert buy(client, discounted_taxed_cart).json()["id"] == first["id"]
    assert len(stripe_fake.calls("POST", "/v1/checkout/sessions")) == 1
    page = client.get(f"/order/{discounted_taxed_cart.public_id}").content.decode()
    assert page_amount(page, "order-total") == "$67.16"

    # Changed by the shopper, the order is a cart again and takes the edited discount and tax.
    assert change(client, discounted_taxed_cart).status_code == 200
    assert stripe_fake.emulator.get(first["id"])["status"] == "expired"
    second = buy(client, discounted_taxed_cart).json()

    assert second["id"] != first["id"]  # another total, another session
    coupon_calls = stripe_fake.calls("POST", "/v1/coupons")
    assert [c.params["amount_off"] for c in coupon_calls] == ["670", "1005"]  # 10%, then 15% of 67.00
    rate_calls = stripe_fake.calls("POST", "/v1/tax_rates")
    assert [(c.params["display_name"], c.params["percentage"]) for c in rate_calls] == [
        ("City levy", "2.5"),
        ("Sales tax", "8.875"),
        ("Sales tax", "7.25"),  # the levy unchanged: remembered
    ]
    new_session = [
        c for c in stripe_fake.calls("POST", "/v1/checkout/sessions") if c.path == "/v1/checkout/sessions"
    ][1].params
    assert new_session["discounts"][0]["coupon"] != old_coupon
    assert stripe_fake.emulator.get(second["id"])["amount_total"] == total_of(discounted_taxed_cart)
    assert StripeObject.objects.filter(kind="coupon", local_id=ten_percent_off.pk).count() == 2

    # a third session with the edited versions reuses the rates; the coupon is one per amount off
    change(client, discounted_taxed_cart)
    put(client, discounted_taxed_cart, usd_item, 1)
    buy(client, discounted_taxed_cart)
    assert [c.params["amount_off"] for c in stripe_fake.calls("POST", "/v1/coupons")] == [
        "670",
        "1005",
        "1373",
    ]
    assert len(stripe_fake.calls("POST", "/v1/tax_rates")) == 3


def test_inactive_discount_and_tax_are_left_out(
    client, discounted_taxed_cart, ten_percent_off, levy, stripe_fake
) -> None:
    Discount.objects.filter(pk=ten_percent_off.pk).update(is_active=False)
    Tax.objects.filter(pk=levy.pk).update(is_active=False)
    body = buy(client, discounted_taxed_cart).json()
    [call] = stripe_fake.calls("POST", "/v1/checkout/sessions")
    assert "discounts" not in call.params
    assert len(stripe_fake.calls("POST", "/v1/tax_rates")) == 1
    assert stripe_fake.emulator.get(body["id"])["amount_total"] == 6700 + 595  # 8.875% of 4900 and 1800


# ------------------------------------------------------------------------------------------ same total both ways


CARTS = {
    "plain": ([("24.50", 2), ("18.00", 1)], None, []),
    "ten percent and sales tax": ([("24.50", 2), ("18.00", 1)], ("percent", "10"), [("8.875", False)]),
    "five dollars and two taxes included": (
        [("24.50", 2), ("18.00", 1), ("3.99", 7)],
        ("amount", "5.00"),
        [("20", True), ("2.5", True)],
    ),
    "odd percent and two exclusive taxes": (
        [("19.99", 3), ("0.99", 11), ("7.49", 1)],
        ("percent", "12.5"),
        [("6.25", False), ("2.25", False)],
    ),
    # Equal remainders in the coupon split: the cent must go to the same line as Stripe's, or the taxes differ.
    "tie in the discount split": (
        [("4.00", 1), ("1.00", 1), ("1.00", 1)],
        ("amount", "0.20"),
        [("19", False)],
    ),
    "discount larger than the order": ([("5.00", 2)], ("amount", "9.50"), [("10", False)]),
}


@pytest.mark.parametrize("name", list(CARTS))
def test_checkout_and_payment_intent_charge_the_same_total(client, stripe_fake, name) -> None:
    lines, discount, taxes = CARTS[name]
    order = new_cart(client)
    for i, (unit_price, quantity) in enumerate(lines):
        put(client, order, make_item(f"Item {i}", unit_price), quantity)
    if discount is not None:
        kind, value = discount
        order.discount = Discount.objects.create(
            name=name,
            **({"percent_off": Decimal(value)} if kind == "percent" else {"amount_off": Decimal(value)}),
            currency="" if kind == "percent" else "usd",
        )
        order.save()
    for i, (percentage, inclusive) in enumerate(taxes):
        order.taxes.add(
            Tax.objects.create(name=f"Tax {i}", percentage=Decimal(percentage), inclusive=inclusive)
        )
    expected = total_of(order)

    session_id = buy(client, order).json()["id"]
    answer = intent(client, order).json()
    session = stripe_fake.emulator.get(session_id)
    payment_intent = stripe_fake.emulator.get(Payment.objects.get(kind=PaymentKind.PAYMENT_INTENT).stripe_id)

    assert session["amount_total"] == expected
    assert answer["amount"] == payment_intent["amount"] == expected
    checkout_payment = Payment.objects.get(kind=PaymentKind.CHECKOUT_SESSION)
    intent_payment = Payment.objects.get(kind=PaymentKind.PAYMENT_INTENT)
    assert (checkout_payment.amount, checkout_payment.stripe_amount_total) == (expected, expected)
    assert (intent_payment.amount, intent_payment.stripe_amount_total) == (expected, expected)
    assert checkout_payment.account == intent_payment.account == checkout_payment.currency == "usd"
    page = client.get(f"/order/{order.public_id}").content.decode()
    assert page_amount(page, "order-total") == price_order(with_pricing().get(pk=order.pk)).display(expected)


def test_a_frozen_cart_is_changed_once_its_payment_intent_is_canceled_and_gets_a_new_one(
    client, discounted_taxed_cart, usd_item, stripe_fake
) -> None:
    first = intent(client, discounted_taxed_cart).json()
    assert first["amount"] == 6716
    [payment] = Payment.objects.all()
    before = state(discounted_taxed_cart)

    # Bad input changes nothing, not even the open PaymentIntent.
    assert put(client, discounted_taxed_cart, usd_item, 100).status_code == 400
    assert state(discounted_taxed_cart) == before
    assert not [
        c for c in stripe_fake.requests if c.path.startswith(f"/v1/payment_intents/{payment.stripe_id}")
    ]

    # A cart endpoint on the frozen cart cancels its PaymentIntent at Stripe first, then makes the change.
    assert put(client, discounted_taxed_cart, usd_item, 1).status_code == 200
    assert stripe_fake.emulator.get(payment.stripe_id)["status"] == "canceled"
    discounted_taxed_cart.refresh_from_db()
    assert discounted_taxed_cart.status == OrderStatus.DRAFT
    second = intent(client, discounted_taxed_cart).json()

    expected = total_of(discounted_taxed_cart)
    assert expected != 6716
    assert second["amount"] == expected
    assert second["client_secret"] != first["client_secret"]
    creates = [c for c in stripe_fake.calls("POST", "/v1/payment_intents") if c.path == "/v1/payment_intents"]
    assert len(creates) == 2
    assert creates[0].idempotency_key != creates[1].idempotency_key
    assert [c.params["metadata"]["order_version"] for c in creates] == ["1", "2"]
    assert {p.status for p in Payment.objects.all()} == {PaymentStatus.CANCELED, PaymentStatus.OPEN}


def test_a_reload_reuses_the_payment_intent_without_an_update(
    client, discounted_taxed_cart, stripe_fake
) -> None:
    first = intent(client, discounted_taxed_cart).json()
    second = intent(client, discounted_taxed_cart).json()
    assert first["client_secret"] == second["client_secret"]
    assert [c.path for c in stripe_fake.calls("POST", "/v1/payment_intents")] == ["/v1/payment_intents"]


def test_paying_the_payment_intent_pays_the_order(client, discounted_taxed_cart, stripe_fake) -> None:
    intent(client, discounted_taxed_cart)
    payment = Payment.objects.get()
    stripe_fake.pay_intent(payment.stripe_id)
    discounted_taxed_cart.refresh_from_db()
    assert discounted_taxed_cart.status == OrderStatus.PAID
    payment.refresh_from_db()
    assert payment.amount_received == 6716


def test_paying_the_checkout_session_pays_the_order(client, discounted_taxed_cart, stripe_fake) -> None:
    session_id = buy(client, discounted_taxed_cart).json()["id"]
    stripe_fake.pay_session(session_id)
    discounted_taxed_cart.refresh_from_db()
    assert discounted_taxed_cart.status == OrderStatus.PAID


# ------------------------------------------------------------------------------------------ query counts


def cart_of(web: Client, count: int, discount: Discount, taxes: list[Tax]) -> Order:
    order = new_cart(web)
    for i in range(count):
        put(web, order, make_item(f"Line {count}-{i}", f"{i + 1}.50"), 2)
    order.discount = discount
    order.save()
    order.taxes.add(*taxes)
    return order


def queries_for(web: Client, url: str) -> int:
    with CaptureQueriesContext(connection) as ctx:
        assert web.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_order_page_queries_do_not_grow_with_the_lines(
    client, ten_percent_off, levy, sales_tax, django_assert_max_num_queries
) -> None:
    small = cart_of(client, 2, ten_percent_off, [levy, sales_tax])
    large = cart_of(client, 10, ten_percent_off, [levy, sales_tax])
    assert queries_for(client, f"/order/{small.public_id}") == queries_for(
        client, f"/order/{large.public_id}"
    )
    # session, order + discount, lines + items, taxes, the taxes that apply to every order in its currency
    with django_assert_max_num_queries(5):
        client.get(f"/order/{large.public_id}")


def test_order_buy_queries_do_not_grow_with_the_lines(
    client, ten_percent_off, levy, sales_tax, django_assert_max_num_queries
) -> None:
    warm = cart_of(client, 1, ten_percent_off, [levy, sales_tax])
    client.get(f"/order/buy/{warm.public_id}")  # coupon and tax rates created and remembered
    small = cart_of(client, 2, ten_percent_off, [levy, sales_tax])
    large = cart_of(client, 10, ten_percent_off, [levy, sales_tax])
    small_count = queries_for(client, f"/order/buy/{small.public_id}")
    large_count = queries_for(client, f"/order/buy/{large.public_id}")
    assert small_count == large_count
    with django_assert_max_num_queries(small_count):
        client.get(f"/order/buy/{large.public_id}")  # reusing the open session costs no more


# ------------------------------------------------------------------------------------------ demo data


def test_the_demo_has_yen_items_when_there_is_a_jpy_account(more_currencies, settings) -> None:
    settings.CURRENCIES = [c.upper() for c in settings.STRIPE_ACCOUNTS]
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    yen = Item.objects.filter(price_currency="JPY").order_by("price")
    assert [(i.name, i.minor_amount) for i in yen] == [("Drip bags, 10", 1500), ("Cold brew bottle", 3200)]


def test_seed_demo_runs_twice_without_duplicating() -> None:
    def counts() -> tuple[int, ...]:
        return tuple(m.objects.count() for m in (Item, Discount, Tax, Order, OrderLine))

    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    first = counts()
    assert first == (6, 1, 2, 1, 2)  # USD and EUR: the test settings' accounts
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert counts() == first
    sample = with_pricing().get()
    assert sample.discount.name == "Welcome 10%"
    assert sorted(t.name for t in sample.taxes.all()) == ["City levy"]  # never an included and an added tax
    assert price_order(sample).total > 0


def test_a_fixed_discount_in_another_currency_never_applies(client, cart_with_two_items) -> None:
    euros_off = amount_off("5", "eur")
    cart_with_two_items.discount = euros_off
    with pytest.raises(ValidationError, match="fixed amount in EUR"):
        cart_with_two_items.full_clean()
    cart_with_two_items.save()  # staff bypassing validation: pages still price the order, without it
    response = client.get(f"/order/{cart_with_two_items.public_id}")
    assert response.status_code == 200
    assert "5 EUR off" not in response.content.decode()


def test_a_refused_form_goes_back_only_to_a_page_of_the_shop(client, usd_item, eur_item) -> None:
    cart = client.post("/order/new/", {"item_id": usd_item.pk}).url
    order_id = cart.rstrip("/").rsplit("/", 1)[1]
    evil = client.post(
        f"/order/put/{order_id}", {"item_id": eur_item.pk}, HTTP_REFERER="https://evil.example/"
    )
    assert evil.status_code == 409 and "evil.example" not in evil.content.decode()
    assert 'class="button primary" href="/"' in evil.content.decode()
    bad = client.post(
        "/order/new/", {"item_id": usd_item.pk, "quantity": "0"}, HTTP_REFERER="https://evil.example/"
    )
    assert bad.status_code == 400 and "evil.example" not in bad.content.decode()


# ------------------------------------------------------------------------------------------ what the pages say


def test_your_orders_counts_the_units_an_order_holds(client, usd_item, usd_item_2) -> None:
    order = new_cart(client)
    put(client, order, usd_item, 3)
    put(client, order, usd_item_2, 2)
    html = client.get("/orders/").content.decode()
    row = html.split(str(order.public_id)[:8], 1)[1].split("</tr>", 1)[0]
    assert re.findall(r'<td class="num">(\d+)</td>', row) == ["5"]  # 5 items, on 2 lines


def test_taxes_rounded_per_line_are_explained(client, usd_item, usd_item_2, sales_tax) -> None:
    order = new_cart(client)
    put(client, order, usd_item)
    assert 'id="tax-note"' not in client.get(f"/order/{order.public_id}").content.decode()  # no tax yet
    order.taxes.add(sales_tax)
    assert 'id="tax-note"' not in client.get(f"/order/{order.public_id}").content.decode()  # one line
    put(client, order, usd_item_2)
    page = client.get(f"/order/{order.public_id}").content.decode()
    assert "Each tax is worked out on every line and rounded there" in page
