"""Opening a payment object for an order: the one path both ways to pay go through.

`open_object(order, reuse=..., create=...)` takes the order's row lock and then:
1. freezes a cart (`states.freeze`: snapshot, version + 1), or takes a frozen order's snapshot; refuses an order
   that is processing, paid, held for staff, empty, or whose total is not the one the shopper's page showed;
2. reuses the object already open for this snapshot when `reuse` finds one Stripe still lets be paid;
3. otherwise closes every other open object of the order at Stripe (`sync.close_others`), refusing if one of
   them turns out to be processing or paid, and `create`s a new one for the snapshot, telling it the attempt:
   how many objects this snapshot had before (its idempotency key is the snapshot's version and the attempt).

A new one-item order (`states.NewOrder`, from an item page's Pay or Checkout button) is made frozen with its
first object in one transaction: if Stripe cannot be reached, nothing is left behind, and the retry makes the
same order id again, so the same idempotency key.
A cart has no open object, so for a cart steps 1 and 3 are all the transaction does: if Stripe cannot be
reached, the freeze is rolled back with it and the cart stays a cart (same version, so a retry gets the same
idempotency key and Stripe replays an object whose answer was lost). For a frozen order, what Stripe reported while looking (an
object found paid, processing or closed) is kept even when the answer is a refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import IntegrityError, transaction
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from payments import gateway, states, sync
from payments.accounts import StripeAccount
from payments.errors import NotOrderOwner, ShopError
from payments.models import Order, Payment
from payments.pricing import PricedOrder

T = TypeVar("T")


def open_object(
    target: Order | states.NewOrder,
    *,
    reuse: Callable[[Order, StripeAccount], tuple[Payment, T] | None],
    create: Callable[[Order, PricedOrder, StripeAccount, int], T],
    owner: str = "",
    expected_total: int | None = None,
    email: str = "",
) -> T:
    language = get_language() or ""  # the shopper's: their order confirmation is written in it
    if isinstance(target, states.NewOrder):
        try:
            with transaction.atomic():  # the order, its line and its first object, or nothing at all
                order, priced = states.make_frozen(
                    target, expected_total=expected_total, email=email, language=language
                )
                return _opened_by(owner, order, create(order, priced, gateway.account(order.currency), 0))
        except IntegrityError:  # the same browser's other click made this order first: go on with it
            target = Order.objects.get(public_id=target.public_id)
    refusal: ShopError | None = None
    with states.locked(target.pk) as order:
        if (
            owner and order.browser and order.browser != owner
        ):  # claimed meanwhile by the browser that paid it
            raise NotOrderOwner(_("This order belongs to another shopper."))
        changed = []
        if email and email != order.email and not states.is_paid(order):
            order.email = email  # where Stripe's receipt and the shop's confirmation go
            changed.append("email")
        if language and language != order.language and not states.is_paid(order):
            order.language = language
            changed.append("language")
        if changed:
            order.save(update_fields=changed)
        if states.is_editable(order):  # any error rolls the freeze back with the rest: the cart stays a cart
            priced = states.freeze(order, expected_total=expected_total)
            return _opened_by(owner, order, create(order, priced, gateway.account(order.currency), 0))
        try:
            priced = states.freeze(order, expected_total=expected_total)
            acct = gateway.account(order.currency)
            reused = reuse(order, acct)
            if reused and not order.browser and reused[0].browser != owner:
                reused = None  # an ownerless order's object is reused only by the browser that opened it
            sync.close_others(order, keep=reused[0] if reused else None)
            if reused:
                return reused[1]
            attempt = order.payments.filter(order_version=order.version).count()
            return _opened_by(owner, order, create(order, priced, acct, attempt))
        except ShopError as exc:
            refusal = exc
    raise refusal


def _opened_by(owner: str, order: Order, opened: T) -> T:
    """A new object was recorded. An order staff made for a customer has no owner yet: the object remembers the
    browser that opened it, which owns the order once that object is paid (`lifecycle`)."""
    payment = getattr(opened, "payment", None)
    if owner and not order.browser and isinstance(payment, Payment):
        payment.browser = owner
        payment.save(update_fields=["browser"])
    return opened
