"""Row locks are taken through `payments.locks` only, in the order it writes.

Every test checks the order of the locks its paths take (the autouse fixture `_lock_order_checked`,
`payments/tests/lockorder.py`); these tests check the checker, and that no module takes a row lock by itself.
"""

from __future__ import annotations

import ast
from typing import Any

import pytest
from django.db import transaction

from catalog.models import Item
from payments import locks
from payments.models import Order, OrderLine, Payment, PaymentKind, StripeEvent
from payments.tests.test_architecture import ROOT, product_modules

# Row locks of other resources than the shop's orders: the database cache's own table (core/cache.py).
OTHER_LOCKS = {"core.cache"}


def test_every_row_lock_is_taken_through_the_locks_module() -> None:
    elsewhere = []
    for module, path in product_modules().items():
        if module == "payments.locks" or module in OTHER_LOCKS:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            by_orm = isinstance(node, ast.Attribute) and node.attr == "select_for_update"
            by_sql = (
                isinstance(node, ast.Constant) and isinstance(node.value, str) and "FOR UPDATE" in node.value
            )
            if by_orm or by_sql:
                elsewhere.append(f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}")
    assert elsewhere == []


def order_with_payment(item: Item) -> tuple[Order, Payment]:
    order = Order.objects.create(currency="usd", browser="b")
    OrderLine.objects.create(order=order, item=item, quantity=1, unit_price=item.amount)
    payment = Payment.objects.create(
        order=order,
        kind=PaymentKind.PAYMENT_INTENT,
        account="usd",
        stripe_id="pi_lock_order",
        amount=100,
        currency="usd",
        idempotency_key="k",
    )
    return order, payment


@pytest.mark.django_db
def test_the_lock_order_holds_in_one_transaction_and_a_lock_against_it_is_refused(usd_item: Item) -> None:
    order, payment = order_with_payment(usd_item)
    other = Order.objects.create(currency="usd", browser="b")
    StripeEvent.objects.create(account="usd", event_id="evt_1", type="x", payload={})
    with transaction.atomic():  # the webhook's order: event, order, payment
        locks.lock_event("usd", "evt_1")
        with locks.locked_payment(payment):
            pass
    with locks.locked(order.pk):  # a new transaction: nothing held from the last one
        locks.lock_refund
    refused: list[Any] = [
        lambda: locks.lock_event("usd", "evt_1"),  # an event after its order
        lambda: locks.locked(other.pk).__enter__(),  # a second order
    ]
    for take in refused:
        with pytest.raises(locks.LockOrderError), transaction.atomic(), locks.locked(order.pk):
            take()
    with pytest.raises(locks.LockOrderError), transaction.atomic():
        locks.lock_payment(payment.pk)  # a payment before its order
        with locks.locked(order.pk):
            pass
    assert len(locks.violations) == 3
    locks.violations.clear()  # seen: the fixture checks the rest of the test


@pytest.mark.django_db
def test_locks_are_held_until_their_transaction_ends(usd_item: Item) -> None:
    _order, payment = order_with_payment(usd_item)
    with transaction.atomic():
        with locks.locked_payment(payment):
            pass
        # The inner block was released, not committed: the order's lock is held until this block ends.
        assert [h.table for h in locks.held()] == ["payments_order", "payments_payment"]
    assert locks.held() == []
    with transaction.atomic():
        assert locks.held() == []
        locks.lock_event("usd", "evt_2")  # the order's lock went with the last transaction
