"""Stripe webhooks: verify the signature with the account's secret, store each event once, process it in the
same transaction.

- A bad or missing signature, or a body that is not an event, raises `InvalidEvent` and stores nothing.
- A database that cannot be reached raises `ServiceUnavailable` (503: Stripe retries later).
- An event already processed (or ignored) is a duplicate: answered 200, nothing changes.
- An error in a handler rolls its work back, the failure is recorded on the event row, and the caller answers
  500 so that Stripe delivers it again; the redelivery is processed like a first one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe
from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.utils import timezone

from core.errors import ServiceUnavailable
from payments import lifecycle
from payments.accounts import StripeAccount
from payments.models import Payment, PaymentKind, StripeEvent

logger = logging.getLogger("payments.webhooks")


class InvalidEvent(Exception):
    """The request is not a genuine Stripe event for this account (answered 400)."""


@dataclass(frozen=True)
class Receipt:
    event_id: str
    status: str  # processed, ignored, duplicate, failed
    error: str = ""

    @property
    def http_status(self) -> int:
        return 500 if self.status == "failed" else 200


def _storable(event: dict[str, Any]) -> bool:
    try:
        json.dumps(event, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def verify(acct: StripeAccount, payload: bytes, signature: str | None) -> dict[str, Any]:
    """The event as a dict, once `signature` proves it came from Stripe for this account."""
    if not acct.webhook_secret:
        raise InvalidEvent(f"No webhook secret is configured for {acct.currency.upper()}.")
    if not signature:
        raise InvalidEvent("Missing Stripe-Signature header.")
    try:
        # Only the signature (and its age) is checked here: building the SDK's Event object would fail with an
        # AttributeError on a signed body that is JSON but not an object (a list, a number), i.e. a 500.
        stripe.WebhookSignature.verify_header(
            payload, signature, acct.webhook_secret, stripe.Webhook.DEFAULT_TOLERANCE
        )
        event = json.loads(payload)
    except stripe.SignatureVerificationError as exc:
        raise InvalidEvent("Invalid signature.") from exc
    except ValueError as exc:
        raise InvalidEvent("The body is not a Stripe event.") from exc
    if not isinstance(event, dict):
        raise InvalidEvent("The body is not a Stripe event.")
    if b"\\u0000" in payload or not _storable(event):
        # PostgreSQL's JSON stores neither NUL nor unpaired surrogates; no genuine Stripe event carries them.
        raise InvalidEvent("The event contains characters that are not valid text.")
    obj = event["data"].get("object") if isinstance(event.get("data"), dict) else None
    if (
        not isinstance(event.get("id"), str)
        or not isinstance(event.get("type"), str)
        or not isinstance(obj, dict)
        or not 0 < len(event["id"]) <= 255  # Stripe's ids are short; the column holds 255
    ):
        raise InvalidEvent("The body is not a Stripe event.")
    return event


# ------------------------------------------------------------------------------------------------ handlers

Handler = Callable[[StripeAccount, Mapping[str, Any], str], bool]


def _payment(acct: StripeAccount, **lookup: str) -> Payment | None:
    return Payment.objects.filter(account=acct.currency, **lookup).order_by("-id").first()


def _on_payment_intent(acct: StripeAccount, intent: Mapping[str, Any], event_type: str) -> bool:
    payment = _payment(acct, stripe_id=str(intent.get("id", "")), kind=PaymentKind.PAYMENT_INTENT)
    if payment is None:
        return False  # not ours, or the PaymentIntent behind a Checkout Session (its session events count)
    lifecycle.apply_payment_intent(payment, intent)
    return True


def _on_checkout_session(acct: StripeAccount, session: Mapping[str, Any], event_type: str) -> bool:
    payment = _payment(acct, stripe_id=str(session.get("id", "")), kind=PaymentKind.CHECKOUT_SESSION)
    if payment is None:
        return False
    payment = lifecycle.apply_checkout_session(
        payment, session, async_failed=event_type == "checkout.session.async_payment_failed"
    )
    if payment.payment_intent_id:
        _replay_early_refunds(acct, payment)
    return True


def _replay_early_refunds(acct: StripeAccount, payment: Payment) -> None:
    """A `charge.refunded` that arrived before its session's completion (Stripe retried an earlier delivery)
    was recorded as ignored, since the PaymentIntent was unknown then: apply it now that it is known."""
    early = StripeEvent.objects.select_for_update().filter(
        account=acct.currency,
        type="charge.refunded",
        status=StripeEvent.Status.IGNORED,
        payload__data__object__payment_intent=payment.payment_intent_id,
    )
    for event in early:
        lifecycle.apply_refund(payment, event.payload["data"]["object"])
        event.status = StripeEvent.Status.PROCESSED
        event.processed_at = timezone.now()
        event.save(update_fields=["status", "processed_at"])


def _on_charge_refunded(acct: StripeAccount, charge: Mapping[str, Any], event_type: str) -> bool:
    intent_id = charge.get("payment_intent")
    if isinstance(intent_id, Mapping):
        intent_id = intent_id.get("id")
    if not intent_id:
        return False
    payment = _payment(acct, payment_intent_id=str(intent_id))
    if payment is None:
        return False
    lifecycle.apply_refund(payment, charge)
    return True


HANDLERS: dict[str, Handler] = {
    "payment_intent.succeeded": _on_payment_intent,
    "payment_intent.payment_failed": _on_payment_intent,
    "payment_intent.processing": _on_payment_intent,
    "payment_intent.canceled": _on_payment_intent,
    "payment_intent.requires_action": _on_payment_intent,
    "checkout.session.completed": _on_checkout_session,
    "checkout.session.async_payment_succeeded": _on_checkout_session,
    "checkout.session.async_payment_failed": _on_checkout_session,
    "checkout.session.expired": _on_checkout_session,
    "charge.refunded": _on_charge_refunded,
}


def dispatch(acct: StripeAccount, event: Mapping[str, Any]) -> bool:
    """Run the event's handler; False when there was nothing to do (unknown type or object)."""
    handler = HANDLERS.get(str(event["type"]))
    if handler is None:
        return False
    return handler(acct, event["data"]["object"], str(event["type"]))


