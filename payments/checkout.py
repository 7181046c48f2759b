"""Stripe Checkout Sessions for an order: one line per order line, the discount as a coupon and the taxes as
tax rates, so Checkout shows them; coupons and tax rates live in the order's Stripe account."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from stripe.params import CouponCreateParams, TaxRateCreateParams
from stripe.params.checkout import (
    SessionCreateParams,
    SessionCreateParamsLineItem,
    SessionCreateParamsLineItemPriceDataProductData,
)

from payments import freezing, gateway, paying, promotions, sync
from payments.accounts import StripeAccount
from payments.errors import CheckoutUnavailable
from payments.models import (
    Order,
    Payment,
    PaymentKind,
    PaymentStatus,
    StripeObject,
    mixes_inclusive_and_exclusive,
)
from payments.pricing import DiscountInput, PricedOrder, TaxInput, describe

logger = logging.getLogger("payments.checkout")

# A session is reused only while it has at least this long left before Stripe expires it.
REUSE_MARGIN = timedelta(minutes=5)


# The languages Checkout (SessionCreateParams' `locale`) and Stripe.js (`Stripe(pk, {locale})`) are displayed in.
# fmt: off
STRIPE_LOCALES = frozenset([
    "bg", "cs", "da", "de", "el", "en", "en-GB", "es", "es-419", "et", "fi", "fil", "fr", "fr-CA", "hi-IN", "hr",
    "hu", "id", "it", "ja", "ko", "lt", "lv", "ms", "mt", "nb", "nl", "pl", "pt", "pt-BR", "ro", "ru", "sk", "sl",
    "sv", "th", "tr", "vi", "zh", "zh-HK", "zh-TW",
])
# fmt: on


def stripe_locale_for(language: str | None) -> str:
    """The shopper's language as Stripe names it (`ru`, `en`), or `auto` (the browser's) if Stripe lacks it."""
    if not language:
        return "auto"
    for candidate in (language, language.split("-")[0]):
        if candidate in STRIPE_LOCALES:
            return candidate
    return "auto"


def _fingerprint(*parts: object) -> str:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:32]


def _remembered(kind: str, local_id: int, acct: StripeAccount, fingerprint: str) -> str | None:
    return (
        StripeObject.objects.filter(
            kind=kind, local_id=local_id, account=acct.currency, fingerprint=fingerprint
        )
        .values_list("stripe_id", flat=True)
        .first()
    )


def _remember(kind: str, local_id: int, acct: StripeAccount, fingerprint: str, stripe_id: str) -> None:
    try:
        with transaction.atomic():
            StripeObject.objects.create(
                kind=kind,
                local_id=local_id,
                account=acct.currency,
                fingerprint=fingerprint,
                stripe_id=stripe_id,
            )
    except IntegrityError:  # a concurrent request stored the same object (same idempotency key)
        pass


def coupon_for(discount: DiscountInput, amount: int, currency: str, acct: StripeAccount) -> str:
    """The Stripe coupon taking exactly `amount` (the order's discount, in minor units) off a session in
    `currency`, created once per account and amount (coupons are immutable). A fixed `amount_off` leaves Stripe
    no rounding of a percentage to do (README, "What Stripe documents"); its name says what the discount is."""
    name = f"{discount.name} ({discount.code})" if discount.code else discount.name  # Checkout shows the code
    params: CouponCreateParams = {
        "name": name[:40],
        "duration": "once",
        "amount_off": amount,
        "currency": currency.lower(),
        "metadata": {"discount_id": str(discount.id)},
    }
    fingerprint = _fingerprint(sorted(params.items()))
    found = _remembered(StripeObject.Kind.COUPON, discount.id, acct, fingerprint)
    if found:
        return found
    with gateway.stripe_call("coupon.create", acct, discount=discount.id):
        coupon = acct.client.v1.coupons.create(
            params=params, options={"idempotency_key": f"coupon:{discount.id}:{fingerprint}"}
        )
    _remember(StripeObject.Kind.COUPON, discount.id, acct, fingerprint, coupon.id)
    return coupon.id


def tax_rate_for(tax: TaxInput, acct: StripeAccount) -> str:
    """The Stripe tax rate for this tax as it is now, created once per account (tax rates are immutable)."""
    params: TaxRateCreateParams = {
        "display_name": tax.name[:50],
        # A rate, not money: Stripe's API types it as a number; a 4-decimal percentage survives float exactly.
        "percentage": float(tax.percentage),
        "inclusive": tax.inclusive,
        "metadata": {"tax_id": str(tax.id)},
    }
    fingerprint = _fingerprint(sorted(params.items()))
    found = _remembered(StripeObject.Kind.TAX_RATE, tax.id, acct, fingerprint)
    if found:
        return found
    with gateway.stripe_call("tax_rate.create", acct, tax=tax.id):
        rate = acct.client.v1.tax_rates.create(
            params=params, options={"idempotency_key": f"tax_rate:{tax.id}:{fingerprint}"}
        )
    _remember(StripeObject.Kind.TAX_RATE, tax.id, acct, fingerprint, rate.id)
    return rate.id


def session_params(
    order: Order, priced: PricedOrder, acct: StripeAccount, *, success_url: str, cancel_url: str
) -> SessionCreateParams:
    tax_rates = [tax_rate_for(t.tax, acct) for t in priced.taxes]
    line_items: list[SessionCreateParamsLineItem] = []
    for line in priced.lines:
        product: SessionCreateParamsLineItemPriceDataProductData = {"name": line.name[:250]}
        if line.description.strip():
            product["description"] = line.description.strip()[:500]
        item: SessionCreateParamsLineItem = {
            "price_data": {
                "currency": priced.currency,
                "unit_amount": line.unit_amount,
                "product_data": product,
            },
            "quantity": line.quantity,
        }
        if tax_rates:
            item["tax_rates"] = tax_rates
        line_items.append(item)
    metadata = {"order_id": str(order.public_id), "order_version": str(order.version)}
    params: SessionCreateParams = {
        "mode": "payment",
        "line_items": line_items,
        "success_url": success_url,
        "cancel_url": cancel_url,
        "client_reference_id": str(order.public_id),
        "metadata": metadata,
        "payment_intent_data": {"metadata": metadata, "description": describe(order.public_id, priced)},
        # Checkout speaks the shopper's language (an open session of the same snapshot is reused as it was made).
        "locale": stripe_locale_for(get_language()),
    }
    if priced.discount is not None and priced.discount_total:
        params["discounts"] = [
            {"coupon": coupon_for(priced.discount, priced.discount_total, priced.currency, acct)}
        ]
    if order.email:
        params["customer_email"] = order.email  # Checkout asks for it otherwise, and it comes back when paid
    if promotions.limits_uses(order):
        params["expires_at"] = promotions.session_expiry()  # the code's use is held for minutes, not a day
    return params


@dataclass(frozen=True)
class OpenSession:
    payment: Payment
    url: str


def _reuse(order: Order, acct: StripeAccount) -> tuple[Payment, OpenSession] | None:
    """The session already open for this snapshot, with a while left before Stripe expires it. The database
    knows it is open and its page; if it was paid meanwhile, Checkout itself says so, so no call is needed."""
    payment = (
        order.payments.filter(
            kind=PaymentKind.CHECKOUT_SESSION,
            status=PaymentStatus.OPEN,
            account=acct.currency,
            order_version=order.version,
            expires_at__gt=timezone.now() + REUSE_MARGIN,
        )
        .exclude(url="")
        .order_by("-id")
        .first()
    )
    return (payment, OpenSession(payment, payment.url)) if payment is not None else None


def create_session(
    order: Order | freezing.NewOrder,
    *,
    success_url: str,
    cancel_url: str,
    owner: str = "",
    expected_total: int | None = None,
) -> OpenSession:
    """The order's one payable Checkout Session, for its frozen snapshot (see `paying.open_object`); a retried
    identical request gets the same session back through its idempotency key."""

    def create(order: Order, priced: PricedOrder, acct: StripeAccount, attempt: int) -> OpenSession:
        return _create(order, priced, acct, attempt, success_url=success_url, cancel_url=cancel_url)

    return paying.open_object(order, reuse=_reuse, create=create, owner=owner, expected_total=expected_total)


def _create(
    order: Order, priced: PricedOrder, acct: StripeAccount, attempt: int, *, success_url: str, cancel_url: str
) -> OpenSession:
    if mixes_inclusive_and_exclusive(t.tax for t in priced.taxes):
        # Made before the admin refused it: Checkout's arithmetic for it is not documented (README).
        raise CheckoutUnavailable(
            _(
                "This order's taxes cannot be shown on Stripe Checkout. Please pay by card on this page instead."
            )
        )
    params = session_params(order, priced, acct, success_url=success_url, cancel_url=cancel_url)
    key = gateway.idempotency_key("checkout", order.public_id, f"v{order.version}", attempt, params=params)
    with gateway.stripe_call("checkout.session.create", acct, order=order.public_id):
        # The answer's few fields are read from its JSON: the SDK's object tree would be built and dropped.
        session = acct.client.raw_request("post", "/v1/checkout/sessions", **params, idempotency_key=key).data
    session_id, url, expires_at = str(session["id"]), str(session.get("url") or ""), session.get("expires_at")
    payment = Payment.objects.record(
        order,
        PaymentKind.CHECKOUT_SESSION,
        acct.currency,
        session_id,
        livemode=session.get("livemode") is True,
        order_version=order.version,
        amount=priced.total,
        stripe_amount_total=session.get("amount_total"),
        stripe_status=str(session.get("status") or ""),
        url=url,
        idempotency_key=key,
        expires_at=datetime.fromtimestamp(expires_at, tz=UTC) if expires_at else None,
    )
    if session.get("amount_total") != priced.total:
        # Checkout would charge another total than the order's: never let the shopper pay it.
        logger.error(
            "checkout total differs order=%s session=%s ours=%s stripe=%s",
            order.public_id,
            session_id,
            priced.total,
            session.get("amount_total"),
        )
        sync.close(payment)
        raise CheckoutUnavailable(
            _(
                "Stripe Checkout computed another total for this order. Please pay by card on this page instead."
            )
        )
    logger.info(
        "checkout_session %s created order=%s v%s amount=%s",
        session_id,
        order.public_id,
        order.version,
        priced.total,
    )
    return OpenSession(payment, url)
