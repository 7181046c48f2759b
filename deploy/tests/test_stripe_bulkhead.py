"""A crowd pressing Pay while Stripe hangs, against the production stack: gunicorn with deploy/gunicorn.conf.py as
shipped (its workers, threads and database pool), production settings, the Stripe emulator answering every call
in 10 s (longer than STRIPE_TIMEOUT: each attempt times out).

200 shoppers from 200 addresses (X-Forwarded-For, which gunicorn and the rate limits trust from loopback) press
Pay at once. The bulkhead (payments/bulkhead.py) lets at most STRIPE_CONCURRENCY of them per process wait on
Stripe and answers the others 503 with Retry-After at once, writing nothing; meanwhile /healthz and an item page
answer within 1 s (p99 and max measured and printed).

Needs PostgreSQL shared with another process (skipped otherwise, with the reason)."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from deploy.tests import live
from payments.models import Order

CLICKS = 200
STRIPE_LATENCY_MS = 10_000
FAST = 1.0  # seconds: the pages' bound while the crowd waits
MEASURE_UNTIL = 8.0  # seconds after the clicks: every admitted shopper still waits on Stripe (10 s)
ARRIVAL = (
    3.0  # seconds: the bound while the 200 clicks are being refused (they all arrive in the same instant)
)


@pytest.fixture(scope="module")
def static_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bulkhead-static")
    live.collect_static(root)
    return root


def p99(values: list[float]) -> float:
    ordered = sorted(values) or [0.0]
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def timed(call: Callable[[], tuple[int, dict[str, str], str]]) -> tuple[int, dict[str, str], str, float]:
    started = time.monotonic()
    try:
        status, head, body = call()
    except OSError:  # no answer within the client's timeout, or the server went away at the end
        status, head, body = 0, {}, ""
    return status, head, body, time.monotonic() - started


def in_transaction() -> int:
    """The shop's connections holding a transaction open: a one-item order is made together with its
    PaymentIntent, so during the Stripe call its transaction waits, idle."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'idle in transaction'"
        )
        return int(cursor.fetchone()[0])


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_200_pay_clicks_on_a_hanging_stripe_leave_the_pages_answering(
    static_root: Path, tmp_path: Path, usd_item: Any
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip(f"needs PostgreSQL shared with another process (database is {connection.vendor})")
    env = live.production_env(static_root)  # the shipped sizing: no GUNICORN_*, STRIPE_CONCURRENCY unset
    item_page = f"/item/{usd_item.pk}"
    with (
        live.emulator(env, tmp_path / "emulator.log", latency_ms=STRIPE_LATENCY_MS) as stripe,
        live.gunicorn({**env, "STRIPE_API_BASE": stripe.base}, tmp_path / "gunicorn.log") as app,
    ):
        first = live.Browser(app.base)
        first.open(item_page)  # a CSRF cookie and token, shared by the crowd (each has its own session)
        for _ in range(4):  # both workers loaded
            assert first.request("GET", "/healthz")[0] == 200
        csrf_cookie = first.cookies["csrftoken"]

        pay = f"/item/{usd_item.pk}/intent"
        crowd = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "deploy.tests.crowd",
                app.base,
                pay,
                str(CLICKS),
                csrf_cookie,
                first.token,
            ],
            cwd=live.ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert crowd.stdin is not None and crowd.stdout is not None
        assert crowd.stdout.readline().strip() == "ready"
        answers: list[dict[str, Any]] = []
        stdout = crowd.stdout

        def read() -> None:
            for line in stdout:
                answers.append(json.loads(line))

        reader = threading.Thread(target=read)
        reader.start()
        crowd.stdin.write("go\n")
        crowd.stdin.flush()
        pressed = time.monotonic()

        pages: dict[str, list[tuple[float, float]]] = {"/healthz": [], item_page: []}  # (sent at, seconds)
        bad: list[tuple[str, int]] = []

        def look(path: str) -> None:
            viewer = live.Browser(app.base)
            while (sent := time.monotonic() - pressed) < MEASURE_UNTIL:
                status, _, _, took = timed(
                    lambda: viewer.request("GET", path, timeout=20, Accept="text/html")
                )
                if status != 200:
                    bad.append((path, status))
                pages[path].append((sent, took))
                time.sleep(0.02)

        lookers = [threading.Thread(target=look, args=(path,)) for path in pages for _ in range(2)]
        for t in lookers:
            t.start()
        time.sleep(max(0.0, MEASURE_UNTIL / 2 - (time.monotonic() - pressed)))
        in_stripe = in_transaction()
        for t in lookers:
            t.join()
        during = list(answers)  # answered while Stripe still hung: only refusals
        reader.join(timeout=40)
        crowd.wait(timeout=5)

    refused = [a for a in during if a["status"] == 503]
    admitted = [a for a in answers if a["status"] != 503]
    arrived = max(
        (a["took"] for a in refused), default=0.0
    )  # every click refused or waiting on Stripe from then on
    arrival = {path: [took for sent, took in seen if sent < arrived] for path, seen in pages.items()}
    waiting = {path: [took for sent, took in seen if sent >= arrived] for path, seen in pages.items()}

    def summary(phase: dict[str, list[float]]) -> dict[str, tuple[float, float, int]]:
        return {
            path: (round(p99(seen), 3), round(max(seen, default=0), 3), len(seen))
            for path, seen in phase.items()
        }

    print(
        f"\n{CLICKS} Pay clicks: {len(refused)} refused 503 while Stripe hung (all within {arrived:.3f} s, median "
        f"{statistics.median([a['took'] for a in refused] or [0]):.3f} s), {len(admitted)} waited on Stripe (answered "
        f"{sorted({a['status'] for a in admitted})} after {min((a['took'] for a in admitted), default=0):.1f} s "
        f"or more, {in_stripe} in a Stripe call midway). Pages (p99 s, max s, requests) while the clicks arrived: {summary(arrival)}; "
        f"then while {len(admitted)} waited on Stripe: {summary(waiting)}"
    )
    assert not bad, bad
    assert all(len(seen) >= 10 for seen in waiting.values()), summary(waiting)
    assert all(p99(seen) < FAST and max(seen) < FAST for seen in waiting.values()), summary(waiting)
    assert all(max(seen, default=0) < ARRIVAL for seen in arrival.values()), summary(arrival)
    assert arrived < ARRIVAL  # refused at once: no click queued behind the ones waiting on Stripe
    assert len(answers) == CLICKS
    assert all(a["status"] == 503 for a in during)  # while Stripe hung, only refusals came back
    assert len(during) == len(refused) == CLICKS - len(admitted)
    assert 2 <= len(admitted) <= 2 * 12, len(admitted)  # at most STRIPE_CONCURRENCY (12) per worker (2)
    assert all(a["retry_after"] == "5" and a["code"] == "stripe_busy" for a in refused)
    assert all(a["took"] >= MEASURE_UNTIL for a in admitted)  # they waited on Stripe through the measurement
    assert in_stripe == len(admitted)  # each admitted click's new order waited, uncommitted, on Stripe
    assert Order.objects.count() == 0  # Stripe never answered: rolled back; a refusal wrote nothing at all
