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
from payments.errors import AmountNotChargeable, PaymentProviderError, PaymentsNotConfigured

logger = logging.getLogger("payments.stripe")

OUTAGE_MESSAGE = gettext_noop(
    "We could not reach our payment provider. Nothing was charged; please try again in a minute."
)


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


@contextmanager
def stripe_call(action: str, acct: StripeAccount, **context: object) -> Iterator[None]:
    """Log and translate every Stripe failure into a 502 `PaymentProviderError` with a shopper message."""
    try:
        yield
    except stripe.StripeError as exc:
        logger.warning(
            "stripe %s failed account=%s error=%s status=%s request_id=%s code=%s context=%s message=%s",
            action,
            acct.currency,
            type(exc).__name__,
            exc.http_status,
            exc.request_id,
            exc.code,
            context,
            exc.user_message or str(exc),
        )
        raise PaymentProviderError(_(OUTAGE_MESSAGE)) from exc


# ------------------------------------------------------------------------------------------------ thin wrappers
# The calls that learn or close a payment object's state, shared by every path that needs them.


def retrieve_intent(acct: StripeAccount, intent_id: str) -> stripe.PaymentIntent:
    with stripe_call("payment_intent.retrieve", acct, payment_intent=intent_id):
        return acct.client.v1.payment_intents.retrieve(intent_id)


def cancel_intent(acct: StripeAccount, intent_id: str) -> stripe.PaymentIntent:
    with stripe_call("payment_intent.cancel", acct, payment_intent=intent_id):
        return acct.client.v1.payment_intents.cancel(intent_id)


def retrieve_session(acct: StripeAccount, session_id: str) -> stripe.checkout.Session:
    with stripe_call("checkout.session.retrieve", acct, session=session_id):
        return acct.client.v1.checkout.sessions.retrieve(session_id)


def expire_session(acct: StripeAccount, session_id: str) -> stripe.checkout.Session:
    with stripe_call("checkout.session.expire", acct, session=session_id):
        return acct.client.v1.checkout.sessions.expire(session_id)


def refused_as_invalid(exc: PaymentProviderError) -> bool:
    """Stripe answered, refusing the request as invalid (e.g. canceling a PaymentIntent that succeeded)."""
    return isinstance(exc.__cause__, stripe.InvalidRequestError)
