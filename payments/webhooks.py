"""Stripe webhooks: verify the signature with the account's secret, store each event once, process it in the
same transaction.

- A bad or missing signature, or a body that is not an event, raises `InvalidEvent` and stores nothing.
- A signed body that is not a well-formed event (NaN or Infinity, nesting deeper than any Stripe object, a
  `created` that is not a timestamp, fields of the wrong type, a field the shop reads outside Stripe's limits:
  `stripe_fields`) also raises `InvalidEvent` (400: Stripe would
  retry a 5xx for days, and the content would never get better), and the refusal is recorded in the log
  (`record_refusal`).
- A database that cannot be reached raises `ServiceUnavailable` (503: Stripe retries later).
- An event already processed (or ignored) is a duplicate: answered 200, nothing changes.
- An error in a handler rolls its work back, the failure is recorded on the event row, and the caller answers
  500 so that Stripe delivers it again; the redelivery is processed like a first one.
- An event whose object the shop does not know yet is kept **pending** (answered 200) and tried again by a
  follow-up with backoff, and by the sweep.
- **What a request does, and what a worker does.** The state move is done in the request: it is a database
  write under the order's lock, and it is what makes a duplicate a duplicate (the event's row and its effect
  commit together). Everything that needs Stripe or the mail server (closing the order's other objects, refunds
  owed, refund look-ups, the confirmation and refund emails) is queued in the same transaction as a follow-up
  (`payments.followups`) and done by a task worker: the webhook verifies, stores, moves the state and answers.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from core import jsonbody
from core.errors import ServiceUnavailable
from core.redact import redact_json, redact_text
from payments import (
    disputes,
    events,
    followups,
    gateway,
    lifecycle,
    locks,
    matching,
    refunds,
    stripe_fields,
)
from payments.accounts import StripeAccount, account_for
from payments.errors import OrderBusy
from payments.models import FollowUp, Payment, PaymentKind, StripeEvent

logger = logging.getLogger("payments.webhooks")


class InvalidEvent(Exception):
    """The request is not a genuine Stripe event for this account (answered 400)."""


@dataclass(frozen=True)
class Receipt:
    event_id: str
    status: str  # processed, pending, ignored, duplicate, failed, busy
    error: str = ""
    order_id: int | None = None  # the order the event was about, to tidy up once committed
    payment_id: int | None = None  # the payment it concerned: events waiting for it are tried once committed

    @property
    def http_status(self) -> int:
        return {"failed": 500, "busy": 503}.get(self.status, 200)


def _storable(event: dict[str, Any]) -> bool:
    try:
        json.dumps(event, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# Stripe's objects nest a dozen levels at most (event > data > object > charges > data > [] > details > ...).
MAX_EVENT_DEPTH = 64


def record_refusal(acct: StripeAccount, payload: bytes, reason: str, event: Any = None) -> None:
    """Keep a signed event refused for its content (answered 400, so Stripe stops retrying) as a `StripeEvent`
    with status `invalid`: under its id when that is usable, else under a digest of the body, so that Stripe's
    redeliveries count on one row. A database that cannot store it leaves the log line only."""
    fields = event if isinstance(event, dict) else {}
    event_id, event_type = fields.get("id"), fields.get("type")
    digest = hashlib.sha256(payload).hexdigest()
    logger.warning(
        "webhook %s refused a signed event: %s; id=%s type=%s body=%d bytes sha256=%s",
        acct.currency,
        reason,
        event_id[:255] if isinstance(event_id, str) else "-",
        event_type[:100] if isinstance(event_type, str) else "-",
        len(payload),
        digest,
    )
    usable = isinstance(event_id, str) and 0 < len(event_id) <= 255 and _text(event_id) == event_id
    key = event_id if usable else f"invalid:{digest[:32]}"
    try:
        with transaction.atomic():
            row, created = locks.lock_or_create_event(
                acct.currency,
                str(key),
                {
                    "type": _text(event_type)[:100] if isinstance(event_type, str) else "",
                    "payload": {"unparsed": redact_text(_text(payload.decode("utf-8", "replace")))[:65536]},
                    "status": StripeEvent.Status.INVALID,
                    "last_error": reason[:2000],
                },
            )
            if not created:
                row.attempts += 1
                row.last_error = reason[:2000]
                row.save(update_fields=["attempts", "last_error"])
    except DatabaseError:
        logger.exception("webhook %s: the refused event could not be recorded", acct.currency)


def _text(value: str) -> str:
    """`value` as PostgreSQL can store it (no NUL, no unpaired surrogates)."""
    return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def _malformed(acct: StripeAccount, payload: bytes, reason: str, event: Any = None) -> NoReturn:
    record_refusal(acct, payload, reason, event)
    raise InvalidEvent(reason)


def verify(acct: StripeAccount, payload: bytes, signature: str | None) -> dict[str, Any]:
    """The event as a dict, once `signature` proves it came from Stripe for this account and its content is
    a well-formed event; `InvalidEvent` otherwise (answered 400)."""
    if not acct.webhook_secret:
        raise InvalidEvent(f"No webhook secret is configured for {acct.currency.upper()}.")
    if not signature:
        raise InvalidEvent("Missing Stripe-Signature header.")
    problem = gateway.signature_problem(payload, signature, acct.webhook_secret)
    if problem:
        raise InvalidEvent(problem)
    # From here on the body is Stripe's (or made with the account's webhook secret): a refusal is recorded.
    try:  # the one JSON reader: not UTF-8, not JSON, NaN/Infinity or nested too deeply is refused
        event = jsonbody.parse(payload, max_bytes=len(payload), max_depth=MAX_EVENT_DEPTH)
    except jsonbody.BadJSON as exc:
        _malformed(
            acct,
            payload,
            "The event nests too deeply." if exc.kind == "too_deep" else "The body is not a Stripe event.",
        )
    if not isinstance(event, dict):
        _malformed(acct, payload, "The body is not a Stripe event.")
    if b"\\u0000" in payload or not _storable(event):
        # PostgreSQL's JSON stores neither NUL nor unpaired surrogates; no genuine Stripe event carries them.
        _malformed(acct, payload, "The event contains characters that are not valid text.", event)
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    event_id, event_type = event.get("id"), event.get("type")
    if (
        not isinstance(event_id, str)
        or not 0 < len(event_id) <= 255  # Stripe's ids are short; the column holds 255
        or not isinstance(event_type, str)
        or not 0 < len(event_type) <= 100  # the column holds 100
        or not isinstance(obj, dict)
    ):
        _malformed(acct, payload, "The body is not a Stripe event.", event)
    if "id" in obj and not isinstance(obj["id"], str):
        _malformed(acct, payload, "The event's object has an id that is not a string.", event)
    if "livemode" in event and not isinstance(event["livemode"], bool):
        _malformed(acct, payload, "The event's livemode is not true or false.", event)
    if "created" in event and _created(event) is None:
        _malformed(acct, payload, "The event's created time is not a Unix timestamp.", event)
    try:  # every field its handler reads, within Stripe's limits
        stripe_fields.check_event(event)
    except stripe_fields.OutOfRange as exc:
        _malformed(acct, payload, exc.reason, event)
    return event


# ------------------------------------------------------------------------------------------------ handlers
# Each handler applies its object through `lifecycle` and returns the payment it concerned (None: not ours).
# Locks are waited for at most `locks.WEBHOOK_LOCK_WAIT`: a delivery that cannot get them answers 503 and
# Stripe delivers it again.

Handler = Callable[[StripeAccount, Mapping[str, Any], str], Payment | None]
WAIT = locks.WEBHOOK_LOCK_WAIT


def _on_payment_intent(acct: StripeAccount, intent: Mapping[str, Any], event_type: str) -> Payment | None:
    intent_id = stripe_fields.object_id(intent)
    paid_through = matching.by_payment_intent(acct, intent_id)
    if paid_through is not None and paid_through.kind == PaymentKind.CHECKOUT_SESSION:
        return None  # a Checkout Session's PaymentIntent: nothing to do, the session's own events count
    if paid_through is not None and paid_through.stripe_id == intent_id:
        payment: Payment | None = (
            paid_through  # the card form's own row: the one payment_for would read again
        )
    else:
        payment = matching.payment_for(acct, PaymentKind.PAYMENT_INTENT, intent)
    if payment is None:
        return None  # names no order of this shop
    return lifecycle.apply_payment_intent(payment, intent, wait=WAIT)


def _on_checkout_session(acct: StripeAccount, session: Mapping[str, Any], event_type: str) -> Payment | None:
    payment = matching.payment_for(acct, PaymentKind.CHECKOUT_SESSION, session)
    if payment is None:
        return None
    return lifecycle.apply_checkout_session(
        payment, session, async_failed=event_type == "checkout.session.async_payment_failed", wait=WAIT
    )


def _on_charge_refunded(acct: StripeAccount, charge: Mapping[str, Any], event_type: str) -> Payment | None:
    payment = matching.paid_through(acct, charge)
    if payment is None:
        return None
    return lifecycle.apply_refund(payment, charge, wait=WAIT)


# Each handled type (`events`, the one list) and its handler.
HANDLERS: dict[str, Handler] = {
    **dict.fromkeys(events.PAYMENT_INTENT, _on_payment_intent),
    **dict.fromkeys(events.CHECKOUT_SESSION, _on_checkout_session),
    events.CHARGE_REFUNDED: _on_charge_refunded,
    **dict.fromkeys(events.REFUND, refunds.on_refund_event),
    **dict.fromkeys(events.DISPUTE, disputes.on_dispute_event),
}


def dispatch(acct: StripeAccount, event: Mapping[str, Any]) -> Payment | None:
    """Run the event's handler; the payment it concerned, or None when there was nothing to do."""
    handler = HANDLERS.get(str(event["type"]))
    if handler is None:
        return None
    return handler(acct, event["data"]["object"], str(event["type"]))


