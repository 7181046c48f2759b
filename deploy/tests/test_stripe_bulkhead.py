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
MEASURE_FOR = 5.0  # seconds of page requests while every admitted shopper is still waiting on Stripe


@pytest.fixture(scope="module")
def static_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bulkhead-static")
    live.collect_static(root)
    return root


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def timed(call: Callable[[], tuple[int, dict[str, str], str]]) -> tuple[int, dict[str, str], str, float]:
    started = time.monotonic()
    try:
        status, head, body = call()
    except OSError:  # no answer within the client's timeout, or the server went away at the end
        status, head, body = 0, {}, ""
    return status, head, body, time.monotonic() - started


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

        answers: list[tuple[int, dict[str, str], str, float]] = []
        lock = threading.Lock()
        go = threading.Event()

        def click(n: int) -> None:
            shopper = live.Browser(app.base, cookies={"csrftoken": csrf_cookie}, token=first.token)
            address = f"10.{n // 250}.{n % 250}.{1 + n % 7}"
            go.wait()
            answer = timed(
                lambda: shopper.request(
                    "POST",
                    f"/item/{usd_item.pk}/intent",
                    b"",
                    timeout=60,
                    Accept="application/json",
                    **{"X-Forwarded-For": address},
                )
            )
            with lock:
                answers.append(answer)

        crowd = [threading.Thread(target=click, args=(n,), daemon=True) for n in range(CLICKS)]
        for t in crowd:
            t.start()
        pressed = time.monotonic()
        go.set()

        pages: dict[str, list[float]] = {"/healthz": [], item_page: []}
        bad: list[tuple[str, int]] = []

        def look(path: str) -> None:
            viewer = live.Browser(app.base)
            while time.monotonic() - pressed < 1 + MEASURE_FOR:
                status, _, _, took = timed(lambda: viewer.request("GET", path, timeout=20, Accept="text/html"))
                if status != 200:
                    bad.append((path, status))
                pages[path].append(took)
                time.sleep(0.02)

        lookers = [threading.Thread(target=look, args=(path,)) for path in pages for _ in range(2)]
        for t in lookers:
            t.start()
        for t in lookers:
            t.join()
        with lock:
            during = list(answers)  # answered while Stripe still hung: only refusals
        for t in crowd:
            t.join(timeout=40)

    refused = [a for a in during if a[0] == 503]
    admitted = [a for a in answers if a[0] != 503]
    worst = {path: (round(p99(seen), 3), round(max(seen), 3), len(seen)) for path, seen in pages.items()}
    print(
        f"\n{CLICKS} Pay clicks: {len(refused)} refused 503 while Stripe hung (slowest {max(a[3] for a in refused):.3f} s, "
        f"median {statistics.median(a[3] for a in refused):.3f} s), {len(admitted)} waited on Stripe "
        f"(answered {sorted({a[0] for a in admitted})} after {min((a[3] for a in admitted), default=0):.1f} s or more); "
        f"pages (p99 s, max s, requests): {worst}"
    )
    assert not bad, bad
    assert all(p99(seen) < FAST and max(seen) < FAST for seen in pages.values()), worst
    assert len(answers) == CLICKS
    # while Stripe hung every click was either refused at once or waiting in a Stripe call: none queued
    assert all(a[0] == 503 for a in during)
    assert len(during) == len(refused) == CLICKS - len(admitted)
    assert 2 <= len(admitted) <= 2 * 8, len(admitted)  # at most STRIPE_CONCURRENCY (8) per worker (2)
    for status, head, body, _ in refused:
        assert head["retry-after"] == "5"
        assert json.loads(body)["error"]["code"] == "stripe_busy"
    assert all(a[3] >= STRIPE_LATENCY_MS / 1000 - 1 for a in admitted)  # they did wait on Stripe
    assert Order.objects.count() == len(admitted)  # a refusal wrote nothing
