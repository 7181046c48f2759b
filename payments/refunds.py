"""Refunds: a `Refund` row first, then Stripe, with the row's own idempotency key.

Staff ask for them from the admin (an amount or chosen lines, on the order's refund page); the shop owes one
by itself when an order was paid twice (see `lifecycle`). Writing the row before calling Stripe means one row
is one refund at Stripe however often sending it is retried (a lost answer), and each staff form carries a
one-time token that is the row's key: the same form sent twice is one refund, two forms are two. What is left
to refund counts the refunds already asked for. A disputed payment is not refunded (`disputes`).

The order's refunded amount and state follow Stripe's news: `refund.created`, `.updated`, `.failed` (a failed
refund gives its amount back) and `charge.refunded`; a refunded amount the shop cannot explain (a refund made
in Stripe's dashboard) has the payment's refunds looked up at Stripe (`look_up`, after the webhook committed).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from django.db.models import Sum
from stripe.params import RefundCreateParams, RefundListParams

from core.money import allocate, format_money, minor_unit_step
from payments import disputes, gateway, lifecycle, locks, matching, states
from payments.accounts import StripeAccount
from payments.errors import OrderNotPayable, PaymentProviderError, ShopError, StripeRefused
from payments.models import Order, Payment, PaymentStatus, Refund, StaffAction
from payments.pricing import PricedOrder, from_snapshot

logger = logging.getLogger("payments.refunds")

# What staff read when an order cannot be refunded (the refund page, the bulk action, a refused refund).
NOT_PAID = "Only paid orders can be refunded."
NOTHING_LEFT = "Nothing left to refund on this order."


def refundable_payment(order: Order) -> Payment:
    """The payment a refund of the order goes to (its first that succeeded); refused unless the order is paid."""
    payment = (
        order.payments.filter(status=PaymentStatus.SUCCEEDED)
        .exclude(payment_intent_id="")
        .order_by("id")
        .first()
    )
    if not states.is_paid(order) or payment is None:
        raise OrderNotPayable(NOT_PAID)
    return payment


def left_to_refund(payment: Payment) -> int:
    asked = (
        payment.refunds.filter(status__in=states.ASKED_REFUNDS).aggregate(total=Sum("amount"))["total"] or 0
    )
    return payment.amount_received - max(asked, payment.amount_refunded)


def refundable(order: Order) -> tuple[Payment, int]:
    """Whether the order can be refunded, the one rule: its payment (the order is paid, the payment not held
    or taken by a dispute) and what is left to refund on it, in minor units (0 once all of it was asked for).
    Refused with what staff read (`ShopError.message`)."""
    payment = refundable_payment(order)
    disputes.check_refundable(payment)
    return payment, left_to_refund(payment)


def check_refund_amount(amount: int, payment: Payment, remaining: int) -> None:
    currency = payment.currency
    if remaining <= 0:
        raise OrderNotPayable(NOTHING_LEFT)
    if amount <= 0:
        raise OrderNotPayable("Enter an amount to refund.")
    if amount > remaining:
        raise OrderNotPayable(
            f"At most {format_money(remaining, currency, minor=True)} is left to refund on this order; "
            f"{format_money(amount, currency, minor=True)} is more."
        )
    step = minor_unit_step(currency)
    if amount % step:
        raise OrderNotPayable(
            f"Amounts in {currency.upper()} are refunded in steps of {format_money(step, currency, minor=True)}."
        )


# The reasons staff choose from (the others are the shop's own: a second payment, a refund made elsewhere).
STAFF_REASONS = (
    Refund.Reason.REQUESTED_BY_CUSTOMER,
    Refund.Reason.DUPLICATE,
    Refund.Reason.FRAUDULENT,
    Refund.Reason.REQUESTED_BY_STAFF,
)


@dataclass(frozen=True)
class StaffRefund:
    refund: Refund
    repeated: bool  # the same form was sent again: no second refund was made


def refund_order(
    order: Order, amount: int | None = None, *, requested_by: str = "", reason: str = "", note: str = ""
) -> Refund:
    """Refund `amount` minor units (default: what is left) of the order's payment, as asked by staff (the
    admin's bulk action: each call is a refund of its own)."""
    return staff_refund(
        order,
        amount,
        requested_by=requested_by,
        reason=reason or Refund.Reason.REQUESTED_BY_CUSTOMER,
        note=note,
    ).refund


