"""PaymentIntents confirmed on the page: params, idempotency, reuse, updates, CSRF, return page, errors."""

from __future__ import annotations

import pytest
from django.test import Client
from stripe.params import PaymentIntentCreateParams

from payments.models import Order, OrderLine, Payment, PaymentStatus
from stripe_emulator.params import validate_params

pytestmark = pytest.mark.django_db

USD_SK = "sk_test_usd_0000000000000000"
EUR_SK = "sk_test_eur_1111111111111111"


def open_intent(client: Client, item) -> dict:
    client.get(item.get_absolute_url())
    response = client.post(f"/item/{item.pk}/intent", HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content
    return response.json()


def intent_id(answer: dict) -> str:
    return answer["client_secret"].split("_secret_")[0]


def test_creates_the_payment_intent_with_server_side_amount(client, usd_item, stripe_fake) -> None:
    answer = open_intent(client, usd_item)
    order = Order.objects.get()
    [call] = stripe_fake.calls("POST", "/v1/payment_intents")
    assert validate_params(call.params, PaymentIntentCreateParams) == []
    assert call.params == {
        "amount": "2450",
        "currency": "usd",
        "automatic_payment_methods": {"enabled": "true"},
        "description": f"Order {str(order.public_id)[:8]}: 1 x Espresso beans",
        "metadata": {
            "order_id": str(order.public_id),
            "order_version": "1",
            "payment_ref": f"{order.public_id}:1:1",
        },
    }
    assert call.api_key == USD_SK
    assert call.idempotency_key.startswith(f"pi:{order.public_id}:v1:1:")
    assert answer == {
        "client_secret": stripe_fake.emulator.get(intent_id(answer))["client_secret"],
        "publishable_key": "pk_test_usd_0000000000000000",
        "amount": 2450,
        "currency": "usd",
        "order_id": str(order.public_id),
        "return_url": f"http://testserver/order/{order.public_id}/return",
    }
    payment = Payment.objects.get()
    assert (payment.stripe_id, payment.amount, payment.status, payment.idempotency_key) == (
        intent_id(answer),
        2450,
        PaymentStatus.OPEN,
        call.idempotency_key,
    )


def test_amount_and_currency_from_the_browser_are_ignored(client, usd_item, stripe_fake) -> None:
    client.get(usd_item.get_absolute_url())
    client.post(f"/item/{usd_item.pk}/intent", {"amount": "1", "currency": "eur"})
    [call] = stripe_fake.calls("POST", "/v1/payment_intents")
    assert (call.params["amount"], call.params["currency"]) == ("2450", "usd")


def test_a_total_the_page_did_not_show_is_refused_before_anything_is_created(
    client, usd_item, stripe_fake
) -> None:
    # The page sends the total it showed; the server's own total is what is charged, and a mismatch (the cart
    # changed in another tab) is a 409 that freezes nothing and calls nobody.
    response = client.post(
        f"/item/{usd_item.pk}/intent", {"expected_amount": "100"}, HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "order_changed"
    assert stripe_fake.requests == []
    assert not Order.objects.exists() and not Payment.objects.exists()  # nothing was made
    assert client.post(f"/item/{usd_item.pk}/intent", {"expected_amount": "2450"}).status_code == 200


def test_reload_and_double_submit_reuse_the_same_payment_intent(client, usd_item, stripe_fake) -> None:
    answers = [open_intent(client, usd_item) for _ in range(3)]
    assert len({a["client_secret"] for a in answers}) == 1
    assert len(stripe_fake.calls("POST", "/v1/payment_intents")) == 1
    assert Payment.objects.count() == 1 and Order.objects.count() == 1


def test_a_new_price_cancels_the_open_payment_intent_and_opens_one_for_the_new_snapshot(
    client, usd_item, stripe_fake
) -> None:
    # A PaymentIntent is never updated: it belongs to one frozen snapshot. The item's new price makes a new
    # snapshot (version 2), after the old PaymentIntent is canceled at Stripe.
    first = open_intent(client, usd_item)
    usd_item.price.amount = usd_item.price.amount + 1
    usd_item.save()
    second = open_intent(client, usd_item)
    assert intent_id(second) != intent_id(first) and second["amount"] == 2550
    assert stripe_fake.emulator.get(intent_id(first))["status"] == "canceled"
    assert not [
        c
        for c in stripe_fake.requests
        if c.path == f"/v1/payment_intents/{intent_id(first)}" and c.method == "POST"
    ]
    statuses = dict(Payment.objects.values_list("stripe_id", "status"))
    assert statuses == {intent_id(first): PaymentStatus.CANCELED, intent_id(second): PaymentStatus.OPEN}
    order = Order.objects.get()
    assert (order.version, order.total) == (2, 2550)
    assert Payment.objects.get(stripe_id=intent_id(second)).order_version == 2


def test_a_canceled_payment_intent_is_never_reused(client, usd_item, stripe_fake) -> None:
    first = open_intent(client, usd_item)
    stripe_fake.client.requests.clear()
    from payments.accounts import account_for

    account_for("usd").client.v1.payment_intents.cancel(intent_id(first))
    second = open_intent(client, usd_item)
    assert intent_id(second) != intent_id(first)
    statuses = dict(Payment.objects.values_list("stripe_id", "status"))
    assert statuses == {intent_id(first): PaymentStatus.CANCELED, intent_id(second): PaymentStatus.OPEN}
    keys = [
        c.idempotency_key
        for c in stripe_fake.calls("POST", "/v1/payment_intents")
        if c.path == "/v1/payment_intents"
    ]
    assert keys[0].split(":")[3] == "2"  # the second attempt has its own idempotency key


def test_a_succeeded_payment_intent_starts_a_new_order(client, usd_item, stripe_fake) -> None:
    first = open_intent(client, usd_item)
    stripe_fake.pay_intent(intent_id(first))
    second = open_intent(client, usd_item)
    assert second["order_id"] != first["order_id"] and intent_id(second) != intent_id(first)
    assert Order.objects.get(public_id=first["order_id"]).status == "paid"


def test_succeeded_without_webhook_is_not_paid_twice(client, usd_item, stripe_fake) -> None:
    # The webhook has not arrived: the order is still open in the shop, but Stripe says succeeded.
    first = open_intent(client, usd_item)
    stripe_fake.emulator.confirm_payment_intent(intent_id(first))
    order = Order.objects.get()
    response = client.post(f"/order/intent/{order.public_id}", HTTP_ACCEPT="application/json")
    assert response.status_code == 409
    assert Order.objects.get().status == "paid"
    assert len(stripe_fake.calls("POST", "/v1/payment_intents")) == 1


def test_endpoint_refuses_a_post_without_csrf_token(usd_item, stripe_fake) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.get(usd_item.get_absolute_url())
    assert browser.post(f"/item/{usd_item.pk}/intent").status_code == 403
    assert stripe_fake.requests == [] and Payment.objects.count() == 0


def test_the_page_script_sends_the_csrf_token(usd_item) -> None:
    browser = Client(enforce_csrf_checks=True)
    html = browser.get(usd_item.get_absolute_url()).content.decode()
    token = html.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
    response = browser.post(f"/item/{usd_item.pk}/intent", HTTP_X_CSRFTOKEN=token)
    assert response.status_code == 200
    from django.contrib.staticfiles import finders

    with open(finders.find("js/pay.js")) as f:
        script = f.read()
    assert '"X-CSRFToken": csrfToken(form)' in script


def test_wrong_method_is_405(client, usd_item) -> None:
    assert client.get(f"/item/{usd_item.pk}/intent").status_code == 405


def test_unknown_item_is_404(client, stripe_fake) -> None:
    assert client.post("/item/777/intent").status_code == 404
    assert stripe_fake.requests == []


@pytest.mark.parametrize("kind", ["connection", "timeout", "500", "429"])
def test_stripe_outage_is_502_json_without_a_payment_row(client, usd_item, stripe_fake, kind) -> None:
    client.get(usd_item.get_absolute_url())
    stripe_fake.client.fail_next(kind, times=5)
    response = client.post(f"/item/{usd_item.pk}/intent")
    assert response.status_code == 502
    assert response.json()["error"]["message"].startswith("We could not reach our payment provider")
    assert Payment.objects.count() == 0
    stripe_fake.recover()
    # Stripe is back: the same order gets exactly one PaymentIntent, and Checkout works too.
    assert client.post(f"/item/{usd_item.pk}/intent").status_code == 200
    assert client.get(f"/buy/{usd_item.pk}").status_code == 200
    assert Order.objects.count() == 1


def test_an_unanswered_create_makes_the_next_pay_a_new_attempt(client, usd_item, stripe_fake) -> None:
    """Stripe made the PaymentIntent, then answered 500, saved for that key: the next Pay uses a new key."""
    client.get(usd_item.get_absolute_url())
    stripe_fake.client.fail_next("500_after")
    assert client.post(f"/item/{usd_item.pk}/intent").status_code == 502
    answer = client.post(f"/item/{usd_item.pk}/intent").json()
    keys = [
        c.idempotency_key
        for c in stripe_fake.calls("POST", "/v1/payment_intents")
        if c.path == "/v1/payment_intents"
    ]
    assert (
        len(keys) == 3 and keys[0] == keys[1] != keys[2]
    )  # the SDK's retry kept the key, the next Pay did not
    intents = [o for o in stripe_fake.emulator.objects.values() if o.get("object") == "payment_intent"]
    assert len(intents) == 2 and {i["metadata"]["order_id"] for i in intents} == {answer["order_id"]}
    assert Payment.objects.get().stripe_id == intent_id(answer)


def test_eur_item_goes_through_the_eur_account_only(client, eur_item, stripe_fake) -> None:
    answer = open_intent(client, eur_item)
    assert answer["publishable_key"] == "pk_test_eur_1111111111111111"
    assert {r.api_key for r in stripe_fake.requests} == {EUR_SK}
    assert Payment.objects.get().account == "eur"


class TestReturnPage:
    def visit(self, client: Client, answer: dict, **extra: str):
        order_id = answer["order_id"]
        query = {"payment_intent": intent_id(answer), **extra}
        return client.get(f"/order/{order_id}/return", query)

    def test_paid_by_webhook(self, client, usd_item, stripe_fake) -> None:
        answer = open_intent(client, usd_item)
        stripe_fake.pay_intent(intent_id(answer))
        stripe_fake.requests.clear()
        html = self.visit(client, answer).content.decode()
        assert "Payment received" in html
        assert stripe_fake.requests == []  # the webhook already told us

    def test_succeeded_before_the_webhook_asks_stripe_once(self, client, usd_item, stripe_fake) -> None:
        answer = open_intent(client, usd_item)
        stripe_fake.emulator.confirm_payment_intent(intent_id(answer))
        stripe_fake.requests.clear()
        html = self.visit(client, answer).content.decode()
        assert "Payment received" in html
        assert [(r.method, r.path) for r in stripe_fake.requests] == [
            ("GET", f"/v1/payment_intents/{intent_id(answer)}")
        ]
        assert Order.objects.get().status == "paid"

    def test_declined(self, client, usd_item, stripe_fake) -> None:
        answer = open_intent(client, usd_item)
        stripe_fake.pay_intent(intent_id(answer), card="4000000000009995")
        html = self.visit(client, answer, redirect_status="succeeded").content.decode()
        assert "Payment not completed" in html and "insufficient funds" in html and "Try again" in html
        assert (
            Order.objects.get().status == "awaiting_payment"
        )  # the same PaymentIntent can take another card

    def test_requires_action_is_processing_not_paid(self, client, usd_item, stripe_fake) -> None:
        answer = open_intent(client, usd_item)
        stripe_fake.emulator.confirm_payment_intent(intent_id(answer), card="4000002500003155")
        html = self.visit(client, answer, redirect_status="succeeded").content.decode()
        assert "Payment processing" in html
        assert Order.objects.get().status == "awaiting_payment"

    def test_status_in_the_url_is_never_believed(self, client, usd_item, stripe_fake) -> None:
        answer = open_intent(client, usd_item)
        html = self.visit(client, answer, redirect_status="succeeded").content.decode()
        assert "Payment received" not in html
        assert Order.objects.get().status == "awaiting_payment"

    def test_payment_intent_of_another_order_is_404(self, client, usd_item, usd_item_2, stripe_fake) -> None:
        mine = open_intent(client, usd_item)
        other = open_intent(client, usd_item_2)
        response = client.get(f"/order/{mine['order_id']}/return", {"payment_intent": intent_id(other)})
        assert response.status_code == 404
        assert set(Order.objects.values_list("status", flat=True)) == {"awaiting_payment"}

    @pytest.mark.parametrize("pi", ["pi_unknown", "", "x" * 5000])
    def test_unknown_payment_intent_is_404(self, client, usd_item, pi) -> None:
        answer = open_intent(client, usd_item)
        assert client.get(f"/order/{answer['order_id']}/return", {"payment_intent": pi}).status_code == 404

    def test_stripe_down_on_return_says_processing(self, client, usd_item, stripe_fake) -> None:
        answer = open_intent(client, usd_item)
        stripe_fake.client.fail_next("connection", times=5)
        response = self.visit(client, answer)
        assert response.status_code == 200
        assert "Payment processing" in response.content.decode()


def test_order_line_unit_price_is_copied(client, usd_item) -> None:
    open_intent(client, usd_item)
    assert OrderLine.objects.get().unit_price == usd_item.price.amount


def test_missing_csrf_token_is_a_clear_json_error(usd_item) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.get(usd_item.get_absolute_url())
    response = browser.post(f"/item/{usd_item.pk}/intent")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"
    form = browser.post("/order/new/", {"item_id": usd_item.pk})
    assert form.status_code == 403 and "Please reload the page" in form.content.decode()
