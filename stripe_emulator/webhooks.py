"""The emulated webhook endpoint: which events it listens to, and how a delivery is signed."""

from __future__ import annotations

import hashlib
import hmac
import time

#: What the webhook endpoint listens to unless told otherwise: the events of the payment lifecycle the shop's
#: README asks its Stripe endpoints to listen to (PaymentIntents, Checkout Sessions, ``charge.refunded``),
#: plus disputes. Stripe sends an endpoint only the events it is enabled for; pass
#: ``enabled_events=["*"]`` (CLI: ``--enabled-events '*'``) to receive every event, ``refund.*`` included.
DEFAULT_ENABLED_EVENTS: tuple[str, ...] = (
    "payment_intent.*",
    "checkout.session.*",
    "charge.refunded",
    "charge.dispute.*",
)


def sign_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """Return a ``Stripe-Signature`` header value: ``t=<ts>,v1=<hmac-sha256 of "<ts>.<payload>">``."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    signed = f"{ts}.".encode() + payload
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"
