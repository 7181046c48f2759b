"""Queries per request, counted in a process of its own (`python -m bench.run --role queries`) with Django's
test client and `CaptureQueriesContext`, against the benchmark's database and emulator: what each scenario's
request costs the database, for a new shopper and a returning one, and that no count grows with the catalog or
the order.
"""

from __future__ import annotations

import os
from typing import Any

EXTRA_ITEMS = 30  # items (and order lines) added to check that no query count grows with them
WRITES = ("INSERT", "UPDATE", "DELETE")


def count_queries(spec: dict[str, Any]) -> dict[str, Any]:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    django.setup()
    from decimal import Decimal

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from djmoney.money import Money

    from catalog.models import Item
    from core.browser import SESSION_KEY
    from payments.models import Order, OrderLine

    def measure(client: Client, method: str, path: str, **extra: Any) -> dict[str, Any]:
        with CaptureQueriesContext(connection) as ctx:
            response = getattr(client, method)(path, **extra)
        sql = [q["sql"] for q in ctx.captured_queries]
        return {
            "status": response.status_code,
            "queries": len(sql),
            "writes": sum(1 for s in sql if s.lstrip().upper().startswith(WRITES)),
            "sql": [s[:160] for s in sql],
        }

    def browser() -> Client:
        return Client(HTTP_HOST="127.0.0.1", HTTP_ACCEPT="application/json")

    item_id = spec["item_id"]
    item = Item.objects.get(pk=item_id)
    pay = {"expected_amount": spec["amount"], "page_age_ms": "1500"}
    out: dict[str, Any] = {"floor": measure(browser(), "get", "/bench/floor")}
    measure(browser(), "get", f"/item/{item_id}")  # the first render fills the shared cache
    returning = browser()
    out["item_new"] = measure(returning, "get", f"/item/{item_id}")
    out["item_returning"] = measure(returning, "get", f"/item/{item_id}")
    repeat = browser()
    out["buy_new"] = measure(repeat, "get", f"/buy/{item_id}")
    out["buy_repeat"] = measure(repeat, "get", f"/buy/{item_id}")
    repeat = browser()
    out["pay_new"] = measure(repeat, "post", f"/item/{item_id}/intent", data=pay)
    out["pay_repeat"] = measure(repeat, "post", f"/item/{item_id}/intent", data=pay)

    owner = returning.session[SESSION_KEY]
    small = Order.objects.create(currency=item.currency, browser=owner)
    OrderLine.objects.create(order=small, item=item, quantity=1, unit_price=item.amount)
    out["index_small"] = measure(returning, "get", "/")
    big = Order.objects.create(currency=item.currency, browser=owner)
    for n in range(EXTRA_ITEMS):
        extra = Item.objects.create(
            name=f"Bench item {n}",
            description="Added by bench.run",
            price=Money(Decimal("3.00"), item.currency.upper()),  # type: ignore[misc]
        )
        OrderLine.objects.create(order=big, item=extra, quantity=1 + n % 5, unit_price=extra.amount)
    out["index_big"] = measure(returning, "get", "/")
    out["order_small"] = measure(returning, "get", f"/order/{small.public_id}")
    out["order_big"] = measure(returning, "get", f"/order/{big.public_id}")
    out["items"] = (Item.objects.count() - EXTRA_ITEMS, Item.objects.count())
    return out
