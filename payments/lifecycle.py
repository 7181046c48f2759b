"""What Stripe says about a PaymentIntent, a Checkout Session or a charge, applied to our `Payment` and `Order`.

Webhooks, the return pages, the shop's own Stripe calls (cancel, expire, retrieve) and the reconcile command
all come through here, so the rules live in one place. Nothing here calls Stripe: what must happen at Stripe
afterwards (closing the order's other objects, a refund it owes) is done by `sync.tidy_up()` once the
transaction has committed.

- Every change runs under `locks.locked_payment()` (order row, then payment row).
- A payment never leaves a final state (succeeded, failed, canceled, expired); a late or repeated event changes
  nothing, so events may arrive in any order and any number of times.
- An order becomes paid only when a payment for its current snapshot succeeded with exactly the snapshot's
  amount and currency; anything else leaves it unpaid and flagged for staff, the difference said in words.
- A payment succeeding for an order that is already paid is a second payment: it is flagged and a full refund
  is owed (sent by `tidy_up`).
- Stripe objects are read as plain dicts (an event's `data.object`, or `to_dict()` of a retrieved object).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.db.models import Sum
from django.utils import timezone

from core.money import format_money
from payments import followups, locks, states, stripe_fields
from payments.models import (
    FLAG_FIELDS,
    FollowUp,
    Order,
    OrderStatus,
    Payment,
    PaymentKind,
    PaymentStatus,
    Refund,
)

logger = logging.getLogger("payments.lifecycle")

StripeDict = Mapping[str, Any]

# Stripe's PaymentIntent statuses, as our payment status.
INTENT_STATUS = {
    "requires_payment_method": PaymentStatus.OPEN,
    "requires_confirmation": PaymentStatus.OPEN,
    "requires_action": PaymentStatus.OPEN,
    "requires_capture": PaymentStatus.PROCESSING,
    "processing": PaymentStatus.PROCESSING,
    "succeeded": PaymentStatus.SUCCEEDED,
    "canceled": PaymentStatus.CANCELED,
}


def _money(amount: int, currency: str) -> str:
    try:
        return format_money(amount, currency, minor=True)
    except (TypeError, ValueError):
        return f"{amount} {currency.upper()} minor units"


def apply_payment_intent(payment: Payment, intent: StripeDict, *, wait: float | None = None) -> Payment:
    """Apply a PaymentIntent's state (from an event, a return page, reconciliation or our own call)."""
    stripe_fields.check(stripe_fields.PAYMENT_INTENT, intent)
    stripe_status = str(intent.get("status") or "")
    status = intent_status(intent)
    error = intent.get("last_payment_error") or {}
    fields: dict[str, Any] = {
        "stripe_status": stripe_status,
        "last_error": str(error.get("message") or "") if isinstance(error, Mapping) else "",
    }
    if status == PaymentStatus.SUCCEEDED:
        fields["amount_received"] = stripe_fields.integer(intent.get("amount_received"))
    if payment.kind == PaymentKind.PAYMENT_INTENT:
        fields["stripe_amount_total"] = stripe_fields.integer(intent.get("amount"))
    email = str(intent.get("receipt_email") or "")
    return _apply(payment, status, str(intent.get("currency") or ""), fields, wait, email=email)


def apply_checkout_session(
    payment: Payment, session: StripeDict, *, async_failed: bool = False, wait: float | None = None
) -> Payment:
    """Apply a Checkout Session's state. It is paid only when `payment_status` is `paid`."""
    stripe_fields.check(stripe_fields.CHECKOUT_SESSION, session)
    stripe_status = str(session.get("status") or "")
    payment_status = str(session.get("payment_status") or "")
    fields: dict[str, Any] = {"stripe_status": f"{stripe_status}/{payment_status}"}
    intent_id = stripe_fields.payment_intent_id(session)
    if intent_id:
        fields["payment_intent_id"] = intent_id
    if session.get("amount_total") is not None:
        fields["stripe_amount_total"] = stripe_fields.integer(session["amount_total"])
    status = PaymentStatus.FAILED if async_failed else session_status(session)
    if async_failed:
        fields["last_error"] = "The payment was not completed (the bank transfer or delayed method failed)."
    elif status == PaymentStatus.SUCCEEDED:
        fields["amount_received"] = stripe_fields.integer(session.get("amount_total"))
    if status != PaymentStatus.OPEN:
        fields["url"] = ""  # the hosted page can no longer be paid
    details = session.get("customer_details") or {}
    email = str(
        (details.get("email") if isinstance(details, Mapping) else "") or session.get("customer_email") or ""
    )
    return _apply(payment, status, str(session.get("currency") or ""), fields, wait, email=email)


