"""Calling Stripe: which account, idempotency keys, and Stripe's errors turned into words for shoppers.

The one module that calls the Stripe SDK: every request the shop makes is a thin typed function below, its
params typed with the SDK's own TypedDicts and its errors given their meaning by `classify` (through
`stripe_call`). Other modules build params and decide what to do with the answer; they never touch a client's
`v1` (`payments/tests/test_one_gateway.py` checks it)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import stripe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop
from stripe.params import (
    CouponCreateParams,
    EventListParams,
    PaymentIntentCreateParams,
    PaymentIntentListParams,
    PaymentIntentUpdateParams,
    RefundCreateParams,
    RefundListParams,
    TaxRateCreateParams,
)
from stripe.params.checkout import SessionCreateParams, SessionListParams

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
# Every Stripe request of the shop, one function each.

Params = TypeVar("Params", bound=Mapping[str, Any])
Created = TypeVar("Created")


def _create_payable(
    acct: StripeAccount,
    action: str,
    prefix: str,
    order_ref: object,
    version: int,
    attempt: int,
    params: Params,
    create: Callable[[Params, stripe.RequestOptions], Created],
) -> tuple[Created, str]:
    """The template of every object a shopper pays through (a Checkout Session, a PaymentIntent): its
    idempotency key from the order, the snapshot's version, the attempt within it and the params' digest (a
    retried identical request gets the first object back, a new amount never meets an old key), then the call.
    Returns the object and the key (stored on the `Payment` row)."""
    key = idempotency_key(prefix, order_ref, f"v{version}", attempt, params=params)
    with stripe_call(action, acct, order=order_ref):
        return create(params, {"idempotency_key": key}), key


def create_session(
    acct: StripeAccount, params: SessionCreateParams, *, order_ref: object, version: int, attempt: int
) -> tuple[stripe.checkout.Session, str]:
    """A Checkout Session for the order's snapshot `version` (see `_create_payable`)."""
    return _create_payable(
        acct,
        "checkout.session.create",
        "checkout",
        order_ref,
        version,
        attempt,
        params,
        lambda p, options: acct.client.v1.checkout.sessions.create(params=p, options=options),
    )


def create_intent(
    acct: StripeAccount, params: PaymentIntentCreateParams, *, order_ref: object, version: int, attempt: int
) -> tuple[stripe.PaymentIntent, str]:
    """A PaymentIntent for the order's snapshot `version` (see `_create_payable`)."""
    return _create_payable(
        acct,
        "payment_intent.create",
        "pi",
        order_ref,
        version,
        attempt,
        params,
        lambda p, options: acct.client.v1.payment_intents.create(params=p, options=options),
    )


def update_intent(
    acct: StripeAccount, intent_id: str, params: PaymentIntentUpdateParams, *, idempotency_key: str
) -> stripe.PaymentIntent:
    with stripe_call("payment_intent.update", acct, payment_intent=intent_id):
        return acct.client.v1.payment_intents.update(
            intent_id, params=params, options={"idempotency_key": idempotency_key}
        )


def create_coupon(
    acct: StripeAccount, params: CouponCreateParams, *, idempotency_key: str, discount: int
) -> stripe.Coupon:
    with stripe_call("coupon.create", acct, discount=discount):
        return acct.client.v1.coupons.create(params=params, options={"idempotency_key": idempotency_key})


def create_tax_rate(
    acct: StripeAccount, params: TaxRateCreateParams, *, idempotency_key: str, tax: int
) -> stripe.TaxRate:
    with stripe_call("tax_rate.create", acct, tax=tax):
        return acct.client.v1.tax_rates.create(params=params, options={"idempotency_key": idempotency_key})


def create_refund(
    acct: StripeAccount, params: RefundCreateParams, *, idempotency_key: str, payment: str, refund: int
) -> stripe.Refund:
    with stripe_call("refund.create", acct, payment=payment, refund=refund):
        return acct.client.v1.refunds.create(params=params, options={"idempotency_key": idempotency_key})


def list_refunds(
    acct: StripeAccount, params: RefundListParams, *, payment: str
) -> stripe.ListObject[stripe.Refund]:
    """One page of refunds (the caller pages on, as it keeps what it found)."""
    with stripe_call("refund.list", acct, payment=payment):
        return acct.client.v1.refunds.list(params=params)


def list_sessions(acct: StripeAccount, params: SessionListParams) -> list[dict[str, Any]]:
    """Every Checkout Session the list names, all pages (newest first, as Stripe lists them)."""
    with stripe_call("checkout.session.list", acct):
        return [o.to_dict() for o in acct.client.v1.checkout.sessions.list(params=params).auto_paging_iter()]


def list_intents(acct: StripeAccount, params: PaymentIntentListParams) -> list[dict[str, Any]]:
    """Every PaymentIntent the list names, all pages (newest first)."""
    with stripe_call("payment_intent.list", acct):
        return [o.to_dict() for o in acct.client.v1.payment_intents.list(params=params).auto_paging_iter()]


def list_events(acct: StripeAccount, params: EventListParams) -> list[dict[str, Any]]:
    """Every event the list names, all pages (newest first)."""
    with stripe_call("event.list", acct):
        return [e.to_dict() for e in acct.client.v1.events.list(params=params).auto_paging_iter()]


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


def signature_problem(payload: bytes, signature: str, secret: str) -> str | None:
    """None when `signature` (a `Stripe-Signature` header) proves `payload` was signed with `secret` recently
    enough (Stripe's tolerance); otherwise what is wrong, in words. Only the signature (and its age) is checked:
    building the SDK's Event object would fail with an AttributeError on a signed body that is JSON but not an
    object (a list, a number), i.e. a 500."""
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, stripe.Webhook.DEFAULT_TOLERANCE)
    except stripe.SignatureVerificationError:
        return "Invalid signature."
    except ValueError:  # not UTF-8: the SDK cannot even compute the signature of it
        return "The body is not a Stripe event."
    return None


def refused_as_invalid(exc: PaymentProviderError) -> bool:
    """Stripe answered, refusing the request (e.g. canceling a PaymentIntent that succeeded)."""
    return isinstance(exc, StripeRefused)
