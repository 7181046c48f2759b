"""The production stack for real: gunicorn started with deploy/gunicorn.conf.py and production settings on the
test database, the Stripe emulator as its own process.

- Access logs never contain a client secret (the return URL of Stripe.js carries one).
- A slow Stripe does not slow pages that do not need it: 20 shoppers wait on a Stripe that takes 15 s per
  call while /healthz, the catalog and an item page answer within 1 s (PostgreSQL).
- A lost database answers 503 (pages, JSON endpoints, webhooks), never gunicorn's bare "Internal Server
  Error", and the shop recovers without a restart (PostgreSQL behind a proxy that cuts it off)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from deploy.tests import live

SECRET = "pi_3LiveTest0000000000_secret_LiveSecretValue0000"


@pytest.fixture(scope="module")
def static_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Production settings serve hashed static files from a manifest: collect them once for these servers."""
    root = tmp_path_factory.mktemp("live-static")
    live.collect_static(root)
    return root


def postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip(f"needs PostgreSQL shared with another process (database is {connection.vendor})")


# ------------------------------------------------------------------------------------------- access log


@pytest.mark.django_db(transaction=True)
def test_access_log_never_contains_a_client_secret(static_root: Path, tmp_path: Path, usd_item: Any) -> None:
    env = live.production_env(static_root, WEB_CONCURRENCY="1", GUNICORN_THREADS="4")
    order = uuid.uuid4()
    query = f"payment_intent=pi_3LiveTest0000000000&payment_intent_client_secret={SECRET}&redirect_status=succeeded"
    with live.gunicorn(env, tmp_path / "gunicorn.log") as app:
        browser = live.Browser(app.base)
        status, _, _ = browser.request("GET", f"/order/{order}/return?{query}", Accept="text/html")
        assert status == 404  # an order of nobody's: the request still goes to the log
        browser.request("GET", "/?token=t0ps3cret&page=2", Referer=f"{app.base}/order/{order}/return?{query}")
        browser.request("GET", f"/item/{usd_item.pk}?x={SECRET}")
        time.sleep(0.3)  # the access log line is written after the response
        log = app.text()
    assert SECRET not in log and "t0ps3cret" not in log
    assert f'"GET /order/{order}/return?payment_intent=pi_3LiveTest0000000000' in log
    assert 'payment_intent_client_secret=[redacted]&redirect_status=succeeded HTTP/1.1" 404' in log
    assert '"GET /?token=[redacted]&page=2 HTTP/1.1" 200' in log


# ------------------------------------------------------------------------------------------- slow Stripe

SHOPPERS = 20
STRIPE_LATENCY_MS = 15_000
FAST = 1.0  # seconds


def timed_get(base: str, path: str) -> tuple[int, float]:
    """(status, seconds); status 0 when no answer came within 20 s (the request queued behind others)."""
    started = time.monotonic()
    try:
        status, _, _ = live.Browser(base).request("GET", path, timeout=20, Accept="text/html")
    except TimeoutError:
        status = 0
    return status, time.monotonic() - started


