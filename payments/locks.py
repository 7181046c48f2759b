"""Row locks: every `SELECT ... FOR UPDATE` the shop takes on its own rows is taken here, in one order.

**The lock order.** Within one transaction, locks are taken in this order and never the other way round, so that
two paths never wait on each other in a cycle (PostgreSQL would break such a deadlock by failing one of them):

    0. a Stripe event's row (`lock_event`: a webhook delivery, a replayed or pending event)
    1. the order's row (`locked`, `lock_order`); one order per transaction
    2. rows that belong to that order: its payments (`locked_payment`, `lock_payment`), its refunds
       (`lock_refund`), its discount's row (`lock_discount`, held while freezing a cart with a limited
       promotion code: `promotions.hold`)

Rows of level 2 are only ever locked by a transaction that holds their order's lock, so they never wait on each
other. Nothing that holds an order's lock locks an event row, or writes one other than the event it locked
first: events waiting for a payment are processed after the news that made it known has committed
(`webhooks.process_waiting`), each in a transaction of its own.

A lock is waited for at most `settings.ORDER_LOCK_WAIT` seconds (every connection's PostgreSQL `lock_timeout`)
or, for a webhook delivery, `WEBHOOK_LOCK_WAIT` (it then answers 503 and Stripe delivers it again); waiting too
long raises `OrderBusy`. A row lock is held across a Stripe call only for that call's short budget
(STRIPE_TIMEOUT times its attempts, see `core/settings.py`).

**The order is checked.** Each lock taken here is remembered until its transaction ends; a lock taken against
the order above is logged as an error and, when `STRICT` is set (the test suite sets it), raises
`LockOrderError` and is kept in `violations`, so that every path the tests drive checks the order.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.db import OperationalError, connection, transaction
from django.utils.translation import gettext as _

from payments.errors import OrderBusy
from payments.models import Discount, Order, Payment, Refund, StripeEvent

logger = logging.getLogger("payments.locks")

# How long a webhook delivery waits for an order's lock: a few seconds, then it answers 503 and Stripe delivers
# it again (a request waits settings.ORDER_LOCK_WAIT, as long as one Stripe call may hold it).
WEBHOOK_LOCK_WAIT = 3.0

EVENT, ORDER, ORDER_ROWS = 0, 1, 2
LEVEL_NAMES = {EVENT: "event", ORDER: "order", ORDER_ROWS: "order's rows"}

# Set by the test suite: a lock taken against the order raises `LockOrderError` and is kept in `violations`.
STRICT = False
violations: list[str] = []


class LockOrderError(RuntimeError):
    """A lock taken against the lock order above: a bug that can deadlock, never something a user causes."""


@dataclass(frozen=True)
class Held:
    level: int
    table: str
    pk: object


class _State(threading.local):
    def __init__(self) -> None:
        self.key: object = None
        self.sentinel: Callable[[], None] | None = None
        self.held: list[Held] = []


_state = _State()


def _pending(sentinel: Callable[[], None] | None) -> bool:
    return sentinel is not None and any(entry[1] is sentinel for entry in connection.run_on_commit)


def _transaction_key() -> object:
    """What identifies the transaction the current locks are held in: the outermost atomic block that a test
    case did not open (a test's own transaction holds every request's; each request's block is the one that
    ends). A real transaction is told apart from the next by a commit hook it drops when it ends (committed or
    rolled back); a test's request block by its savepoint's id (unique on its connection)."""
    for i, block in enumerate(connection.atomic_blocks):
        if getattr(block, "_from_testcase", False):
            continue
        if i:
            return ("savepoint", connection.savepoint_ids[i - 1] or id(block))
        if not _pending(_state.sentinel):

            def sentinel() -> None:
                """Marks a transaction as still open while it is in the commit hooks."""

            _state.sentinel = sentinel
            transaction.on_commit(sentinel)
        return ("transaction", _state.sentinel)
    return None


def held() -> list[Held]:
    """The locks taken here in the current transaction (none outside one)."""
    key = _transaction_key()
    if key is None or key != _state.key:
        return []
    return list(_state.held)


def _take(level: int, table: str, pk: object) -> None:
    """Remember a lock about to be taken, refusing (see STRICT) one taken against the lock order."""
    key = _transaction_key()
    if key is None:
        return
    if key != _state.key:
        _state.key, _state.held = key, []
    for lock in _state.held:
        against = lock.level > level
        two_orders = level == lock.level == ORDER and lock.pk != pk
        if against or two_orders:
            _violation(
                f"{table} {pk} ({LEVEL_NAMES[level]}) locked while holding {lock.table} {lock.pk} "
                f"({LEVEL_NAMES[lock.level]}); held: {[(h.table, h.pk) for h in _state.held]}"
            )
            break
    _state.held.append(Held(level, table, pk))


def _violation(message: str) -> None:
    logger.error("lock order broken: %s", message)
    if STRICT:
        violations.append(message)
        raise LockOrderError(message)


# ------------------------------------------------------------------------------------------------ waiting


def wait_at_most(seconds: float) -> None:
    """Row locks taken in the current transaction are waited for at most `seconds` (PostgreSQL; SQLite takes
    its one write lock when a transaction starts and waits for it as configured in settings)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{int(seconds * 1000)}ms"])