# ------------------------------------------------------------------------------------------------ receiving


def _created(event: Mapping[str, Any]) -> datetime | None:
    """The event's `created` as a datetime; None when it is missing or not a timestamp a datetime can hold
    (a bool, a float, a string, negative, or past year 9999: `verify` refuses those)."""
    return stripe_fields.timestamp(event.get("created"))


# Events stored with these statuses are processed again when delivered (or replayed) again.
RETRIED = (StripeEvent.Status.FAILED, StripeEvent.Status.PENDING)


def record_and_process(acct: StripeAccount, event: dict[str, Any]) -> Receipt:
    """Store the event once and process it in the same transaction (see the module docstring).

    The event's row is locked (or inserted, which holds the same place in the unique index) before anything
    else, so a concurrent delivery of the same event waits and then finds it done. A handler's error, whatever
    it is, rolls the handler's work back and is recorded on the row as failed: only the insert of the event's
    own row can be "another delivery stored it first"."""
    event_id = str(event["id"])
    fields = {
        "type": str(event["type"])[:100],
        "livemode": bool(event.get("livemode", False)),
        "stripe_created": _created(event),
        "object_id": str(event["data"]["object"].get("id", ""))[:255],
        "payload": redact_json(event),  # stored without its client secrets
    }
    with transaction.atomic():
        locks.wait_at_most(WAIT)
        try:
            with transaction.atomic(), locks.busy_as_error():
                row = locks.lock_event(acct.currency, event_id)
                if row is None:
                    row = StripeEvent.objects.create(
                        account=acct.currency,
                        event_id=event_id,
                        status=StripeEvent.Status.PENDING,
                        attempts=0,
                        **fields,
                    )
        except OrderBusy:
            return Receipt(event_id, "busy")  # another delivery of this event is being processed
        except IntegrityError:  # another delivery stored it first and committed: its outcome stands
            done = StripeEvent.objects.filter(account=acct.currency, event_id=event_id).exclude(
                status__in=RETRIED
            )
            return Receipt(event_id, "duplicate" if done.exists() else "busy")
        if row.attempts and row.status not in RETRIED:
            logger.info("webhook %s %s duplicate", acct.currency, event_id)
            return Receipt(event_id, "duplicate")
        row.attempts += 1
        waiting_for = ""
        try:
            with transaction.atomic():
                payment = dispatch(acct, event)
        except matching.NotKnownYet as exc:  # kept, and tried again once its object is known
            payment, waiting_for = None, str(exc)
        except Exception as exc:  # a handler failed: its work is rolled back, the failure is kept
            busy = isinstance(exc, OrderBusy)
            if busy:
                logger.warning("webhook %s %s: order busy, Stripe will retry", acct.currency, event_id)
            else:
                logger.exception("webhook %s %s %s failed", acct.currency, event_id, fields["type"])
            row.status = StripeEvent.Status.FAILED
            row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            row.save(update_fields=["status", "attempts", "last_error"])
            return Receipt(event_id, "busy" if busy else "failed", row.last_error)
        if waiting_for:
            status = StripeEvent.Status.PENDING
            if row.attempts == 1:  # stored now: tried again by a follow-up (with backoff) from here on
                followups.enqueue(
                    FollowUp.Kind.PENDING_EVENT, target_id=row.pk, delay=followups.BACKOFF_SECONDS[0]
                )
        elif payment is not None:
            status = StripeEvent.Status.PROCESSED
            # What follows at Stripe (close the order's other objects, refunds owed, refund look-ups): a worker's.
            followups.enqueue(FollowUp.Kind.TIDY_ORDER, order_id=payment.order_id)
        else:
            status = StripeEvent.Status.IGNORED
        row.status, row.last_error = status, waiting_for[:2000]
        row.processed_at = timezone.now() if status != StripeEvent.Status.PENDING else None
        row.save(update_fields=["status", "attempts", "last_error", "processed_at"])
    logger.info(
        "webhook %s %s %s %s object=%s", acct.currency, event_id, fields["type"], status, fields["object_id"]
    )
    return Receipt(
        event_id,
        str(status),
        waiting_for,
        order_id=payment.order_id if payment is not None else None,
        payment_id=payment.pk if payment is not None else None,
    )


