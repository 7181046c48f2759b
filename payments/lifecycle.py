"""The payment lifecycle: what Stripe says about a PaymentIntent, a Checkout Session or a charge, applied to our
`Payment` and `Order` rows.

Webhooks, the return pages and the reconcile command all come through here, so the rules live in one place:
- every change runs in a transaction with the payment and order rows locked (`select_for_update`);
- states never move backwards: a succeeded payment stays succeeded, a paid order only moves on to refunded;
- an order becomes paid only when the amount and currency Stripe reports match what the shop asked for;
  otherwise the order stays unpaid and is flagged for staff;
- Stripe objects are read as plain dicts (an event's `data.object`, or `to_dict()` of a retrieved object).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from payments.models import Order, OrderStatus, Payment, PaymentKind, PaymentStatus

logger = logging.getLogger("payments.lifecycle")

StripeDict = Mapping[str, Any]

PAID_STATES = (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED, OrderStatus.REFUNDED)
FINAL_PAYMENT_STATES = (PaymentStatus.SUCCEEDED, PaymentStatus.CANCELED, PaymentStatus.EXPIRED)

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


def _locked(payment: Payment) -> tuple[Payment, Order]:
    payment = Payment.objects.select_for_update().get(pk=payment.pk)
    order = Order.objects.select_for_update().get(pk=payment.order_id)
    return payment, order


def _error_message(obj: StripeDict) -> str:
    error = obj.get("last_payment_error") or {}
    return str(error.get("message") or "")


def _set_payment(payment: Payment, status: str, stripe_status: str, **fields: Any) -> list[str]:
    """Move the payment to `status` unless that would go backwards; returns the fields changed."""
    changed = ["stripe_status", "updated_at"]
    payment.stripe_status = stripe_status
    if payment.status in FINAL_PAYMENT_STATES and status != payment.status:
        logger.info(
            "payment %s stays %s (Stripe now says %s)", payment.stripe_id, payment.status, stripe_status
        )
        return changed
    payment.status = status
    changed.append("status")
    for name, value in fields.items():
        setattr(payment, name, value)
        changed.append(name)
    return changed


def _other_payment_in_flight(order: Order, payment: Payment) -> bool:
    return order.payments.exclude(pk=payment.pk).filter(status=PaymentStatus.PROCESSING).exists()


def _settle_order(order: Order, payment: Payment, *, received: int, currency: str) -> None:
    """The payment succeeded at Stripe: mark the order paid if the money matches, else flag it."""
    if order.status in PAID_STATES:
        if not order.payments.filter(status=PaymentStatus.SUCCEEDED).exclude(pk=payment.pk).exists():
            return  # the same payment reported again
        order.flag(
            f"Paid twice: {payment.get_kind_display()} {payment.stripe_id} succeeded after the order was paid. "
            "Refund one of the payments."
        )
        logger.error("order %s paid twice, second payment %s", order.public_id, payment.stripe_id)
        order.save(update_fields=["needs_attention", "attention_note", "updated_at"])
        return
    if received != payment.amount or currency.lower() != payment.currency.lower():
        order.flag(
            f"Stripe reports {received} {currency.upper()} for {payment.stripe_id}, "
            f"the shop asked for {payment.amount} {payment.currency.upper()}. Order left unpaid."
        )
        logger.error(
            "amount mismatch order=%s payment=%s stripe=%s %s ours=%s %s",
            order.public_id,
            payment.stripe_id,
            received,
            currency,
            payment.amount,
            payment.currency,
        )
        order.save(update_fields=["needs_attention", "attention_note", "updated_at"])
        return
    order.status = OrderStatus.PAID
    order.paid_at = timezone.now()
    if order.amount_refunded:  # a `charge.refunded` event arrived before this one (events are not ordered)
        order.status = _refunded_status(order)
    order.save(update_fields=["status", "paid_at", "updated_at"])
    logger.info("order %s paid by %s", order.public_id, payment.stripe_id)


def _refunded_status(order: Order) -> str:
    """Refunded or partially refunded, from what the order's succeeded payments received."""
    succeeded = order.payments.filter(status=PaymentStatus.SUCCEEDED)
    paid = succeeded.aggregate(total=Sum("amount_received"))["total"] or 0
    return OrderStatus.REFUNDED if order.amount_refunded >= paid else OrderStatus.PARTIALLY_REFUNDED


def _order_unpaid(order: Order, payment: Payment, status: str) -> None:
    """A payment did not go through: the order shows it, unless it is paid or another payment is under way."""
    if order.status in PAID_STATES or _other_payment_in_flight(order, payment):
        return
    order.status = status
    order.save(update_fields=["status", "updated_at"])


