"""Opening a payment object for an order: the one path both ways to pay go through.

`open_object(order, reuse=..., create=...)` takes the order's row lock and then:
1. freezes a cart (`freezing.freeze`: snapshot, version + 1), or takes a frozen order's snapshot; refuses an order
   that is processing, paid, held for staff, empty, or whose total is not the one the shopper's page showed;
2. reuses the object already open for this snapshot when `reuse` finds one Stripe still lets be paid;
3. otherwise closes every other open object of the order at Stripe (`sync.close_others`), refusing if one of
   them turns out to be processing or paid, and `create`s a new one for the snapshot, telling it the attempt.

The attempt is counted before any of this, in its own committed write (`next_attempt`): every click is a new
attempt, and the object's idempotency key is the order, the snapshot's version and the attempt. The SDK's own
retries of one call keep its key (a lost answer is replayed by Stripe); a call that ended without an answer (a
500, which Stripe saves and replays for that key for 24 hours, or a lost connection) leaves the next click a new
key. An object the unanswered call may have made carries the order's metadata, so reconciliation finds it.

A new one-item order (`freezing.NewOrder`, from an item page's Pay or Checkout button) is made frozen with its
first object in one transaction: if Stripe cannot be reached, nothing is left behind but the attempt count.
A cart has no open object, so for a cart steps 1 and 3 are all the transaction does: if Stripe cannot be
reached, the freeze is rolled back with it and the cart stays a cart. For a frozen order, what Stripe reported
while looking (an object found paid, processing or closed) is kept even when the answer is a refusal.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TypeVar

from django.db import IntegrityError, connection, transaction
from django.utils.translation import get_language

from payments import freezing, gateway, locks, states, sync
from payments.accounts import StripeAccount
from payments.errors import ShopError
from payments.models import Order, PayAttempt, Payment
from payments.pricing import PricedOrder

T = TypeVar("T")


def open_object(
    target: Order | freezing.NewOrder,
    *,
    reuse: Callable[[Order, StripeAccount], tuple[Payment, T] | None],
    create: Callable[[Order, PricedOrder, StripeAccount, int], T],
    owner: str = "",
    expected_total: int | None = None,
    email: str = "",
) -> T:
    language = get_language() or ""  # the shopper's: their order confirmation is written in it
    attempt = next_attempt(target.public_id)
    if isinstance(target, freezing.NewOrder):
        try:
            with transaction.atomic():  # the order, its line and its first object, or nothing at all
                order, priced = freezing.make_frozen(
                    target, expected_total=expected_total, email=email, language=language
                )
                return _opened_by(
                    owner, order, create(order, priced, gateway.account(order.currency), attempt)
                )
        except IntegrityError:  # the same browser's other click made this order first: go on with it
            target = Order.objects.get(public_id=target.public_id)
    refusal: ShopError | None = None
    with locks.locked(target.pk) as order:
        if (
            owner and order.browser and order.browser != owner
        ):  # claimed meanwhile by the browser that paid it
            raise states.not_owner()
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
            priced = freezing.freeze(order, expected_total=expected_total)
            return _opened_by(owner, order, create(order, priced, gateway.account(order.currency), attempt))
        try:
            priced = freezing.freeze(order, expected_total=expected_total)
            acct = gateway.account(order.currency)
            reused = reuse(order, acct)
            if reused and not order.browser and reused[0].browser != owner:
                reused = None  # an ownerless order's object is reused only by the browser that opened it
            sync.close_others(order, keep=reused[0] if reused else None)
            if reused:
                return reused[1]
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


def next_attempt(order_public_id: uuid.UUID) -> int:
    """Count one more attempt to open a payment object for the order and return it (1, 2, 3, ...): one statement,
    committed at once, since this runs outside the order's transaction. Concurrent clicks each get their own
    number (the upsert takes the row's lock)."""
    table = connection.ops.quote_name(PayAttempt._meta.db_table)
    key = PayAttempt._meta.get_field("order_public_id").get_db_prep_value(order_public_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (order_public_id, count) VALUES (%s, 1) "  # noqa: S608 - names, not input
            f"ON CONFLICT (order_public_id) DO UPDATE SET count = {table}.count + 1 RETURNING count",
            [key],
        )
        row = cursor.fetchone()
    assert row is not None
    return int(row[0])
