"""Refunds after the sale: staff refund an amount or chosen lines from the order's refund page (in any currency's
minor units, each form one refund however often it is sent); Stripe's refund events, a refund that fails, and
refunds made in Stripe's dashboard all end in the right refunded amount and order state."""

from __future__ import annotations

import contextlib
import io
import re
from decimal import Decimal
from typing import Any

import pytest
from django import forms
from django.core.management import call_command
from django.test import Client

from catalog.tests.factories import make_item
from payments import refunds
from payments.admin.refund_page import parse_amount
from payments.models import Discount, Order, OrderStatus, Payment, Refund, StripeEvent, Tax
from payments.tests.support import (
    CARD_REFUND_FAILS,
    CARD_REFUND_PENDING,
    JSON,
    WITHOUT_REFUND_EVENTS,
    events_of,
    pay_item,
    pay_order,
    renumbered,
    stripe_client,
)

pytestmark = pytest.mark.django_db


def refund_page(admin_client: Client, order: Order) -> tuple[str, str]:
    """The refund page's HTML and its form's one-time token."""
    html = admin_client.get(f"/admin/payments/order/{order.pk}/refund/").content.decode()
    match = re.search(r'name="token" value="([0-9a-f]{32})"', html)
    assert match, html[:3000]
    return html, match.group(1)


def submit(admin_client: Client, order: Order, token: str, *, confirm: bool = True, **fields: Any) -> Any:
    """Send the refund form, then (`confirm`) confirm it on the page that shows the amount as read."""
    fields = {"reason": "requested_by_customer", **fields}
    url = f"/admin/payments/order/{order.pk}/refund/"
    review = admin_client.post(url, {"token": token, **fields}, follow=True)
    if not confirm or 'id="refund-confirm"' not in review.content.decode():
        return review  # refused (shown on the form), or left unconfirmed
    return admin_client.post(url, {"token": token, **fields, "confirmed": "True"}, follow=True)


def state(order: Order) -> tuple[str, int]:
    order.refresh_from_db()
    return order.status, order.amount_refunded


# ------------------------------------------------------------------------------------------------ the staff page


def test_staff_refund_a_chosen_amount_and_the_order_follows_stripe(
    client, admin_client, usd_item, stripe_fake
) -> None:
    order, payment = pay_item(client, stripe_fake, usd_item)
    change = admin_client.get(f"/admin/payments/order/{order.pk}/change/").content.decode()
    assert f"/admin/payments/order/{order.pk}/refund/" in change
    html, token = refund_page(admin_client, order)
    assert 'id="left-to-refund">$24.50<' in html

    response = submit(admin_client, order, token, amount="10.00")
    assert "Refund re_" in response.content.decode() and "$10.00" in response.content.decode()
    [call] = stripe_fake.calls("POST", "/v1/refunds")
    assert call.params["amount"] == "1000" and call.params["payment_intent"] == payment.stripe_id
    refund = Refund.objects.get()
    assert (refund.amount, refund.reason, refund.requested_by) == (1000, "requested_by_customer", "admin")
    assert refund.idempotency_key == f"refund:{order.public_id}:{token}"
    assert call.idempotency_key == f"{refund.idempotency_key}:1"  # the row's first request
    assert state(order) == (OrderStatus.PAID, 0)  # until Stripe's news arrives
    stripe_fake.deliver_webhooks()
    assert state(order) == (OrderStatus.PARTIALLY_REFUNDED, 1000)
    html, _ = refund_page(admin_client, order)
    assert 'id="left-to-refund">$14.50<' in html


