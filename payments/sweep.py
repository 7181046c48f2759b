"""Reconciliation: the shop's books brought back in line with Stripe's, from both sides.

`reconcile_payments` runs these steps, **every step every time**, and **each order in its own transaction and
its own try**: a failure is recorded on that order (`Order.sweep_error`, shown to staff), counted, and the run
goes on. The steps:

1. **The shop's open payments** (`check_open_payments`): each payment still open or processing after a while is
   asked of Stripe and its state applied (a webhook may have been lost).
2. **Stripe's side** (`sweep_account`): each account's Checkout Sessions and PaymentIntents created since the
   last high-water mark (`SweepMark`, listed from a little before it) are matched to the shop's payments
   through their metadata (`matching`). One that took money (succeeded, processing, requires_capture) is:
   known and in step (nothing to do); known and out of step (applied through `lifecycle`); unknown but naming
   an order (adopted: recorded from Stripe's object and applied, so paid if it matches the snapshot, held for
   staff otherwise); naming no order (listed for staff as a `StrayPayment`). An unknown open object naming an
   order (the lost answer of a create the shop tried again with a new key) is adopted and closed. Objects
   younger than `grace` are left for the next run: their creating request may still be committing.
3. **Events** whose delivery failed (`GET /v1/events?delivery_success=false`) are stored and processed as if
   delivered, and events kept pending (their object was not known yet) are tried again.
4. **What is owed is queued** for the task workers (`followups`), for every order concerned or owed something:
   open objects of orders being paid or paid are closed, refunds not sent are sent, refunds Stripe reported
   that the shop cannot explain are looked up, confirmations and refund notices not sent are sent; follow-ups
   a dead worker left running, or that failed for good, are started again; promotion-code holds of abandoned
   orders are released.

**The guarantee:** after one sweep, every payment Stripe took in an account's recent objects is known to the
shop (on its order, or listed as stray), and every known payment has Stripe's state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db.models import F
from django.utils import timezone
from stripe.params import EventListParams, PaymentIntentListParams
from stripe.params.checkout import SessionListParams

from payments import (
    followups,
    gateway,
    lifecycle,
    matching,
    states,
    stripe_fields,
    sync,
    webhooks,
)
from payments import orders as shop_orders
from payments.accounts import StripeAccount, account_for, registry
from payments.errors import PaymentProviderError
from payments.models import (
    FollowUp,
    Order,
    Payment,
    PaymentKind,
    PaymentOrigin,
    PaymentStatus,
    Refund,
    StrayPayment,
    StripeEvent,
    SweepMark,
)

logger = logging.getLogger("payments.sweep")

# A PaymentIntent in these states has taken money, or is taking it.
TAKING_INTENT = ("succeeded", "processing", "requires_capture")
OPEN_INTENT = ("requires_payment_method", "requires_confirmation", "requires_action")
# A confirmation that could not be sent is tried again for this long after the order was paid.
CONFIRMATION_DAYS = 3
# Pending events are tried again for as long as Stripe keeps events (30 days).
PENDING_DAYS = 30


@dataclass
class Report:
    """What a run did, and what failed (each failure: where, and the error)."""

    counts: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    orders: set[int] = field(default_factory=set)
    failed_orders: set[int] = field(default_factory=set)

    def count(self, what: str, n: int = 1) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def lines(self) -> list[str]:
        """The run in a few lines, for the command's output."""
        n = self.counts.get
        stripe_side = ", ".join(
            f"{what.removeprefix('stripe: ')} {count}"
            for what, count in sorted(self.counts.items())
            if what.startswith("stripe: ")
        )
        unasked = n("accounts not asked", 0)
        return [
            f"Reconciled {n('payments checked', 0) + n('payments not checked', 0)} open payments: "
            f"{n('payments changed', 0)} changed, {n('payments not checked', 0)} could not be checked.",
            f"Stripe's side: {stripe_side or 'nothing listed'}.",
            f"Replayed {n('events replayed', 0)} events whose delivery failed"
            + (f" ({unasked} accounts could not be asked)." if unasked else "."),
            f"Pending events: {n('events now processed', 0)} processed, {n('events now pending', 0)} still "
            "waiting for their object.",
            f"Queued {n('follow-ups queued', 0)} follow-ups (workers do them), started "
            f"{n('follow-ups started again', 0)} again; released the promotion code uses held by "
            f"{n('promotion holds released', 0)} abandoned orders.",
            f"{len(self.failures)} failed.",
        ]

    def failed(self, where: str, exc: BaseException, order_id: int | None = None) -> None:
        message = f"{where}: {type(exc).__name__}: {getattr(exc, 'message', None) or exc}"
        self.failures.append(message)
        logger.error("reconcile %s", message, exc_info=not isinstance(exc, PaymentProviderError))
        if order_id is not None:
            self.failed_orders.add(order_id)
            states.note_sweep_failure(order_id, message)


