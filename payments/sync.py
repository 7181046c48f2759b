"""Keeping each `Payment` in step with its Stripe object, and closing the objects an order must not be paid by.

- `refresh(payment)` asks Stripe for the object's state and applies it (return pages, reconciliation).
- `close(payment)` cancels a PaymentIntent or expires a Checkout Session and applies the state Stripe answers
  with. If Stripe refuses because the object is no longer open (it was paid, is processing, or was already
  closed), the object is retrieved and that state applied instead: the shop never assumes.
- `close_others(order, keep)` runs under the order's lock before an object is opened or reused, so that at
  most one object of an order is payable; it refuses when one of them turns out to be processing or paid.
- `tidy_up(order_id)` is the follow-up a payment's news queues (a webhook, a return page, reconciliation; run by
  a task worker, `followups`): when an order is processing or paid, its other open objects are closed (and,
  whatever its state, an open object found at Stripe that the shop never handed out, see `matching`), refunds
  it owes are sent, refunds Stripe reported but the shop cannot explain are looked up.
"""

from __future__ import annotations

import logging

from payments import followups, gateway, lifecycle, refunds, states
from payments.errors import PaymentProviderError, ShopError
from payments.models import FollowUp, Order, Payment, PaymentKind, PaymentOrigin, PaymentStatus

logger = logging.getLogger("payments.sync")


def refresh(payment: Payment, *, quick: bool = False) -> Payment:
    """Ask Stripe once for the object's state and apply it (`quick`: within a page's short budget)."""
    acct = gateway.account(payment.account)
    if payment.kind == PaymentKind.PAYMENT_INTENT:
        return lifecycle.apply_payment_intent(
            payment, gateway.retrieve_intent(acct, payment.stripe_id, quick=quick).to_dict()
        )
    return lifecycle.apply_checkout_session(
        payment, gateway.retrieve_session(acct, payment.stripe_id, quick=quick).to_dict()
    )


def close(payment: Payment) -> Payment:
    """Make sure `payment` can no longer be paid; returns it with the state Stripe reported."""
    if payment.status not in states.OPEN_PAYMENTS:
        return payment
    acct = gateway.account(payment.account)
    try:
        if payment.kind == PaymentKind.PAYMENT_INTENT:
            intent = gateway.cancel_intent(acct, payment.stripe_id)
            return lifecycle.apply_payment_intent(payment, intent.to_dict())
        session = gateway.expire_session(acct, payment.stripe_id)
        return lifecycle.apply_checkout_session(payment, session.to_dict())
    except PaymentProviderError as exc:
        if not gateway.refused_as_invalid(exc):
            raise
    return refresh(payment)  # no longer open at Stripe: learn what it is


def refuse_if_in_flight(payment: Payment) -> None:
    if payment.status == PaymentStatus.PROCESSING:
        raise states.nothing_to_pay(processing=True)
    if payment.status == PaymentStatus.SUCCEEDED:
        raise states.nothing_to_pay(processing=False)


def close_others(order: Order, keep: Payment | None = None) -> None:
    """Close every open object of `order` but `keep` (under the order's lock); refuses (after applying what
    Stripe said) when one of them is in fact processing or paid."""
    others = order.payments.filter(status__in=states.OPEN_PAYMENTS)
    if keep is not None:
        others = others.exclude(pk=keep.pk)
    for payment in others.order_by("id"):
        refuse_if_in_flight(close(payment))


def tidy_up(order_id: int | None) -> list[str]:
    """After news about one of the order's payments, its work committed: close what a processing or paid order
    no longer needs (and an open object found at Stripe, never handed out), send the refunds it owes, look up
    refunds Stripe reported that the shop cannot explain. Returns what is still owed because Stripe did not
    answer, in words (the follow-up that runs it tries again)."""
    if order_id is None:
        return []
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        return []
    problems = []
    closing = order.payments.filter(status__in=states.OPEN_PAYMENTS)
    if order.status in states.PAYABLE:
        closing = closing.filter(origin=PaymentOrigin.STRIPE)  # found at Stripe: never handed to a shopper
    for payment in closing.order_by("id"):
        try:
            closed = close(payment)
        except ShopError as exc:
            problems.append(f"{payment.stripe_id} not closed yet: {exc.message}")
            continue
        logger.info("order %s: closed %s, now %s", order.public_id, closed.stripe_id, closed.status)
    problems += refunds.send_owed(order)
    problems += refunds.look_up_unexplained(order)
    return problems


@followups.handles(FollowUp.Kind.TIDY_ORDER)
def tidy_up_followup(row: FollowUp) -> str:
    problems = tidy_up(row.order_id)
    if problems:
        raise followups.Incomplete("; ".join(problems))
    return "nothing left to close, refund or look up"