def test_the_same_form_sent_twice_is_one_refund_two_forms_are_two(
    client, admin_client, usd_item, stripe_fake
) -> None:
    order, _ = pay_item(client, stripe_fake, usd_item)
    _, first = refund_page(admin_client, order)
    submit(admin_client, order, first, amount="5.00")
    again = submit(admin_client, order, first, amount="5.00")  # the double click, before Stripe's news
    assert "already sent" in again.content.decode() and "no second refund was made" in again.content.decode()
    assert len(stripe_fake.calls("POST", "/v1/refunds")) == 1
    stripe_fake.deliver_webhooks()
    again = submit(admin_client, order, first, amount="5.00")  # the reload, after it
    assert len(stripe_fake.calls("POST", "/v1/refunds")) == 1

    _, second = refund_page(admin_client, order)  # a deliberate second refund of the same amount
    assert second != first
    submit(admin_client, order, second, amount="5.00")
    calls = stripe_fake.calls("POST", "/v1/refunds")
    assert len(calls) == 2 and calls[0].idempotency_key != calls[1].idempotency_key
    stripe_fake.deliver_webhooks()
    assert state(order) == (OrderStatus.PARTIALLY_REFUNDED, 1000)
    assert Refund.objects.count() == 2


def test_a_repeated_form_whose_first_try_got_no_answer_is_sent_again_with_its_key(
    client, usd_item, stripe_fake
) -> None:
    order, _ = pay_item(client, stripe_fake, usd_item)
    stripe_fake.client.fail_next("lost", times=2)  # Stripe made the refund, the answers were lost
    with pytest.raises(refunds.ShopError):
        refunds.staff_refund(order, 700, request_key="a" * 32)
    stripe_fake.recover()
    done = refunds.staff_refund(order, 700, request_key="a" * 32)
    assert done.repeated and done.refund.stripe_id.startswith("re_")
    charge = stripe_fake.emulator.get(
        stripe_fake.emulator.get(Payment.objects.get().stripe_id)["latest_charge"]
    )
    assert charge["amount_refunded"] == 700  # one refund at Stripe


def test_staff_refund_chosen_lines_with_their_discount_and_tax(client, admin_client, stripe_fake) -> None:
    beans, dripper = make_item("Beans", "24.50"), make_item("Dripper", "18.00")
    cart = client.post("/order/new/", {"item_id": beans.pk, "quantity": 2}, **JSON).json()
    order = Order.objects.get(public_id=cart["id"])
    client.post(f"/order/put/{order.public_id}", {"item_id": dripper.pk, "quantity": 1}, **JSON)
    order.discount = Discount.objects.create(name="Ten", percent_off=Decimal("10"))
    order.save()
    order.taxes.add(Tax.objects.create(name="Sales tax", percentage=Decimal("8.875"), inclusive=False))
    pay_order(client, stripe_fake, order)
    assert order.status == OrderStatus.PAID
    assert order.snapshot is not None
    [beans_line, dripper_line] = sorted(order.snapshot["lines"], key=lambda line: line["name"])
    html, token = refund_page(admin_client, order)
    assert "Units to refund" in html

    submit(admin_client, order, token, **{f"line_{beans.pk}": "1", f"line_{dripper.pk}": "1"})
    refund = Refund.objects.get()
    one_bean = beans_line["total"] // 2 + beans_line["total"] % 2  # the first unit's share takes the odd cent
    assert refund.amount == one_bean + dripper_line["total"]
    assert refund.description == "1 x Beans, 1 x Dripper"
    stripe_fake.deliver_webhooks()
    assert state(order) == (OrderStatus.PARTIALLY_REFUNDED, refund.amount)

    _, token = refund_page(admin_client, order)
    submit(
        admin_client, order, token, **{f"line_{beans.pk}": "1"}
    )  # the other unit: the line adds up exactly
    stripe_fake.deliver_webhooks()
    assert sum(Refund.objects.values_list("amount", flat=True)) == beans_line["total"] + dripper_line["total"]
    assert state(order) == (OrderStatus.REFUNDED, order.total)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"amount": "24.51"}, "At most $24.50 is left to refund"),
        ({"amount": "0"}, "Enter an amount above zero."),
        ({"amount": "ten"}, "Enter an amount, e.g. 12.50."),
        ({"amount": "0.005"}, "Amounts in USD are refunded in steps of $0.01."),
        ({"amount": "1,005"}, "“1,005” could mean 1005 or 1.005 USD"),
        ({}, "Enter an amount, or how many of which lines to refund."),
    ],
)
def test_refund_amounts_staff_cannot_send_are_refused_clearly(
    client, admin_client, usd_item, stripe_fake, fields, message
) -> None:
    order, _ = pay_item(client, stripe_fake, usd_item)
    _, token = refund_page(admin_client, order)
    html = submit(admin_client, order, token, **fields).content.decode()
    assert message in html.replace("&#x27;", "'")
    assert stripe_fake.calls("POST", "/v1/refunds") == [] and not Refund.objects.exists()


