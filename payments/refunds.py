"""Refunds, asked by staff from the admin; the order changes when Stripe's `charge.refunded` event arrives."""

from __future__ import annotations

import stripe
from stripe.params import RefundCreateParams

from payments import gateway
from payments.errors import OrderNotPayable
from payments.models import Order, OrderStatus, Payment, PaymentStatus


def refundable_payment(order: Order) -> Payment:
    payment = (
        order.payments.filter(status=PaymentStatus.SUCCEEDED)
        .exclude(payment_intent_id="")
        .order_by("id")
        .first()
    )
    if order.status not in (OrderStatus.PAID, OrderStatus.PARTIALLY_REFUNDED) or payment is None:
        raise OrderNotPayable("Only paid orders can be refunded.")
    return payment


def refund_order(order: Order, amount: int | None = None) -> stripe.Refund:
    """Refund `amount` minor units (default: what is left) through the order's account, with an idempotency
    key so that a double click refunds once."""
    payment = refundable_payment(order)
    remaining = payment.amount_received - payment.amount_refunded
    amount = remaining if amount is None else amount
    if not 0 < amount <= remaining:
        raise OrderNotPayable("Nothing left to refund on this order.")
    acct = gateway.account(payment.account)
    params: RefundCreateParams = {
        "payment_intent": payment.payment_intent_id,
        "amount": amount,
        "metadata": {"order_id": str(order.public_id)},
    }
    key = gateway.idempotency_key("refund", payment.stripe_id, payment.amount_refunded, amount)
    with gateway.stripe_call("refund.create", acct, payment=payment.stripe_id):
        return acct.client.v1.refunds.create(params=params, options={"idempotency_key": key})
