"""The shop's books converge with Stripe's: on the paths around the shopper's (staff, Stripe's refusals, events
for objects the shop does not know, sweeps), nothing is doubled, short or lost, and one bad order never stops
reconciliation."""

from __future__ import annotations

import copy
import io
import re
import time
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from catalog.models import Item
from payments import freezing, refunds, states, sweep
from payments.models import (
    AppendOnlyError,
    Order,
    OrderStatus,
    Payment,
    PaymentOrigin,
    PaymentStatus,
    Refund,
    StaffAction,
    StrayPayment,
    StripeEvent,
    Tax,
)
from payments.tests.factories import make_cart
from payments.tests.support import (
    JSON,
    Shopper,
    charges_at_stripe,
    make_event,
    pay_item,
    payable_at_stripe,
    stripe_client,
)

pytestmark = pytest.mark.django_db


def reconcile(*args: str) -> tuple[int, str, str]:
    """Run the sweep as cron does: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("reconcile_payments", "--older-than", "0", *args, stdout=out, stderr=err)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def stripe_event(stripe_fake: Any, event_type: str, object_id: str, **changes: Any) -> dict[str, Any]:
    """A new event about the emulator's object as it is now, with `changes` (what Stripe would send)."""
    obj = copy.deepcopy(stripe_fake.emulator.get(object_id))
    obj.update(changes)
    return make_event(event_type, obj)


def refund_page(admin_client: Client, order: Order) -> tuple[str, str]:
    html = admin_client.get(f"/admin/payments/order/{order.pk}/refund/").content.decode()
    match = re.search(r'name="token" value="([0-9a-f]{32})"', html)
    assert match, html[:2000]
    return html, match.group(1)


def left_on_page(admin_client: Client, order: Order) -> str:
    html, _ = refund_page(admin_client, order)
    match = re.search(r'id="left-to-refund">([^<]+)<', html)
    assert match
    return match.group(1)


# 1 ------------------------------------------------------------------ a failed async payment and a second buy-now


def test_a_payment_that_fails_after_processing_never_collides_with_the_browsers_next_order(
    usd_item: Item, stripe_fake: Any, post_event: Any
) -> None:
    shopper = Shopper()
    first = shopper.web.post(f"/item/{usd_item.pk}/intent", **JSON).json()
    pi1 = first["client_secret"].split("_secret_")[0]
    order1 = Order.objects.get(public_id=first["order_id"])
    # A bank debit: Stripe says it is processing.
    assert post_event("usd", stripe_event(stripe_fake, "payment_intent.processing", pi1, status="processing"))
    order1.refresh_from_db()
    assert order1.status == OrderStatus.PROCESSING and order1.buy_now_key is None
    # The same browser buys the item again meanwhile: a second one-item order, by design.
    second = shopper.web.post(f"/item/{usd_item.pk}/intent", **JSON).json()
    assert second["order_id"] != first["order_id"]
    # The debit fails: order 1 takes the news (200, not a 500 Stripe retries for days)...
    failed = stripe_event(
        stripe_fake,
        "payment_intent.payment_failed",
        pi1,
        status="requires_payment_method",
        last_payment_error={"message": "The bank refused the debit."},
    )
    response = post_event("usd", failed)
    assert response.status_code == 200, response.content
    order1.refresh_from_db()
    assert order1.status == OrderStatus.AWAITING_PAYMENT  # not paid; its payment failed
    assert Payment.objects.get(stripe_id=pi1).status == PaymentStatus.OPEN
    assert "bank refused" in Payment.objects.get(stripe_id=pi1).last_error
    # ... and the browser's current one-item order is still the second one.
    order2 = Order.objects.get(public_id=second["order_id"])
    assert order2.buy_now_key and order1.buy_now_key is None
    third = shopper.web.post(f"/item/{usd_item.pk}/intent", **JSON).json()
    assert third["order_id"] == second["order_id"]
    # The sweep completes, every step.
    status, out, err = reconcile()
    assert status == 0, err
    assert "0 failed." in out