def intent_status(intent: StripeDict) -> str:
    """Our payment status for a PaymentIntent."""
    return INTENT_STATUS.get(str(intent.get("status") or ""), PaymentStatus.OPEN)


def session_status(session: StripeDict) -> str:
    """Our payment status for a Checkout Session: paid only when `payment_status` is `paid` (or nothing was
    due); complete but unpaid is a delayed method still processing."""
    stripe_status = str(session.get("status") or "")
    if stripe_status == "expired":
        return PaymentStatus.EXPIRED
    if stripe_status == "complete":
        if str(session.get("payment_status") or "") in ("paid", "no_payment_required"):
            return PaymentStatus.SUCCEEDED
        return PaymentStatus.PROCESSING
    return PaymentStatus.OPEN


def _apply(
    payment: Payment,
    status: str,
    currency: str,
    fields: dict[str, Any],
    wait: float | None,
    *,
    email: str = "",
) -> Payment:
    with locks.locked_payment(payment, wait=wait) as held:
        order, payment = held.order, held.payment
        before = payment.status
        if not states.payment_may_move(before, status):
            logger.info("payment %s stays %s (Stripe now says %s)", payment.stripe_id, before, status)
            return payment
        if before == PaymentStatus.SUCCEEDED:
            return payment  # the same success reported again
        if email and not order.email and status in (PaymentStatus.PROCESSING, PaymentStatus.SUCCEEDED):
            order.email = email[:254]  # Checkout collected it (or the PaymentIntent carries it)
            order.save(update_fields=["email"])
        if status == PaymentStatus.SUCCEEDED:
            fields["succeeded_at"] = timezone.now()
        for name, value in fields.items():
            setattr(payment, name, value)
        payment.status = status
        payment.save(update_fields=[*fields, "status", "updated_at"])
        if status == before:
            return payment
        if status == PaymentStatus.SUCCEEDED:
            _settle(order, payment, currency)
        elif status == PaymentStatus.PROCESSING:
            if order.status == OrderStatus.AWAITING_PAYMENT and payment.order_version == order.version:
                states.move(order, OrderStatus.PROCESSING)
                order.save(update_fields=states.STATUS_FIELDS)
        elif (
            before == PaymentStatus.PROCESSING
            and order.status == OrderStatus.PROCESSING
            and not order.payments.filter(status=PaymentStatus.PROCESSING).exists()
        ):
            # The payment in flight did not go through: the order can be paid again (same snapshot).
            states.move(order, OrderStatus.AWAITING_PAYMENT)
            order.save(update_fields=states.STATUS_FIELDS)
    return payment


