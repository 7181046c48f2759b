"""Receipts: the shopper's email comes with the Pay button (or from Checkout), goes to Stripe as the receipt
address and onto the order, and the shop sends its own order confirmation exactly once per paid order, whatever
events repeat. (Concurrent events are in test_merchant_concurrency.py, on PostgreSQL.)"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client

from payments import receipts, sync
from payments.models import Discount, Order, OrderStatus, Payment
from payments.tests.stripe_fake import signed_event
from payments.tests.support import JSON, events_of, pay_item, renumbered

pytestmark = pytest.mark.django_db


def deliver(client: Client, event: dict[str, Any]) -> int:
    payload, signature = signed_event("usd", event)
    return client.post(
        "/webhooks/stripe/usd/",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature,
    ).status_code


def test_the_email_from_the_pay_button_goes_to_stripe_and_one_confirmation_is_sent(
    client, usd_item, stripe_fake, settings
) -> None:
    settings.SITE_URL = "https://shop.example.com"
    order, payment = pay_item(client, stripe_fake, usd_item, email="ada@example.com")
    assert order.status == OrderStatus.PAID and order.email == "ada@example.com"
    [create] = stripe_fake.calls("POST", "/v1/payment_intents")
    assert create.params["receipt_email"] == "ada@example.com"
    assert stripe_fake.emulator.get(payment.stripe_id)["receipt_email"] == "ada@example.com"

    [email] = mail.outbox
    assert email.to == ["ada@example.com"]
    assert email.subject == f"Your order {str(order.public_id)[:8]} is confirmed: $24.50"
    assert "1 x Espresso beans    $24.50" in email.body and "Total    $24.50" in email.body
    assert f"https://shop.example.com/order/{order.public_id}" in email.body
    order.refresh_from_db()
    assert order.confirmation_sent_at is not None


def test_repeated_events_the_return_page_and_reconciliation_send_no_second_email(
    client, usd_item, stripe_fake
) -> None:
    order, payment = pay_item(client, stripe_fake, usd_item, email="ada@example.com")
    assert len(mail.outbox) == 1
    [succeeded] = events_of(stripe_fake, "usd", "payment_intent.succeeded")
    assert deliver(Client(), succeeded) == 200  # the same event again: a duplicate
    assert deliver(Client(), renumbered(succeeded)) == 200  # the same news as another event
    client.get(f"/order/{order.public_id}/return?payment_intent={payment.stripe_id}")
    sync.tidy_up(order.pk)
    call_command("reconcile_payments", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert len(mail.outbox) == 1


def test_checkout_collects_the_email_itself(client, usd_item, stripe_fake) -> None:
    order, _ = pay_item(client, stripe_fake, usd_item, checkout=True, email="grace@example.com")
    assert order.email == "grace@example.com"
    [email] = mail.outbox
    assert email.to == ["grace@example.com"]


def test_an_email_known_before_checkout_is_given_to_it(client, usd_item, stripe_fake) -> None:
    client.post(f"/item/{usd_item.pk}/intent", {"receipt_email": "ada@example.com"}, **JSON)
    order = Order.objects.get()
    client.post(f"/order/{order.public_id}/change", **JSON)
    client.get(f"/order/buy/{order.public_id}", **JSON)
    [session] = stripe_fake.calls("POST", "/v1/checkout/sessions")
    assert session.params["customer_email"] == "ada@example.com"


def test_another_address_typed_before_paying_updates_the_open_payment_intent(
    client, usd_item, stripe_fake
) -> None:
    first = client.post(f"/item/{usd_item.pk}/intent", {"receipt_email": "old@example.com"}, **JSON).json()
    again = client.post(f"/item/{usd_item.pk}/intent", {"receipt_email": "new@example.com"}, **JSON).json()
    assert first["client_secret"] == again["client_secret"]
    intent_id = first["client_secret"].split("_secret_")[0]
    [update] = stripe_fake.calls("POST", f"/v1/payment_intents/{intent_id}")
    assert update.params == {"receipt_email": "new@example.com"}
    assert stripe_fake.emulator.get(intent_id)["receipt_email"] == "new@example.com"
    assert Order.objects.get().email == "new@example.com"
    # Back to the first address: a new key, so Stripe does not answer with an earlier update.
    client.post(f"/item/{usd_item.pk}/intent", {"receipt_email": "old@example.com"}, **JSON)
    assert stripe_fake.emulator.get(intent_id)["receipt_email"] == "old@example.com"
    keys = [c.idempotency_key for c in stripe_fake.calls("POST", f"/v1/payment_intents/{intent_id}")]
    assert len(set(keys)) == 2


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "x" * 300 + "@example.com"])
def test_an_invalid_address_is_refused_before_anything_is_made(client, usd_item, stripe_fake, email) -> None:
    response = client.post(f"/item/{usd_item.pk}/intent", {"receipt_email": email}, **JSON)
    assert response.status_code == 400
    assert (
        response.json()["error"]["message"]
        == "Enter a valid email address for your receipt, or leave it empty."
    )
    assert stripe_fake.calls("POST", "/v1/payment_intents") == [] and not Payment.objects.exists()


def test_no_address_no_confirmation(client, usd_item, stripe_fake) -> None:
    order, _ = pay_item(client, stripe_fake, usd_item)
    assert order.status == OrderStatus.PAID and order.email == "" and mail.outbox == []
    [create] = stripe_fake.calls("POST", "/v1/payment_intents")
    assert "receipt_email" not in create.params


def test_a_confirmation_that_could_not_be_sent_is_sent_later_once(
    client, usd_item, stripe_fake, monkeypatch
) -> None:
    def smtp_down(self: Any, *args: Any, **kwargs: Any) -> int:
        raise ConnectionRefusedError("SMTP is down")

    from django.core.mail import EmailMessage

    monkeypatch.setattr(EmailMessage, "send", smtp_down)
    order, _ = pay_item(client, stripe_fake, usd_item, email="ada@example.com")
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID and order.confirmation_sent_at is None
    monkeypatch.undo()
    call_command("reconcile_payments", stdout=open("/dev/null", "w"))  # noqa: SIM115
    call_command("reconcile_payments", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert len(mail.outbox) == 1
    order.refresh_from_db()
    assert order.confirmation_sent_at is not None


def test_the_confirmation_lists_the_discount_code_and_taxes(client, usd_item, stripe_fake) -> None:
    from payments.models import Tax

    Discount.objects.create(name="Welcome", percent_off=Decimal("10"), code="WELCOME10")
    Tax.objects.create(
        name="Sales tax", percentage=Decimal("8.875"), applies_to_every_order=True, currency="usd"
    )
    order = Order.objects.get(
        public_id=client.post("/order/new/", {"item_id": usd_item.pk}, **JSON).json()["id"]
    )
    client.post(f"/order/{order.public_id}/promo", {"code": "WELCOME10"}, **JSON)
    answer = client.post(
        f"/order/intent/{order.public_id}", {"receipt_email": "ada@example.com"}, **JSON
    ).json()
    stripe_fake.pay_intent(answer["client_secret"].split("_secret_")[0])
    [email] = mail.outbox
    assert "Discount: Welcome (code WELCOME10)    -$2.45" in email.body
    assert "Sales tax 8.875%    $1.96" in email.body and "Total    $24.01" in email.body


def test_an_unpaid_order_gets_no_confirmation(client, usd_item, stripe_fake) -> None:
    client.post(f"/item/{usd_item.pk}/intent", {"receipt_email": "ada@example.com"}, **JSON)
    order = Order.objects.get()
    assert receipts.send_confirmation(order.pk) is False and mail.outbox == []