def test_amount_and_lines_together_are_refused(client, admin_client, usd_item, stripe_fake) -> None:
    order, _ = pay_item(client, stripe_fake, usd_item)
    _, token = refund_page(admin_client, order)
    html = submit(admin_client, order, token, amount="1.00", **{f"line_{usd_item.pk}": "1"}).content.decode()
    assert "Refund either an amount or lines, not both." in html


def test_only_paid_orders_have_a_refund_form(client, admin_client, usd_item, stripe_fake) -> None:
    client.post(f"/item/{usd_item.pk}/intent")
    order = Order.objects.get()
    html = admin_client.get(f"/admin/payments/order/{order.pk}/refund/").content.decode()
    assert "Only paid orders can be refunded." in html and 'id="refund-form"' not in html


@pytest.mark.parametrize("object_id", ["abc", "1058%00", "1%2e0", "-1", "0", str(2**63), "1e3", "%EF%BC%91"])
def test_the_refund_page_of_an_id_that_is_not_one_is_404(admin_client, object_id: str) -> None:
    response = admin_client.get(f"/admin/payments/order/{object_id}/refund/")
    assert response.status_code == 404
    assert admin_client.post(f"/admin/payments/order/{object_id}/refund/", {"token": "x"}).status_code == 404


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("12.50", "usd", 1250),
        ("1,500", "jpy", 1500),
        ("1500", "jpy", 1500),
        ("1.25", "kwd", 1250),
        ("1.250", "kwd", 1250),
        ("0.5", "eur", 50),
    ],
)
def test_amounts_are_typed_in_the_currency_and_sent_in_its_minor_units(text, currency, minor) -> None:
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency", "message"),
    [
        ("1500.5", "jpy", "Amounts in JPY have no decimals."),
        ("1.255", "kwd", "Amounts in KWD are refunded in steps of 0.010 KWD."),
        ("0.001", "usd", "Amounts in USD are refunded in steps of $0.01."),
        ("-3", "usd", "Enter an amount above zero."),
        ("NaN", "usd", "Enter an amount above zero."),
    ],
)
def test_amounts_a_currency_cannot_carry_are_refused(text, currency, message) -> None:
    with pytest.raises(forms.ValidationError, match=re.escape(message)):
        parse_amount(text, currency)


@pytest.mark.parametrize(
    ("currency", "price", "typed", "minor"), [("jpy", "1500", "700", 700), ("kwd", "12.500", "1.250", 1250)]
)
def test_partial_refunds_in_jpy_and_kwd(more_currencies, admin_client, currency, price, typed, minor) -> None:
    fake, web = more_currencies, Client()
    product = make_item(f"Item in {currency}", price, currency.upper())
    order, payment = pay_item(web, fake, product)
    assert order.status == OrderStatus.PAID and payment.amount_received == (
        1500 if currency == "jpy" else 12500
    )
    _, token = refund_page(admin_client, order)
    submit(admin_client, order, token, amount=typed)
    [call] = fake.calls("POST", "/v1/refunds")
    assert call.params["amount"] == str(minor)
    fake.deliver_webhooks()
    assert state(order) == (OrderStatus.PARTIALLY_REFUNDED, minor)
    html, _ = refund_page(admin_client, order)
    left = payment.amount_received - minor
    assert f'id="left-to-refund">{"¥800" if currency == "jpy" else "11.250 KWD"}<' in html, left


# ------------------------------------------------------------------------------------------------ Stripe's news