# ------------------------------------------------------------------------------------------------ 1. our side


def check_open_payments(report: Report, older_than: timedelta, limit: int) -> None:
    """Payments still open or processing after `older_than`, least recently checked first."""
    cutoff = timezone.now() - older_than
    due = Payment.objects.filter(status__in=states.LIVE_PAYMENTS, updated_at__lt=cutoff).order_by(
        F("checked_at").asc(nulls_first=True), "id"
    )[:limit]
    for payment in list(due):
        Payment.objects.filter(pk=payment.pk).update(checked_at=timezone.now())
        try:
            after = sync.refresh(payment)
        except Exception as exc:
            report.failed(f"{payment.stripe_id} ({payment.account})", exc, payment.order_id)
            report.count("payments not checked")
            continue
        report.count("payments checked")
        report.orders.add(payment.order_id)
        if after.status != payment.status:
            report.count("payments changed")
            logger.info("%s (%s): %s -> %s", payment.stripe_id, payment.account, payment.status, after.status)


# ------------------------------------------------------------------------------------------------ 2. Stripe's side


def _listed(acct: StripeAccount, kind: str, since: int) -> list[dict[str, Any]]:
    """Every object of `kind` the account created since `since`, oldest first (Stripe lists newest first)."""
    if kind == PaymentKind.CHECKOUT_SESSION:
        session_params: SessionListParams = {"created": {"gte": since}, "limit": 100}
        found = gateway.list_sessions(acct, session_params)
    else:
        intent_params: PaymentIntentListParams = {"created": {"gte": since}, "limit": 100}
        found = gateway.list_intents(acct, intent_params)
    return list(reversed(found))


def _taking(kind: str, obj: dict[str, Any]) -> bool:
    if kind == PaymentKind.PAYMENT_INTENT:
        return obj.get("status") in TAKING_INTENT
    return obj.get("status") == "complete"


def _open(kind: str, obj: dict[str, Any]) -> bool:
    if kind == PaymentKind.PAYMENT_INTENT:
        return obj.get("status") in OPEN_INTENT
    return obj.get("status") == "open"


def _apply(payment: Payment, kind: str, obj: dict[str, Any]) -> Payment:
    if kind == PaymentKind.PAYMENT_INTENT:
        return lifecycle.apply_payment_intent(payment, obj)
    return lifecycle.apply_checkout_session(payment, obj)


def _stripe_status(kind: str, obj: dict[str, Any]) -> str:
    return (
        lifecycle.intent_status(obj) if kind == PaymentKind.PAYMENT_INTENT else lifecycle.session_status(obj)
    )


def match(acct: StripeAccount, kind: str, obj: dict[str, Any], *, settled_before: int) -> str:
    """Bring one object listed at Stripe in line with the shop; returns what was done (for the report)."""
    object_id = stripe_fields.object_id(obj)
    if (
        kind == PaymentKind.PAYMENT_INTENT
        and not matching.made_for_card_form(obj)
        and (matching.named_order_id(obj) is not None or matching.by_payment_intent(acct, object_id))
    ):
        return "session's payment"  # a Checkout Session's PaymentIntent: the session is matched instead
    payment = matching.known(acct, kind, object_id)
    if payment is not None:
        expected = _stripe_status(kind, obj)
        if payment.status == expected:
            return "in step"
        if payment.status in states.FINAL_PAYMENTS:  # the shop never moves a payment out of a final state
            if expected != PaymentStatus.SUCCEEDED:
                return "in step"
            states.flag_order(
                payment.order_id,
                f"Stripe says {payment.get_kind_display()} {object_id} took the money, but the shop recorded "
                f"it {payment.status}: check it in Stripe's dashboard.",
            )
            return "flagged"
        _apply(payment, kind, obj)
        return "applied"
    taking, young = _taking(kind, obj), int(obj.get("created") or 0) >= settled_before
    if not taking and (young or not _open(kind, obj)):
        return "not taking money"  # closed, or maybe still being recorded by its creating request
    order_id = matching.named_order_id(obj)
    order = Order.objects.filter(public_id=order_id).first() if order_id else None
    if order is None:
        if not taking:
            return "not the shop's"
        if young and order_id is not None:
            return "order not committed yet"
        _record_stray(acct, kind, obj)
        return "stray"
    payment = _apply(matching.adopt(acct, kind, obj, order), kind, obj)
    if payment.status in states.OPEN_PAYMENTS:
        sync.close(payment)  # never handed to a shopper: it must not stay payable
        return "orphan closed"
    return "adopted"