def test_marking_an_underpaid_order_reviewed_after_the_shopper_paid_again(
    usd_item: Item, stripe_fake: Any, admin_client: Client
) -> None:
    shopper = Shopper()
    first = shopper.web.post(f"/item/{usd_item.pk}/intent", **JSON).json()
    order1 = Order.objects.get(public_id=first["order_id"])
    states.flag_order(order1.pk, "Stripe took $1.00 through pi_x, but the order's total is $24.50.")
    second = shopper.web.post(f"/item/{usd_item.pk}/intent", **JSON).json()  # a new order for the item
    assert second["order_id"] != first["order_id"]
    selected = {"action": "mark_reviewed", "_selected_action": [order1.pk], "confirm": "yes"}
    response = admin_client.post("/admin/payments/order/", {**selected, "note": "Refunded by phone."})
    assert response.status_code == 302
    order1.refresh_from_db()
    assert not order1.needs_attention and "Reviewed by admin: Refunded by phone." in order1.attention_note
    assert StaffAction.objects.get(order=order1).kind == StaffAction.Kind.REVIEWED


# 2 ------------------------------------------------------------------ staff save an order being paid


def change_form(order: Order, item: Item, quantity: int) -> dict[str, Any]:
    line = order.lines.get()
    return {
        "currency": order.currency,
        "email": "",
        "lines-TOTAL_FORMS": "1",
        "lines-INITIAL_FORMS": "1",
        "lines-MIN_NUM_FORMS": "0",
        "lines-MAX_NUM_FORMS": "1000",
        "lines-0-id": str(line.pk),
        "lines-0-order": str(order.pk),
        "lines-0-item": str(item.pk),
        "lines-0-quantity": str(quantity),
        "lines-0-unit_price": str(item.amount),
    }


def test_a_save_from_a_form_loaded_before_pay_changes_nothing(
    usd_item: Item, stripe_fake: Any, admin_client: Client
) -> None:
    order = make_cart(usd_item, browser="")  # staff made it; the customer has its link
    url = f"/admin/payments/order/{order.pk}/change/"
    assert 'name="_save"' in admin_client.get(url).content.decode()  # staff open it while it is a cart
    customer = Shopper()
    pi = customer.intent(order).json()["client_secret"].split("_secret_")[0]  # the customer pays meanwhile
    response = admin_client.post(url, change_form(order, usd_item, 5))
    assert response.status_code == 302
    assert "Nothing was saved" in admin_client.get(response["Location"]).content.decode()
    order.refresh_from_db()
    assert (order.status, order.version, order.lines.get().quantity) == (OrderStatus.AWAITING_PAYMENT, 1, 1)
    assert order.total == 2450
    assert payable_at_stripe(stripe_fake, order) == [pi]
    stripe_fake.pay_intent(pi)
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID


def test_a_cart_save_writes_only_what_staff_may_change_and_is_recorded(
    usd_item: Item, stripe_fake: Any, admin_client: Client
) -> None:
    order = make_cart(usd_item, browser="")
    url = f"/admin/payments/order/{order.pk}/change/"
    form = {**change_form(order, usd_item, 3), "email": "jenny@example.com", "status": "paid", "version": "7"}
    assert admin_client.post(url, form).status_code == 302
    order.refresh_from_db()
    assert (order.status, order.version, order.email) == (OrderStatus.DRAFT, 0, "jenny@example.com")
    assert order.lines.get().quantity == 3
    action = StaffAction.objects.get(order=order)
    assert (action.kind, action.who) == (StaffAction.Kind.SAVED, "admin") and "email" in action.note


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_admin_save_racing_pay_leaves_the_order_frozen_with_one_payable_object(
    usd_item: Item, stripe_fake: Any, admin_user: Any
) -> None:
    from payments.tests.support import require_postgres, run_together

    require_postgres()
    for _ in range(10):
        order = make_cart(usd_item, browser="")
        staff, customer = Client(), Shopper()
        staff.force_login(admin_user)
        form = change_form(order, usd_item, 2)

        def act(
            i: int,
            staff: Client = staff,
            customer: Shopper = customer,
            order: Order = order,
            form: Any = form,
        ) -> int:
            if i == 0:
                return staff.post(f"/admin/payments/order/{order.pk}/change/", form).status_code
            return customer.intent(order).status_code

        assert sorted(run_together(act, n=2)) in ([200, 302],)
        order.refresh_from_db()
        assert order.status == OrderStatus.AWAITING_PAYMENT and order.version == 1 and order.snapshot
        quantity = order.lines.get().quantity
        assert order.total == 2450 * quantity  # the snapshot is of the lines as they are
        assert len(payable_at_stripe(stripe_fake, order)) == 1
        # A second Pay reuses the same object (its key is not replayed into a refused duplicate row).
        assert customer.intent(order).status_code == 200
        assert len(payable_at_stripe(stripe_fake, order)) == 1


