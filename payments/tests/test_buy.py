"""`GET /buy/<id>`: a Checkout Session for one item, through the account of the item's currency."""

from __future__ import annotations

from decimal import Decimal

import pytest
from djmoney.money import Money
from stripe.params.checkout import SessionCreateParams

from catalog.models import Item
from catalog.tests.factories import make_item
from payments.models import Order, Payment, PaymentKind, PaymentStatus
from stripe_emulator.params import validate_params

pytestmark = pytest.mark.django_db


def test_answers_the_session_id_and_its_hosted_page(client, usd_item, stripe_fake) -> None:
    response = client.get(f"/buy/{usd_item.pk}")
    assert response.status_code == 200
    body = response.json()
    assert body["id"].startswith("cs_")
    assert body["url"] == f"http://stripe-emulator.test/checkout/{body['id']}"
    assert stripe_fake.emulator.get(body["id"])["amount_total"] == 2450


def test_sends_exactly_these_checkout_params(client, usd_item, stripe_fake) -> None:
    client.get(f"/buy/{usd_item.pk}")
    # the form-encoded wire format: numbers travel as strings
    [call] = stripe_fake.calls("POST", "/v1/checkout/sessions")
    assert validate_params(call.params, SessionCreateParams) == []
    order = Order.objects.get()
    assert call.params == {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {
                    "currency": "usd",
                    "unit_amount": "2450",
                    "product_data": {"name": "Espresso beans", "description": "1 kg, roasted for espresso."},
                },
                "quantity": "1",
            }
        ],
        "success_url": f"http://testserver/order/{order.public_id}/success?session_id={{CHECKOUT_SESSION_ID}}",
        "cancel_url": f"http://testserver/order/{order.public_id}/canceled",
        "client_reference_id": str(order.public_id),
        "metadata": {"order_id": str(order.public_id), "order_version": "1"},
        "payment_intent_data": {
            "metadata": {"order_id": str(order.public_id), "order_version": "1"},
            "description": f"Order {str(order.public_id)[:8]}: 1 x Espresso beans",
        },
        "locale": "en",  # the shopper's language (English by default)
    }
    assert "payment_method_types" not in call.params
    assert call.idempotency_key and call.idempotency_key.startswith(f"checkout:{order.public_id}:v1:1:")


def test_records_the_order_and_the_payment(client, usd_item) -> None:
    body = client.get(f"/buy/{usd_item.pk}").json()
    order = Order.objects.get()
    assert (order.currency, order.status, order.lines.get().item) == ("usd", "awaiting_payment", usd_item)
    assert order.snapshot is not None
    assert (order.version, order.total, order.snapshot["lines"][0]["unit_amount"]) == (1, 2450, 2450)
    payment = Payment.objects.get()
    assert (payment.order, payment.kind, payment.account, payment.stripe_id) == (
        order,
        PaymentKind.CHECKOUT_SESSION,
        "usd",
        body["id"],
    )
    assert (payment.amount, payment.stripe_amount_total, payment.status) == (2450, 2450, PaymentStatus.OPEN)
    assert (payment.order_version, payment.url) == (1, body["url"])
    assert str(order.public_id) == body["order_id"]


def test_a_second_click_reuses_the_open_session(client, usd_item, stripe_fake) -> None:
    first = client.get(f"/buy/{usd_item.pk}").json()
    second = client.get(f"/buy/{usd_item.pk}").json()
    assert first["id"] == second["id"]
    assert len(stripe_fake.calls("POST", "/v1/checkout/sessions")) == 1
    assert Order.objects.count() == 1 and Payment.objects.count() == 1


def test_paid_item_order_is_not_reused(client, usd_item, stripe_fake) -> None:
    first = client.get(f"/buy/{usd_item.pk}").json()
    stripe_fake.pay_session(first["id"])
    assert Order.objects.get().status == "paid"
    second = client.get(f"/buy/{usd_item.pk}").json()
    assert second["id"] != first["id"] and second["order_id"] != first["order_id"]


@pytest.mark.parametrize(
    "path", ["/buy/999999", "/buy/0", "/buy/99999999999999999999999", "/buy/-1", "/buy/abc"]
)
def test_unknown_item_is_404(client, path, stripe_fake) -> None:
    assert client.get(path).status_code == 404
    assert stripe_fake.requests == [] and Order.objects.count() == 0


def test_inactive_item_is_404(client, usd_item) -> None:
    usd_item.is_active = False
    usd_item.save()
    assert client.get(f"/buy/{usd_item.pk}").status_code == 404


def test_wrong_method_is_405(client, usd_item) -> None:
    assert client.post(f"/buy/{usd_item.pk}").status_code == 405


@pytest.mark.parametrize("kind", ["connection", "timeout", "500", "429"])
def test_stripe_outage_is_a_clear_502_and_leaves_no_payment(client, usd_item, stripe_fake, kind) -> None:
    stripe_fake.client.fail_next(kind, times=5)
    response = client.get(f"/buy/{usd_item.pk}")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "payment_provider_error"
    assert "try again" in response.json()["error"]["message"]
    assert Payment.objects.count() == 0