def staff_refund(
    order: Order,
    amount: int | None = None,
    *,
    request_key: str = "",
    requested_by: str = "",
    description: str = "",
    lines: dict[int, int] | None = None,
    reason: str = Refund.Reason.REQUESTED_BY_CUSTOMER,
    note: str = "",
) -> StaffRefund:
    """A refund staff asked for, with its reason (`Refund.Reason`; "other" needs a `note`), recorded with who
    asked and when. `request_key` is the one-time token of the form it came from: the same form sent twice (a
    double click, a reload) is one refund; two forms are two refunds, even of the same amount. Refused with a
    clear message: an order not paid, a disputed payment, more than is left, an amount Stripe cannot refund in
    the currency."""
    if reason not in STAFF_REASONS:
        raise OrderNotPayable("Choose why the money is given back.")
    if reason == Refund.Reason.REQUESTED_BY_STAFF and not note.strip():
        raise OrderNotPayable("Say in a note why the money is given back.")
    key = f"refund:{order.public_id}:{request_key}" if request_key else f"refund:{uuid.uuid4()}"
    with locks.locked(order.pk) as order:
        refund = Refund.objects.filter(idempotency_key=key).select_related("payment", "order").first()
        repeated = refund is not None
        if refund is None:
            payment, remaining = refundable(order)
            if lines:  # priced here, under the lock, against the units refunded so far
                amount = amount_for_lines(from_snapshot(order.snapshot or {}), lines, refunded_units(order))
            amount = remaining if amount is None else amount
            check_refund_amount(amount, payment, remaining)
            refund = Refund.objects.create(
                order=order,
                payment=payment,
                amount=amount,
                currency=payment.currency,
                reason=reason,
                note=note.strip()[:500],
                idempotency_key=key,
                requested_by=requested_by[:150],
                description=description[:500],
                lines={str(k): v for k, v in (lines or {}).items() if v},
            )
            StaffAction.objects.create(
                order=order,
                kind=StaffAction.Kind.REFUND,
                who=requested_by[:150] or "staff",
                note=f"{format_money(amount, payment.currency, minor=True)} "
                f"({Refund.Reason(reason).label.lower()}){': ' + note.strip() if note.strip() else ''}",
            )
    if refund.status == Refund.Status.PENDING:
        refund = send(
            refund
        )  # again, for a repeated form whose first try got no answer: one refund at Stripe
    return StaffRefund(refund, repeated)


def refunded_units(order: Order) -> dict[int, int]:
    """Units of each line (item id -> units) already refunded by line, failed refunds left out."""
    units: dict[int, int] = {}
    for lines in order.refunds.filter(status__in=states.ASKED_REFUNDS).values_list("lines", flat=True):
        for item_id, count in (lines or {}).items():
            units[int(item_id)] = units.get(int(item_id), 0) + int(count)
    return units


def amount_for_lines(priced: PricedOrder, quantities: dict[int, int], already: dict[int, int]) -> int:
    """What refunding `quantities` (item id -> units) of the order's lines gives back: each unit's share of its
    line's total (discount and taxes included). The shares of a line add up exactly to its total, and units
    refunded earlier (`already`) keep theirs, so refunding a line unit by unit gives back exactly the line."""
    step = minor_unit_step(priced.currency)
    amount = 0
    for line in priced.lines:
        units = quantities.get(line.item_id, 0)
        done = already.get(line.item_id, 0)
        if not 0 <= units <= line.quantity - done:
            left = line.quantity - done
            raise OrderNotPayable(f"{line.name}: {left} of {line.quantity} left to refund.")
        amount += sum(allocate(line.total, [1] * line.quantity, step)[done : done + units])
    return amount