# 3 ------------------------------------------------------------------ refunds Stripe refuses


def test_a_refund_refused_because_of_a_dashboard_refund_is_failed_and_left_to_refund_follows_stripe(
    client: Client, admin_client: Client, usd_item: Item, usd_item_2: Item, stripe_fake: Any
) -> None:
    shopper = Shopper(client)
    shopper.add(usd_item)
    shopper.add(usd_item_2, 2)  # $24.50 + 2 x $18.00 = $60.50
    order = shopper.cart()
    pi = shopper.intent(order).json()["client_secret"].split("_secret_")[0]
    stripe_fake.pay_intent(pi)
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID and order.total == 6050
    # $30 refunded in Stripe's dashboard; its news has not arrived yet.
    stripe_client("usd").v1.refunds.create(params={"payment_intent": pi, "amount": 3000})
    news = list(stripe_fake.outbox)
    stripe_fake.outbox.clear()
    assert left_on_page(admin_client, order) == "$60.50"  # what the shop knows so far

    # Staff refund $40 from the shop: Stripe refuses (only $30.50 is left at Stripe).
    _, token = refund_page(admin_client, order)
    fields = {"token": token, "amount": "40.00", "reason": "requested_by_customer"}
    url = f"/admin/payments/order/{order.pk}/refund/"
    admin_client.post(url, fields)
    page = admin_client.post(url, {**fields, "confirmed": "True"}).content.decode()
    assert "Stripe refused the refund" in page and "could not reach" not in page
    refused = Refund.objects.get(reason=Refund.Reason.REQUESTED_BY_CUSTOMER)
    assert refused.status == Refund.Status.FAILED and "unrefunded" in refused.last_error
    # The shop looked up what Stripe refunded: "Left to refund" is Stripe's.
    assert left_on_page(admin_client, order) == "$30.50"
    # Never sent again: a sweep leaves it failed, and asks Stripe nothing more about it.
    creates = len(stripe_fake.calls("POST", "/v1/refunds"))
    assert reconcile()[0] == 0
    assert len(stripe_fake.calls("POST", "/v1/refunds")) == creates
    refused.refresh_from_db()
    assert refused.status == Refund.Status.FAILED
    # The dashboard refund's own news changes nothing more.
    stripe_fake.outbox.extend(news)
    stripe_fake.deliver_webhooks()
    assert left_on_page(admin_client, order) == "$30.50"
    order.refresh_from_db()
    _, given_back = charges_at_stripe(stripe_fake, order)
    assert (order.status, order.amount_refunded, given_back) == (OrderStatus.PARTIALLY_REFUNDED, 3000, 3000)


def test_a_refund_after_a_dashboard_full_refund_is_refused_as_already_refunded(
    client: Client, usd_item: Item, stripe_fake: Any
) -> None:
    order, payment = pay_item(client, stripe_fake, usd_item)
    stripe_client("usd").v1.refunds.create(params={"payment_intent": payment.stripe_id})
    stripe_fake.outbox.clear()
    with pytest.raises(refunds.disputes.RefundRefused, match="already refunded in full"):
        refunds.refund_order(order, 1000)
    assert Refund.objects.get(reason=Refund.Reason.REQUESTED_BY_CUSTOMER).status == Refund.Status.FAILED
    payment.refresh_from_db()
    assert refunds.left_to_refund(payment) == 0
    order.refresh_from_db()
    assert (order.status, order.amount_refunded) == (OrderStatus.REFUNDED, 2450)