def waiting_for(payment: Payment) -> QuerySet[StripeEvent]:
    """Pending events about `payment`: its object's own, and refunds, disputes and charges of its
    PaymentIntent (learned when a Checkout Session completes), oldest first."""
    about = Q(object_id=payment.stripe_id)
    if payment.payment_intent_id:
        about |= Q(object_id=payment.payment_intent_id) | Q(
            payload__data__object__payment_intent=payment.payment_intent_id
        )
    return StripeEvent.objects.filter(
        about, account=payment.account, status=StripeEvent.Status.PENDING
    ).order_by("received_at", "id")


def process_waiting(payment_id: int | None) -> list[Receipt]:
    """Process again the pending events that waited for a payment now known (each in its own transaction,
    taking the event's lock before any order's), and those waiting for what they make known in turn. Run
    after the news that made the payment known has committed: never under an order's lock."""
    receipts: list[Receipt] = []
    todo = [payment_id] if payment_id is not None else []
    seen: set[int] = set()
    while todo:
        pk = todo.pop(0)
        if pk in seen:
            continue
        seen.add(pk)
        payment = Payment.objects.filter(pk=pk).first()
        if payment is None:
            continue
        acct = account_for(payment.account)
        for row in waiting_for(payment):
            receipt = record_and_process(acct, row.payload)
            receipts.append(receipt)
            if receipt.payment_id is not None:
                todo.append(receipt.payment_id)
    return receipts


