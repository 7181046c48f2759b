"""PaymentIntents for orders: created for the order's frozen snapshot when the shopper pays, reused while they
can still be paid, never updated and never doubled.

`open_intent(order)` goes through `paying.open_object` under the order's row lock, so a double click and a
second tab arriving together see one PaymentIntent: the order is frozen, the PaymentIntent already open for
this snapshot is reused while Stripe still lets it be paid, otherwise every other open object of the order (a
Checkout Session, an older PaymentIntent) is closed and a new one created. A PaymentIntent's amount is
never updated: a changed cart means "change order", which cancels it first, and a new snapshot gets a new
PaymentIntent. Every create carries an idempotency key of its own: the order, the snapshot's version, the
attempt within it and a digest of the params, so a retry of the same request gets the same object back and a
new amount never meets an old key. The `Payment` row is written only after Stripe answered.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import stripe
from stripe.params import PaymentIntentCreateParams

from payments import freezing, gateway, lifecycle, paying, sync
from payments.accounts import StripeAccount
from payments.models import Order, Payment, PaymentKind, PaymentStatus
from payments.pricing import PricedOrder, describe

logger = logging.getLogger("payments.intents")

REUSABLE = ("requires_payment_method", "requires_confirmation", "requires_action")


@dataclass(frozen=True)
class OpenIntent:
    payment: Payment
    client_secret: str
    amount: int
    currency: str
    publishable_key: str


def create_params(order: Order, priced: PricedOrder, attempt: int) -> PaymentIntentCreateParams:
    params: PaymentIntentCreateParams = {
        "amount": priced.total,
        "currency": priced.currency,
        "automatic_payment_methods": {"enabled": True},
        "description": describe(order.public_id, priced),
        "metadata": {
            "order_id": str(order.public_id),
            "order_version": str(order.version),
            "payment_ref": f"{order.public_id}:{order.version}:{attempt}",
        },
    }
    if order.email:
        params["receipt_email"] = order.email  # Stripe's receipt; the shop sends its own confirmation too
    return params


def _reuse(order: Order, acct: StripeAccount) -> tuple[Payment, OpenIntent] | None:
    """The PaymentIntent open for this snapshot, if Stripe still lets it be paid (its client secret is never
    stored, so it is asked for); otherwise its state is applied, and a refusal raised if it is in flight."""
    payment = (
        order.payments.filter(
            kind=PaymentKind.PAYMENT_INTENT,
            status=PaymentStatus.OPEN,
            account=acct.currency,
            order_version=order.version,
        )
        .order_by("-id")
        .first()
    )
    if payment is None:
        return None
    intent = gateway.retrieve_intent(acct, payment.stripe_id)
    if intent.status in REUSABLE and intent.amount == payment.amount and intent.currency == payment.currency:
        if order.email and intent.receipt_email != order.email:
            intent = _update_receipt_email(acct, intent.id, order.email)
        return payment, OpenIntent(
            payment, intent.client_secret or "", intent.amount, intent.currency, acct.publishable_key
        )
    sync.refuse_if_in_flight(lifecycle.apply_payment_intent(payment, intent.to_dict()))
    return None


def _update_receipt_email(acct: StripeAccount, intent_id: str, email: str) -> stripe.PaymentIntent:
    """The shopper typed another address for the receipt: the open PaymentIntent takes it. The key is new for
    every update (an address changed back and forth must not meet an earlier key's answer)."""
    key = f"pi-receipt:{intent_id}:{uuid.uuid4().hex}"
    with gateway.stripe_call("payment_intent.update", acct, payment_intent=intent_id):
        return acct.client.v1.payment_intents.update(
            intent_id, params={"receipt_email": email}, options={"idempotency_key": key}
        )


def open_intent(
    order: Order | freezing.NewOrder, *, owner: str = "", expected_total: int | None = None, email: str = ""
) -> OpenIntent:
    """The order's one payable PaymentIntent, for its frozen snapshot (see `paying.open_object`); `email`: where
    the receipt goes (stored on the order, sent to Stripe as `receipt_email`)."""
    return paying.open_object(
        order, reuse=_reuse, create=_create, owner=owner, expected_total=expected_total, email=email
    )


def _create(order: Order, priced: PricedOrder, acct: StripeAccount, attempt: int) -> OpenIntent:
    """Create the PaymentIntent (a retried identical request gets the first one back) and record it."""
    params = create_params(order, priced, attempt)
    key = gateway.idempotency_key("pi", order.public_id, f"v{order.version}", attempt, params=params)
    with gateway.stripe_call("payment_intent.create", acct, order=order.public_id):
        # The answer's few fields are read from its JSON: the SDK's object tree would be built and dropped.
        intent = acct.client.raw_request("post", "/v1/payment_intents", **params, idempotency_key=key).data
    intent_id, amount = str(intent["id"]), int(intent["amount"])
    payment = Payment.objects.record(
        order,
        PaymentKind.PAYMENT_INTENT,
        acct.currency,
        intent_id,
        livemode=intent.get("livemode") is True,
        payment_intent_id=intent_id,
        order_version=order.version,
        amount=priced.total,
        stripe_amount_total=amount,
        stripe_status=str(intent.get("status") or ""),
        idempotency_key=key,
    )
    logger.info(
        "payment_intent %s created order=%s v%s amount=%s",
        intent_id,
        order.public_id,
        order.version,
        amount,
    )
    return OpenIntent(
        payment,
        str(intent.get("client_secret") or ""),
        amount,
        str(intent["currency"]),
        acct.publishable_key,
    )