def test_a_refund_whose_answer_was_lost_is_found_at_stripe_not_made_twice(
    client: Client, usd_item: Item, stripe_fake: Any
) -> None:
    order, _ = pay_item(client, stripe_fake, usd_item)
    stripe_fake.client.fail_next("500_after", times=2)  # Stripe made it; the answers were 500s
    with pytest.raises(refunds.RefundNotSent, match="may or may not have been made"):
        refunds.refund_order(order, 1000)
    row = Refund.objects.get()
    assert (row.status, row.attempts) == (Refund.Status.PENDING, 1)
    stripe_fake.recover()
    assert reconcile()[0] == 0
    row.refresh_from_db()
    assert row.status == Refund.Status.SUCCEEDED and row.stripe_id.startswith("re_")
    # Found by its reference: no new request was sent (the two are the SDK's own retry, with the same key).
    keys = {c.idempotency_key for c in stripe_fake.calls("POST", "/v1/refunds")}
    assert keys == {f"{row.idempotency_key}:1"}
    assert charges_at_stripe(stripe_fake, order) == (2450, 1000)


def test_a_refund_that_never_reached_stripe_is_sent_with_a_new_key(
    client: Client, usd_item: Item, stripe_fake: Any
) -> None:
    order, _ = pay_item(client, stripe_fake, usd_item)
    stripe_fake.client.fail_next("connection", times=2)  # no answer, and the SDK's one retry neither
    with pytest.raises(refunds.RefundNotSent):
        refunds.refund_order(order, 500)
    stripe_fake.recover()
    assert reconcile()[0] == 0
    row = Refund.objects.get()
    assert row.status == Refund.Status.SUCCEEDED and row.attempts == 2
    keys = [c.idempotency_key for c in stripe_fake.calls("POST", "/v1/refunds")]
    assert keys[-1] == f"{row.idempotency_key}:2" and all(k.endswith(":1") for k in keys[:-1])
    assert charges_at_stripe(stripe_fake, order) == (2450, 500)


# 4 ------------------------------------------------------------------ payments at Stripe the shop does not know


def intent_naming(order: Order, *, amount: int, status: str = "succeeded") -> str:
    """A PaymentIntent made for `order`'s snapshot whose answer never reached the shop (a lost create)."""
    params: Any = {
        "amount": amount,
        "currency": order.currency,
        "metadata": {
            "order_id": str(order.public_id),
            "order_version": str(order.version),
            "payment_ref": f"{order.public_id}:{order.version}:lost",
        },
    }
    pi = stripe_client(order.currency).v1.payment_intents.create(params=params)
    return pi.id


def test_an_event_for_a_payment_the_shop_has_no_row_for_pays_its_order(
    usd_item: Item, stripe_fake: Any
) -> None:
    shopper = Shopper()
    shopper.add(usd_item)
    order = shopper.cart()
    shopper.intent(order)  # frozen: v1, $24.50
    order.refresh_from_db()
    lost = intent_naming(order, amount=2450)
    stripe_fake.outbox.clear()
    stripe_fake.pay_intent(lost)  # its events arrive; no return page is ever loaded
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    adopted = Payment.objects.get(stripe_id=lost)
    assert (adopted.origin, adopted.status, adopted.amount_received) == (
        PaymentOrigin.STRIPE,
        PaymentStatus.SUCCEEDED,
        2450,
    )
    assert StripeEvent.objects.get(type="payment_intent.succeeded").status == StripeEvent.Status.PROCESSED
    assert payable_at_stripe(stripe_fake, order) == []  # the shopper's own PaymentIntent was closed


def test_an_event_before_its_order_is_committed_waits_and_pays_it_once_it_is(
    usd_item: Item, stripe_fake: Any, post_event: Any
) -> None:
    from payments import orders as shop_orders

    # The Pay request makes the one-item order and its PaymentIntent in one transaction; Stripe's news of
    # the payment can arrive before that transaction commits (the order is not in the database yet).
    new = freezing.NewOrder(public_id=shop_orders.BUY_NOW_IDS, browser="b-early", item=usd_item)
    pi = stripe_client("usd").v1.payment_intents.create(
        params={
            "amount": 2450,
            "currency": "usd",
            "metadata": {"order_id": str(new.public_id), "order_version": "1", "payment_ref": "early"},
        }
    )
    stripe_fake.emulator.confirm_payment_intent(pi.id)
    [succeeded] = [e for e in stripe_fake.emulator.events["usd"] if e["type"] == "payment_intent.succeeded"]
    stripe_fake.outbox.clear()
    response = post_event("usd", succeeded)
    assert (response.status_code, response.json()["status"]) == (200, "pending")
    # The request commits: its order exists, but its row for the PaymentIntent was never written.
    order, _ = freezing.make_frozen(new)
    assert order.status == OrderStatus.AWAITING_PAYMENT
    # The event is tried again, finds the order, records the payment from Stripe's object, pays the order.
    assert reconcile()[0] == 0
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert StripeEvent.objects.get(event_id=succeeded["id"]).status == StripeEvent.Status.PROCESSED