def apply_payment_intent(payment: Payment, intent: StripeDict) -> Payment:
    """Apply a PaymentIntent's state (from an event, a return page or reconciliation)."""
    with transaction.atomic():
        payment, order = _locked(payment)
        stripe_status = str(intent.get("status") or "")
        status = INTENT_STATUS.get(stripe_status, PaymentStatus.OPEN)
        error = _error_message(intent)
        fields: dict[str, Any] = {"last_error": error}
        if status == PaymentStatus.SUCCEEDED:
            fields["amount_received"] = int(intent.get("amount_received") or 0)
        if payment.kind == PaymentKind.PAYMENT_INTENT:
            fields["stripe_amount_total"] = int(intent.get("amount") or 0)
        changed = _set_payment(payment, status, stripe_status, **fields)
        payment.save(update_fields=changed)
        if payment.status != status:
            return payment  # a late event for a payment already final
        if status == PaymentStatus.SUCCEEDED:
            _settle_order(
                order, payment, received=payment.amount_received, currency=str(intent.get("currency", ""))
            )
        elif status == PaymentStatus.PROCESSING:
            if order.status not in PAID_STATES:
                order.status = OrderStatus.PENDING
                order.save(update_fields=["status", "updated_at"])
        elif status == PaymentStatus.CANCELED:
            _order_unpaid(order, payment, OrderStatus.CANCELED)
        elif error:
            _order_unpaid(order, payment, OrderStatus.FAILED)
    return payment


def apply_checkout_session(payment: Payment, session: StripeDict, *, async_failed: bool = False) -> Payment:
    """Apply a Checkout Session's state. It is paid only when `payment_status` is `paid`."""
    with transaction.atomic():
        payment, order = _locked(payment)
        stripe_status = str(session.get("status") or "")
        payment_status = str(session.get("payment_status") or "")
        fields: dict[str, Any] = {}
        intent_id = session.get("payment_intent")
        if isinstance(intent_id, Mapping):
            intent_id = intent_id.get("id")
        if intent_id:
            fields["payment_intent_id"] = str(intent_id)
        if session.get("amount_total") is not None:
            fields["stripe_amount_total"] = int(session["amount_total"])
        if async_failed:
            status = PaymentStatus.FAILED
            fields["last_error"] = (
                "The payment was not completed (the bank transfer or delayed method failed)."
            )
        elif stripe_status == "expired":
            status = PaymentStatus.EXPIRED
        elif stripe_status == "complete" and payment_status in ("paid", "no_payment_required"):
            status = PaymentStatus.SUCCEEDED
            fields["amount_received"] = int(session.get("amount_total") or 0)
        elif stripe_status == "complete":
            status = PaymentStatus.PROCESSING
        else:
            status = PaymentStatus.OPEN
        changed = _set_payment(payment, status, f"{stripe_status}/{payment_status}", **fields)
        payment.save(update_fields=changed)
        if payment.status != status:
            return payment
        if status == PaymentStatus.SUCCEEDED:
            _settle_order(
                order, payment, received=payment.amount_received, currency=str(session.get("currency", ""))
            )
        elif status == PaymentStatus.PROCESSING and order.status not in PAID_STATES:
            order.status = OrderStatus.PENDING
            order.save(update_fields=["status", "updated_at"])
        elif status == PaymentStatus.FAILED:
            _order_unpaid(order, payment, OrderStatus.FAILED)
        elif status == PaymentStatus.EXPIRED:
            _order_unpaid(order, payment, OrderStatus.EXPIRED)
    return payment


def apply_refund(payment: Payment, charge: StripeDict) -> Payment:
    """Apply a charge's refunded amount; the order becomes partially refunded or refunded. Never goes back."""
    with transaction.atomic():
        payment, order = _locked(payment)
        refunded = int(charge.get("amount_refunded") or 0)
        if refunded <= payment.amount_refunded:
            return payment  # an older or repeated event
        payment.amount_refunded = refunded
        payment.save(update_fields=["amount_refunded", "updated_at"])
        total = order.payments.aggregate(total=Sum("amount_refunded"))["total"] or 0
        order.amount_refunded = total
        if order.status in PAID_STATES:
            order.status = _refunded_status(order)
        order.save(update_fields=["amount_refunded", "status", "updated_at"])
        logger.info("order %s refunded %s, now %s", order.public_id, total, order.status)
    return payment
