"""Which of the shop's payments a Stripe object belongs to, including objects the shop has no row for yet.

A Stripe object the shop created always names its order in its metadata (`order_id`, `order_version`; a
PaymentIntent the shop made for the card form also carries `payment_ref`, which a Checkout Session's own
PaymentIntent does not). So an object the shop does not know can still be placed:

- **known** (a `Payment` row for it): that row;
- **unknown but naming an order the shop has**: the answer to the request that created it was lost (a timeout,
  a 5xx after Stripe made it) or its row is not committed yet. It is **adopted**: recorded from Stripe's own
  object (`Payment.origin` = found at Stripe) under the order's lock and then applied by `lifecycle` like any
  other: paid if it took exactly the snapshot, held for staff otherwise. An adopted object was never handed to
  a shopper, so while it is open it is closed (`sync.tidy_up`);
- **naming an order the shop does not have yet** (the request creating both has not committed), or a refund or
  dispute of a payment not known yet: `NotKnownYet`; the event is kept pending and tried again;
- **naming no order**: not the shop's (`None`); reconciliation lists such payments for staff
  (`StrayPayment`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from payments import locks, stripe_fields
from payments.accounts import StripeAccount
from payments.models import Order, Payment, PaymentKind, PaymentOrigin, PaymentStatus

logger = logging.getLogger("payments.matching")

StripeDict = Mapping[str, Any]


class NotKnownYet(Exception):
    """The object belongs to the shop, but what it belongs to is not (yet) in the shop's database."""


def _metadata(obj: StripeDict) -> Mapping[str, Any]:
    metadata = obj.get("metadata")
    return metadata if isinstance(metadata, Mapping) else {}


def named_order_id(obj: StripeDict) -> uuid.UUID | None:
    """The order a Stripe object names (its metadata's `order_id`, or a session's `client_reference_id`)."""
    value = _metadata(obj).get("order_id") or obj.get("client_reference_id")
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def made_for_card_form(intent: StripeDict) -> bool:
    """A PaymentIntent the shop created for its card form (not one Checkout made for its session)."""
    return bool(_metadata(intent).get("payment_ref"))


def _version(obj: StripeDict) -> int:
    value = str(_metadata(obj).get("order_version") or "")
    return int(value) if value.isdigit() and len(value) < 10 else 0


def known(acct: StripeAccount, kind: str, object_id: str) -> Payment | None:
    return (
        Payment.objects.filter(account=acct.currency, kind=kind, stripe_id=object_id).order_by("-id").first()
    )


def by_payment_intent(acct: StripeAccount, intent_id: str) -> Payment | None:
    """The payment whose money moved through `intent_id`: the card form's PaymentIntent, or the Checkout
    Session that made it."""
    if not intent_id:
        return None
    return Payment.objects.filter(account=acct.currency, payment_intent_id=intent_id).order_by("-id").first()


def payment_for(acct: StripeAccount, kind: str, obj: StripeDict) -> Payment | None:
    """The shop's payment for a PaymentIntent or Checkout Session, adopting an unknown one that names an order
    of the shop; None when it is not the shop's. `NotKnownYet` when it names an order the shop does not have
    yet, or is a Checkout Session's PaymentIntent whose session is not known yet."""
    object_id = stripe_fields.object_id(obj)
    payment = known(acct, kind, object_id)
    if payment is not None:
        return payment
    order_id = named_order_id(obj)
    if order_id is None:
        return None
    if kind == PaymentKind.PAYMENT_INTENT and not made_for_card_form(obj):
        raise NotKnownYet(f"{object_id} is a Checkout Session's PaymentIntent; its session is not known yet")
    order = Order.objects.filter(public_id=order_id).first()
    if order is None:
        raise NotKnownYet(f"{object_id} names order {order_id}, which is not in the shop's database yet")
    if order.currency != acct.currency:
        logger.warning(
            "%s in the %s account names order %s in %s", object_id, acct.currency, order_id, order.currency
        )
        return None  # every order is paid through its currency's account: this object is not its payment
    return adopt(acct, kind, obj, order)


def adopt(acct: StripeAccount, kind: str, obj: StripeDict, order: Order) -> Payment:
    """Record a Stripe object the shop has no row for (under the order's lock; the row may have been written
    meanwhile by the request that created the object, which then wins). `lifecycle` applies its state next."""
    object_id = stripe_fields.object_id(obj)
    with locks.locked(order.pk) as order:
        payment = known(acct, kind, object_id)
        if payment is not None:
            return payment
        amount = obj.get("amount") if kind == PaymentKind.PAYMENT_INTENT else obj.get("amount_total")
        payment = Payment.objects.create(
            order=order,
            kind=kind,
            account=acct.currency,
            origin=PaymentOrigin.STRIPE,
            stripe_id=object_id,
            livemode=obj.get("livemode") is True,
            payment_intent_id=object_id if kind == PaymentKind.PAYMENT_INTENT else "",
            order_version=_version(obj),
            amount=stripe_fields.integer(amount),
            currency=str(obj.get("currency") or order.currency).lower()[:3],
            status=PaymentStatus.OPEN,
            idempotency_key="(found at Stripe)",
        )
        order.note(
            f"{payment.get_kind_display()} {object_id} was found at Stripe naming this order (the shop had not "
            "recorded it) and was recorded from Stripe's object."
        )
        order.save(update_fields=["attention_note", "updated_at"])
    logger.warning("adopted %s %s for order %s", kind, object_id, order.public_id)
    return payment


def paid_through(acct: StripeAccount, obj: StripeDict) -> Payment | None:
    """The payment a charge, refund or dispute is about (through its `payment_intent`). None when it names no
    PaymentIntent; `NotKnownYet` when the PaymentIntent is not known yet (a Checkout Session's is learned when
    the session completes; the event waits for it)."""
    intent_id = stripe_fields.payment_intent_id(obj)
    if not intent_id:
        return None
    payment = by_payment_intent(acct, intent_id)
    if payment is None:
        raise NotKnownYet(f"no payment of the shop went through {intent_id} (yet)")
    return payment