def _record_stray(acct: StripeAccount, kind: str, obj: dict[str, Any]) -> None:
    amount = obj.get("amount") if kind == PaymentKind.PAYMENT_INTENT else obj.get("amount_total")
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    StrayPayment.objects.update_or_create(
        account=acct.currency,
        stripe_id=stripe_fields.object_id(obj),
        defaults={
            "kind": kind,
            "livemode": obj.get("livemode") is True,
            "amount": stripe_fields.integer(amount),
            "currency": str(obj.get("currency") or acct.currency)[:3],
            "stripe_status": str(obj.get("status") or "")[:40],
            "metadata": metadata,
            "stripe_created": stripe_fields.timestamp(obj.get("created")),
        },
    )
    logger.warning("stray %s %s in %s: names no order of the shop", kind, obj.get("id"), acct.currency)


def sweep_account(acct: StripeAccount, report: Report, *, overlap: timedelta, grace: timedelta) -> None:
    """List the account's Checkout Sessions, then its PaymentIntents (a session names its PaymentIntent), from
    `overlap` before the high-water mark, and match each. The mark moves forward to `grace` ago, or back to
    the oldest object that failed (so that it is listed again)."""
    now = int(time.time())
    settled_before = now - int(grace.total_seconds())
    for kind in (PaymentKind.CHECKOUT_SESSION, PaymentKind.PAYMENT_INTENT):
        mark, _ = SweepMark.objects.get_or_create(account=acct.currency, kind=kind)
        since = max(0, mark.created_gte - int(overlap.total_seconds()))
        try:
            listed = _listed(acct, kind, since)
        except Exception as exc:
            report.failed(f"listing {kind}s of {acct.currency}", exc)
            continue
        oldest_failed: int | None = None
        for obj in listed:
            order_id = matching.named_order_id(obj)
            try:  # each step of `match` is its own transaction (under the order's lock)
                outcome = match(acct, kind, obj, settled_before=settled_before)
            except Exception as exc:
                order = Order.objects.filter(public_id=order_id).first() if order_id else None
                report.failed(f"{obj.get('id')} ({acct.currency})", exc, order.pk if order else None)
                created = int(obj.get("created") or 0)
                oldest_failed = created if oldest_failed is None else min(oldest_failed, created)
                continue
            report.count(f"stripe: {outcome}")
            if outcome in ("applied", "adopted", "orphan closed") and order_id is not None:
                report.orders.update(Order.objects.filter(public_id=order_id).values_list("pk", flat=True))
        # Forward only, except back to an object that failed, so that the next run lists it again.
        new_mark = max(mark.created_gte, settled_before) if oldest_failed is None else oldest_failed
        SweepMark.objects.filter(pk=mark.pk).update(created_gte=max(new_mark, 0))


# ------------------------------------------------------------------------------------------------ 3. events


def replay_failed_deliveries(acct: StripeAccount, report: Report, days: int) -> None:
    """Events whose webhook delivery failed, processed as if they had been delivered (oldest first)."""
    since = int((timezone.now() - timedelta(days=days)).timestamp())
    params: EventListParams = {"delivery_success": False, "created": {"gte": since}, "limit": 100}
    try:
        events = gateway.list_events(acct, params)
    except Exception as exc:
        report.failed(f"events of {acct.currency}", exc)
        report.count("accounts not asked")
        return
    for event in reversed(events):
        receipt = _process(acct, event, report)
        if receipt is not None and receipt.status != "duplicate":
            report.count("events replayed")


def retry_pending_events(report: Report, grace: timedelta) -> None:
    """Events kept pending because their object was not known yet, tried again (oldest first). One still
    pending after `grace` that is about a PaymentIntent has it asked of Stripe: if it names an order of the
    shop it is adopted (and the event applied), if it names none the event is not the shop's."""
    since = timezone.now() - timedelta(days=PENDING_DAYS)
    pending = StripeEvent.objects.filter(status=StripeEvent.Status.PENDING, received_at__gte=since)
    for row in list(pending.order_by("received_at", "id")):
        try:
            acct = account_for(row.account)
        except Exception as exc:
            report.failed(f"event {row.event_id} ({row.account})", exc)
            continue
        receipt = _process(acct, row.payload, report)
        if receipt is None or receipt.status != "pending" or row.received_at > timezone.now() - grace:
            continue
        try:
            if _settle_pending(acct, row):
                _process(acct, row.payload, report)
        except Exception as exc:
            report.failed(f"event {row.event_id} ({row.account})", exc)


def _settle_pending(acct: StripeAccount, row: StripeEvent) -> bool:
    """Ask Stripe for the PaymentIntent a pending event is about. True when the shop now knows its payment (try
    the event again); an event about a PaymentIntent that names no order is marked not the shop's."""
    data = row.payload.get("data") if isinstance(row.payload, dict) else None
    obj = data.get("object") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        return False
    intent_id = stripe_fields.payment_intent_id(obj)
    if not intent_id:
        return False
    intent = gateway.retrieve_intent(acct, intent_id).to_dict()
    try:
        payment = matching.payment_for(acct, PaymentKind.PAYMENT_INTENT, intent)
    except matching.NotKnownYet:
        return False  # a Checkout Session's: the session's sweep or events make it known
    if payment is None:
        StripeEvent.objects.filter(pk=row.pk, status=StripeEvent.Status.PENDING).update(
            status=StripeEvent.Status.IGNORED,
            last_error=f"{intent_id} names no order of this shop.",
            processed_at=timezone.now(),
        )
        return False
    return True


