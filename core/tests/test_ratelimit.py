"""Rate limits on what creates Stripe objects or orders, promotion codes and the admin login: per browser session
and per client address (and per username for the login), one budget or several per scope, refused before the
view runs (429, Retry-After, nothing created), counted in Django's cache (the database cache by
default, Redis with REDIS_URL)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.cache import caches
from django.db import connection
from django.test import Client, RequestFactory

from core import ratelimit
from core.cache import DatabaseCache
from core.ratelimit import Rate, address_bucket, client_address, parse_rate, parse_rates
from payments.models import Order, Payment

JSON = {"HTTP_ACCEPT": "application/json"}
HTML = {"HTTP_ACCEPT": "text/html,application/xhtml+xml,*/*;q=0.8"}
PAYMENT_URLS = ["payments:buy", "payments:item_intent", "payments:order_buy", "payments:order_intent"]
CART_URLS = [
    "payments:order_new",
    "payments:order_put",
    "payments:order_remove",
    "payments:cart_add",
    "payments:order_change",
]
WINDOW_START = 1_900_000_020.0  # a window start for every period used here (a multiple of 60)


@pytest.fixture
def limits(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, float]]:
    """Small budgets, a clock at the start of a minute (no window ends mid-test), counters of this test only."""
    settings.RATELIMIT_ENABLED = True
    settings.RATELIMITS = {
        "payment": {"urls": PAYMENT_URLS, "session": "3/m", "address": "5/m", "json": True},
        "cart": {"urls": CART_URLS, "session": "4/m", "address": "6/m"},
    }
    clock = {"now": WINDOW_START + 0.5}
    monkeypatch.setattr(ratelimit, "clock", lambda: clock["now"])
    caches["default"].clear()
    yield clock
    caches["default"].clear()


def browser(address: str = "127.0.0.1", **headers: str) -> Client:
    return Client(REMOTE_ADDR=address, **headers)


def visit(client: Client, item: Any) -> Client:
    """Open the item page: the session cookie exists from then on."""
    assert client.get(item.get_absolute_url()).status_code == 200
    return client


def assert_429(response: Any, *, json: bool = True) -> None:
    assert response.status_code == 429, response.content[:300]
    assert 1 <= int(response["Retry-After"]) <= 60
    if json:
        body = response.json()
        assert body["error"]["code"] == "rate_limited"
        assert "Too many requests" in body["error"]["message"]
    else:
        assert response["Content-Type"].startswith("text/html")
        assert "Please slow down" in response.content.decode()


pytestmark = pytest.mark.django_db


# ------------------------------------------------------------------------------------------- the endpoints


def test_buy_is_limited_per_session_and_the_refused_request_creates_nothing(
    limits: Any, usd_item: Any, stripe_fake: Any
) -> None:
    client = visit(browser(), usd_item)
    answers = [client.get(f"/buy/{usd_item.pk}", **JSON) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    calls, orders, payments = len(stripe_fake.requests), Order.objects.count(), Payment.objects.count()

    refused = client.get(f"/buy/{usd_item.pk}", **JSON)

    assert_429(refused)
    assert len(stripe_fake.requests) == calls  # the view never ran: no Stripe call
    assert (Order.objects.count(), Payment.objects.count()) == (orders, payments)


def test_a_scripted_endpoint_answers_json_even_without_accept(limits: Any, usd_item: Any) -> None:
    client = visit(browser(), usd_item)
    for _ in range(3):
        client.get(f"/buy/{usd_item.pk}")
    assert_429(client.get(f"/buy/{usd_item.pk}"))  # /buy is JSON by contract for scripts
    assert_429(client.get(f"/buy/{usd_item.pk}", HTTP_ACCEPT="*/*"))
    # A browser sending "Pay on Stripe Checkout" without JavaScript loads /buy as a page: it gets one.
    assert_429(client.get(f"/buy/{usd_item.pk}", **HTML), json=False)


def test_intent_endpoints_share_the_payment_budget(limits: Any, usd_item: Any) -> None:
    client = visit(browser(), usd_item)
    created = client.post("/order/new/", {"item_id": usd_item.pk}, **JSON)
    assert created.status_code == 201
    order = created.json()["id"]
    codes = [
        client.post(f"/item/{usd_item.pk}/intent", **JSON).status_code,
        client.get(f"/order/buy/{order}", **JSON).status_code,
        client.post(f"/order/intent/{order}", **JSON).status_code,
    ]
    assert codes == [200, 200, 200]
    assert_429(client.post(f"/item/{usd_item.pk}/intent", **JSON))
    assert_429(client.post(f"/order/intent/{order}", **JSON))


def test_cart_forms_get_a_page_and_scripts_json(limits: Any, usd_item: Any) -> None:
    client = visit(browser(), usd_item)
    for _ in range(4):
        assert client.post("/order/new/", {"item_id": usd_item.pk}, **JSON).status_code == 201
    orders = Order.objects.count()
    assert_429(client.post("/order/new/", {"item_id": usd_item.pk}, **HTML), json=False)
    assert_429(client.post("/order/new/", {"item_id": usd_item.pk}, **JSON))
    assert Order.objects.count() == orders


def test_the_budget_is_per_session(limits: Any, usd_item: Any) -> None:
    first, second = visit(browser(), usd_item), visit(browser(), usd_item)
    for _ in range(3):
        assert first.get(f"/buy/{usd_item.pk}", **JSON).status_code == 200
    assert_429(first.get(f"/buy/{usd_item.pk}", **JSON))
    assert second.get(f"/buy/{usd_item.pk}", **JSON).status_code == 200  # same address, its own session


def test_the_budget_is_per_address_whatever_the_session(limits: Any, usd_item: Any) -> None:
    """A card tester drops the cookie (or sends a new one) on every request: the address still counts."""
    codes = []
    for _ in range(6):
        codes.append(visit(browser("198.51.100.7"), usd_item).get(f"/buy/{usd_item.pk}", **JSON).status_code)
    assert codes == [200] * 5 + [429]
    no_cookie = browser("198.51.100.7").get(f"/buy/{usd_item.pk}", **JSON)
    assert_429(no_cookie)
    forged = browser("198.51.100.7")
    forged.cookies["sessionid"] = uuid.uuid4().hex
    assert_429(forged.get(f"/buy/{usd_item.pk}", **JSON))
    elsewhere = visit(browser("198.51.100.8"), usd_item)
    assert elsewhere.get(f"/buy/{usd_item.pk}", **JSON).status_code == 200


def test_the_next_window_is_open_again_and_retry_after_says_when(limits: Any, usd_item: Any) -> None:
    client = visit(browser(), usd_item)
    limits["now"] = WINDOW_START + 20.2
    for _ in range(3):
        client.get(f"/buy/{usd_item.pk}", **JSON)
    refused = client.get(f"/buy/{usd_item.pk}", **JSON)
    assert_429(refused)
    assert refused["Retry-After"] == "40"  # the minute ends 39.8 s later, rounded up
    limits["now"] = WINDOW_START + 60.1
    assert client.get(f"/buy/{usd_item.pk}", **JSON).status_code == 200


def test_pages_and_other_endpoints_are_never_limited(limits: Any, usd_item: Any) -> None:
    client = visit(browser(), usd_item)
    for _ in range(3):
        client.get(f"/buy/{usd_item.pk}", **JSON)
    assert_429(client.get(f"/buy/{usd_item.pk}", **JSON))
    for path in ["/", usd_item.get_absolute_url(), "/healthz", "/admin/login/"]:
        assert client.get(path).status_code == 200, path


def test_off_means_off(limits: Any, settings: Any, usd_item: Any) -> None:
    settings.RATELIMIT_ENABLED = False
    client = visit(browser(), usd_item)
    assert {client.get(f"/buy/{usd_item.pk}", **JSON).status_code for _ in range(8)} == {200}


def test_a_zero_budget_is_no_limit(limits: Any, settings: Any, usd_item: Any) -> None:
    settings.RATELIMITS = {"payment": {"urls": PAYMENT_URLS, "session": "0", "address": "off", "json": True}}
    client = visit(browser(), usd_item)
    assert {client.get(f"/buy/{usd_item.pk}", **JSON).status_code for _ in range(8)} == {200}


def test_counters_down_let_requests_through(
    limits: Any, usd_item: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def down(*args: Any, **kwargs: Any) -> int:
        raise ConnectionError("redis is down")

    monkeypatch.setattr(DatabaseCache, "incr_or_add", down)
    client = visit(browser(), usd_item)
    assert {client.get(f"/buy/{usd_item.pk}", **JSON).status_code for _ in range(5)} == {200}
    assert "counters unavailable" in caplog.text


def test_every_endpoint_that_creates_something_is_limited_by_default(settings: Any) -> None:
    from django.urls import get_resolver

    configured = {name for spec in settings.RATELIMITS.values() for name in spec["urls"]}
    creating = {"buy", "item_intent", "order_new", "order_put", "order_remove", "order_buy", "order_intent"}
    assert {f"payments:{name}" for name in creating | {"cart_add", "order_change"}} <= configured
    names = {
        f"payments:{p.name}"
        for p in get_resolver().url_patterns
        for p in getattr(p, "url_patterns", [p])
        if getattr(p, "name", None)
    }
    assert {f"payments:{name}" for name in creating} <= names  # the names match the real URLs
    for spec in settings.RATELIMITS.values():  # the defaults parse
        assert parse_rates(spec.get("session", "")) or parse_rates(spec.get("username", ""))
        assert parse_rates(spec["address"])


# ------------------------------------------------------------------------------------------- addresses


@pytest.fixture
def factory() -> RequestFactory:
    return RequestFactory()


@pytest.mark.parametrize(
    ("remote", "forwarded", "trusted", "expected"),
    [
        ("203.0.113.5", "", ["127.0.0.1"], "203.0.113.5"),
        # A client that is not a trusted proxy cannot choose its address.
        ("203.0.113.5", "10.9.9.9", ["127.0.0.1"], "203.0.113.5"),
        # nginx on the same host overwrote X-Forwarded-For with the address it saw.
        ("127.0.0.1", "198.51.100.23", ["127.0.0.1"], "198.51.100.23"),
        # A client's own X-Forwarded-For, passed on by a proxy that appends: the proxy's hop wins.
        ("127.0.0.1", "10.9.9.9, 198.51.100.23", ["127.0.0.1"], "198.51.100.23"),
        # Two trusted proxies (a load balancer, then nginx): the first untrusted hop from the right.
        ("127.0.0.1", "1.1.1.1, 198.51.100.23, 10.0.0.2", ["127.0.0.1", "10.0.0.0/8"], "198.51.100.23"),
        # Everyone trusted (`*`, compose): the leftmost hop.
        ("172.18.0.1", "198.51.100.23", ["*"], "198.51.100.23"),
        # A malformed hop: nothing beyond it is believed.
        ("127.0.0.1", "198.51.100.23, not-an-ip", ["127.0.0.1"], "127.0.0.1"),
        # No header from the trusted proxy: its own address.
        ("127.0.0.1", "", ["127.0.0.1"], "127.0.0.1"),
        ("::ffff:203.0.113.9", "", ["127.0.0.1"], "203.0.113.9"),
        ("::1", "2001:db8::7", ["::1"], "2001:db8::7"),
        ("127.0.0.1", "198.51.100.23:4711", ["127.0.0.1"], "198.51.100.23"),
    ],
)
def test_client_address(
    factory: RequestFactory, settings: Any, remote: str, forwarded: str, trusted: list[str], expected: str
) -> None:
    settings.TRUSTED_PROXIES = trusted
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}
    request = factory.get("/", REMOTE_ADDR=remote, **headers)
    assert client_address(request) == expected


def test_behind_the_proxy_each_client_has_its_own_budget_and_spoofing_does_not_help(
    limits: Any, settings: Any, usd_item: Any
) -> None:
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    for n in range(5):
        anyone = browser("127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.50")
        assert anyone.get(f"/buy/{usd_item.pk}", **JSON).status_code == 200, n
    assert_429(browser("127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.50").get(f"/buy/{usd_item.pk}", **JSON))
    other = browser("127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.51")
    assert other.get(f"/buy/{usd_item.pk}", **JSON).status_code == 200
    # Straight to gunicorn (not through the proxy), a made-up header changes nothing.
    for n in range(5):
        direct = browser("203.0.113.77", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}")
        assert direct.get(f"/buy/{usd_item.pk}", **JSON).status_code == 200
    assert_429(browser("203.0.113.77", HTTP_X_FORWARDED_FOR="10.0.0.99").get(f"/buy/{usd_item.pk}", **JSON))


def test_ipv6_clients_are_counted_per_64() -> None:
    assert (
        address_bucket("2001:db8:1:2:aaaa::1")
        == address_bucket("2001:db8:1:2:bbbb::2")
        == "2001:db8:1:2::/64"
    )
    assert address_bucket("2001:db8:1:3::1") != address_bucket("2001:db8:1:2::1")
    assert address_bucket("203.0.113.5") == "203.0.113.5"


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("12/m", Rate(12, 60)),
        ("30/min", Rate(30, 60)),
        ("100/h", Rate(100, 3600)),
        ("5/10s", Rate(5, 10)),
        (" 7 / 2m ", Rate(7, 120)),
        ("1000/d", Rate(1000, 86400)),
        ("0", None),
        ("off", None),
        ("", None),
        ("0/m", None),
    ],
)
def test_parse_rate(text: str, rate: Rate | None) -> None:
    assert parse_rate(text) == rate


def test_parse_rates_reads_several_budgets_that_all_apply() -> None:
    assert parse_rates("10/m, 60/h") == (Rate(10, 60), Rate(60, 3600))
    assert parse_rates("5/10s") == (Rate(5, 10),)
    assert parse_rates("") == parse_rates("off") == ()
    with pytest.raises(ValueError):
        parse_rates("10/m,lots")


def test_every_budget_of_a_scope_applies(limits: Any, settings: Any, usd_item: Any) -> None:
    settings.RATELIMITS = {
        **settings.RATELIMITS,
        "cart": {**settings.RATELIMITS["cart"], "session": "10/m,2/h"},
    }
    shopper = visit(browser(), usd_item)
    answers = [shopper.post("/order/new/", {"item_id": usd_item.pk}, **JSON).status_code for _ in range(3)]
    assert answers == [201, 201, 429]


@pytest.mark.parametrize("text", ["12", "12/fortnight", "m/12", "-1/m", "1.5/m"])
def test_parse_rate_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="N/period"):
        parse_rate(text)


# ------------------------------------------------------------------------------------------- counters


def test_database_counter_counts_expires_and_reads_as_a_cache_value() -> None:
    cache = caches["default"]
    assert isinstance(cache, DatabaseCache)
    key = f"t:{uuid.uuid4().hex}"
    assert [cache.incr_or_add(key, 60) for _ in range(3)] == [1, 2, 3]
    assert cache.get(key) == 3
    cache.set(key, 41, timeout=-1)  # expired
    assert cache.incr_or_add(key, 60) == 1
    cache.set(key, 1, timeout=-1)
    assert cache.delete_expired() >= 1 and cache.get(key) is None


@pytest.mark.django_db(transaction=True)
def test_database_counter_loses_no_count_under_concurrency() -> None:
    """Django's own DatabaseCache.incr (read, then write) loses counts when requests race; ours does not."""
    if connection.vendor != "postgresql":
        pytest.skip("concurrent connections need PostgreSQL (SQLite serializes writers anyway)")
    key = f"race:{uuid.uuid4().hex}"
    threads, per_thread = 12, 15
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def hammer() -> None:
        from django.db import connections

        cache = caches["default"]
        assert isinstance(cache, DatabaseCache)
        try:
            barrier.wait(timeout=10)
            for _ in range(per_thread):
                cache.incr_or_add(key, 60)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=hammer) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert not errors, errors
    assert caches["default"].get(key) == threads * per_thread


