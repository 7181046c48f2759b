"""Refunds: a `Refund` row first, then Stripe, with the row's own idempotency key.

Staff ask for them from the admin; the shop owes one by itself when an order was paid twice (see
`lifecycle`). Writing the row before calling Stripe means one row is one refund at Stripe however often sending
it is retried (a lost answer, a second click), and what is left to refund counts the refunds already asked
for, so a double click cannot refund twice. The order's refunded amount and state follow Stripe's
`charge.refunded` events (`lifecycle.apply_refund`).
"""

from __future__ import annotations

import logging
import uuid

from django.db.models import Sum
from stripe.params import RefundCreateParams

from payments import gateway, states
from payments.errors import OrderNotPayable, ShopError
from payments.models import Order, Payment, PaymentStatus, Refund

logger = logging.getLogger("payments.refunds")

UNSENT = (Refund.Status.PENDING,)
COUNTED = (Refund.Status.PENDING, Refund.Status.SENT, Refund.Status.SUCCEEDED)


def refundable_payment(order: Order) -> Payment:
    payment = (
        order.payments.filter(status=PaymentStatus.SUCCEEDED)
        .exclude(payment_intent_id="")
        .order_by("id")
        .first()
    )
    if not states.is_paid(order) or payment is None:
        raise OrderNotPayable("Only paid orders can be refunded.")
    return payment


def left_to_refund(payment: Payment) -> int:
    asked = payment.refunds.filter(status__in=COUNTED).aggregate(total=Sum("amount"))["total"] or 0
    return payment.amount_received - max(asked, payment.amount_refunded)


def refund_order(order: Order, amount: int | None = None) -> Refund:
    """Refund `amount` minor units (default: what is left) of the order's payment, as asked by staff."""
    with states.locked(order.pk) as order:
        payment = refundable_payment(order)
        remaining = left_to_refund(payment)
        amount = remaining if amount is None else amount
        if not 0 < amount <= remaining:
            raise OrderNotPayable("Nothing left to refund on this order.")
        refund = Refund.objects.create(
            order=order,
            payment=payment,
            amount=amount,
            currency=payment.currency,
            reason=Refund.Reason.REQUESTED_BY_STAFF,
            idempotency_key=f"refund:{uuid.uuid4()}",
        )
    return send(refund)


def send(refund: Refund) -> Refund:
    """Ask Stripe for the refund (again, if an earlier try got no answer: the key makes it one refund)."""
    payment = refund.payment
    acct = gateway.account(payment.account)
    params: RefundCreateParams = {
        "payment_intent": payment.payment_intent_id,
        "amount": refund.amount,
        "metadata": {"order_id": str(refund.order.public_id), "refund_ref": refund.idempotency_key},
    }
    if refund.reason == Refund.Reason.DUPLICATE:
        params["reason"] = "duplicate"
    with gateway.stripe_call("refund.create", acct, payment=payment.stripe_id, refund=refund.pk):
        answer = acct.client.v1.refunds.create(
            params=params, options={"idempotency_key": refund.idempotency_key}
        )
    refund.stripe_id = answer.id
    refund.status = Refund.Status.SUCCEEDED if answer.status == "succeeded" else Refund.Status.SENT
    if answer.status in ("failed", "canceled"):
        refund.status = Refund.Status.FAILED
    refund.save(update_fields=["stripe_id", "status", "updated_at"])
    logger.info(
        "refund %s %s of %s for order %s", answer.id, refund.amount, payment.stripe_id, refund.order.public_id
    )
    return refund


def send_owed(order: Order) -> None:
    """Send the order's refunds not yet sent (an automatic refund of a second payment, a try that failed)."""
    for refund in order.refunds.filter(status__in=UNSENT).select_related("payment", "order").order_by("id"):
        try:
            send(refund)
        except ShopError as exc:
            logger.warning("refund %s for order %s not sent yet: %s", refund.pk, order.public_id, exc)