def _process(acct: StripeAccount, event: dict[str, Any], report: Report) -> webhooks.Receipt | None:
    try:
        receipt = webhooks.record_and_process(acct, event)
        webhooks.process_waiting(receipt.payment_id)
    except Exception as exc:
        report.failed(f"event {event.get('id')} ({acct.currency})", exc)
        return None
    if receipt.status in ("failed", "busy"):
        report.failed(
            f"event {receipt.event_id} ({acct.currency})", RuntimeError(receipt.error or receipt.status)
        )
    elif receipt.status != "duplicate":
        report.count(f"events now {receipt.status}")
    if receipt.order_id is not None:
        report.orders.add(receipt.order_id)
    return receipt


# ------------------------------------------------------------------------------------------------ 4. what follows


def owed_orders() -> set[int]:
    """Orders owed work at Stripe: open objects of orders past paying (or found at Stripe), refunds not sent,
    refunds to look up, and orders whose last sweep failed."""
    owed: set[int] = set()
    owed.update(
        Order.objects.exclude(status__in=[*states.PAYABLE])
        .filter(payments__status__in=states.OPEN_PAYMENTS)
        .values_list("pk", flat=True)
    )
    owed.update(
        Payment.objects.filter(origin=PaymentOrigin.STRIPE, status__in=states.OPEN_PAYMENTS).values_list(
            "order_id", flat=True
        )
    )
    owed.update(Refund.objects.filter(status=Refund.Status.PENDING).values_list("order_id", flat=True))
    owed.update(Payment.objects.filter(refunds_to_check=True).values_list("order_id", flat=True))
    owed.update(Order.objects.filter(sweep_failed_at__isnull=False).values_list("pk", flat=True))
    return owed


def queue_owed_work(report: Report, order_ids: Iterable[int]) -> None:
    """Queue what is owed (workers do it): each order's work at Stripe, confirmations and refund notices not sent
    (for `CONFIRMATION_DAYS`), and follow-ups a dead worker left running or that failed for good."""
    for order_id in sorted(set(order_ids)):
        try:
            followups.enqueue(FollowUp.Kind.TIDY_ORDER, order_id=order_id)
        except Exception as exc:
            report.failed(f"order {order_id}", exc, order_id)
            continue
        if order_id not in report.failed_orders:
            states.clear_sweep_failure(order_id)
        report.count("follow-ups queued")
    recent = timezone.now() - timedelta(days=CONFIRMATION_DAYS)
    unconfirmed = (
        Order.objects.filter(
            status__in=states.PAID_STATES, confirmation_sent_at__isnull=True, paid_at__gt=recent
        )
        .exclude(email="")
        .values_list("pk", flat=True)
    )
    for order_id in unconfirmed:
        followups.enqueue(FollowUp.Kind.CONFIRMATION, order_id=order_id)
        report.count("follow-ups queued")
    untold = (
        Refund.objects.filter(
            status=Refund.Status.SUCCEEDED, notice_sent_at__isnull=True, updated_at__gt=recent
        )
        .exclude(order__email="")
        .values_list("pk", "order_id")
    )
    for refund_id, order_id in untold:
        followups.enqueue(FollowUp.Kind.REFUND_NOTICE, order_id=order_id, target_id=refund_id)
        report.count("follow-ups queued")
    requeued = followups.requeue_stuck()
    if requeued:
        report.count("follow-ups started again", requeued)


def release_holds(report: Report) -> None:
    try:
        released = shop_orders.release_stale_holds()
    except Exception as exc:
        report.failed("promotion code holds", exc)
        return
    if released:
        report.count("promotion holds released", released)


def run(
    *,
    older_than: timedelta = timedelta(minutes=10),
    limit: int = 500,
    events_days: int = 3,
    overlap: timedelta = timedelta(hours=1),
    grace: timedelta = timedelta(minutes=10),
) -> Report:
    """One whole sweep (the steps in the module docstring)."""
    report = Report()
    check_open_payments(report, older_than, limit)
    for acct in registry().all():
        if not acct.secret_key:
            continue
        sweep_account(acct, report, overlap=overlap, grace=grace)
        replay_failed_deliveries(acct, report, events_days)
    retry_pending_events(report, grace)
    queue_owed_work(report, report.orders | owed_orders())
    release_holds(report)
    return report
