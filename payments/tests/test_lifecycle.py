"""The payment lifecycle outside the webhook: the return pages, reconciliation of lost webhooks, and refunds
from the admin."""

from __future__ import annotations

import time
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from payments import refunds, sync
from payments.errors import OrderNotPayable
from payments.models import Order, OrderStatus, Payment, PaymentStatus, StripeEvent, SweepMark
from payments.tests.stripe_fake import signed_event
from payments.tests.support import WITHOUT_REFUND_EVENTS

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _remember_fake(stripe_fake: Any) -> Any:
    global _fake
    _fake = stripe_fake
    yield
    _fake = None


_fake: Any = None


def start_intent(client: Client, item: Any) -> tuple[Order, Payment]:
    response = client.post(f"/item/{item.pk}/intent")
    assert response.status_code == 200, response.content
    order = Order.objects.get(public_id=response.json()["order_id"])
    _fake.deliver_webhooks()
    return order, order.payments.get()


def start_checkout(client: Client, item: Any) -> tuple[Order, Payment]:
    response = client.get(f"/buy/{item.pk}")
    assert response.status_code == 200, response.content
    order = Order.objects.get(public_id=response.json()["order_id"])
    _fake.deliver_webhooks()
    return order, order.payments.get()


def lose_webhooks() -> None:
    """Stripe changed state but its webhooks never reach the shop."""
    _fake.outbox.clear()


def retrievals(path: str) -> int:
    return len([r for r in _fake.requests if r.method == "GET" and r.path == path])


def state(order: Order) -> tuple[Any, ...]:
    order.refresh_from_db()
    payments = tuple(
        Payment.objects.filter(order=order)
        .order_by("id")
        .values_list("status", "stripe_status", "updated_at")
    )
    return (
        order.status,
        order.paid_at,
        order.amount_refunded,
        order.needs_attention,
        order.updated_at,
        payments,
    )


# ------------------------------------------------------------------------------------------------ PaymentIntent return


def return_page(client: Client, order: Order, pi_id: str, **extra: str) -> Any:
    return client.get(f"/order/{order.public_id}/return", {"payment_intent": pi_id, **extra})


def test_return_page_after_webhook_shows_paid_without_asking_stripe(
    client: Client, usd_item: Any, stripe_fake: Any
) -> None:
    order, payment = start_intent(client, usd_item)
    stripe_fake.pay_intent(payment.stripe_id)
    asked = retrievals(f"/v1/payment_intents/{payment.stripe_id}")

    response = return_page(client, order, payment.stripe_id, redirect_status="succeeded")

    assert response.status_code == 200
    assert "Payment received" in response.content.decode()
    assert retrievals(f"/v1/payment_intents/{payment.stripe_id}") == asked


def test_return_page_before_webhook_asks_stripe_once_and_marks_paid(
    client: Client, usd_item: Any, stripe_fake: Any
) -> None:
    order, payment = start_intent(client, usd_item)
    stripe_fake.emulator.confirm_payment_intent(payment.stripe_id)
    lose_webhooks()
    asked = retrievals(f"/v1/payment_intents/{payment.stripe_id}")

    response = return_page(client, order, payment.stripe_id, redirect_status="succeeded")

    assert response.status_code == 200
    assert "Payment received" in response.content.decode()
    assert retrievals(f"/v1/payment_intents/{payment.stripe_id}") == asked + 1
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    # The webhook arriving later changes nothing.
    event = [e for e in stripe_fake.emulator.events["usd"] if e["type"] == "payment_intent.succeeded"][-1]
    payload, signature = signed_event("usd", event)
    before = state(order)
    response = client.post(
        "/webhooks/stripe/usd/",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=signature,
    )
    assert response.status_code == 200
    assert state(order)[:4] == before[:4]
    # Once paid, the page no longer asks Stripe.
    return_page(client, order, payment.stripe_id)
    assert retrievals(f"/v1/payment_intents/{payment.stripe_id}") == asked + 1


def test_return_page_when_authentication_pending_says_processing(
    client: Client, usd_item: Any, stripe_fake: Any
) -> None:
    order, payment = start_intent(client, usd_item)
    stripe_fake.emulator.confirm_payment_intent(payment.stripe_id, "4000002500003155")
    lose_webhooks()
    asked = retrievals(f"/v1/payment_intents/{payment.stripe_id}")

    response = return_page(client, order, payment.stripe_id, redirect_status="succeeded")

    body = response.content.decode()
    assert response.status_code == 200
    assert "Payment processing" in body
    assert "Payment received" not in body
    assert retrievals(f"/v1/payment_intents/{payment.stripe_id}") == asked + 1
    order.refresh_from_db()
    assert order.status == OrderStatus.AWAITING_PAYMENT


