"""What the Stripe-bound endpoints cost the shop per request: database queries and Stripe calls, for a new and
a returning shopper (real transactions, as in production, so savepoints of the test's own transaction do not
count). The time they take is measured by `python -m bench.run`, not here."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from catalog.models import Item

pytestmark = pytest.mark.django_db(transaction=True)

MAX_QUERIES = 8


def cost(stripe_fake: Any, request: Any) -> tuple[int, int, list[str]]:
    calls = len(stripe_fake.requests)
    with CaptureQueriesContext(connection) as ctx:
        response = request()
    assert response.status_code == 200, response.content
    return (
        len(ctx.captured_queries),
        len(stripe_fake.requests) - calls,
        [q["sql"][:90] for q in ctx.captured_queries],
    )


@pytest.mark.parametrize("endpoint", ["buy", "intent"])
def test_a_new_and_a_returning_shopper_cost_at_most_8_queries_and_one_stripe_call(
    usd_item: Item, stripe_fake: Any, endpoint: str
) -> None:
    web = Client()

    def request() -> Any:
        if endpoint == "buy":
            return web.get(f"/buy/{usd_item.pk}")
        return web.post(f"/item/{usd_item.pk}/intent")

    queries, calls, sql = cost(stripe_fake, request)  # a new shopper: order, line, snapshot, object
    assert queries <= MAX_QUERIES, sql
    assert calls == 1
    queries, calls, sql = cost(stripe_fake, request)  # again: the open object is reused
    assert queries <= MAX_QUERIES, sql
    assert calls == (0 if endpoint == "buy" else 1)  # a PaymentIntent's client secret is asked, never stored