def test_a_refund_that_fails_gives_the_amount_back(client, usd_item, stripe_fake) -> None:
    order, _ = pay_item(client, stripe_fake, usd_item, card=CARD_REFUND_FAILS)
    refund = refunds.refund_order(order)
    stripe_fake.deliver_webhooks()  # refund.created, charge.refunded
    assert state(order) == (OrderStatus.REFUNDED, 2450)

    stripe_fake.emulator.fail_refund(refund.stripe_id)
    assert stripe_fake.deliver_webhooks() == [200, 200, 200]  # refund.updated, charge.refund.updated, .failed
    refund.refresh_from_db()
    assert (refund.status, refund.last_error) == (Refund.Status.FAILED, "expired_or_canceled_card")
    assert state(order) == (OrderStatus.PAID, 0)
    assert Payment.objects.get().amount_refunded == 0
    # The money is refundable again.
    assert refunds.left_to_refund(Payment.objects.get()) == 2450
    # Late news of the refund (created, succeeded) never undoes the failure.
    for event in events_of(stripe_fake, "usd", "refund.created"):
        stripe_fake.outbox.append(("usd", *_signed(renumbered(event))))
    stripe_fake.deliver_webhooks()
    refund.refresh_from_db()
    assert refund.status == Refund.Status.FAILED and state(order) == (OrderStatus.PAID, 0)


def _signed(event: dict[str, Any]) -> tuple[bytes, str]:
    from conftest import signed_event

    return signed_event("usd", event)


def test_a_failed_partial_refund_moves_a_refunded_order_back_to_partially_refunded(
    client, usd_item, stripe_fake
) -> None:
    order, _ = pay_item(client, stripe_fake, usd_item, card=CARD_REFUND_FAILS)
    first = refunds.refund_order(order, amount=450)
    refunds.refund_order(order)
    stripe_fake.deliver_webhooks()
    assert state(order) == (OrderStatus.REFUNDED, 2450)
    stripe_fake.emulator.fail_refund(first.stripe_id)
    stripe_fake.deliver_webhooks()
    assert state(order) == (OrderStatus.PARTIALLY_REFUNDED, 2000)


def test_a_stale_charge_refunded_after_a_failure_is_checked_at_stripe(client, usd_item, stripe_fake) -> None:
    """`charge.refunded` of before the failure arriving after it: the amount it reports is not what the shop's
    refunds add up to, so the refunds are looked up at Stripe, which says the refund failed."""
    order, payment = pay_item(client, stripe_fake, usd_item, card=CARD_REFUND_FAILS)
    refund = refunds.refund_order(order)
    stripe_fake.emulator.fail_refund(refund.stripe_id)
    refunded = [m for m in stripe_fake.outbox if b'"charge.refunded"' in m[1]]
    stripe_fake.outbox[:] = [m for m in stripe_fake.outbox if m not in refunded] + refunded
    assert set(stripe_fake.deliver_webhooks()) == {200}
    assert len(stripe_fake.calls("GET", "/v1/refunds")) == 1
    refund.refresh_from_db()
    assert refund.status == Refund.Status.FAILED
    assert state(order) == (OrderStatus.PAID, 0)
    payment.refresh_from_db()
    assert not payment.refunds_to_check


def test_a_pending_refund_counts_then_succeeds(client, usd_item, stripe_fake) -> None:
    order, _ = pay_item(client, stripe_fake, usd_item, card=CARD_REFUND_PENDING)
    refund = refunds.refund_order(order, amount=1000)
    assert refund.status == Refund.Status.SENT
    stripe_fake.deliver_webhooks()
    assert state(order) == (OrderStatus.PARTIALLY_REFUNDED, 1000)
    stripe_fake.emulator.settle_refund(refund.stripe_id)
    stripe_fake.deliver_webhooks()
    refund.refresh_from_db()
    assert refund.status == Refund.Status.SUCCEEDED and state(order) == (OrderStatus.PARTIALLY_REFUNDED, 1000)