def test_one_sweep_finds_a_succeeded_payment_the_shop_never_heard_of(
    usd_item: Item, stripe_fake: Any
) -> None:
    shopper = Shopper()
    shopper.add(usd_item)
    order = shopper.cart()
    shopper.intent(order)
    order.refresh_from_db()
    lost = intent_naming(order, amount=2450)
    stripe_fake.failing_deliveries = True  # and every webhook about it is lost
    stripe_fake.emulator.confirm_payment_intent(lost)
    stripe_fake.failing_deliveries = False
    stripe_fake.emulator.objects[lost]["created"] -= 3600  # and the failed-delivery list is out of reach
    stripe_fake.emulator.delivered.clear()
    status, out, _ = reconcile()
    assert status == 0 and "adopted 1" in out
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert Payment.objects.get(stripe_id=lost).origin == PaymentOrigin.STRIPE


def test_a_sweep_holds_for_staff_a_payment_at_stripe_that_does_not_match_its_order(
    usd_item: Item, stripe_fake: Any
) -> None:
    shopper = Shopper()
    shopper.add(usd_item)
    order = shopper.cart()
    shopper.intent(order)
    order.refresh_from_db()
    lost = intent_naming(order, amount=100)  # $1.00 for a $24.50 order
    stripe_fake.failing_deliveries = True
    stripe_fake.emulator.confirm_payment_intent(lost)
    stripe_fake.failing_deliveries = False
    stripe_fake.emulator.delivered.clear()
    assert reconcile()[0] == 0
    order.refresh_from_db()
    assert order.status == OrderStatus.AWAITING_PAYMENT and order.needs_attention
    assert "$1.00" in order.attention_note and "short" in order.attention_note


def test_a_sweep_lists_payments_that_name_no_order_for_staff(stripe_fake: Any, admin_client: Client) -> None:
    pi = stripe_client("eur").v1.payment_intents.create(params={"amount": 990, "currency": "eur"})
    stripe_fake.emulator.confirm_payment_intent(pi.id)
    stripe_fake.outbox.clear()
    assert reconcile()[0] == 0
    stray = StrayPayment.objects.get()
    assert (stray.account, stray.stripe_id, stray.amount, stray.stripe_status) == (
        "eur",
        pi.id,
        990,
        "succeeded",
    )
    page = admin_client.get("/admin/payments/straypayment/").content.decode()
    assert pi.id[-8:] in page and "€9.90" in page
    assert reconcile()[0] == 0 and StrayPayment.objects.count() == 1  # listed once


def test_an_orphan_left_open_by_a_lost_create_is_closed_by_the_sweep(
    usd_item: Item, stripe_fake: Any
) -> None:
    shopper = Shopper()
    shopper.add(usd_item)
    order = shopper.cart()
    mine = shopper.intent(order).json()["client_secret"].split("_secret_")[0]
    order.refresh_from_db()
    orphan = intent_naming(order, amount=2450, status="requires_payment_method")
    stripe_fake.emulator.objects[orphan]["created"] -= 3600  # older than the sweep's grace
    assert sorted(payable_at_stripe(stripe_fake, order)) == sorted([mine, orphan])
    status, out, _ = reconcile()
    assert status == 0 and "orphan closed 1" in out
    assert payable_at_stripe(stripe_fake, order) == [mine]  # the one the shopper holds stays payable
    assert Payment.objects.get(stripe_id=orphan).status == PaymentStatus.CANCELED


# -------------------------------------------------------------------------------- one bad order never stops it