@pytest.fixture
def redis_cache(settings: Any) -> Iterator[str]:
    """Redis (REDIS_URL's backend) as the cache, under a key prefix of this test; skipped without a server."""
    import redis

    url = "redis://127.0.0.1:6379/0"
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.skip("no Redis server at 127.0.0.1:6379")
    prefix = f"shop-test-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": prefix,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    yield prefix
    client = redis.Redis.from_url(url)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def test_limits_count_in_redis(redis_cache: str, limits: Any, usd_item: Any) -> None:
    import redis

    client = visit(browser(), usd_item)
    assert [client.get(f"/buy/{usd_item.pk}", **JSON).status_code for _ in range(4)] == [200, 200, 200, 429]
    keys = list(redis.Redis.from_url("redis://127.0.0.1:6379/0").scan_iter(f"{redis_cache}:*:rl:*"))
    assert len(keys) == 2  # one counter for the address, one for the session
    assert all(0 < redis.Redis.from_url("redis://127.0.0.1:6379/0").ttl(k) <= 65 for k in keys)


def test_clear_expired_cache_command_deletes_only_expired_counters() -> None:
    from io import StringIO

    from django.core.management import call_command

    cache = caches["default"]
    live, dead = f"live:{uuid.uuid4().hex}", f"dead:{uuid.uuid4().hex}"
    cache.set(live, 1, timeout=60)
    cache.set(dead, 1, timeout=-1)
    out = StringIO()
    call_command("clear_expired_cache", stdout=out)
    assert "expired entries deleted" in out.getvalue()
    assert cache.get(live) == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT cache_key FROM shop_cache")
        keys = [row[0] for row in cursor.fetchall()]
    assert not any(dead in key for key in keys) and any(live in key for key in keys)


def test_migrate_creates_the_cache_table(tmp_path: Any) -> None:
    """`migrate` alone (no `createcachetable` step to forget) leaves the database cache ready."""
    import os
    import sqlite3
    import subprocess
    import sys
    from pathlib import Path

    database = tmp_path / "fresh.sqlite3"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "core.test_settings",
        "DATABASE_URL": f"sqlite:///{database}",
    }
    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=root,
        env=env,
        check=True,
        timeout=120,
    )
    with sqlite3.connect(database) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "shop_cache" in tables
