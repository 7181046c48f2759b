"""Fault tests: Stripe unreachable, slow past the client timeout, answering 500 or 429, or losing its answer; the
database failing during a webhook; two app processes behind one PostgreSQL receiving the same events and the same
cart requests at once. Every test checks the database afterwards."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import OperationalError, connection
from django.test import Client

from core.test_settings import _TEST_ENV
from payments import events, lifecycle, webhooks
from payments.gateway import OUTAGE_MESSAGE
from payments.models import Order, OrderLine, OrderStatus, Payment, PaymentKind, PaymentStatus, StripeEvent
from payments.tests.stripe_fake import signed_event
from stripe_emulator import Emulator, EmulatorAccount, sign_payload
from stripe_emulator.server import start_in_thread

ROOT = Path(__file__).resolve().parents[2]

# ------------------------------------------------------------------------------------- Stripe failing

ENDPOINTS = ["buy", "item_intent", "order_buy", "order_intent"]
OUTAGES = ["connection", "timeout", "500", "429"]
KIND_OF = {
    "buy": "checkout.session",
    "order_buy": "checkout.session",
    "item_intent": "payment_intent",
    "order_intent": "payment_intent",
}
CREATE_PATH = {"checkout.session": "/v1/checkout/sessions", "payment_intent": "/v1/payment_intents"}


@dataclass
class Shopper:
    """A browser on one endpoint: `call()` hits it, `order()` is the order it pays."""

    client: Client
    endpoint: str
    item: Any
    order_id: str = ""

    def call(self) -> Any:
        if self.endpoint == "buy":
            return self.client.get(f"/buy/{self.item.pk}", HTTP_ACCEPT="application/json")
        if self.endpoint == "item_intent":
            return self.client.post(f"/item/{self.item.pk}/intent", HTTP_ACCEPT="application/json")
        if self.endpoint == "order_buy":
            return self.client.get(f"/order/buy/{self.order_id}", HTTP_ACCEPT="application/json")
        return self.client.post(f"/order/intent/{self.order_id}", HTTP_ACCEPT="application/json")

    def order(self) -> Order:
        return Order.objects.get() if not self.order_id else Order.objects.get(public_id=self.order_id)


def shopper_on(endpoint: str, client: Client, item: Any) -> Shopper:
    assert client.get(item.get_absolute_url()).status_code == 200
    shopper = Shopper(client, endpoint, item)
    if endpoint.startswith("order_"):
        created = client.post(
            "/order/new/", {"item_id": item.pk, "quantity": 2}, HTTP_ACCEPT="application/json"
        )
        assert created.status_code == 201, created.content
        shopper.order_id = created.json()["id"]
    return shopper


def stripe_objects(stripe_fake: Any, kind: str, order: Order) -> list[dict[str, Any]]:
    return [
        o
        for o in stripe_fake.emulator.objects.values()
        if o.get("object") == kind and (o.get("metadata") or {}).get("order_id") == str(order.public_id)
    ]


def all_objects(stripe_fake: Any, kind: str) -> list[dict[str, Any]]:
    return [o for o in stripe_fake.emulator.objects.values() if o.get("object") == kind]


def create_keys(stripe_fake: Any, kind: str) -> list[str]:
    return [
        c.idempotency_key for c in stripe_fake.requests if c.method == "POST" and c.path == CREATE_PATH[kind]
    ]


pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("outage", OUTAGES)
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_stripe_outage_is_a_clear_502_and_the_retry_creates_one_object(
    client: Client, usd_item: Any, stripe_fake: Any, endpoint: str, outage: str
) -> None:
    shopper = shopper_on(endpoint, client, usd_item)
    kind = KIND_OF[endpoint]
    stripe_fake.client.fail_next(outage, times=5)  # more than 1 + STRIPE_MAX_NETWORK_RETRIES attempts

    started = time.monotonic()
    response = shopper.call()
    took = time.monotonic() - started

    assert response.status_code == 502, response.content
    assert response.json() == {"error": {"code": "payment_provider_error", "message": OUTAGE_MESSAGE}}
    assert took < settings.STRIPE_TIMEOUT  # the shopper hears back within the client timeout
    assert Payment.objects.count() == 0  # no row claims an object that does not exist
    assert all_objects(stripe_fake, kind) == []  # and none was created
    if shopper.order_id:  # a cart stays a cart
        order = shopper.order()
        assert order.status == OrderStatus.DRAFT and order.lines.count() == 1
    else:  # an item's Pay that failed leaves nothing behind
        assert Order.objects.count() == 0
    failed_keys = create_keys(stripe_fake, kind)
    assert 1 <= len(failed_keys) <= 1 + settings.STRIPE_MAX_NETWORK_RETRIES  # the SDK's retries, if any
    assert len(set(failed_keys)) == 1

    stripe_fake.recover()
    retried = shopper.call()
    assert retried.status_code == 200, retried.content
    order = shopper.order()
    [obj] = stripe_objects(stripe_fake, kind, order)
    payment = Payment.objects.get()
    assert (payment.stripe_id, payment.order_id, payment.status) == (obj["id"], order.pk, PaymentStatus.OPEN)
    assert payment.idempotency_key not in failed_keys  # the shopper's retry is a new attempt with a new key
    assert Order.objects.count() == 1


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_a_saved_500_is_replayed_and_the_next_pay_succeeds_with_a_new_key(
    client: Client, usd_item: Any, stripe_fake: Any, endpoint: str
) -> None:
    """Stripe created the object, then answered 500 and saved that answer for the key: the SDK's retry gets the
    same 500 replayed, and the shopper's next Pay is a new attempt with a new key that succeeds. The object the
    first call made carries the order's metadata, so reconciliation can find it and close it."""
    shopper = shopper_on(endpoint, client, usd_item)
    kind = KIND_OF[endpoint]
    stripe_fake.client.fail_next("500_after")  # one failure: the SDK's retry meets Stripe's saved answer

    response = shopper.call()

    assert response.status_code == 502
    assert response.json()["error"]["message"] == OUTAGE_MESSAGE
    assert Payment.objects.count() == 0
    [orphan] = all_objects(stripe_fake, kind)  # it exists at Stripe, unknown to the shop yet
    first_keys = create_keys(stripe_fake, kind)
    assert len(first_keys) == 1 + settings.STRIPE_MAX_NETWORK_RETRIES and len(set(first_keys)) == 1
    replays = [c for c in stripe_fake.requests if c.idempotency_key == first_keys[0]]
    assert len(replays) == len(first_keys)  # the retry got the saved 500 back, made nothing new

    second = shopper.call()
    assert second.status_code == 200, second.content
    order = shopper.order()
    payment = Payment.objects.get()
    assert payment.idempotency_key != first_keys[0]
    objects = stripe_objects(stripe_fake, kind, order)
    assert {o["id"] for o in objects} == {orphan["id"], payment.stripe_id}  # both carry the order's metadata
    assert orphan["metadata"]["order_id"] == str(order.public_id)
    assert orphan["metadata"]["order_version"] == str(order.version)
    body = second.json()
    paid = stripe_fake.emulator.get(payment.stripe_id)
    assert body.get("client_secret", paid.get("client_secret")) == paid.get("client_secret") and (
        kind == "payment_intent" or body["id"] == payment.stripe_id
    )
    # Reloading once more reuses the open one rather than creating another.
    assert shopper.call().status_code == 200
    assert len(stripe_objects(stripe_fake, kind, order)) == 2 and Payment.objects.count() == 1

    # The next sweep finds the orphan through its metadata (once it is older than the sweep's grace: its
    # request might still have been committing), records it, and closes it; the shopper's own stays payable.
    stripe_fake.emulator.objects[orphan["id"]]["created"] -= 3600
    call_command("reconcile_payments", "--older-than", "10", stdout=io.StringIO(), stderr=io.StringIO())
    assert stripe_fake.emulator.get(orphan["id"])["status"] in ("canceled", "expired")
    assert stripe_fake.emulator.get(payment.stripe_id)["status"] in ("requires_payment_method", "open")
    adopted = Payment.objects.get(stripe_id=orphan["id"])
    assert adopted.origin == "stripe" and adopted.status in ("canceled", "expired")


