"""The lock order of `payments.locks`, checked in every test (the autouse fixture `_lock_order_checked` in the
repository's conftest.py): `locks.STRICT` makes a lock taken against the order raise `LockOrderError` where it is
taken and be kept in `locks.violations`, which fails the test even when the code under test caught the error;
and an event row written by a transaction that holds an order's lock, other than the event it locked first,
is a violation too, and so is a `SELECT ... FOR UPDATE` of the shop's rows (PostgreSQL) that was not taken through
`payments.locks` (both read from the SQL the test's connection runs)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection

from payments import locks
from payments.models import StripeEvent

EVENT_WRITE = re.compile(r'^\s*(UPDATE|INSERT INTO|DELETE FROM)\s+"payments_stripeevent"', re.IGNORECASE)
ONE_EVENT = re.compile(r'WHERE "payments_stripeevent"\."id" = %s$')


ROW_LOCK = re.compile(r'^SELECT .* FROM "(payments_\w+)".* FOR UPDATE', re.DOTALL)
# The rows the lock order is about (a stray payment's `update_or_create` in the sweep locks a row of its own).
ORDERED_TABLES = {
    "payments_stripeevent",
    "payments_order",
    "payments_payment",
    "payments_refund",
    "payments_discount",
}


def _checked(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
    """Runs around every statement of the test's connection."""
    lock = ROW_LOCK.match(sql)
    if lock and lock.group(1) in ORDERED_TABLES and lock.group(1) not in {h.table for h in locks.held()}:
        locks.violations.append(f"a row lock taken outside payments.locks: {sql[:160]}")
    if EVENT_WRITE.match(sql):
        held = locks.held()
        orders = [h for h in held if h.level == locks.ORDER]
        if orders:
            locked_events = {h.pk for h in held if h.level == locks.EVENT}
            row = None
            if ONE_EVENT.search(sql) and params:
                row = StripeEvent.objects.filter(pk=params[-1]).values_list("account", "event_id").first()
            if row is None or f"{row[0]}/{row[1]}" not in locked_events:
                locks.violations.append(
                    f"an event row written while holding order {orders[0].pk}'s lock: {sql[:120]}"
                )
    return execute(sql, params, many, context)


@contextmanager
def lock_order_checked() -> Iterator[list[str]]:
    """Check the lock order while the block runs; yields the violations found (empty when all went well)."""
    strict = locks.STRICT
    locks.STRICT = True
    locks.violations.clear()
    try:
        with connection.execute_wrapper(_checked):
            yield locks.violations
    finally:
        locks.STRICT = strict