def _settle(order: Order, payment: Payment, currency: str) -> None:
    """The payment succeeded at Stripe: the order is paid if it took exactly the snapshot, else flagged."""
    received = payment.amount_received
    currency = currency.lower()
    took = _money(received, currency or payment.currency)
    if states.is_paid(order):
        order.flag(
            f"Paid twice: {payment.get_kind_display()} {payment.stripe_id} took {took} after the order was "
            "already paid. A full refund of it was started automatically."
        )
        order.save(update_fields=FLAG_FIELDS)
        if received > 0:
            Refund.objects.get_or_create(
                idempotency_key=f"refund-duplicate:{payment.account}:{payment.stripe_id}",
                defaults={
                    "order": order,
                    "payment": payment,
                    "amount": received,
                    "currency": payment.currency,
                    "reason": Refund.Reason.DUPLICATE,
                },
            )
        logger.error("order %s paid twice, refunding %s", order.public_id, payment.stripe_id)
        return
    total = order.total
    problem = ""
    if payment.order_version != order.version or order.status not in (
        OrderStatus.AWAITING_PAYMENT,
        OrderStatus.PROCESSING,
    ):
        problem = (
            f"Stripe took {took} through {payment.stripe_id}, which was created for an earlier version of "
            f"this order (v{payment.order_version}; the order is now v{order.version}, {order.status})."
        )
    elif currency != order.currency:
        problem = (
            f"Stripe took {took} ({currency.upper()}) through {payment.stripe_id}, but the order is in "
            f"{order.currency.upper()}: "
            f"its total is {_money(total or 0, order.currency)}."
        )
    elif received != total:
        difference = _money(abs((total or 0) - received), order.currency)
        problem = (
            f"Stripe took {took} through {payment.stripe_id}, but the order's total is "
            f"{_money(total or 0, order.currency)}: {difference} {'short' if received < (total or 0) else 'too much'}."
        )
    if problem:
        order.flag(f"{problem} Order left unpaid.")
        order.save(update_fields=FLAG_FIELDS)
        logger.error("order %s not paid: %s", order.public_id, problem)
        return
    states.move(order, OrderStatus.PAID)
    order.paid_at = timezone.now()
    if not order.browser and payment.browser:
        order.browser = payment.browser  # an order staff made for a customer belongs to whoever paid it
    if order.amount_refunded:  # a refund event arrived before this one (events are not ordered)
        states.move(order, refunded_status(order))
    order.save(update_fields=["paid_at", "browser", *states.STATUS_FIELDS])
    followups.enqueue(FollowUp.Kind.CONFIRMATION, order_id=order.pk)  # sent by a worker once this commits
    logger.info("order %s paid by %s", order.public_id, payment.stripe_id)


def refunded_status(order: Order) -> str:
    """Paid, partially refunded or refunded, from what the order's payments received and gave back."""
    received = (
        order.payments.filter(status=PaymentStatus.SUCCEEDED).aggregate(total=Sum("amount_received"))["total"]
        or 0
    )
    kept = received - order.amount_refunded
    if kept <= 0:
        return OrderStatus.REFUNDED
    if kept < (order.total or 0):
        return OrderStatus.PARTIALLY_REFUNDED
    return OrderStatus.PAID


# ------------------------------------------------------------------------------------------------ refunds
# A payment's refunded amount is the sum of its refunds that Stripe made and that did not fail: every refund,
# the shop's own and those made in Stripe's dashboard, is a `Refund` row kept in step with Stripe's refund
# object (its status only moves forward: `states.refund_may_move`). A refund that fails gives
# its amount back, so the refunded amount, and the order's state, can go down again.

REFUND_STATUS = {
    "pending": Refund.Status.SENT,
    "requires_action": Refund.Status.SENT,
    "succeeded": Refund.Status.SUCCEEDED,
    "failed": Refund.Status.FAILED,
    "canceled": Refund.Status.CANCELED,
}


def refunded_amount(payment: Payment) -> int:
    return (
        payment.refunds.filter(status__in=states.MADE_REFUNDS)
        .exclude(stripe_id="")
        .aggregate(total=Sum("amount"))["total"]
        or 0
    )


def recount(order: Order, payment: Payment) -> None:
    """The payment's and the order's refunded amounts from their refunds; the order's state follows."""
    payment.amount_refunded = refunded_amount(payment)
    payment.save(update_fields=["amount_refunded", "updated_at"])
    order.amount_refunded = order.payments.aggregate(total=Sum("amount_refunded"))["total"] or 0
    if states.is_paid(order):
        states.move(order, refunded_status(order))
    order.save(update_fields=["amount_refunded", *states.STATUS_FIELDS])
    logger.info("order %s refunded %s, now %s", order.public_id, order.amount_refunded, order.status)


