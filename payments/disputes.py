"""Disputes (chargebacks, and inquiries before them): Stripe's `charge.dispute.*` events applied to a `Dispute`
row per Stripe dispute and to its order's `dispute_status`; and the rule that a disputed charge is not refunded.

- `created`, `updated`, `closed`, `funds_withdrawn` and `funds_reinstated` all carry the whole dispute, so each
  event brings the row up to date, whatever arrived before it. Events may come in any order and more than
  once: a dispute never leaves a final status (won, lost, closed), an open status never goes back to an
  earlier one (an inquiry -> a chargeback -> under review), and the funds withdrawn and reinstated only grow.
- Every change runs under `locks.locked_payment` (the order's row, then the payment's), like the rest of the
  lifecycle; nothing here calls Stripe. The order's page and the admin show "Disputed", then "Dispute won" or
  "Dispute lost". A lost dispute is money the shop no longer has (see `payments.revenue`).
- While a dispute is open (or once it is lost) the card network holds the money: a refund is refused with
  `RefundRefused`, saying so. Stripe only lets an inquiry's charge be refunded (`is_charge_refundable`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.utils import formats, timezone

from core.money import format_money
from payments import locks, matching, states, stripe_fields
from payments.accounts import StripeAccount
from payments.errors import ShopError
from payments.models import Dispute, Order, Payment

logger = logging.getLogger("payments.disputes")


class RefundRefused(ShopError):
    status = 409
    code = "refund_refused"


def _funds(dispute: Mapping[str, Any], event_type: str) -> tuple[int, int]:
    """(withdrawn, reinstated) in minor units, from the dispute's balance transactions (negative: taken from
    the balance; positive: given back), or from the event's type when they are not expanded."""
    withdrawn = reinstated = 0
    for txn in dispute.get("balance_transactions") or []:
        if isinstance(txn, Mapping):
            amount = stripe_fields.integer(txn.get("amount"))
            if amount < 0:
                withdrawn += -amount
            else:
                reinstated += amount
    amount = stripe_fields.integer(dispute.get("amount"))
    if event_type == "charge.dispute.funds_withdrawn":
        withdrawn = max(withdrawn, amount)
    if event_type == "charge.dispute.funds_reinstated":
        reinstated = max(reinstated, amount)
    return withdrawn, reinstated


def summary(order: Order) -> str:
    """The order's disputes in one word: open while any is open, else lost, won or closed."""
    return states.dispute_state(order.disputes.values_list("status", flat=True))


def on_dispute_event(acct: StripeAccount, dispute: Mapping[str, Any], event_type: str) -> Payment | None:
    """The webhook handler of every `charge.dispute.*` event; None when the charge is not one of ours,
    `matching.NotKnownYet` (kept and tried again) when its payment is not known yet."""
    payment = matching.paid_through(acct, dispute)
    if payment is None:
        return None
    apply_dispute(payment, dispute, event_type, wait=locks.WEBHOOK_LOCK_WAIT)
    return payment


def apply_dispute(
    payment: Payment, dispute: Mapping[str, Any], event_type: str = "", *, wait: float | None = None
) -> Dispute:
    stripe_fields.check(stripe_fields.DISPUTE, dispute)
    stripe_id = str(dispute.get("id") or "")
    status = str(dispute.get("status") or "")
    if status not in Dispute.Status.values:
        status = Dispute.Status.NEEDS_RESPONSE  # a status this version does not know: still open
    withdrawn, reinstated = _funds(dispute, event_type)
    due = dispute.get("evidence_details") or {}
    with locks.locked_payment(payment, wait=wait or locks.WEBHOOK_LOCK_WAIT) as held:
        order, payment = held.order, held.payment
        row = Dispute.objects.filter(account=payment.account, stripe_id=stripe_id).first()
        created = row is None
        if row is None:
            row = Dispute(
                order=order,
                payment=payment,
                account=payment.account,
                stripe_id=stripe_id,
                status=status,
                livemode=bool(dispute.get("livemode", False)),
                stripe_created=stripe_fields.timestamp(dispute.get("created")),
            )
        before = row.status
        if created or states.dispute_may_move(row.status, status):
            row.status = status
            # What the dispute says about itself, taken with its status so an old event never undoes it.
            row.reason = str(dispute.get("reason") or "")[:40]
            row.is_charge_refundable = bool(dispute.get("is_charge_refundable", False))
            if isinstance(due, Mapping) and stripe_fields.timestamp(due.get("due_by")):
                row.evidence_due_by = stripe_fields.timestamp(due.get("due_by"))
        row.charge_id = stripe_fields.object_id(dispute.get("charge")) or row.charge_id
        row.amount = stripe_fields.integer(dispute.get("amount")) or row.amount or 0
        row.currency = str(dispute.get("currency") or payment.currency).lower()
        row.funds_withdrawn = max(row.funds_withdrawn, withdrawn)
        row.funds_reinstated = max(row.funds_reinstated, reinstated)
        if row.status in states.DISPUTE_FINAL and row.closed_at is None:
            row.closed_at = timezone.now()
        row.save()
        state = summary(order)
        if created or row.status != before or state != order.dispute_status:
            order.dispute_status = state
            amount = format_money(row.amount, row.currency, minor=True)
            order.note(
                f"Dispute {stripe_id} ({row.reason or 'no reason given'}, {amount}): {row.get_status_display()}."
            )
            order.save(update_fields=["dispute_status", "attention_note", "updated_at"])
            logger.info("order %s dispute %s %s -> %s", order.public_id, stripe_id, before, row.status)
    return row


def check_refundable(payment: Payment) -> None:
    """Refuse to refund a charge whose money a dispute holds (open) or took (lost)."""
    for dispute in payment.disputes.all():
        amount = format_money(dispute.amount, dispute.currency, minor=True)
        if dispute.status == Dispute.Status.LOST:
            raise RefundRefused(
                f"This payment was disputed and the dispute was lost: the cardholder's bank already returned "
                f"{amount} to them, so it cannot be refunded as well."
            )
        if dispute.status in states.DISPUTE_OPEN and not dispute.is_charge_refundable:
            due = (
                f" Evidence is due by {formats.date_format(timezone.localtime(dispute.evidence_due_by))}."
                if dispute.evidence_due_by
                else ""
            )
            raise RefundRefused(
                f"This payment is disputed ({dispute.reason or 'no reason given'}, {amount}, "
                f"{dispute.get_status_display().lower()}): the card network holds the money, so it cannot be "
                f"refunded now. Answer the dispute in Stripe's dashboard instead.{due}"
            )