# ------------------------------------------------------------------------------------------------ receiving


def _created(event: Mapping[str, Any]) -> datetime | None:
    created = event.get("created")
    return datetime.fromtimestamp(created, tz=UTC) if isinstance(created, int) else None


def record_and_process(acct: StripeAccount, event: dict[str, Any]) -> Receipt:
    """Store the event once and process it in the same transaction (see the module docstring)."""
    event_id = str(event["id"])
    fields = {
        "type": str(event["type"])[:100],
        "livemode": bool(event.get("livemode", False)),
        "stripe_created": _created(event),
        "object_id": str(event["data"]["object"].get("id", ""))[:255],
        "payload": event,
    }
    with transaction.atomic():
        row = StripeEvent.objects.select_for_update().filter(account=acct.currency, event_id=event_id).first()
        if row is not None and row.status != StripeEvent.Status.FAILED:
            logger.info("webhook %s %s duplicate", acct.currency, event_id)
            return Receipt(event_id, "duplicate")
        try:
            with transaction.atomic():
                handled = dispatch(acct, event)
                status = StripeEvent.Status.PROCESSED if handled else StripeEvent.Status.IGNORED
                now = timezone.now()
                if row is None:
                    StripeEvent.objects.create(
                        account=acct.currency, event_id=event_id, status=status, processed_at=now, **fields
                    )
                else:
                    row.status, row.processed_at, row.last_error = status, now, ""
                    row.attempts += 1
                    row.save(update_fields=["status", "processed_at", "last_error", "attempts"])
        except IntegrityError:
            # Another delivery of the same event stored it first; its outcome stands.
            done = StripeEvent.objects.filter(account=acct.currency, event_id=event_id).exclude(
                status=StripeEvent.Status.FAILED
            )
            if done.exists():
                return Receipt(event_id, "duplicate")
            return Receipt(event_id, "failed", "concurrent delivery")
        except Exception as exc:  # a handler failed: its work is rolled back, the failure is kept
            logger.exception("webhook %s %s %s failed", acct.currency, event_id, fields["type"])
            error = f"{type(exc).__name__}: {exc}"[:2000]
            if row is None:
                StripeEvent.objects.create(
                    account=acct.currency,
                    event_id=event_id,
                    status=StripeEvent.Status.FAILED,
                    last_error=error,
                    **fields,
                )
            else:
                row.attempts += 1
                row.last_error = error
                row.save(update_fields=["attempts", "last_error"])
            return Receipt(event_id, "failed", error)
    logger.info(
        "webhook %s %s %s %s object=%s", acct.currency, event_id, fields["type"], status, fields["object_id"]
    )
    return Receipt(event_id, str(status))


def receive(acct: StripeAccount, payload: bytes, signature: str | None) -> Receipt:
    """Verify, store once and process one delivery.

    `InvalidEvent` (400): not Stripe's. `ServiceUnavailable` (503): the database could not be reached,
    nothing was stored, Stripe delivers again later. A handler's own error is a failed `Receipt` (500,
    recorded on the event)."""
    event = verify(acct, payload, signature)
    try:
        return record_and_process(acct, event)
    except (OperationalError, InterfaceError) as exc:
        raise ServiceUnavailable("The shop could not store the event; Stripe will retry.") from exc
