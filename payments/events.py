"""The Stripe event types the shop handles: the one list.

The webhook dispatcher (`webhooks.HANDLERS`) gives each of them its handler, `python manage.py webhook_events`
prints them for the dashboard's endpoints, whoever starts the emulator for the shop (the tests' fixtures,
`make run`) enables exactly these on its endpoint, and README's list is compared with it by a test
(`payments/tests/test_events.py`). Other types (`payment_intent.created`, ...) are stored and ignored.

Plain data on purpose: no Django, no Stripe SDK, so that a launcher or a fixture can import it before Django
is set up.
"""

from __future__ import annotations

# A PaymentIntent's news (the card form's payments and a Checkout Session's PaymentIntent).
PAYMENT_INTENT: tuple[str, ...] = (
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.processing",
    "payment_intent.canceled",
    "payment_intent.requires_action",
)
# A Checkout Session's news (`completed` pays only when `payment_status` is `paid`).
CHECKOUT_SESSION: tuple[str, ...] = (
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
)
# The charge's refunded amount (the shop's refunds and those made in Stripe's dashboard).
CHARGE_REFUNDED = "charge.refunded"
# Each refund's own status: the shop's own and those made in Stripe's dashboard; a failed one gives its amount
# back (an endpoint without them never learns that a refund failed).
REFUND: tuple[str, ...] = ("refund.created", "refund.updated", "refund.failed", "charge.refund.updated")
# Disputes: created, updated, closed (won or lost), funds withdrawn and reinstated.
DISPUTE: tuple[str, ...] = (
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
)

#: Every type the shop handles, in the order above: what each account's webhook endpoint listens to.
HANDLED: tuple[str, ...] = (*PAYMENT_INTENT, *CHECKOUT_SESSION, CHARGE_REFUNDED, *REFUND, *DISPUTE)