def test_return_page_when_stripe_says_processing(client: Client, usd_item: Any, stripe_fake: Any) -> None:
    order, payment = start_intent(client, usd_item)
    stripe_fake.emulator.objects[payment.stripe_id]["status"] = "processing"  # e.g. a bank debit under way

    response = return_page(client, order, payment.stripe_id)

    body = response.content.decode()
    assert "Payment processing" in body
    assert "Payment received" not in body
    order.refresh_from_db()
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.PROCESSING
    assert order.status == OrderStatus.PROCESSING


def test_return_page_after_decline_shows_the_error(client: Client, usd_item: Any, stripe_fake: Any) -> None:
    order, payment = start_intent(client, usd_item)
    stripe_fake.emulator.confirm_payment_intent(payment.stripe_id, "4000000000009995")
    lose_webhooks()

    body = return_page(client, order, payment.stripe_id).content.decode()

    assert "Payment not completed" in body
    assert "Your card has insufficient funds." in body
    order.refresh_from_db()
    assert order.status == OrderStatus.AWAITING_PAYMENT


def test_status_is_never_taken_from_the_url(client: Client, usd_item: Any, stripe_fake: Any) -> None:
    order, payment = start_intent(client, usd_item)  # never paid

    response = return_page(client, order, payment.stripe_id, redirect_status="succeeded")

    assert response.status_code == 200
    assert "Payment received" not in response.content.decode()
    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == OrderStatus.AWAITING_PAYMENT
    assert order.paid_at is None
    assert payment.status == PaymentStatus.OPEN


def test_return_page_refuses_payment_of_another_order(
    client: Client, usd_item: Any, usd_item_2: Any, stripe_fake: Any
) -> None:
    order, _ = start_intent(client, usd_item)
    other_order, other_payment = start_intent(client, usd_item_2)
    stripe_fake.emulator.confirm_payment_intent(other_payment.stripe_id)
    lose_webhooks()
    before, other_before = state(order), state(other_order)
    requests = len(stripe_fake.requests)

    assert return_page(client, order, other_payment.stripe_id, redirect_status="succeeded").status_code == 404
    assert return_page(client, order, "pi_does_not_exist").status_code == 404
    assert return_page(client, order, "").status_code == 404
    assert client.get(f"/order/{order.public_id}/return").status_code == 404

    assert state(order) == before
    assert state(other_order) == other_before
    assert len(stripe_fake.requests) == requests  # Stripe was not asked


def test_return_page_for_unknown_order_is_404(client: Client) -> None:
    assert (
        client.get(
            "/order/00000000-0000-0000-0000-000000000000/return", {"payment_intent": "pi_x"}
        ).status_code
        == 404
    )
    assert client.get("/order/not-a-uuid/return", {"payment_intent": "pi_x"}).status_code == 404


def test_return_page_when_stripe_is_down_says_processing(
    client: Client, usd_item: Any, stripe_fake: Any
) -> None:
    order, payment = start_intent(client, usd_item)
    stripe_fake.emulator.confirm_payment_intent(payment.stripe_id)
    lose_webhooks()
    stripe_fake.client.fail_next("connection", times=2)

    response = return_page(client, order, payment.stripe_id, redirect_status="succeeded")

    body = response.content.decode()
    assert response.status_code == 200
    assert "Payment processing" in body
    assert "Payment received" not in body
    order.refresh_from_db()
    assert order.status == OrderStatus.AWAITING_PAYMENT


# ------------------------------------------------------------------------------------------------ Checkout success


def success_page(client: Client, order: Order, cs_id: str) -> Any:
    return client.get(f"/order/{order.public_id}/success", {"session_id": cs_id})


def test_success_page_after_webhook_shows_paid(client: Client, usd_item: Any, stripe_fake: Any) -> None:
    order, payment = start_checkout(client, usd_item)
    stripe_fake.pay_session(payment.stripe_id)
    asked = retrievals(f"/v1/checkout/sessions/{payment.stripe_id}")

    response = success_page(client, order, payment.stripe_id)

    assert response.status_code == 200
    assert "Payment received" in response.content.decode()
    assert retrievals(f"/v1/checkout/sessions/{payment.stripe_id}") == asked