def test_one_bad_order_never_stops_the_sweep(
    usd_item: Item, usd_item_2: Item, stripe_fake: Any, monkeypatch: pytest.MonkeyPatch, admin_client: Client
) -> None:
    orders = []
    for item in (usd_item, usd_item_2):
        web = Shopper()
        web.add(item)
        order = web.cart()
        pi = web.intent(order).json()["client_secret"].split("_secret_")[0]
        stripe_fake.failing_deliveries = True
        stripe_fake.emulator.confirm_payment_intent(pi)
        stripe_fake.failing_deliveries = False
        orders.append(order)
    stripe_fake.emulator.delivered.clear()
    bad = orders[0]
    real = sweep.lifecycle.apply_payment_intent

    def broken_for_one(payment: Payment, intent: Any, **kwargs: Any) -> Payment:
        if payment.order_id == bad.pk:
            raise RuntimeError("a bug that only this order meets")
        return real(payment, intent, **kwargs)

    monkeypatch.setattr(sweep.lifecycle, "apply_payment_intent", broken_for_one)
    status, out, err = reconcile()
    assert status == 1
    assert "a bug that only this order meets" in err
    assert re.search(r"^[1-9]\d* failed\.$", out, re.M)
    good = Order.objects.get(pk=orders[1].pk)
    assert good.status == OrderStatus.PAID  # every other order was reconciled
    bad.refresh_from_db()
    assert (
        bad.status == OrderStatus.AWAITING_PAYMENT and "a bug that only this order meets" in bad.sweep_error
    )
    assert (
        "Reconciliation failed on this order"
        in admin_client.get(f"/admin/payments/order/{bad.pk}/change/").content.decode()
    )
    # Fixed: the next run reconciles it and the failure is cleared.
    monkeypatch.setattr(sweep.lifecycle, "apply_payment_intent", real)
    assert reconcile()[0] == 0
    bad.refresh_from_db()
    assert bad.status == OrderStatus.PAID and bad.sweep_error == "" and bad.sweep_failed_at is None


# 4 ------------------------------------------------------------------ an append-only ledger