@pytest.mark.parametrize("events", ["refund events", "charge.refunded only"])
def test_refunds_made_in_stripes_dashboard_are_recorded(
    client, admin_client, usd_item, stripe_fake, events
) -> None:
    if events == "charge.refunded only":  # an endpoint set up without the refund events
        stripe_fake.emulator.enabled_events = WITHOUT_REFUND_EVENTS
    order, payment = pay_item(client, stripe_fake, usd_item)
    dashboard = stripe_client("usd").v1.refunds.create(
        params={"payment_intent": payment.stripe_id, "amount": 2000}
    )
    assert set(stripe_fake.deliver_webhooks()) == {200}
    row = Refund.objects.get()
    assert (row.stripe_id, row.amount, row.reason, row.status) == (dashboard.id, 2000, "outside", "succeeded")
    assert state(order) == (OrderStatus.PARTIALLY_REFUNDED, 2000)
    assert refunds.left_to_refund(Payment.objects.get()) == 450
    stripe_client("usd").v1.refunds.create(params={"payment_intent": payment.stripe_id})
    stripe_fake.deliver_webhooks()
    assert state(order) == (OrderStatus.REFUNDED, 2450)
    assert Refund.objects.filter(reason="outside").count() == 2
    assert (
        "Made outside the shop"
        in admin_client.get(f"/admin/payments/order/{order.pk}/change/").content.decode()
    )


def test_the_shops_own_refund_news_before_its_answer_is_matched_by_its_key(
    client, usd_item, stripe_fake
) -> None:
    """`refund.created` arriving while the shop still waits for Stripe's answer is the same refund (its
    metadata carries the row's key), not one made outside the shop."""
    order, _ = pay_item(client, stripe_fake, usd_item)
    original = refunds.send

    def send_and_hear_first(refund: Refund) -> Refund:
        stripe_fake.client.fail_next("lost")
        with contextlib.suppress(refunds.ShopError):
            original(refund)
        stripe_fake.deliver_webhooks()  # the news comes before the (lost) answer is retried
        stripe_fake.recover()
        return original(Refund.objects.get(pk=refund.pk))

    refunds.send = send_and_hear_first  # type: ignore[assignment]
    try:
        refunds.refund_order(order, amount=1200)
    finally:
        refunds.send = original  # type: ignore[assignment]
    stripe_fake.deliver_webhooks()
    row = Refund.objects.get()
    assert row.reason == "requested_by_customer" and row.status == "succeeded"
    assert state(order) == (OrderStatus.PARTIALLY_REFUNDED, 1200)


def test_refunds_not_looked_up_while_stripe_was_down_are_by_reconciliation(
    client, usd_item, stripe_fake
) -> None:
    stripe_fake.emulator.enabled_events = WITHOUT_REFUND_EVENTS  # `charge.refunded` alone tells of the refund
    order, payment = pay_item(client, stripe_fake, usd_item)
    stripe_client("usd").v1.refunds.create(params={"payment_intent": payment.stripe_id, "amount": 100})
    stripe_fake.client.fail_next("connection")
    stripe_fake.client.fail_next("connection")
    stripe_fake.deliver_webhooks()
    payment.refresh_from_db()
    assert payment.refunds_to_check and state(order) == (OrderStatus.PAID, 0)
    stripe_fake.recover()
    call_command("reconcile_payments", stdout=open("/dev/null", "w"))  # noqa: SIM115
    payment.refresh_from_db()
    assert not payment.refunds_to_check and state(order) == (OrderStatus.PARTIALLY_REFUNDED, 100)


def test_a_refund_event_of_an_unknown_payment_waits_then_is_ignored_once_stripe_says_so(
    client, stripe_fake
) -> None:
    sc = stripe_client("usd")
    pi = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    stripe_fake.emulator.confirm_payment_intent(pi.id)
    sc.v1.refunds.create(params={"payment_intent": pi.id})
    stripe_fake.deliver_webhooks()
    assert not Refund.objects.exists()
    refund_events = StripeEvent.objects.filter(type__startswith="refund.")
    assert set(refund_events.values_list("status", flat=True)) == {"pending"}
    call_command("reconcile_payments", "--older-than", "0", stdout=io.StringIO(), stderr=io.StringIO())
    assert set(refund_events.values_list("status", flat=True)) == {"ignored"}
    assert not Refund.objects.exists()