def _refund_row(order: Order, payment: Payment, refund: StripeDict) -> Refund:
    """Our row for Stripe's refund: found by its id, or by the key the shop gave it (in its metadata) when the
    answer to the shop's own request has not been recorded yet; else it was made outside the shop."""
    stripe_id = str(refund.get("id") or "")
    row = Refund.objects.filter(stripe_id=stripe_id).first()
    if row is None:
        metadata = refund.get("metadata") or {}
        ref = metadata.get("refund_ref") if isinstance(metadata, Mapping) else None
        if ref:
            row = Refund.objects.filter(idempotency_key=str(ref), payment=payment).first()
    if row is None:
        row = Refund.objects.create(
            order=order,
            payment=payment,
            amount=stripe_fields.integer(refund.get("amount")),
            currency=str(refund.get("currency") or payment.currency).lower(),
            reason=Refund.Reason.OUTSIDE,
            status=Refund.Status.SENT,
            stripe_id=stripe_id,
            idempotency_key=f"stripe:{payment.account}:{stripe_id}",
            description="Made in Stripe's dashboard (or another tool), not through the shop.",
        )
        order.note(f"A refund made outside the shop was recorded: {stripe_id}.")
        order.save(update_fields=["attention_note", "updated_at"])
    return row


def record_refund(row: Refund, refund: StripeDict) -> bool:
    """Take Stripe's refund object into our row (its id and status), never moving its status backwards.
    Returns whether anything changed. The caller holds the order's lock."""
    stripe_fields.check(stripe_fields.REFUND, refund)
    status = REFUND_STATUS.get(str(refund.get("status") or ""), Refund.Status.SENT)
    fields = []
    stripe_id = str(refund.get("id") or "")
    if stripe_id and row.stripe_id != stripe_id:
        row.stripe_id = stripe_id
        fields.append("stripe_id")
    created = stripe_fields.timestamp(refund.get("created"))
    if created is not None and row.stripe_created is None:
        row.stripe_created = created
        fields.append("stripe_created")
    if states.refund_may_move(row.status, status):
        row.status = status
        fields.append("status")
        if status == Refund.Status.SUCCEEDED:  # the shopper is told, by a worker once this commits
            followups.enqueue(FollowUp.Kind.REFUND_NOTICE, order_id=row.order_id, target_id=row.pk)
        if status in states.FAILED_REFUNDS:
            row.last_error = str(refund.get("failure_reason") or status)
            fields.append("last_error")
    if fields:
        row.save(update_fields=[*fields, "updated_at"])
    return bool(fields)


def apply_stripe_refund(payment: Payment, refund: StripeDict, *, wait: float | None = None) -> Refund:
    """Apply a Stripe refund object (from `refund.*` events, or looked up at Stripe): its row's status, then
    the refunded amounts and the order's state."""
    stripe_fields.check(stripe_fields.REFUND, refund)
    with locks.locked_payment(payment, wait=wait) as held:
        order, payment = held.order, held.payment
        row = _refund_row(order, payment, refund)
        record_refund(row, refund)
        recount(order, payment)
    return row


def apply_refund(payment: Payment, charge: StripeDict, *, wait: float | None = None) -> Payment:
    """Apply `charge.refunded`: the refunded amount follows the payment's refunds. A charge whose refunded
    amount they do not explain (a refund made in Stripe's dashboard, or news not yet received) is marked for
    its refunds to be looked up at Stripe once this is committed (`refunds.look_up`, run by `sync.tidy_up`)."""
    stripe_fields.check(stripe_fields.CHARGE, charge)
    with locks.locked_payment(payment, wait=wait) as held:
        order, payment = held.order, held.payment
        recount(order, payment)
        if (
            stripe_fields.integer(charge.get("amount_refunded")) != payment.amount_refunded
            and not payment.refunds_to_check
        ):
            payment.refunds_to_check = True
            payment.save(update_fields=["refunds_to_check", "updated_at"])
            logger.info(
                "payment %s: Stripe says %s refunded, the shop knows %s: looking its refunds up",
                payment.stripe_id,
                charge.get("amount_refunded"),
                payment.amount_refunded,
            )
    return payment