def test_the_ledger_cannot_be_deleted_or_edited(
    client: Client, usd_item: Item, stripe_fake: Any, admin_client: Client
) -> None:
    order, payment = pay_item(client, stripe_fake, usd_item)
    refunds.refund_order(order, 500)
    stripe_fake.deliver_webhooks()
    with pytest.raises(AppendOnlyError):
        payment.delete()
    with pytest.raises(AppendOnlyError):
        Payment.objects.all().delete()
    with pytest.raises(AppendOnlyError):
        StripeEvent.objects.filter(pk__gt=0).delete()
    with pytest.raises(AppendOnlyError):
        Refund.objects.get().delete()
    for model, pk in (
        ("payment", payment.pk),
        ("refund", Refund.objects.get().pk),
        ("stripeevent", StripeEvent.objects.first().pk),
    ):
        assert admin_client.get(f"/admin/payments/{model}/{pk}/delete/").status_code == 403
        changelist = admin_client.get(f"/admin/payments/{model}/").content.decode()
        assert "delete_selected" not in changelist
        page = admin_client.get(f"/admin/payments/{model}/{pk}/change/").content.decode()
        assert 'name="_save"' not in page  # shown read-only, superusers included
    assert admin_client.get(f"/admin/payments/order/{order.pk}/delete/").status_code == 403
    assert admin_client.post(f"/admin/payments/order/{order.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Order.objects.filter(pk=order.pk).exists() and Payment.objects.filter(pk=payment.pk).exists()


# 5 ------------------------------------------------------------------ Stripe's errors, in one place


@pytest.mark.parametrize(
    ("failure", "meaning"),
    [
        ("connection", "StripeOutage"),
        ("500", "StripeOutage"),
        ("429", "StripeOutage"),
    ],
)
def test_stripe_failures_are_outages_only_when_they_are(
    client: Client, usd_item: Item, stripe_fake: Any, failure: str, meaning: str
) -> None:
    from payments import gateway, sync

    _, payment = pay_item(client, stripe_fake, usd_item)
    stripe_fake.client.fail_next(failure, times=2)
    with pytest.raises(gateway.PaymentProviderError) as raised:
        sync.refresh(payment)
    assert type(raised.value).__name__ == meaning


def test_a_stripe_refusal_is_a_refusal_with_its_reason(
    client: Client, usd_item: Item, stripe_fake: Any
) -> None:
    from payments import gateway
    from payments.errors import StripeNotFound, StripeRefused

    acct = gateway.account("usd")
    with pytest.raises(StripeNotFound) as missing:
        gateway.retrieve_intent(acct, "pi_does_not_exist")
    assert missing.value.stripe_code == "resource_missing"
    _, payment = pay_item(client, stripe_fake, usd_item)
    with pytest.raises(StripeRefused) as refused:
        gateway.cancel_intent(acct, payment.stripe_id)
    assert refused.value.stripe_code == "payment_intent_unexpected_state"
    assert "not in a state that allows this" in refused.value.reason
    assert "could not reach" not in refused.value.message


# 6 ------------------------------------------------------------------ staff's typing


def test_twelve_fifty_with_a_decimal_comma_refunds_twelve_fifty(
    client: Client, admin_client: Client, eur_item: Item, stripe_fake: Any
) -> None:
    order, _ = pay_item(client, stripe_fake, eur_item)
    _, token = refund_page(admin_client, order)
    url = f"/admin/payments/order/{order.pk}/refund/"
    fields = {"token": token, "amount": "12,50", "reason": "requested_by_customer"}
    review = admin_client.post(url, fields).content.decode()
    assert 'id="confirm-amount">€12.50<' in review and 'id="confirm-currency">EUR<' in review
    assert stripe_fake.calls("POST", "/v1/refunds") == []  # nothing before the confirmation
    admin_client.post(url, {**fields, "confirmed": "True"})
    [call] = stripe_fake.calls("POST", "/v1/refunds")
    assert call.params["amount"] == "1250" and call.params["reason"] == "requested_by_customer"


def test_an_ambiguous_amount_is_asked_about_not_guessed(
    client: Client, admin_client: Client, usd_item: Item, stripe_fake: Any
) -> None:
    order, _ = pay_item(client, stripe_fake, usd_item)
    _, token = refund_page(admin_client, order)
    page = admin_client.post(
        f"/admin/payments/order/{order.pk}/refund/",
        {"token": token, "amount": "1,250", "reason": "requested_by_customer"},
    ).content.decode()
    assert "could mean 1250 or 1.250 USD" in page.replace("&#x27;", "'")
    assert 'id="refund-confirm"' not in page and not Refund.objects.exists()


def test_an_other_reason_needs_a_note_sent_to_stripe(
    client: Client, admin_client: Client, usd_item: Item, stripe_fake: Any
) -> None:
    order, _ = pay_item(client, stripe_fake, usd_item)
    _, token = refund_page(admin_client, order)
    url = f"/admin/payments/order/{order.pk}/refund/"
    fields = {"token": token, "amount": "5", "reason": "requested_by_staff"}
    assert "Say why the money is given back." in admin_client.post(url, fields).content.decode()
    fields["note"] = "Arrived late"
    admin_client.post(url, fields)
    admin_client.post(url, {**fields, "confirmed": "True"})
    [call] = stripe_fake.calls("POST", "/v1/refunds")
    assert "reason" not in call.params and call.params["metadata"]["note"] == "Arrived late"
    refund = Refund.objects.get()
    assert (refund.reason, refund.note) == (Refund.Reason.REQUESTED_BY_STAFF, "Arrived late")
    assert "Arrived late" in admin_client.get(f"/admin/payments/order/{order.pk}/change/").content.decode()


def test_the_bulk_refund_shows_orders_and_totals_per_currency_before_anything_is_refunded(
    client: Client, admin_client: Client, usd_item: Item, eur_item: Item, stripe_fake: Any
) -> None:
    usd_order, _ = pay_item(Client(), stripe_fake, usd_item)
    eur_order, _ = pay_item(Client(), stripe_fake, eur_item)
    selected = {"action": "refund_in_full", "_selected_action": [usd_order.pk, eur_order.pk]}
    page = admin_client.post("/admin/payments/order/", selected).content.decode()
    totals = page[page.index('id="bulk-refund-totals"') :]
    assert "$24.50" in totals and "(USD)" in totals and "€89.90" in totals and "(EUR)" in totals
    assert not Refund.objects.exists()
    admin_client.post("/admin/payments/order/", {**selected, "confirm": "yes", "reason": "duplicate"})
    assert sorted(r.reason for r in Refund.objects.all()) == ["duplicate", "duplicate"]
    assert {c.params["reason"] for c in stripe_fake.calls("POST", "/v1/refunds")} == {"duplicate"}


def test_the_bulk_refund_says_why_an_order_is_not_refunded(
    admin_client: Client, usd_item: Item, stripe_fake: Any
) -> None:
    """The bulk action and the refund page read one rule (`refunds.refundable`): an order all of whose payment
    was asked back has nothing left, a cart is not paid; neither is refunded again."""
    refunded, _ = pay_item(Client(), stripe_fake, usd_item)
    refunds.refund_order(refunded)  # all of it, before Stripe's news
    cart = make_cart(usd_item)
    selected = {"action": "refund_in_full", "_selected_action": [refunded.pk, cart.pk]}
    page = admin_client.post("/admin/payments/order/", selected).content.decode()
    assert "Nothing left to refund on this order." in page and "Only paid orders can be refunded." in page
    admin_client.post("/admin/payments/order/", {**selected, "confirm": "yes", "reason": "duplicate"})
    assert Refund.objects.count() == 1 and len(stripe_fake.calls("POST", "/v1/refunds")) == 1


def test_a_tax_in_a_currency_the_shop_has_no_account_for_cannot_be_saved(admin_client: Client) -> None:
    from django.core.exceptions import ValidationError

    response = admin_client.post(
        "/admin/payments/tax/add/",
        {"name": "Sales tax", "percentage": "8.875", "currency": "uds", "applies_to_every_order": "on"},
    )
    assert response.status_code == 200 and not Tax.objects.exists()
    assert "Select a valid choice" in response.content.decode()
    with pytest.raises(ValidationError, match="UDS is not a currency of this shop"):
        Tax(name="Sales tax", percentage=8, currency="uds").full_clean()


def test_a_row_saved_in_an_unknown_currency_is_reported_by_a_system_check() -> None:
    from django.core.checks import run_checks

    Tax.objects.create(name="Old GBP VAT", percentage=20, currency="gbp")
    messages = [m for m in run_checks(databases=["default"]) if m.id == "payments.W010"]
    assert len(messages) == 1 and "GBP" in messages[0].msg


def test_max_uses_below_the_uses_made_is_refused(
    client: Client, admin_client: Client, usd_item: Item, stripe_fake: Any
) -> None:
    from payments.models import Discount

    code = Discount.objects.create(name="Welcome", percent_off=10, code="WELCOME", max_uses=20)
    shoppers = [Shopper() for _ in range(2)]
    for shopper in shoppers:
        shopper.add(usd_item)
        cart = shopper.cart()
        shopper.web.post(f"/order/{cart.public_id}/promo", {"code": "WELCOME"})
        pi = shopper.intent(cart).json()["client_secret"].split("_secret_")[0]
        stripe_fake.pay_intent(pi)
    form = {
        "name": "Welcome",
        "percent_off": "10",
        "currency": "",
        "is_active": "on",
        "code": "WELCOME",
        "max_uses": "1",
    }
    page = admin_client.post(f"/admin/payments/discount/{code.pk}/change/", form).content.decode()
    assert "2 orders have used this code" in page
    code.refresh_from_db()
    assert code.max_uses == 20


def test_stripe_side_events_leave_no_pending_refund_that_stripe_refused(
    client: Client, usd_item: Item, stripe_fake: Any
) -> None:
    order, payment = pay_item(client, stripe_fake, usd_item)
    stripe_fake.emulator.open_dispute(payment.stripe_id)
    stripe_fake.deliver_webhooks()
    with pytest.raises(refunds.disputes.RefundRefused):
        refunds.refund_order(order, 100)
    assert not Refund.objects.filter(status=Refund.Status.PENDING).exists()
    assert time.time()  # the sweep after it has nothing to resend
    assert reconcile()[0] == 0
    assert not Refund.objects.filter(status=Refund.Status.PENDING).exists()