class RefundNotSent(ShopError):
    """Stripe could not be reached: the refund is kept and sent again (never twice) by reconciliation."""

    status = 502
    code = "refund_not_sent"


# Stripe's refund reasons (RefundCreateParams["reason"]); the shop's other reasons send none.
STRIPE_REASONS: dict[str, Literal["duplicate", "fraudulent", "requested_by_customer"]] = {
    Refund.Reason.DUPLICATE: "duplicate",
    Refund.Reason.FRAUDULENT: "fraudulent",
    Refund.Reason.REQUESTED_BY_CUSTOMER: "requested_by_customer",
}
# Refusals after which the shop looks at what Stripe has refunded (a refund made elsewhere it did not know).
REFUNDED_ELSEWHERE = ("amount_too_large", "charge_already_refunded")


def _create_params(refund: Refund) -> RefundCreateParams:
    metadata = {"order_id": str(refund.order.public_id), "refund_ref": refund.idempotency_key}
    if refund.note:
        metadata["note"] = refund.note[:500]
    params: RefundCreateParams = {
        "payment_intent": refund.payment.payment_intent_id,
        "amount": refund.amount,
        "metadata": metadata,
    }
    reason = STRIPE_REASONS.get(Refund.Reason(refund.reason))
    if reason:
        params["reason"] = reason
    return params


def _made_earlier(refund: Refund, acct: StripeAccount) -> dict[str, Any] | None:
    """The refund an earlier request of this row made at Stripe, if its answer was lost (found by the
    `refund_ref` in its metadata), so that a new request is never a second refund."""
    for found in _stripe_refunds(refund.payment, acct):
        metadata = found.get("metadata") or {}
        if isinstance(metadata, Mapping) and metadata.get("refund_ref") == refund.idempotency_key:
            return found
    return None


def send(refund: Refund) -> Refund:
    """Ask Stripe for the refund, under the order's lock (so one row is never sent by two requests at once).

    Each request has a key of its own (`<row key>:<attempt>`): a request whose answer was lost (an outage) is
    indeterminate, so before the next one Stripe is asked whether it made the refund. Stripe's refusal makes
    the refund `failed` with Stripe's reason in words (`disputes.RefundRefused`): it reserves nothing and is never sent
    again; if Stripe says the charge was refunded elsewhere, the payment's refunds are looked up. An outage
    leaves it pending (`RefundNotSent`) for reconciliation."""
    failure: ShopError | None = None
    look_up_now = False
    with locks.locked(refund.order_id):
        refund = locks.lock_refund(refund.pk)
        if refund.status != Refund.Status.PENDING:
            return refund  # sent (or refused) meanwhile
        payment = refund.payment
        acct = gateway.account(payment.account)
        try:
            answer = _made_earlier(refund, acct) if refund.attempts else None
            if answer is None:
                refund.attempts += 1
                refund.save(update_fields=["attempts", "updated_at"])  # kept even if the call fails
                made = gateway.create_refund(
                    acct,
                    _create_params(refund),
                    idempotency_key=f"{refund.idempotency_key}:{refund.attempts}",
                    payment=payment.stripe_id,
                    refund=refund.pk,
                )
                answer = made.to_dict()
        except StripeRefused as exc:
            refund.status = Refund.Status.FAILED
            refund.last_error = f"Stripe refused it: {exc.reason}."[:2000]
            refund.save(update_fields=["status", "last_error", "updated_at"])
            refund.order.note(f"Refund {refund.pk} refused by Stripe: {exc.reason}. Nothing was refunded.")
            refund.order.save(update_fields=["attention_note", "updated_at"])
            failure = disputes.RefundRefused(
                f"Stripe refused the refund: {exc.reason}. Nothing was refunded."
            )
            if exc.stripe_code in REFUNDED_ELSEWHERE:
                Payment.objects.filter(pk=payment.pk).update(refunds_to_check=True)
                look_up_now = True
        except PaymentProviderError:
            refund.last_error = "Stripe could not be reached; it is asked again by reconciliation."
            refund.save(update_fields=["last_error", "updated_at"])
            failure = RefundNotSent(
                "Stripe could not be reached, so the refund may or may not have been made. It is recorded, and "
                "reconciliation asks Stripe and sends it if needed (never twice)."
            )
        else:
            # Never backwards: a `refund.failed` may have been applied meanwhile. The order's refunded amount
            # follows Stripe's events (`lifecycle.apply_refund` / `apply_stripe_refund`).
            lifecycle.record_refund(refund, answer)
            logger.info(
                "refund %s %s of %s for order %s",
                refund.stripe_id,
                refund.amount,
                payment.stripe_id,
                refund.order.public_id,
            )
    if failure is None:
        return refund
    if look_up_now:
        try:  # learn what Stripe refunded elsewhere, so that "left to refund" is Stripe's
            look_up(refund.payment)
        except ShopError as exc:
            logger.warning("refunds of %s not looked up yet: %s", refund.payment.stripe_id, exc)
    raise failure