def test_success_page_before_webhook_asks_stripe_once(
    client: Client, usd_item: Any, stripe_fake: Any
) -> None:
    order, payment = start_checkout(client, usd_item)
    stripe_fake.emulator.pay_checkout_session(payment.stripe_id)
    lose_webhooks()
    asked = retrievals(f"/v1/checkout/sessions/{payment.stripe_id}")

    response = success_page(client, order, payment.stripe_id)

    assert "Payment received" in response.content.decode()
    assert retrievals(f"/v1/checkout/sessions/{payment.stripe_id}") == asked + 1
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID


def test_success_page_for_unpaid_session_says_processing(
    client: Client, usd_item: Any, stripe_fake: Any
) -> None:
    order, payment = start_checkout(client, usd_item)
    stripe_fake.emulator.objects[payment.stripe_id].update(status="complete", payment_status="unpaid")

    body = success_page(client, order, payment.stripe_id).content.decode()

    assert "Payment processing" in body
    assert "Payment received" not in body
    order.refresh_from_db()
    assert order.status == OrderStatus.PROCESSING


def test_success_page_for_open_session_is_not_paid(client: Client, usd_item: Any, stripe_fake: Any) -> None:
    order, payment = start_checkout(client, usd_item)  # the shopper typed the success URL without paying

    body = success_page(client, order, payment.stripe_id).content.decode()

    assert "Payment received" not in body
    order.refresh_from_db()
    assert order.status == OrderStatus.AWAITING_PAYMENT


def test_success_page_refuses_session_of_another_order(
    client: Client, usd_item: Any, usd_item_2: Any, stripe_fake: Any
) -> None:
    order, _ = start_checkout(client, usd_item)
    other_order, other_payment = start_checkout(client, usd_item_2)
    stripe_fake.emulator.pay_checkout_session(other_payment.stripe_id)
    lose_webhooks()
    before, other_before = state(order), state(other_order)

    assert success_page(client, order, other_payment.stripe_id).status_code == 404
    assert success_page(client, order, "cs_test_unknown").status_code == 404
    # A PaymentIntent id is not a session id.
    _, intent_payment = start_intent(Client(), usd_item_2)
    assert success_page(client, order, intent_payment.stripe_id).status_code == 404

    assert state(order) == before
    assert state(other_order) == other_before


def test_canceled_page_shows_order_unpaid(client: Client, usd_item: Any, stripe_fake: Any) -> None:
    order, _ = start_checkout(client, usd_item)
    before = state(order)

    response = client.get(f"/order/{order.public_id}/canceled")

    body = response.content.decode()
    assert response.status_code == 200
    assert "Payment canceled" in body
    assert "Nothing was charged" in body
    assert "Payment received" not in body
    assert state(order) == before
    assert order.status == OrderStatus.AWAITING_PAYMENT


# ------------------------------------------------------------------------------------------------ reconciliation


