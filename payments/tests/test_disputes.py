"""Disputes (chargebacks): `charge.dispute.*` events, driven by the emulator as a card network would (the
disputed-card test number, `open_dispute`, `close_dispute`), applied once, in any order; the order page and the
admin say the order is disputed, then won or lost; a disputed charge is not refunded."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from payments import refunds
from payments.disputes import RefundRefused
from payments.models import Dispute, DisputeState, Order, OrderStatus, StripeEvent
from payments.tests.stripe_fake import signed_event
from payments.tests.support import CARD_DISPUTED, events_of, pay_item, renumbered, stripe_client

pytestmark = pytest.mark.django_db


def post(client: Client, currency: str, event: dict[str, Any]) -> Any:
    payload, signature = signed_event(currency, event)
    return client.post(
        f"/webhooks/stripe/{currency}/",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature,
    )


def test_created_then_funds_withdrawn_then_closed_won(client, usd_item, stripe_fake) -> None:
    order, payment = pay_item(client, stripe_fake, usd_item)
    du = stripe_fake.emulator.open_dispute(payment.stripe_id, reason="product_not_received")
    assert stripe_fake.deliver_webhooks() == [200, 200]  # created, funds_withdrawn

    dispute = Dispute.objects.get()
    assert (dispute.stripe_id, dispute.payment, dispute.order) == (du["id"], payment, order)
    assert (dispute.amount, dispute.currency, dispute.reason) == (2450, "usd", "product_not_received")
    assert (dispute.status, dispute.funds_withdrawn, dispute.funds_reinstated) == ("needs_response", 2450, 0)
    assert int(dispute.evidence_due_by.timestamp()) == du["evidence_details"]["due_by"]
    order.refresh_from_db()
    assert (order.status, order.dispute_status) == (OrderStatus.PAID, DisputeState.OPEN)
    page = client.get(f"/order/{order.public_id}").content.decode()
    assert 'id="order-dispute"' in page and "This payment is disputed." in page

    stripe_fake.emulator.close_dispute(du["id"], won=True)
    assert stripe_fake.deliver_webhooks() == [200, 200]  # closed, funds_reinstated
    dispute.refresh_from_db()
    order.refresh_from_db()
    assert (dispute.status, dispute.funds_withdrawn, dispute.funds_reinstated) == ("won", 2450, 2450)
    assert dispute.closed_at is not None
    assert (order.status, order.dispute_status) == (OrderStatus.PAID, DisputeState.WON)
    assert "won by the shop" in client.get(f"/order/{order.public_id}").content.decode()
    types = list(StripeEvent.objects.order_by("id").values_list("type", "status"))
    assert [t for t in types if t[0].startswith("charge.dispute")] == [
        ("charge.dispute.created", "processed"),
        ("charge.dispute.funds_withdrawn", "processed"),
        ("charge.dispute.closed", "processed"),
        ("charge.dispute.funds_reinstated", "processed"),
    ]


def test_the_disputed_test_card_through_checkout_is_lost(client, usd_item, stripe_fake) -> None:
    order, payment = pay_item(client, stripe_fake, usd_item, card=CARD_DISPUTED, checkout=True)
    dispute = Dispute.objects.get()
    assert (dispute.payment, dispute.reason, dispute.status) == (payment, "fraudulent", "needs_response")
    order.refresh_from_db()
    assert order.dispute_status == DisputeState.OPEN

    stripe_fake.emulator.close_dispute(dispute.stripe_id, won=False)
    assert stripe_fake.deliver_webhooks() == [200]  # closed (nothing is reinstated)
    dispute.refresh_from_db()
    order.refresh_from_db()
    assert (dispute.status, dispute.funds_withdrawn, dispute.funds_reinstated) == ("lost", 2450, 0)
    assert order.dispute_status == DisputeState.LOST
    assert "lost by the shop" in client.get(f"/order/{order.public_id}").content.decode()


def test_evidence_submitted_in_the_dashboard_puts_it_under_review(client, usd_item, stripe_fake) -> None:
    pay_item(client, stripe_fake, usd_item, card=CARD_DISPUTED)
    dispute = Dispute.objects.get()
    stripe_client("usd").v1.disputes.update(
        dispute.stripe_id, params={"evidence": {"uncategorized_text": "Delivered on time."}}
    )
    assert stripe_fake.deliver_webhooks() == [200]  # charge.dispute.updated
    dispute.refresh_from_db()
    assert dispute.status == "under_review"


def test_events_in_any_order_and_twice_end_in_the_last_state(client, usd_item, stripe_fake) -> None:
    order, payment = pay_item(client, stripe_fake, usd_item)
    du = stripe_fake.emulator.open_dispute(payment.stripe_id)
    stripe_fake.emulator.close_dispute(du["id"], won=False)
    created, withdrawn, closed = stripe_fake.outbox
    stripe_fake.outbox[:] = [closed, withdrawn, created, closed]  # newest first, then a duplicate delivery
    assert stripe_fake.deliver_webhooks() == [200, 200, 200, 200]
    dispute = Dispute.objects.get()
    order.refresh_from_db()
    assert (dispute.status, dispute.funds_withdrawn, dispute.reason) == ("lost", 2450, "fraudulent")
    assert order.dispute_status == DisputeState.LOST
    assert StripeEvent.objects.filter(type__startswith="charge.dispute").count() == 3

    # An old snapshot sent again as a new event (needs_response) never reopens it.
    assert post(client, "usd", renumbered(json.loads(created[1]))).status_code == 200
    dispute.refresh_from_db()
    assert dispute.status == "lost"


def test_an_open_dispute_never_goes_back_to_an_earlier_status(client, usd_item, stripe_fake) -> None:
    pay_item(client, stripe_fake, usd_item, card=CARD_DISPUTED)
    dispute = Dispute.objects.get()
    stripe_client("usd").v1.disputes.update(
        dispute.stripe_id, params={"evidence": {"customer_name": "Jenny Rosen"}}
    )
    stripe_fake.deliver_webhooks()
    dispute.refresh_from_db()
    assert dispute.status == "under_review"
    [created] = events_of(stripe_fake, "usd", "charge.dispute.created")
    post(Client(), "usd", renumbered(created))
    dispute.refresh_from_db()
    assert dispute.status == "under_review"


def test_a_dispute_of_a_charge_that_is_not_ours_waits_then_is_ignored_once_stripe_says_so(
    client, stripe_fake
) -> None:
    sc = stripe_client("usd")
    pi = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    stripe_fake.emulator.confirm_payment_intent(pi.id)
    stripe_fake.emulator.open_dispute(pi.id)
    assert stripe_fake.deliver_webhooks()[-2:] == [200, 200]
    assert not Dispute.objects.exists()
    disputes = StripeEvent.objects.filter(type__startswith="charge.dispute")
    # Its PaymentIntent is unknown: kept pending (it could be a payment whose news is late), never dropped.
    assert set(disputes.values_list("status", flat=True)) == {"pending"}
    # The sweep asks Stripe: the PaymentIntent names no order of the shop, so the events are not the shop's.
    call_command("reconcile_payments", "--older-than", "0", stdout=io.StringIO(), stderr=io.StringIO())
    assert set(disputes.values_list("status", flat=True)) == {"ignored"}
    assert not Dispute.objects.exists()


def test_a_dispute_event_before_the_checkout_session_completed_is_applied_when_it_does(
    client, usd_item, stripe_fake
) -> None:
    answer = client.get(f"/buy/{usd_item.pk}", HTTP_ACCEPT="application/json").json()
    stripe_fake.deliver_webhooks()
    stripe_fake.emulator.pay_checkout_session(answer["id"], card=CARD_DISPUTED)
    # Stripe retried the session's completion: the dispute's events came first.
    completed = [m for m in stripe_fake.outbox if json.loads(m[1])["type"] == "checkout.session.completed"]
    rest = [m for m in stripe_fake.outbox if m not in completed]
    stripe_fake.outbox[:] = rest + completed
    assert set(stripe_fake.deliver_webhooks()) == {200}
    dispute = Dispute.objects.get()
    assert dispute.status == "needs_response" and dispute.funds_withdrawn == 2450
    assert Order.objects.get().dispute_status == DisputeState.OPEN
    assert not StripeEvent.objects.filter(type__startswith="charge.dispute", status="ignored").exists()


# ------------------------------------------------------------------------------------------------ refunds refused


def test_a_disputed_charge_is_not_refunded(client, admin_client, usd_item, stripe_fake) -> None:
    order, _ = pay_item(client, stripe_fake, usd_item, card=CARD_DISPUTED)
    message = "This payment is disputed (fraudulent, $24.50, needs a response)"
    with pytest.raises(RefundRefused, match=re.escape(message)):
        refunds.refund_order(order)
    page = admin_client.get(f"/admin/payments/order/{order.pk}/refund/").content.decode()
    assert 'id="refund-blocked"' in page and "Answer the dispute in Stripe&#x27;s dashboard" in page
    response = admin_client.post(
        "/admin/payments/order/",
        {"action": "refund_in_full", "_selected_action": [order.pk]},
        follow=True,
    )
    # The confirmation lists it with why it cannot be refunded, and offers nothing to confirm.
    assert "the card network holds the money" in response.content.decode()
    assert 'id="bulk-refund-confirm"' not in response.content.decode()
    assert stripe_fake.calls("POST", "/v1/refunds") == []

    stripe_fake.emulator.close_dispute(Dispute.objects.get().stripe_id, won=False)
    stripe_fake.deliver_webhooks()
    with pytest.raises(RefundRefused, match="the dispute was lost"):
        refunds.refund_order(order)
    assert stripe_fake.calls("POST", "/v1/refunds") == []


def test_a_won_dispute_can_be_refunded_again(client, usd_item, stripe_fake) -> None:
    order, _ = pay_item(client, stripe_fake, usd_item, card=CARD_DISPUTED)
    stripe_fake.emulator.close_dispute(Dispute.objects.get().stripe_id, won=True)
    stripe_fake.deliver_webhooks()
    refund = refunds.refund_order(order, amount=1000)
    assert refund.stripe_id and len(stripe_fake.calls("POST", "/v1/refunds")) == 1


# ------------------------------------------------------------------------------------------------ admin


def test_the_admin_lists_disputes_with_amount_reason_status_due_date_and_dashboard_link(
    client, admin_client, usd_item, eur_item, stripe_fake
) -> None:
    usd_order, _ = pay_item(client, stripe_fake, usd_item, card=CARD_DISPUTED)
    eur_order, eur_payment = pay_item(Client(), stripe_fake, eur_item)
    stripe_fake.emulator.open_dispute(eur_payment.stripe_id, reason="duplicate")
    stripe_fake.deliver_webhooks()
    html = admin_client.get("/admin/payments/dispute/").content.decode()
    usd, eur = Dispute.objects.get(currency="usd"), Dispute.objects.get(currency="eur")
    assert "$24.50" in html and "€89.90" in html
    assert "fraudulent" in html and "duplicate" in html and "Needs a response" in html
    assert f"https://dashboard.stripe.com/test/disputes/{usd.stripe_id}" in html
    assert f"https://dashboard.stripe.com/test/disputes/{eur.stripe_id}" in html
    assert f"{usd.evidence_due_by:%Y}" in html
    filtered = admin_client.get("/admin/payments/dispute/?status__exact=needs_response").content.decode()
    assert usd.stripe_id in filtered
    assert admin_client.get("/admin/payments/dispute/add/").status_code == 403

    orders = admin_client.get("/admin/payments/order/?dispute_status__exact=open").content.decode()
    assert str(usd_order.public_id)[:8] in orders and str(eur_order.public_id)[:8] in orders
    change = admin_client.get(f"/admin/payments/order/{usd_order.pk}/change/").content.decode()
    assert "Disputed" in change and usd.stripe_id in change
