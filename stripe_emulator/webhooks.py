"""The emulated webhook endpoint: which events it listens to, and how a delivery is signed."""

from __future__ import annotations

import hashlib
import hmac
import time

#: What the webhook endpoint listens to unless told otherwise: every event, as ``stripe listen`` forwards
#: them without ``--events`` (a dashboard endpoint has no default: its ``enabled_events`` are chosen when it is
#: made). Stripe sends an endpoint only the events it is enabled for: whoever starts the emulator for an
#: application passes that application's list (``enabled_events=[...]``, CLI ``--enabled-events a,b``).
DEFAULT_ENABLED_EVENTS: tuple[str, ...] = ("*",)


def sign_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """Return a ``Stripe-Signature`` header value: ``t=<ts>,v1=<hmac-sha256 of "<ts>.<payload>">``."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    signed = f"{ts}.".encode() + payload
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"
