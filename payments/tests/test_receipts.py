"""Receipts: the shopper's email comes with the Pay button (or from Checkout), goes to Stripe as the receipt
address and onto the order, and the shop sends its own order confirmation exactly once per paid order, and a
refund notice exactly once per refund Stripe made (the shop's and the dashboard's), in the shopper's language,
whatever events repeat. (Concurrent events are in test_merchant_concurrency.py, on PostgreSQL.)"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from payments import followups, refunds, sync
from payments.models import Discount, FollowUp, Order, OrderStatus, Payment, Refund
from payments.tests.stripe_fake import signed_event
from payments.tests.support import (
    CARD_REFUND_PENDING,
    JSON,
    events_of,
    pay_item,
    renumbered,
    stripe_client,
)

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
    followups.enqueue(FollowUp.Kind.CONFIRMATION, order_id=order.pk)  # as if the order had been paid
    assert mail.outbox == []


# ------------------------------------------------------------------------------------------------ refund notices


def refund_notices() -> list[Any]:
    return [m for m in mail.outbox if "Refund" in m.subject or "Возврат" in m.subject]


def test_a_refund_staff_made_is_told_to_the_shopper_once_in_their_language(
    client, admin_client, usd_item, stripe_fake, settings
) -> None:
    settings.SITE_URL = "https://shop.example.com"
    client.cookies["django_language"] = "ru"  # the shopper paid in Russian
    order, _ = pay_item(client, stripe_fake, usd_item, email="ada@example.com")
    refund = refunds.refund_order(order, amount=1000)
    assert len(refund_notices()) == 1  # Stripe answered that the refund succeeded: the shopper is told
    stripe_fake.deliver_webhooks()  # refund.created, charge.refunded: no second notice
    [notice] = refund_notices()
    short = str(order.public_id)[:8]
    assert notice.to == ["ada@example.com"]
    assert notice.subject == f"Возврат по заказу {short}: 10,00\xa0$"
    assert f"Мы вернули 10,00\xa0$ по заказу {short}." in notice.body
    assert timezone.localdate().strftime("%d.%m.%Y") in notice.body  # the date as Russian pages write it
    assert f"https://shop.example.com/order/{order.public_id}" in notice.body
    assert ".." not in notice.body.replace("...", "")
    # The same news again, the return page, reconciliation: no second notice.
    for event in events_of(stripe_fake, "usd", "refund.created"):
        assert deliver(Client(), renumbered(event)) == 200
    sync.tidy_up(order.pk)
    call_command("reconcile_payments", stdout=open("/dev/null", "w"))  # noqa: SIM115
    followups.enqueue(FollowUp.Kind.REFUND_NOTICE, order_id=refund.order_id, target_id=refund.pk)
    assert len(refund_notices()) == 1
    # A second refund is a second notice, with what was refunded so far.
    refunds.refund_order(order)
    stripe_fake.deliver_webhooks()
    second = refund_notices()[1]
    assert "14,50\xa0$" in second.subject and "24,50\xa0$" in second.body
    assert len(refund_notices()) == 2


def test_a_refund_made_in_stripes_dashboard_is_told_too(client, usd_item, stripe_fake) -> None:
    order, payment = pay_item(client, stripe_fake, usd_item, email="ada@example.com")
    stripe_client("usd").v1.refunds.create(params={"payment_intent": payment.stripe_id, "amount": 450})
    stripe_fake.deliver_webhooks()  # charge.refunded only: the refunds are looked up at Stripe
    [notice] = refund_notices()
    assert notice.subject == f"Refund for your order {str(order.public_id)[:8]}: $4.50"
    assert "We refunded $4.50 for your order" in notice.body


def test_a_refund_is_told_once_stripe_made_it_never_before_or_when_it_failed(
    client, usd_item, stripe_fake
) -> None:
    order, _ = pay_item(client, stripe_fake, usd_item, card=CARD_REFUND_PENDING, email="ada@example.com")
    pending = refunds.refund_order(order, amount=1000)
    stripe_fake.deliver_webhooks()
    assert refund_notices() == []  # pending at Stripe: not made yet
    stripe_fake.emulator.settle_refund(pending.stripe_id)
    stripe_fake.deliver_webhooks()
    assert len(refund_notices()) == 1
    failed = Refund.objects.create(
        order=order,
        payment=pending.payment,
        amount=500,
        currency="usd",
        reason=Refund.Reason.OUTSIDE,
        status=Refund.Status.FAILED,
        idempotency_key="failed-at-stripe",
    )
    sync.tidy_up(order.pk)
    followups.enqueue(FollowUp.Kind.REFUND_NOTICE, order_id=failed.order_id, target_id=failed.pk)
    assert len(refund_notices()) == 1


def test_a_refund_notice_that_could_not_be_sent_is_sent_later_once(
    client, usd_item, stripe_fake, monkeypatch
) -> None:
    order, _ = pay_item(client, stripe_fake, usd_item, email="ada@example.com")
    from django.core.mail import EmailMessage

    def smtp_down(self: Any, *args: Any, **kwargs: Any) -> int:
        raise ConnectionRefusedError("SMTP is down")

    monkeypatch.setattr(EmailMessage, "send", smtp_down)
    refund = refunds.refund_order(order)
    stripe_fake.deliver_webhooks()
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED and refund.notice_sent_at is None
    monkeypatch.undo()
    call_command("reconcile_payments", stdout=open("/dev/null", "w"))  # noqa: SIM115
    call_command("reconcile_payments", stdout=open("/dev/null", "w"))  # noqa: SIM115
    assert len(refund_notices()) == 1
    refund.refresh_from_db()
    assert refund.notice_sent_at is not None


def test_no_address_no_refund_notice(client, usd_item, stripe_fake) -> None:
    order, _ = pay_item(client, stripe_fake, usd_item)
    refund = refunds.refund_order(order)
    stripe_fake.deliver_webhooks()
    followups.enqueue(FollowUp.Kind.REFUND_NOTICE, order_id=refund.order_id, target_id=refund.pk)
    assert mail.outbox == []
