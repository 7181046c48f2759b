"""Opening a payment object for an order: the one path both ways to pay go through.

`open_object(order, reuse=..., create=...)` takes the order's row lock and then:
1. freezes a cart (`states.freeze`: snapshot, version + 1), or takes a frozen order's snapshot; refuses an order
   that is processing, paid, held for staff, empty, or whose total is not the one the shopper's page showed;
2. reuses the object already open for this snapshot when `reuse` finds one Stripe still lets be paid;
3. otherwise closes every other open object of the order at Stripe (`sync.close_others`), refusing if one of
   them turns out to be processing or paid, and `create`s a new one for the snapshot.

A cart has no open object, so for a cart steps 1 and 3 run in one savepoint: if Stripe cannot be reached, the
freeze is undone with it and the cart stays a cart (same version, so a retry gets the same idempotency key and
Stripe replays an object whose answer was lost). For a frozen order, what Stripe reported while looking (an
object found paid, processing or closed) is kept even when the answer is a refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.db import transaction

from payments import gateway, states, sync
from payments.accounts import StripeAccount
from payments.errors import ShopError
from payments.models import Order, Payment
from payments.pricing import PricedOrder

T = TypeVar("T")


def open_object(
    order: Order,
    *,
    reuse: Callable[[Order, StripeAccount], tuple[Payment, T] | None],
    create: Callable[[Order, PricedOrder, StripeAccount], T],
    owner: str = "",
    expected_total: int | None = None,
    email: str = "",
) -> T:
    refusal: ShopError | None = None
    with states.locked(order.pk) as order:
        if email and email != order.email and not states.is_paid(order):
            order.email = email  # where Stripe's receipt and the shop's confirmation go
            order.save(update_fields=["email"])
        try:
            if states.is_editable(order):
                with transaction.atomic():
                    priced = states.freeze(order, owner=owner, expected_total=expected_total)
                    return create(order, priced, gateway.account(order.currency))
            priced = states.freeze(order, owner=owner, expected_total=expected_total)
            acct = gateway.account(order.currency)
            reused = reuse(order, acct)
            sync.close_others(order, keep=reused[0] if reused else None)
            return reused[1] if reused else create(order, priced, acct)
        except ShopError as exc:
            refusal = exc
    raise refusal