def reconcile(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("reconcile_payments", "--older-than", "0", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_reconcile_applies_stripe_state_for_lost_webhooks_and_is_idempotent(
    client: Client, usd_item: Any, usd_item_2: Any, eur_item: Any, stripe_fake: Any
) -> None:
    paid_order, paid = start_intent(client, usd_item)
    eur_order, eur_paid = start_intent(client, eur_item)
    session_order, session = start_checkout(client, usd_item_2)
    open_order, _ = start_intent(Client(), usd_item_2)
    stripe_fake.emulator.confirm_payment_intent(paid.stripe_id)
    stripe_fake.emulator.confirm_payment_intent(eur_paid.stripe_id)
    stripe_fake.emulator.pay_checkout_session(session.stripe_id)
    lose_webhooks()
    events = StripeEvent.objects.count()

    out, err = reconcile()

    assert err == ""
    assert "Reconciled 4 open payments: 3 changed, 0 could not be checked." in out
    for order in (paid_order, eur_order, session_order):
        order.refresh_from_db()
        assert order.status == OrderStatus.PAID, order
    open_order.refresh_from_db()
    assert open_order.status == OrderStatus.AWAITING_PAYMENT
    # Each account was asked about its own payments with its own key.
    eur_calls = [r for r in stripe_fake.requests if r.path == f"/v1/payment_intents/{eur_paid.stripe_id}"]
    assert eur_calls and {r.api_key for r in eur_calls} == {settings.STRIPE_ACCOUNTS["eur"]["secret_key"]}
    assert StripeEvent.objects.count() == events  # no webhook was invented

    before = [state(o) for o in (paid_order, eur_order, session_order)]
    out, err = reconcile()
    assert "Reconciled 1 open payments: 0 changed, 0 could not be checked." in out
    assert [state(o) for o in (paid_order, eur_order, session_order)] == before
    open_order.refresh_from_db()
    assert open_order.status == OrderStatus.AWAITING_PAYMENT


def test_reconcile_expired_session_and_declined_intent(
    client: Client, usd_item: Any, usd_item_2: Any, stripe_fake: Any
) -> None:
    session_order, session = start_checkout(client, usd_item)
    declined_order, declined = start_intent(client, usd_item_2)
    stripe_fake.emulator.expire_checkout_session(session.stripe_id)
    stripe_fake.emulator.confirm_payment_intent(declined.stripe_id, "4000000000009995")
    lose_webhooks()

    reconcile()

    session_order.refresh_from_db()
    declined_order.refresh_from_db()
    declined.refresh_from_db()
    assert session_order.status == OrderStatus.AWAITING_PAYMENT
    assert declined_order.status == OrderStatus.AWAITING_PAYMENT
    assert declined.last_error == "Your card has insufficient funds."

    # Later the shopper pays the same PaymentIntent; the webhook is lost again.
    stripe_fake.emulator.confirm_payment_intent(declined.stripe_id)
    lose_webhooks()
    reconcile()
    declined_order.refresh_from_db()
    assert declined_order.status == OrderStatus.PAID


def test_reconcile_leaves_recent_payments_alone(client: Client, usd_item: Any, stripe_fake: Any) -> None:
    order, payment = start_intent(client, usd_item)
    stripe_fake.emulator.confirm_payment_intent(payment.stripe_id)
    lose_webhooks()
    requests = len(stripe_fake.requests)

    out = StringIO()
    call_command("reconcile_payments", "--older-than", "10", stdout=out)

    assert "Reconciled 0 open payments" in out.getvalue()
    asked = [r.path for r in stripe_fake.requests[requests:]]
    # No recent payment is asked for one by one: each account's recent objects are listed once (sessions,
    # PaymentIntents) with its failed deliveries (none here).
    per_account = ["/v1/checkout/sessions", "/v1/payment_intents", "/v1/events"]
    assert asked == per_account * 2
    # The listing shows the PaymentIntent took the money: the books converge without waiting for its turn.
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID


def test_reconcile_during_stripe_outage_reports_and_changes_nothing(
    client: Client, usd_item: Any, eur_item: Any, stripe_fake: Any
) -> None:
    usd_order, usd_payment = start_intent(client, usd_item)
    eur_order, eur_payment = start_intent(client, eur_item)
    stripe_fake.emulator.confirm_payment_intent(usd_payment.stripe_id)
    stripe_fake.emulator.confirm_payment_intent(eur_payment.stripe_id)
    lose_webhooks()
    before = [state(usd_order), state(eur_order)]
    stripe_fake.client.fail_next("connection", times=100)

    out, err = StringIO(), StringIO()
    with pytest.raises(SystemExit) as exited:
        call_command("reconcile_payments", "--older-than", "0", stdout=out, stderr=err)

    assert exited.value.code not in (0, None)
    assert usd_payment.stripe_id in err.getvalue() and eur_payment.stripe_id in err.getvalue()
    assert "2 could not be checked" in out.getvalue() and "(2 accounts could not be asked)" in out.getvalue()
    assert [state(usd_order), state(eur_order)][0][:4] == before[0][:4]
    assert [state(usd_order), state(eur_order)][1][:4] == before[1][:4]
    assert Payment.objects.filter(status=PaymentStatus.OPEN).count() == 2

    # Once Stripe answers again, a later run catches up.
    stripe_fake.recover()
    caught_up, _ = reconcile()
    assert "2 changed" in caught_up
    usd_order.refresh_from_db()
    eur_order.refresh_from_db()
    assert usd_order.status == eur_order.status == OrderStatus.PAID


# ------------------------------------------------------------------------------------------------ refunds


def paid_order(client: Client, item: Any) -> tuple[Order, Payment]:
    order, payment = start_intent(client, item)
    _fake.pay_intent(payment.stripe_id)
    order.refresh_from_db()
    payment.refresh_from_db()
    assert order.status == OrderStatus.PAID
    return order, payment


def refund_action(admin_client: Client, *orders: Order) -> Any:
    """The bulk action: its confirmation page (what each order gets back, totals per currency), confirmed."""
    from payments.models import Refund

    selected = {"action": "refund_in_full", "_selected_action": [o.pk for o in orders]}
    before = Refund.objects.count()
    review = admin_client.post("/admin/payments/order/", selected)
    assert review.status_code == 200 and "bulk-refund-totals" in review.content.decode()
    assert Refund.objects.count() == before  # nothing is refunded before staff confirm
    return admin_client.post(
        "/admin/payments/order/",
        {**selected, "confirm": "yes", "reason": "requested_by_customer"},
        follow=True,
    )


@pytest.mark.parametrize("item_fixture", ["usd_item", "eur_item"])
def test_admin_refund_uses_order_account_and_idempotency_key(
    admin_client: Client, client: Client, stripe_fake: Any, request: Any, item_fixture: str
) -> None:
    item = request.getfixturevalue(item_fixture)
    stripe_fake.emulator.enabled_events = WITHOUT_REFUND_EVENTS  # `charge.refunded` alone tells of the refund
    order, payment = paid_order(client, item)
    currency = order.currency

    response = refund_action(admin_client, order)

    assert response.status_code == 200
    assert "the order changes when Stripe confirms it" in response.content.decode()
    calls = stripe_fake.calls("POST", "/v1/refunds")
    assert len(calls) == 1
    call = calls[0]
    assert call.api_key == settings.STRIPE_ACCOUNTS[currency]["secret_key"]
    assert call.idempotency_key
    assert call.params["payment_intent"] == payment.stripe_id
    assert int(call.params["amount"]) == payment.amount_received
    assert call.params["metadata"]["order_id"] == str(order.public_id)

    order.refresh_from_db()
    assert order.status == OrderStatus.PAID  # only Stripe's event refunds the order
    assert order.amount_refunded == 0

    assert stripe_fake.deliver_webhooks() == [200]
    order.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED
    assert order.amount_refunded == payment.amount_received


def test_admin_refund_double_click_refunds_once(
    admin_client: Client, client: Client, usd_item: Any, stripe_fake: Any
) -> None:
    order, payment = paid_order(client, usd_item)

    refund_action(admin_client, order)
    # Before Stripe's event arrived: the refund already asked for counts, nothing is left to refund.
    response = refund_action(admin_client, order)
    assert "Nothing left to refund on this order." in response.content.decode()

    calls = stripe_fake.calls("POST", "/v1/refunds")
    assert len(calls) == 1
    charge = stripe_fake.emulator.get(stripe_fake.emulator.get(payment.stripe_id)["latest_charge"])
    assert charge["amount_refunded"] == 2450
    assert len([e for e in stripe_fake.emulator.events["usd"] if e["type"] == "charge.refunded"]) == 1

    stripe_fake.deliver_webhooks()
    order.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED

    response = refund_action(admin_client, order)  # after the event: refused without asking Stripe
    assert "Nothing left to refund on this order." in response.content.decode()
    assert len(stripe_fake.calls("POST", "/v1/refunds")) == 1
    order.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED
    assert order.amount_refunded == 2450


def test_admin_refund_refuses_unpaid_order(
    admin_client: Client, client: Client, usd_item: Any, stripe_fake: Any
) -> None:
    order, _ = start_intent(client, usd_item)

    response = refund_action(admin_client, order)

    assert "Only paid orders can be refunded." in response.content.decode()
    assert stripe_fake.calls("POST", "/v1/refunds") == []


def test_partial_refund_then_rest(client: Client, usd_item: Any, stripe_fake: Any) -> None:
    order, _ = paid_order(client, usd_item)

    refunds.refund_order(order, amount=1000)
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    stripe_fake.deliver_webhooks()
    order.refresh_from_db()
    assert order.status == OrderStatus.PARTIALLY_REFUNDED
    assert order.amount_refunded == 1000

    with pytest.raises(OrderNotPayable):
        refunds.refund_order(order, amount=1451)  # more than is left
    refund = refunds.refund_order(order)
    assert refund.amount == 1450
    stripe_fake.deliver_webhooks()
    order.refresh_from_db()
    assert order.status == OrderStatus.REFUNDED
    assert order.amount_refunded == 2450

    calls = stripe_fake.calls("POST", "/v1/refunds")
    assert [int(c.params["amount"]) for c in calls] == [1000, 1450]
    assert len({c.idempotency_key for c in calls}) == 2
    with pytest.raises(OrderNotPayable):
        refunds.refund_order(order)


def test_reconcile_closes_what_a_paid_order_no_longer_needs(
    client: Client, usd_item: Any, stripe_fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Opening a payment object closes the others, and the webhook of a success closes what is left; here both
    # fail (closing skipped, then Stripe unreachable when the success arrives), so reconciliation must do it.
    client.get(usd_item.get_absolute_url())
    session_id = client.get(f"/buy/{usd_item.pk}").json()["id"]
    with monkeypatch.context() as patched:
        patched.setattr(sync, "close_others", lambda order, keep=None: None)
        intent = client.post(f"/item/{usd_item.pk}/intent").json()
    intent_id = intent["client_secret"].split("_secret_")[0]
    stripe_fake.emulator.confirm_payment_intent(intent_id)
    stripe_fake.client.fail_next("connection", times=10)
    stripe_fake.deliver_webhooks()
    stripe_fake.recover()
    order = Order.objects.get()
    assert order.status == "paid"
    assert stripe_fake.emulator.get(session_id)["status"] == "open"
    reconcile()
    assert stripe_fake.emulator.get(session_id)["status"] == "expired"
    assert Payment.objects.get(stripe_id=session_id).status == "expired"
    order.refresh_from_db()
    assert order.status == "paid"
    assert reconcile()[0].startswith("Reconciled 0 open payments")


# ------------------------------------------------------------------------------------------------ starvation


def test_reconciliation_reaches_every_open_payment_across_runs(
    client: Client, usd_item: Any, stripe_fake: Any
) -> None:
    # Abandoned PaymentIntents (never paid) fill the queue; one paid PaymentIntent's webhook was lost.
    for _ in range(12):
        start_intent(Client(), usd_item)
    order, paid = start_intent(client, usd_item)
    stripe_fake.emulator.confirm_payment_intent(paid.stripe_id)
    lose_webhooks()
    Payment.objects.update(updated_at=timezone.now() - timedelta(hours=1))

    # Stripe's side is out of reach of the listing (its objects are older than the last mark's overlap), so
    # only the shop's own checks, 4 open payments per run, can find the paid one.
    for acct in settings.STRIPE_ACCOUNTS:
        for kind in ("payment_intent", "checkout_session"):
            SweepMark.objects.create(account=acct, kind=kind, created_gte=int(time.time()) + 7200)
    runs = 0
    while state(order)[0] != OrderStatus.PAID:
        runs += 1
        assert runs <= 4, "the paid order is still waiting behind abandoned payments"
        call_command("reconcile_payments", "--limit", "4", stdout=StringIO(), stderr=StringIO())
    assert runs == 4  # 13 open payments, 4 per run: the newest is reached in the 4th run, not never
    assert Payment.objects.filter(checked_at__isnull=True).count() == 0


def test_reconciliation_replays_events_whose_delivery_failed(
    client: Client, usd_item: Any, stripe_fake: Any
) -> None:
    order, payment = start_intent(client, usd_item)
    stripe_fake.failing_deliveries = True  # the shop was down when Stripe sent the success
    stripe_fake.emulator.confirm_payment_intent(payment.stripe_id)
    stripe_fake.failing_deliveries = False
    assert state(order)[0] == OrderStatus.AWAITING_PAYMENT

    # The payment changed a moment ago, so it is not due for a check yet: only the failed event can tell.
    out, _ = reconcile("--older-than", "60")
    assert "Reconciled 0 open payments" in out and "Replayed 1 events" in out
    assert state(order)[0] == OrderStatus.PAID
    event = StripeEvent.objects.get(type="payment_intent.succeeded")
    assert event.status == StripeEvent.Status.PROCESSED
    list_calls = [r for r in stripe_fake.requests if r.method == "GET" and r.path == "/v1/events"]
    assert {r.api_key for r in list_calls} == {k["secret_key"] for k in settings.STRIPE_ACCOUNTS.values()}
    assert all(r.params["delivery_success"] == "false" for r in list_calls)

    out, _ = reconcile("--older-than", "60")  # again: the event is a duplicate, nothing changes
    assert "Replayed 0 events" in out
    assert StripeEvent.objects.filter(type="payment_intent.succeeded").count() == 1