def send_owed(order: Order) -> list[str]:
    """Send the order's refunds not yet sent (an automatic refund of a second payment, a try that got no
    answer); what could not be sent yet (Stripe did not answer), in words. A refusal is final and recorded on
    its refund, so it is not one of them."""
    problems = []
    for refund in (
        order.refunds.filter(status__in=states.UNSENT_REFUNDS)
        .select_related("payment", "order")
        .order_by("id")
    ):
        try:
            send(refund)
        except disputes.RefundRefused as exc:
            logger.warning("refund %s for order %s refused: %s", refund.pk, order.public_id, exc.message)
        except ShopError as exc:
            problems.append(f"refund {refund.pk} not sent yet: {exc.message}")
    return problems


def _stripe_refunds(payment: Payment, acct: StripeAccount) -> list[dict[str, Any]]:
    """Every refund Stripe has for the payment's PaymentIntent, newest first."""
    found: list[dict[str, Any]] = []
    params: RefundListParams = {"payment_intent": payment.payment_intent_id, "limit": 100}
    while True:
        page = gateway.list_refunds(acct, params, payment=payment.stripe_id)
        found += [r.to_dict() for r in page.data]
        if not page.has_more or not page.data:
            return found
        params["starting_after"] = page.data[-1].id


def look_up(payment: Payment) -> None:
    """Apply every refund Stripe has for the payment (those made in Stripe's dashboard included): run when
    Stripe reported a refunded amount the shop's refunds did not explain. The mark is taken off first, so news
    arriving meanwhile marks the payment again; if Stripe cannot be reached, the mark is put back."""
    if not Payment.objects.filter(pk=payment.pk, refunds_to_check=True).update(refunds_to_check=False):
        return
    try:
        found = _stripe_refunds(payment, gateway.account(payment.account))
    except ShopError:
        Payment.objects.filter(pk=payment.pk).update(refunds_to_check=True)
        raise
    for refund in reversed(found):  # oldest first
        lifecycle.apply_stripe_refund(payment, refund)
    if not found:
        with locks.locked_payment(payment) as held:
            lifecycle.recount(held.order, held.payment)


def look_up_unexplained(order: Order) -> list[str]:
    """Look up the refunds of the order's payments marked for it; what could not be looked up yet, in words."""
    problems = []
    for payment in order.payments.filter(refunds_to_check=True).order_by("id"):
        try:
            look_up(payment)
        except ShopError as exc:
            problems.append(f"refunds of {payment.stripe_id} not looked up yet: {exc.message}")
    return problems


def on_refund_event(acct: StripeAccount, refund: Mapping[str, Any], event_type: str) -> Payment | None:
    """The webhook handler of `refund.created`, `.updated`, `.failed` and `charge.refund.updated`: the refund's
    status applied to its row (created for a refund made in Stripe's dashboard), then the refunded amount and
    the order's state. `matching.NotKnownYet` (kept and tried again) when its payment is not known yet."""
    payment = matching.paid_through(acct, refund)
    if payment is None:
        return None
    lifecycle.apply_stripe_refund(payment, refund, wait=locks.WEBHOOK_LOCK_WAIT)
    return payment