def receive(acct: StripeAccount, payload: bytes, signature: str | None) -> Receipt:
    """Verify, store once and process one delivery, queueing in the same transaction what must follow at
    Stripe or by mail (`followups`: a worker does it); then, committed, process the events that waited for the
    payment it made known (database work only).

    `InvalidEvent` (400): not Stripe's, or signed but malformed (recorded). `ServiceUnavailable` (503): the
    database could not be reached, nothing was stored, Stripe delivers again later. A handler's own error is
    a failed `Receipt` (500, recorded on the event); an order locked for too long a busy one (503)."""
    event = verify(acct, payload, signature)
    try:
        receipt = record_and_process(acct, event)
    except (OperationalError, InterfaceError) as exc:
        raise ServiceUnavailable("The shop could not store the event; Stripe will retry.") from exc
    process_waiting(receipt.payment_id)
    return receipt


@followups.handles(FollowUp.Kind.PENDING_EVENT)
def retry_pending(row: FollowUp) -> str:
    """The follow-up of an event kept pending: process it again (its object may be known now); still pending,
    it is tried again later with backoff (and by the sweep, which asks Stripe)."""
    event = StripeEvent.objects.filter(pk=row.target_id).first() if row.target_id is not None else None
    if event is None or event.status != StripeEvent.Status.PENDING:
        return "processed already"
    receipt = record_and_process(account_for(event.account), event.payload)
    if receipt.status == "pending":
        raise followups.Incomplete(f"still waiting: {receipt.error}")
    process_waiting(receipt.payment_id)
    return f"event {event.event_id}: {receipt.status}"
