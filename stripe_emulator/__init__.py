"""In-memory Stripe API emulator for local development and tests.

It is an in-memory emulator, not a payment processor: nothing here moves money or talks
to Stripe. It is a small, thread-safe imitation of the subset of Stripe's v1 API the shop uses
(PaymentIntents, Checkout Sessions, coupons, tax rates, refunds, events and signed
webhooks), plus a Stripe.js double and a hosted Checkout page for browser tests.

Use it in-process through :class:`EmulatorHTTPClient` (a ``stripe.HTTPClient``) or as an
HTTP server with ``python -m stripe_emulator``. The package imports only the standard
library and ``stripe`` (never Django).
"""

from __future__ import annotations

from stripe_emulator.client import EmulatorHTTPClient, RecordedRequest
from stripe_emulator.core import (
    API_VERSION,
    Emulator,
    EmulatorAccount,
    EmulatorError,
    sign_payload,
)

__all__ = [
    "API_VERSION",
    "Emulator",
    "EmulatorAccount",
    "EmulatorError",
    "EmulatorHTTPClient",
    "RecordedRequest",
    "sign_payload",
]
