"""Calling Stripe: which account, idempotency keys, and Stripe's errors turned into words for shoppers."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import stripe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from core.money import AmountError, check_chargeable
from payments.accounts import AccountNotConfigured, StripeAccount, account_for
from payments.errors import (
    AmountNotChargeable,
    CardDeclined,
    PaymentProviderError,
    PaymentsNotConfigured,
    StripeNotFound,
    StripeOutage,
    StripeRefused,
)

logger = logging.getLogger("payments.stripe")

OUTAGE_MESSAGE = gettext_noop(
    "We could not reach our payment provider. Nothing was charged; please try again in a minute."
)
REFUSED_MESSAGE = gettext_noop(
    "Our payment provider refused this request. Nothing was charged; please reload the page and try again."
)
DECLINED_MESSAGE = gettext_noop("Your card was declined. Nothing was charged; please try another card.")

# Stripe's error codes (https://docs.stripe.com/error-codes) that staff meet, in words; others keep Stripe's own
# message.
REFUSAL_REASONS = {
    "amount_too_large": "the amount is more than Stripe still has unrefunded on the charge (part of it was "
    "refunded elsewhere, e.g. in Stripe's dashboard)",
    "charge_already_refunded": "the charge was already refunded in full at Stripe",
    "charge_disputed": "the charge is disputed: the card network holds the money until the dispute is closed",
    "resource_missing": "Stripe has no such object in this account",
    "payment_intent_unexpected_state": "the payment is not in a state that allows this at Stripe",
}


def account(currency: str) -> StripeAccount:
    """The account for `currency`, or a 503 `ShopError` saying payments in it are not set up."""
    try:
        return account_for(currency)
    except AccountNotConfigured as exc:
        raise PaymentsNotConfigured(
            _("Payments in %(currency)s are not set up in this shop yet.") % {"currency": currency.upper()}
        ) from exc


def check_amount(amount: int, currency: str) -> None:
    """Stripe's limits, checked before any call so the shopper gets a clear answer."""
    try:
        check_chargeable(amount, currency)
    except AmountError as exc:
        raise AmountNotChargeable(exc.shopper_message) from exc


def idempotency_key(prefix: str, *parts: object, params: Mapping[str, Any] | None = None) -> str:
    """A key derived from what is being paid: the same request retried gets the same key, and Stripe
    replays the first answer instead of creating a second object. The params' digest makes any change
    (another amount, other lines) a new key rather than an idempotency error."""
    key = ":".join([prefix, *(str(p) for p in parts)])
    if params is not None:
        digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]
        key = f"{key}:{digest}"
    return key


def classify(exc: stripe.StripeError) -> PaymentProviderError:
    """The one place where a Stripe error gets its meaning:

    - **outage** (`StripeOutage`): no answer (a connection error), a 5xx, 429, or a key still in use by a
      concurrent request: trying again later may work, and a create may or may not have happened
      (indeterminate);
    - **declined** (`CardDeclined`): a `card_error`;
    - **not found** (`StripeNotFound`): 404, `resource_missing`;
    - **refused with a reason** (`StripeRefused`): any other answer (400, 401, 402, 403, 409): Stripe will
      answer the same again; `reason` says why in words for staff.
    """
    status = exc.http_status or 0
    transient = status >= 500 or status == 429 or exc.code in ("idempotency_key_in_use", "lock_timeout")
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError) or transient:
        return StripeOutage(_(OUTAGE_MESSAGE))
    if not status and not isinstance(exc, stripe.InvalidRequestError | stripe.CardError):
        return StripeOutage(_(OUTAGE_MESSAGE))  # no HTTP answer at all
    code = str(exc.code or "")
    words = str(exc.user_message or "") or code or type(exc).__name__
    reason = REFUSAL_REASONS.get(code, words.rstrip("."))
    if isinstance(exc, stripe.CardError):
        return CardDeclined(_(DECLINED_MESSAGE), stripe_code=code, reason=reason)
    if status == 404 or code == "resource_missing":
        return StripeNotFound(_(REFUSED_MESSAGE), stripe_code=code or "resource_missing", reason=reason)
    return StripeRefused(_(REFUSED_MESSAGE), stripe_code=code, reason=reason)


@contextmanager
def stripe_call(action: str, acct: StripeAccount, **context: object) -> Iterator[None]:
    """Log every Stripe failure and raise it with its meaning (`classify`) and a message for the shopper."""
    try:
        yield
    except stripe.StripeError as exc:
        error = classify(exc)
        logger.warning(
            "stripe %s %s account=%s error=%s status=%s request_id=%s code=%s context=%s message=%s",
            action,
            "refused" if isinstance(error, StripeRefused) else "outage",
            acct.currency,
            type(exc).__name__,
            exc.http_status,
            exc.request_id,
            exc.code,
            context,
            exc.user_message or str(exc),
        )
        raise error from exc


# ------------------------------------------------------------------------------------------------ thin wrappers
# The calls that learn or close a payment object's state, shared by every path that needs them.


def retrieve_intent(acct: StripeAccount, intent_id: str, *, quick: bool = False) -> stripe.PaymentIntent:
    """`quick`: one attempt within a short budget, for a page a shopper waits for."""
    with stripe_call("payment_intent.retrieve", acct, payment_intent=intent_id):
        return (acct.quick_client if quick else acct.client).v1.payment_intents.retrieve(intent_id)


def cancel_intent(acct: StripeAccount, intent_id: str) -> stripe.PaymentIntent:
    with stripe_call("payment_intent.cancel", acct, payment_intent=intent_id):
        return acct.client.v1.payment_intents.cancel(intent_id)


def retrieve_session(acct: StripeAccount, session_id: str, *, quick: bool = False) -> stripe.checkout.Session:
    with stripe_call("checkout.session.retrieve", acct, session=session_id):
        return (acct.quick_client if quick else acct.client).v1.checkout.sessions.retrieve(session_id)


def expire_session(acct: StripeAccount, session_id: str) -> stripe.checkout.Session:
    with stripe_call("checkout.session.expire", acct, session=session_id):
        return acct.client.v1.checkout.sessions.expire(session_id)


def refused_as_invalid(exc: PaymentProviderError) -> bool:
    """Stripe answered, refusing the request (e.g. canceling a PaymentIntent that succeeded)."""
    return isinstance(exc, StripeRefused)
