"""PaymentIntents for orders: at most one open PaymentIntent per order, reused, updated, never doubled.

`open_intent(order)` runs with the order row locked, so a reload and a double click that arrive together see
the same PaymentIntent. Reuse asks Stripe for the PaymentIntent's state first: one still waiting for a payment
method is reused (its amount updated when the cart changed); one canceled or succeeded is never reused.
Every create carries an idempotency key from the order, the amount and the attempt number, and the `Payment`
row is written only after Stripe answered, so no row claims a PaymentIntent that does not exist.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import stripe
from django.db import transaction
from stripe.params import PaymentIntentCreateParams

from payments import gateway, lifecycle
from payments.accounts import StripeAccount
from payments.checkout import describe
from payments.errors import OrderNotPayable
from payments.models import Order, Payment, PaymentKind, PaymentStatus
from payments.pricing import PricedOrder

logger = logging.getLogger("payments.intents")

REUSABLE = ("requires_payment_method", "requires_confirmation", "requires_action")


@dataclass(frozen=True)
class OpenIntent:
    payment: Payment
    client_secret: str
    amount: int
    currency: str
    publishable_key: str


def create_params(order: Order, priced: PricedOrder, attempt: int) -> PaymentIntentCreateParams:
    return {
        "amount": priced.total,
        "currency": priced.currency,
        "automatic_payment_methods": {"enabled": True},
        "description": describe(order, priced),
        "metadata": {"order_id": str(order.public_id), "payment_ref": f"{order.public_id}:{attempt}"},
    }


def _retrieve(acct: StripeAccount, intent_id: str) -> stripe.PaymentIntent:
    with gateway.stripe_call("payment_intent.retrieve", acct, payment_intent=intent_id):
        return acct.client.v1.payment_intents.retrieve(intent_id)


def _reuse(order: Order, payment: Payment, priced: PricedOrder, acct: StripeAccount) -> OpenIntent | None:
    """The open PaymentIntent if Stripe still lets it be paid, with its amount brought up to date."""
    intent = _retrieve(acct, payment.stripe_id)
    if intent.status not in REUSABLE:
        lifecycle.apply_payment_intent(payment, intent.to_dict())
        if intent.status in ("processing", "requires_capture"):
            raise OrderNotPayable(
                "A payment for this order is being processed; there is nothing more to pay now."
            )
        if intent.status == "succeeded":
            raise OrderNotPayable("This order has been paid.")
        return None  # canceled: a new PaymentIntent follows
    if intent.amount != priced.total or intent.currency != priced.currency:
        if intent.currency != priced.currency:
            return None
        key = gateway.idempotency_key("pi-update", payment.stripe_id, priced.total)
        with gateway.stripe_call("payment_intent.update", acct, payment_intent=payment.stripe_id):
            intent = acct.client.v1.payment_intents.update(
                payment.stripe_id,
                params={"amount": priced.total, "description": describe(order, priced)},
                options={"idempotency_key": key},
            )
        logger.info("payment_intent %s amount %s -> %s", payment.stripe_id, payment.amount, priced.total)
        payment.amount = priced.total
        payment.stripe_amount_total = intent.amount
        payment.save(update_fields=["amount", "stripe_amount_total", "updated_at"])
    return OpenIntent(
        payment, intent.client_secret or "", intent.amount, intent.currency, acct.publishable_key
    )


def open_intent(order: Order, priced: PricedOrder) -> OpenIntent:
    """The order's one open PaymentIntent for `priced.total`, created when there is none to reuse."""
    acct = gateway.account(order.currency)
    gateway.check_amount(priced.total, order.currency)
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order.pk)
        if not order.is_payable:
            raise OrderNotPayable(
                f"This order is {order.get_status_display().lower()}; there is nothing to pay."
            )
        intents = order.payments.filter(kind=PaymentKind.PAYMENT_INTENT)
        current = intents.filter(status=PaymentStatus.OPEN, account=acct.currency).order_by("-id").first()
        refusal: OrderNotPayable | None = None
        if current is not None:
            try:
                reused = _reuse(order, current, priced, acct)
            except OrderNotPayable as exc:  # raised below, so that the state Stripe reported is kept
                refusal, reused = exc, None
            if reused is not None:
                return reused
        if refusal is None:
            return _create(order, priced, acct, attempt=intents.count())
    raise refusal


def _create(order: Order, priced: PricedOrder, acct: StripeAccount, *, attempt: int) -> OpenIntent:
    """Create the PaymentIntent (a retried identical request gets the first one back) and record it."""
    params = create_params(order, priced, attempt)
    key = gateway.idempotency_key("pi", order.public_id, priced.total, attempt, params=params)
    with gateway.stripe_call("payment_intent.create", acct, order=order.public_id):
        intent = acct.client.v1.payment_intents.create(params=params, options={"idempotency_key": key})
    payment = Payment.objects.record(
        order,
        PaymentKind.PAYMENT_INTENT,
        acct.currency,
        intent.id,
        livemode=intent.livemode,
        payment_intent_id=intent.id,
        amount=priced.total,
        stripe_amount_total=intent.amount,
        stripe_status=intent.status,
        idempotency_key=key,
    )
    logger.info("payment_intent %s created order=%s amount=%s", intent.id, order.public_id, intent.amount)
    return OpenIntent(
        payment, intent.client_secret or "", intent.amount, intent.currency, acct.publishable_key
    )


def refresh(payment: Payment) -> Payment:
    """Ask Stripe once for a PaymentIntent's state and apply it (return page, reconciliation)."""
    acct = gateway.account(payment.account)
    intent = _retrieve(acct, payment.stripe_id)
    return lifecycle.apply_payment_intent(payment, intent.to_dict())


def cancel(payment: Payment) -> Payment:
    """Cancel an open PaymentIntent the order no longer needs (it was paid another way)."""
    acct = gateway.account(payment.account)
    with gateway.stripe_call("payment_intent.cancel", acct, payment_intent=payment.stripe_id):
        intent = acct.client.v1.payment_intents.cancel(payment.stripe_id)
    return lifecycle.apply_payment_intent(payment, intent.to_dict())