# ------------------------------------------------------------------------------------- database failing


def paid_intent_event(client: Client, item: Any, stripe_fake: Any) -> tuple[Payment, dict[str, Any]]:
    client.get(item.get_absolute_url())
    assert client.post(f"/item/{item.pk}/intent").status_code == 200
    stripe_fake.deliver_webhooks()  # payment_intent.created: ignored
    payment = Payment.objects.get()
    stripe_fake.emulator.confirm_payment_intent(payment.stripe_id)
    [(_, payload, _)] = [m for m in stripe_fake.outbox if b"payment_intent.succeeded" in m[1]]
    stripe_fake.outbox.clear()
    return payment, json.loads(payload)


def test_database_lost_in_the_handler_is_500_then_processed_once_on_redelivery(
    client: Client, usd_item: Any, stripe_fake: Any, post_event: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    payment, event = paid_intent_event(client, usd_item, stripe_fake)
    real = lifecycle.apply_payment_intent
    applied: list[str] = []
    down = [True]

    def flaky(p: Payment, intent: Any, **kwargs: Any) -> Payment:
        if down[0]:
            raise OperationalError("server closed the connection unexpectedly")
        applied.append(p.stripe_id)
        return real(p, intent, **kwargs)

    monkeypatch.setattr(lifecycle, "apply_payment_intent", flaky)

    first = post_event("usd", event)
    assert first.status_code == 500
    row = StripeEvent.objects.get(event_id=event["id"])
    assert row.status == StripeEvent.Status.FAILED and "OperationalError" in row.last_error
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.OPEN and payment.order.status == OrderStatus.AWAITING_PAYMENT

    down[0] = False  # the database is back; Stripe redelivers the event, twice
    second = post_event("usd", event)
    third = post_event("usd", event)

    assert (second.status_code, second.json()["status"]) == (200, "processed")
    assert (third.status_code, third.json()["status"]) == (200, "duplicate")
    assert applied == [payment.stripe_id]
    row = StripeEvent.objects.get(event_id=event["id"])
    assert (row.status, row.attempts, row.last_error) == (StripeEvent.Status.PROCESSED, 2, "")
    payment.refresh_from_db()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert payment.order.status == OrderStatus.PAID and not payment.order.needs_attention
    assert StripeEvent.objects.filter(event_id=event["id"]).count() == 1


def test_database_lost_before_the_event_is_stored_is_503_then_processed_once(
    client: Client, usd_item: Any, stripe_fake: Any, post_event: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, event = paid_intent_event(client, usd_item, stripe_fake)
    real = webhooks.record_and_process
    calls = [0]

    def flaky(acct: Any, ev: dict[str, Any]) -> Any:
        calls[0] += 1
        if calls[0] == 1:
            raise OperationalError("could not connect to server: Connection refused")
        return real(acct, ev)

    monkeypatch.setattr(webhooks, "record_and_process", flaky)

    first = post_event("usd", event)
    assert first.status_code == 503  # the database is a fault of ours: Stripe delivers it again
    assert first.json()["error"]["code"] == "unavailable"
    assert not StripeEvent.objects.filter(event_id=event["id"]).exists()
    assert Order.objects.get().status == OrderStatus.AWAITING_PAYMENT

    assert post_event("usd", event).json()["status"] == "processed"
    assert post_event("usd", event).json()["status"] == "duplicate"
    row = StripeEvent.objects.get(event_id=event["id"])
    assert (row.status, row.attempts) == (StripeEvent.Status.PROCESSED, 1)
    assert Order.objects.get().status == OrderStatus.PAID
    assert Payment.objects.get().status == PaymentStatus.SUCCEEDED


# ------------------------------------------------------------------------------------- two app processes


@pytest.fixture
def _postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip(
            f"two app processes need a database server they can share (database is {connection.vendor}); "
            "run with DATABASE_URL=postgres://..."
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@dataclass
class AppProcesses:
    bases: list[str]
    emulator: Emulator
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)


@pytest.fixture(scope="module")
def two_apps(
    django_db_setup: None, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppProcesses]:
    """Two gunicorn processes (deploy/gunicorn.conf.py, one worker each) on the pytest database, both talking
    to one emulator served over HTTP from this process."""
    if connection.vendor != "postgresql":
        pytest.skip("two app processes need PostgreSQL")
    accounts = [
        EmulatorAccount(cur, keys["secret_key"], keys["publishable_key"], keys["webhook_secret"])
        for cur, keys in settings.STRIPE_ACCOUNTS.items()
    ]
    emulator = Emulator(accounts, enabled_events=events.HANDLED)
    server = start_in_thread(emulator)
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}
    env.update(_TEST_ENV)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "core.settings",
            "ENV_FILE": os.devnull,
            "DATABASE_URL": _database_url(),
            "STRIPE_API_BASE": emulator.base_url,
            "STRIPE_MAX_NETWORK_RETRIES": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "WEB_CONCURRENCY": "1",
            "GUNICORN_THREADS": "8",
            # These tests race requests at the two processes on purpose; the bulkhead would admit 2 of them per
            # process and refuse the rest before they race (its own tests: test_bulkhead, test_stripe_bulkhead).
            "STRIPE_CONCURRENCY": "0",
            "GUNICORN_MAX_REQUESTS": "0",
            "GUNICORN_LOG_LEVEL": "warning",
            "LOG_LEVEL": "WARNING",
            # Production settings serve hashed static files from a manifest: collect them for these processes.
            "STATIC_ROOT": str(tmp_path_factory.mktemp("static")),
        }
    )
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    apps = AppProcesses([], emulator)
    try:
        for _ in range(2):
            port = _free_port()
            proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "core.wsgi"],
                cwd=ROOT,
                env={**env, "GUNICORN_BIND": f"127.0.0.1:{port}"},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            apps.procs.append(proc)
            apps.bases.append(f"http://127.0.0.1:{port}")
        for base, proc in zip(apps.bases, apps.procs, strict=True):
            deadline = time.monotonic() + 20
            while True:
                assert proc.poll() is None, f"gunicorn at {base} exited with {proc.returncode}"
                try:
                    with urllib.request.urlopen(f"{base}/healthz", timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                assert time.monotonic() < deadline, f"gunicorn at {base} did not start"
                time.sleep(0.1)
        yield apps
    finally:
        for proc in apps.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
        for proc in apps.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=5)
        server.shutdown()
        server.server_close()
        emulator.close()