def test_retry_after_a_lost_answer_is_a_new_attempt(client, usd_item, stripe_fake) -> None:
    """Stripe created the session but its answer never came (every try of the call): the shopper's next click
    is a new attempt with a new key. The first session carries the order's metadata for reconciliation."""
    client.get(usd_item.get_absolute_url())  # the shopper's session starts on the item page
    stripe_fake.client.fail_next("lost", times=2)
    assert client.get(f"/buy/{usd_item.pk}").status_code == 502
    body = client.get(f"/buy/{usd_item.pk}").json()
    calls = stripe_fake.calls("POST", "/v1/checkout/sessions")
    assert len(calls) == 3 and len({c.idempotency_key for c in calls}) == 2
    sessions = [o for o in stripe_fake.emulator.objects.values() if o.get("object") == "checkout.session"]
    order = Order.objects.get()
    assert {s["metadata"]["order_id"] for s in sessions} == {str(order.public_id)} and len(sessions) == 2
    assert Payment.objects.get().stripe_id == body["id"]


def test_amount_above_stripe_maximum_is_refused_before_any_call(client, stripe_fake) -> None:
    item = make_item("Yacht", "1000000.00")
    response = client.get(f"/buy/{item.pk}")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "amount_not_chargeable"
    assert stripe_fake.requests == [] and Payment.objects.count() == 0


def test_amount_below_the_currency_minimum_is_refused(client, stripe_fake) -> None:
    item = make_item("Sticker", "0.10", "EUR")
    response = client.get(f"/buy/{item.pk}")
    assert response.status_code == 422
    assert "0.50" in response.json()["error"]["message"]
    assert stripe_fake.requests == []


def test_currency_without_an_account_is_503(client, stripe_fake, settings) -> None:
    item = Item(name="Tea", price=Money(Decimal("5.00"), "GBP"))
    item.save()
    response = client.get(f"/buy/{item.pk}")
    assert response.status_code == 503
    assert "GBP" in response.json()["error"]["message"]
    assert stripe_fake.requests == [] and Order.objects.count() == 0


def test_a_502_still_gives_the_session_cookie_so_the_retry_reuses_the_order(
    client, usd_item, stripe_fake
) -> None:
    # An API client calling /buy directly, with no session yet: the retry must find the same order.
    stripe_fake.client.fail_next("500_after", times=2)
    response = client.get(f"/buy/{usd_item.pk}")
    assert response.status_code == 502
    assert response.cookies["sessionid"].value
    body = client.get(f"/buy/{usd_item.pk}").json()
    assert Order.objects.count() == 1
    assert len({c.idempotency_key for c in stripe_fake.calls("POST", "/v1/checkout/sessions")}) == 2
    assert Payment.objects.get().stripe_id == body["id"]


def test_the_host_header_never_reaches_stripe(client, usd_item, stripe_fake, settings) -> None:
    settings.SITE_URL = "https://shop.example.com"
    settings.ALLOWED_HOSTS = ["testserver", "127.0.0.1"]
    assert client.get(f"/buy/{usd_item.pk}", HTTP_HOST="127.0.0.1:6666").status_code == 200
    [call] = stripe_fake.calls("POST", "/v1/checkout/sessions")
    assert call.params["success_url"].startswith("https://shop.example.com/order/")
    assert call.params["cancel_url"].startswith("https://shop.example.com/order/")
    intent = client.post(f"/item/{usd_item.pk}/intent", HTTP_HOST="127.0.0.1:6666").json()
    assert intent["return_url"].startswith("https://shop.example.com/order/")


BROWSER = {"HTTP_ACCEPT": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def test_a_browser_without_javascript_is_sent_to_checkout(client, usd_item, stripe_fake) -> None:
    """ "Pay on Stripe Checkout" is a plain form to /buy/<id>: a browser gets a 303 to the hosted page."""
    response = client.get(f"/buy/{usd_item.pk}", **BROWSER)
    assert response.status_code == 303
    payment = Payment.objects.get()
    assert response["Location"] == f"http://stripe-emulator.test/checkout/{payment.stripe_id}"


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/json, text/html"])
def test_scripts_keep_the_json_answer(client, usd_item, accept) -> None:
    headers = {"HTTP_ACCEPT": accept} if accept else {}
    response = client.get(f"/buy/{usd_item.pk}", **headers)
    assert response.status_code == 200 and response.json()["id"].startswith("cs_")


def test_a_browser_without_javascript_gets_a_refusal_as_a_page(client, stripe_fake) -> None:
    item = make_item("Sample", "0.30", "EUR")
    page = client.get(f"/item/{item.pk}")
    assert page.status_code == 200
    response = client.get(f"/buy/{item.pk}", HTTP_REFERER=f"http://testserver/item/{item.pk}", **BROWSER)
    assert response.status_code == 422 and response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert 'id="refused-message"' in html and "below the minimum of €0.50" in html
    assert f'href="http://testserver/item/{item.pk}"' in html  # back to the item
    assert stripe_fake.requests == []


def test_an_order_is_sent_to_checkout_too(client, usd_item) -> None:
    order = client.post("/order/new/", {"item_id": usd_item.pk}, HTTP_ACCEPT="application/json").json()
    response = client.get(f"/order/buy/{order['id']}", **BROWSER)
    assert response.status_code == 303 and "/checkout/cs_" in response["Location"]