def waiting_on_stripe() -> int:
    """App connections holding a transaction open (a one-item order is made together with its Checkout Session,
    so during the Stripe call its transaction waits, idle)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction'"
        )
        return int(cursor.fetchone()[0])


def refused(finished: list[tuple[int, float]]) -> int:
    """Shoppers answered 503 within a second: the Stripe bulkhead was full."""
    return sum(1 for status, took in finished if status == 503 and took < FAST)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_slow_stripe_does_not_slow_the_pages_that_do_not_need_it(
    static_root: Path, tmp_path: Path, usd_item: Any
) -> None:
    """The shipped gunicorn config (its default workers and threads) while every Stripe call takes 15 s."""
    postgres_only()
    env = live.production_env(static_root)
    with (
        live.emulator(env, tmp_path / "emulator.log", latency_ms=STRIPE_LATENCY_MS) as stripe,
        live.gunicorn({**env, "STRIPE_API_BASE": stripe.base}, tmp_path / "gunicorn.log") as app,
    ):
        assert timed_get(app.base, f"/item/{usd_item.pk}")[0] == 200  # warm: both workers loaded
        finished: list[tuple[int, float]] = []

        def shop() -> None:
            started = time.monotonic()
            try:
                status, _, _ = live.Browser(app.base).request("GET", f"/buy/{usd_item.pk}", timeout=120)
            except OSError:  # gunicorn stopped at the end of the test while the shopper still waited
                return
            finished.append((status, time.monotonic() - started))

        shoppers = [threading.Thread(target=shop, daemon=True) for _ in range(SHOPPERS)]
        slowdown = time.monotonic()
        for t in shoppers:
            t.start()
        deadline = time.monotonic() + 5
        while waiting_on_stripe() + refused(finished) < SHOPPERS and time.monotonic() < deadline:
            time.sleep(
                0.1
            )  # each shopper's transaction is open (its new order inserted): it is in its Stripe call
        in_stripe = waiting_on_stripe()

        timings: dict[str, list[float]] = {"/healthz": [], "/": [], f"/item/{usd_item.pk}": []}
        while time.monotonic() - slowdown < 6:
            for path, seen in timings.items():
                status, took = timed_get(app.base, path)
                assert status in (200, 0), (path, status)
                seen.append(took)
            time.sleep(0.2)
        still_waiting = SHOPPERS - len(finished)
        turned_away = refused(finished)  # past the bulkhead's bound (payments/bulkhead.py): 503 at once

    worst = {path: round(max(seen), 3) for path, seen in timings.items()}
    print(
        f"\n{in_stripe} shoppers in a Stripe call, {turned_away} refused (503), {still_waiting} still waiting at "
        f"the end; worst: {worst}"
    )
    assert all(took < FAST for took in worst.values()), worst
    # every shopper got a thread at once (none queued behind the others), or was refused at once
    assert in_stripe + turned_away == SHOPPERS
    assert 12 <= in_stripe <= 2 * 12  # each worker lets STRIPE_CONCURRENCY (12 by default) wait on Stripe
    assert still_waiting == in_stripe  # the slowdown lasted through every measurement


# ------------------------------------------------------------------------------------------- lost database


@pytest.fixture
def cuttable_database(transactional_db: None) -> Iterator[live.TcpProxy]:
    postgres_only()
    db = connection.settings_dict
    proxy = live.TcpProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)))
    proxy.restore()
    yield proxy
    proxy.cut()


@pytest.mark.postgres
def test_a_lost_database_answers_503_and_recovers_without_a_restart(
    static_root: Path, tmp_path: Path, usd_item: Any, cuttable_database: live.TcpProxy
) -> None:
    proxy = cuttable_database
    env = live.production_env(
        static_root,
        WEB_CONCURRENCY="2",
        GUNICORN_THREADS="4",
        DATABASE_URL=live.database_url(port=proxy.port),
    )
    sign = live.emulator_package().sign_payload
    from django.conf import settings

    secret = settings.STRIPE_ACCOUNTS["usd"]["webhook_secret"]
    event = (
        b'{"id": "evt_live_outage", "object": "event", "type": "customer.created", "created": 1700000000,'
        b' "data": {"object": {"id": "cus_1", "object": "customer"}}}'
    )
    form = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    with live.gunicorn(env, tmp_path / "gunicorn.log") as app:
        pids_before = app.proc.pid
        shopper = live.Browser(app.base)
        shopper.open(f"/item/{usd_item.pk}")  # a session, a CSRF token: a returning shopper
        status, _, body = shopper.request("POST", "/order/new/", f"item_id={usd_item.pk}".encode(), **form)
        assert status == 201, body

        proxy.cut()  # the database is gone: open connections break, new ones are refused
        answers = {
            "healthz": shopper.request("GET", "/healthz"),
            "catalog": shopper.request("GET", "/", Accept="text/html"),
            "item page": shopper.request("GET", f"/item/{usd_item.pk}", Accept="text/html"),
            "new order": shopper.request("POST", "/order/new/", f"item_id={usd_item.pk}".encode(), **form),
            "webhook": shopper.request(
                "POST",
                "/webhooks/stripe/usd/",
                event,
                **{"Content-Type": "application/json", "Stripe-Signature": sign(event, secret)},
            ),
        }
        for name, (status, headers, body) in answers.items():
            assert status == 503, (name, status, body[:300])
            assert int(headers["retry-after"]) > 0, name
            assert "Internal Server Error" not in body, name
        assert '"database": "down"' in answers["healthz"][2]
        assert "Back in a moment" in answers["item page"][2]
        assert answers["item page"][1]["content-type"].startswith("text/html")
        for name in ("new order", "webhook"):
            assert '"code": "unavailable"' in answers[name][2], name

        proxy.restore()  # the database is back: no restart
        deadline = time.monotonic() + 10
        while shopper.request("GET", "/healthz")[0] != 200:
            assert time.monotonic() < deadline, "the shop did not recover"
            time.sleep(0.2)
        assert shopper.request("GET", f"/item/{usd_item.pk}", Accept="text/html")[0] == 200
        status, _, body = shopper.request("POST", "/order/new/", f"item_id={usd_item.pk}".encode(), **form)
        assert status == 201, body
        sent = shopper.request(
            "POST",
            "/webhooks/stripe/usd/",
            event,
            **{"Content-Type": "application/json", "Stripe-Signature": sign(event, secret)},
        )
        assert sent[0] == 200, sent
        assert app.proc.pid == pids_before and app.proc.poll() is None
        log = app.text()
    assert "Internal Server Error" not in log.replace("Service Unavailable", "")