class Browser:
    """One shopper's cookies, usable against any of the app processes (they share SECRET_KEY and the DB)."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}
        self.token = ""

    def request(
        self, base: str, method: str, path: str, data: bytes | None = None, **headers: str
    ) -> tuple[int, Any]:
        hdrs = {"Accept": "application/json", **headers}
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.token:
            hdrs["X-CSRFToken"] = self.token
        req = urllib.request.Request(base + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, body, set_cookies = r.status, r.read(), r.headers.get_all("Set-Cookie") or []
        except urllib.error.HTTPError as exc:
            status, body, set_cookies = exc.code, exc.read(), exc.headers.get_all("Set-Cookie") or []
        for header in set_cookies:
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            self.cookies.update({k: m.value for k, m in jar.items()})
        text = body.decode("utf-8", "replace")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def open_item(self, base: str, item_id: int) -> None:
        status, html = self.request(base, "GET", f"/item/{item_id}", Accept="text/html")
        assert status == 200
        self.token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
        assert "sessionid" in self.cookies


def fire_together(calls: list[Callable[[], Any]]) -> list[Any]:
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = calls[i]()
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a request is stuck"
    return results


TWO_PROCESS = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("_postgres_only"),
]
PER_PROCESS = 4


def _post_webhook(base: str, currency: str, payload: bytes, secret: str) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json", "Stripe-Signature": sign_payload(payload, secret)}
    return Browser().request(base, "POST", f"/webhooks/stripe/{currency}/", payload, **headers)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_postgres_only")
def test_same_event_at_two_processes_is_processed_once(usd_item: Any, two_apps: AppProcesses) -> None:
    a, b = two_apps.bases
    browser = Browser()
    browser.open_item(a, usd_item.pk)
    status, answer = browser.request(a, "POST", f"/item/{usd_item.pk}/intent")
    assert status == 200, answer
    payment = Payment.objects.get(kind=PaymentKind.PAYMENT_INTENT)
    two_apps.emulator.confirm_payment_intent(payment.stripe_id)
    event = [e for e in two_apps.emulator.events["usd"] if e["type"] == "payment_intent.succeeded"][-1]
    payload, _ = signed_event("usd", event)
    secret = settings.STRIPE_ACCOUNTS["usd"]["webhook_secret"]

    results = fire_together(
        [lambda base=base: _post_webhook(base, "usd", payload, secret) for base in [a, b] * PER_PROCESS]
    )

    assert all(isinstance(r, tuple) and r[0] == 200 for r in results), results
    statuses = sorted(body["status"] for _, body in results)
    assert statuses == ["duplicate"] * (2 * PER_PROCESS - 1) + ["processed"], results
    row = StripeEvent.objects.get(event_id=event["id"])
    assert (row.status, row.attempts) == (StripeEvent.Status.PROCESSED, 1)
    payment.refresh_from_db()
    order = payment.order
    assert payment.status == PaymentStatus.SUCCEEDED and payment.amount_received == payment.amount
    assert order.status == OrderStatus.PAID and not order.needs_attention
    assert Payment.objects.filter(order=order, status=PaymentStatus.SUCCEEDED).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_postgres_only")
def test_same_cart_adds_at_two_processes_lose_no_update(usd_item: Any, two_apps: AppProcesses) -> None:
    a, b = two_apps.bases
    browser = Browser()
    browser.open_item(a, usd_item.pk)
    status, cart = browser.request(
        a, "POST", "/order/new/", b"currency=usd", **{"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 201, cart
    body = f"item_id={usd_item.pk}&quantity=1&mode=add".encode()
    form = {"Content-Type": "application/x-www-form-urlencoded"}

    results = fire_together(
        [
            lambda base=base: browser.request(base, "POST", f"/order/put/{cart['id']}", body, **form)
            for base in [a, b] * PER_PROCESS
        ]
    )

    assert all(isinstance(r, tuple) for r in results), results
    codes = [status for status, _ in results]
    assert all(c == 200 or c == 409 for c in codes), results  # a clash is a clear 409, never a 500
    successes = codes.count(200)
    assert successes >= 1
    line = OrderLine.objects.get(order__public_id=cart["id"], item=usd_item)
    assert line.quantity == successes
    assert Order.objects.count() == 1 and OrderLine.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("_postgres_only")
@pytest.mark.parametrize(
    "first_visit",
    [
        True,
        False,
    ],
    ids=["fresh-session", "session-with-its-order"],
)
def test_same_intent_request_at_two_processes_creates_one_payment_intent(
    usd_item: Any, two_apps: AppProcesses, first_visit: bool
) -> None:
    a, b = two_apps.bases
    browser = Browser()
    browser.open_item(a, usd_item.pk)
    if not first_visit:  # the page has already asked once (or the shopper opened Checkout)
        status, _ = browser.request(b, "GET", f"/buy/{usd_item.pk}")
        assert status == 200
    before = {o["id"] for o in two_apps.emulator.objects.values() if o.get("object") == "payment_intent"}

    results = fire_together(
        [
            lambda base=base: browser.request(base, "POST", f"/item/{usd_item.pk}/intent")
            for base in [a, b] * PER_PROCESS
        ]
    )

    assert all(isinstance(r, tuple) and r[0] == 200 for r in results), results
    created = [
        o
        for o in two_apps.emulator.objects.values()
        if o.get("object") == "payment_intent" and o["id"] not in before
    ]
    assert len(created) == 1, (
        f"{len(created)} PaymentIntents for one shopper's item: {sorted(o['id'] for o in created)}"
    )
    assert {body["client_secret"] for _, body in results} == {created[0]["client_secret"]}
    assert Payment.objects.filter(kind=PaymentKind.PAYMENT_INTENT).count() == 1 and Order.objects.count() == 1