@contextmanager
def busy_as_error() -> Iterator[None]:
    """Turn PostgreSQL's "lock not available" (the wait ran out) into `OrderBusy` (503, retry soon)."""
    try:
        yield
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) == "55P03":
            raise OrderBusy(
                _("This order is being updated right now; please try again in a moment.")
            ) from exc
        raise


# ------------------------------------------------------------------------------------------------ 0. events


def lock_event(account: str, event_id: str) -> StripeEvent | None:
    """Lock the stored event `event_id` of `account` (lock 0), in the caller's transaction; None when it is not
    stored (then the caller inserts it, which holds the same place in the unique index)."""
    _take(EVENT, "payments_stripeevent", f"{account}/{event_id}")
    with busy_as_error():
        return StripeEvent.objects.select_for_update().filter(account=account, event_id=event_id).first()


def lock_or_create_event(account: str, event_id: str, defaults: dict[str, Any]) -> tuple[StripeEvent, bool]:
    """Lock the stored event (lock 0), storing it with `defaults` first when it is not stored yet."""
    _take(EVENT, "payments_stripeevent", f"{account}/{event_id}")
    return StripeEvent.objects.select_for_update().get_or_create(
        account=account, event_id=event_id, defaults=defaults
    )


# ------------------------------------------------------------------------------------------------ 1. orders


@contextmanager
def locked(order_pk: int, *, wait: float | None = None) -> Iterator[Order]:
    """A transaction holding the order's row lock (lock 1); yields the order as it is now. `wait`: wait for it
    at most this long in this transaction (default: settings.ORDER_LOCK_WAIT, every connection's)."""
    with transaction.atomic():
        if wait is not None:
            wait_at_most(wait)
        _take(ORDER, "payments_order", order_pk)
        with busy_as_error():
            order = Order.objects.select_for_update().get(pk=order_pk)
        yield order


def lock_order(order_pk: int) -> Order | None:
    """The order's row lock (lock 1) in the caller's transaction (the admin's save); None if there is no such
    order. Only the order's own row is locked, not the rows it joins."""
    _take(ORDER, "payments_order", order_pk)
    with busy_as_error():
        return Order.objects.select_for_update(of=("self",)).filter(pk=order_pk).first()


# ------------------------------------------------------------------------------------------------ 2. the order's rows


@dataclass
class Locked:
    order: Order
    payment: Payment


@contextmanager
def locked_payment(payment: Payment, *, wait: float | None = None) -> Iterator[Locked]:
    """The order's lock, then the payment's (locks 1 and 2, in that order)."""
    with locked(payment.order_id, wait=wait) as order:
        yield Locked(order, lock_payment(payment.pk))


def lock_payment(payment_pk: int) -> Payment:
    """A payment's row lock (lock 2): only under its order's lock (`locked_payment`)."""
    _take(ORDER_ROWS, "payments_payment", payment_pk)
    with busy_as_error():
        return Payment.objects.select_for_update().get(pk=payment_pk)


def lock_refund(refund_pk: int) -> Refund:
    """A refund's row lock (lock 2), under its order's lock; with its payment and order read along."""
    _take(ORDER_ROWS, "payments_refund", refund_pk)
    with busy_as_error():
        return Refund.objects.select_for_update().select_related("payment", "order").get(pk=refund_pk)


def lock_discount(discount_pk: int) -> None:
    """A discount's row lock (lock 2), under the lock of the order being frozen with it: it serializes the
    carts racing for a limited code's last uses until each one's freeze commits or rolls back."""
    _take(ORDER_ROWS, "payments_discount", discount_pk)
    with busy_as_error():
        Discount.objects.select_for_update().filter(pk=discount_pk).exists()
