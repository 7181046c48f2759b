"""Several machines' worth of processes on loopback: two app servers (separate gunicorn masters, each with its own
memory), two task workers, one PostgreSQL, Redis as the shared cache, nginx with both app servers as upstreams,
the Stripe emulator delivering its webhooks through nginx, and a mail relay.

- Rate limits are one budget across both app servers (Redis), not one per server.
- A price changed in the admin on one app server shows on the other within a second.
- A flood of Stripe's webhooks, delivered again and out of order across both app servers, pays every order once
  and sends every confirmation once, while one app server and one worker are killed mid-run: what the killed
  worker held is taken over (the sweep starts it again), nothing is lost.

It needs PostgreSQL, Redis and Debian's nginx: `.ci/run` runs it after `deploy/smoke.sh` has installed nginx.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from djmoney.money import Money

from catalog.models import Item
from deploy.tests import live
from payments.models import FollowUp, Order, OrderStatus, Payment, StripeEvent

ROOT = live.ROOT
REDIS_URL = "redis://127.0.0.1:6379/11"
ORDERS = 8


def requirements() -> None:
    """Skipped where PostgreSQL, nginx or Redis is missing, except in CI (SHOP_REQUIRE_TWO_SERVERS=1), where that
    is a failure."""
    from django.db import connection

    missing = pytest.fail if os.environ.get("SHOP_REQUIRE_TWO_SERVERS") == "1" else pytest.skip
    if connection.vendor != "postgresql":
        missing("needs PostgreSQL shared by several processes (run with DATABASE_URL=postgres://...)")
    if not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")):
        missing("needs Debian's nginx: .ci/run runs this test after deploy/smoke.sh installs it")
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        missing("needs Redis at 127.0.0.1:6379")


@pytest.fixture(scope="module")
def static_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("two-servers-static")
    live.collect_static(root)
    return root


@contextmanager
def nginx(tmp: Path, upstreams: list[str], static_root: Path, port: int) -> Iterator[str]:
    """deploy/nginx.conf with its paths and ports changed, and both app servers as its upstreams."""
    binary = shutil.which("nginx") or "/usr/sbin/nginx"
    site = (ROOT / "deploy" / "nginx.conf").read_text()
    servers = "\n    ".join(f"server {u} fail_timeout=0;" for u in upstreams)
    site = site.replace("server 127.0.0.1:8000 fail_timeout=0;", servers)
    site = site.replace("listen 80;", f"listen 127.0.0.1:{port};").replace("listen [::]:80;", "")
    site = site.replace("alias /srv/shop/staticfiles/", f"alias {static_root}/")
    site = site.replace("access_log /var/log/nginx/access.log", f"access_log {tmp}/nginx-access.log")
    (tmp / "nginx").mkdir(exist_ok=True)
    (tmp / "nginx" / "shop.conf").write_text(site)
    user = "user root;" if os.getuid() == 0 else ""
    (tmp / "nginx" / "nginx.conf").write_text(
        f"""{user}
worker_processes 1;
daemon off;
pid {tmp}/nginx/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 512; }}
http {{
    include /etc/nginx/mime.types;
    access_log {tmp}/nginx-access.log;
    client_body_temp_path {tmp}/nginx/client_body;
    proxy_temp_path {tmp}/nginx/proxy;
    fastcgi_temp_path {tmp}/nginx/fastcgi;
    uwsgi_temp_path {tmp}/nginx/uwsgi;
    scgi_temp_path {tmp}/nginx/scgi;
    include {tmp}/nginx/shop.conf;
}}
"""
    )
    command = [
        binary,
        "-p",
        str(tmp / "nginx"),
        "-c",
        str(tmp / "nginx" / "nginx.conf"),
        "-e",
        str(tmp / "e.log"),
    ]
    base = f"http://127.0.0.1:{port}"
    with live.running(command, os.environ, tmp / "nginx.log", base, f"{base}/favicon.ico"):
        yield base


@contextmanager
def worker(env: dict[str, str], log: Path, name: str) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "db_worker",
                "--no-reload",
                "--interval",
                "0.2",
                "--worker-id",
                name,
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        kill(proc)


def kill(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        proc.wait(timeout=20)


def wait_until(check: Any, timeout: float, what: str, step: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(step)


def stripe(emulator: str, method: str, path: str, currency: str = "usd", **params: str) -> Any:
    """A call to the emulator with the account's secret key (as Stripe's dashboard or a test would)."""
    data = urllib.parse.urlencode(params).encode() if method == "POST" else None
    url = f"{emulator}{path}" + (
        "" if method == "POST" or not params else f"?{urllib.parse.urlencode(params)}"
    )
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {settings.STRIPE_ACCOUNTS[currency]['secret_key']}")
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read())


def post_event(base: str, event: dict[str, Any], currency: str = "usd") -> int:
    payload = json.dumps(event).encode()
    signature = live.emulator_package().sign_payload(
        payload, settings.STRIPE_ACCOUNTS[currency]["webhook_secret"]
    )
    request = urllib.request.Request(
        f"{base}/webhooks/stripe/{currency}/",
        data=payload,
        method="POST",
        headers={"Content-Type": "application/json", "Stripe-Signature": signature},
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0  # the app server was killed: Stripe delivers again later


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_app_servers_two_workers_one_database(static_root: Path, tmp_path: Path) -> None:
    requirements()
    redis.Redis.from_url(REDIS_URL).flushdb()
    relay = live.SmtpRelay()
    relay.start()
    item = Item.objects.create(name="Kettle", price=Money(Decimal("59.00"), "USD"))
    admin = get_user_model().objects.create_superuser("staff", "staff@example.com")
    admin.password = PBKDF2PasswordHasher().encode("a-long-staff-password", "twoserverssalt")  # production's
    admin.save()
    with ExitStack() as stack:
        stack.callback(relay.stop)
        nginx_port = live.free_port()  # nginx comes up after the app servers; Stripe is told its address now
        site = f"http://127.0.0.1:{nginx_port}"
        base_env = live.production_env(static_root)
        emulator = stack.enter_context(
            live.emulator(base_env, tmp_path / "emulator.log", webhook_base=site)
        ).base
        env = live.production_env(
            static_root,
            WEB_CONCURRENCY="1",
            GUNICORN_THREADS="8",
            REDIS_URL=REDIS_URL,
            STRIPE_API_BASE=emulator,
            EMAIL_URL=relay.url,
            SITE_URL=site,
            CSRF_TRUSTED_ORIGINS=site,
            FOLLOWUP_STUCK_AFTER="3",
        )
        app1 = stack.enter_context(live.gunicorn(env, tmp_path / "app1.log"))
        app2 = stack.enter_context(live.gunicorn(env, tmp_path / "app2.log"))
        workers = [stack.enter_context(worker(env, tmp_path / f"worker{n}.log", f"w{n}")) for n in (1, 2)]
        upstreams = [app1.base.removeprefix("http://"), app2.base.removeprefix("http://")]
        with nginx(tmp_path, upstreams, static_root, nginx_port) as front:
            assert front == site

            # 1. One rate-limit budget across both app servers: Pay clicks from one address, alternately.
            if time.time() % 60 > 40:  # the limits count in fixed minutes: all 40 clicks in one of them
                time.sleep(60.5 - time.time() % 60)
            answers = []
            for n in range(40):
                shopper = live.Browser(app1.base if n % 2 else app2.base)
                shopper.open(f"/item/{item.pk}")  # its CSRF token
                status, _, _ = shopper.json("POST", f"/item/{item.pk}/intent", {})
                answers.append(status)
            assert answers.count(200) == 30 and answers.count(429) == 10, answers  # 30 a minute per address

            # 2. A price changed in the admin on one app server shows on the other within a second.
            staff = live.Browser(app1.base)
            staff.open("/admin/login/")
            status, _, page = staff.request(
                "POST",
                "/admin/login/?next=/admin/",
                urllib.parse.urlencode(
                    {
                        "username": "staff",
                        "password": "a-long-staff-password",
                        "csrfmiddlewaretoken": staff.token,
                    }
                ).encode(),
                follow=False,
                **{
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Referer": f"{app1.base}/admin/login/",
                },
            )
            assert status == 302, page
            assert "$59.00" in live.Browser(app2.base).open(f"/item/{item.pk}")  # cached on app2 now
            change = f"/admin/catalog/item/{item.pk}/change/"
            staff.open(change)
            status, _, _ = staff.request(
                "POST",
                change,
                urllib.parse.urlencode(
                    {
                        "name": "Kettle",
                        "description": "",
                        "price_0": "64.00",
                        "price_1": "USD",
                        "is_active": "on",
                        "csrfmiddlewaretoken": staff.token,
                        "_save": "Save",
                    }
                ).encode(),
                follow=False,
                **{"Content-Type": "application/x-www-form-urlencoded", "Referer": f"{app1.base}{change}"},
            )
            assert status == 302
            changed_at = time.monotonic()
            wait_until(
                lambda: "$64.00" in live.Browser(app2.base).open(f"/item/{item.pk}"), 1.0, "price on app2"
            )
            assert time.monotonic() - changed_at < 1.0

            # 3. Orders paid, their webhooks flooding both servers (duplicates, out of order) while one app server
            # and one worker are killed.
            redis.Redis.from_url(REDIS_URL).flushdb()  # a new minute for the rate limits spent above
            orders = []
            for n in range(ORDERS):
                shopper = live.Browser(site)
                shopper.open(f"/item/{item.pk}")
                status, _, body = shopper.json(
                    "POST",
                    f"/item/{item.pk}/intent",
                    {"receipt_email": f"shopper{n}@example.com"},
                    **{"X-Forwarded-For": f"203.0.113.{n + 1}"},
                )
                assert status == 200, body
                orders.append(body["order_id"])
                pi = body["client_secret"].split("_secret_")[0]
                stripe(emulator, "POST", f"/v1/payment_intents/{pi}/confirm", payment_method="pm_card_visa")
            events = stripe(emulator, "GET", "/v1/events", limit="100")["data"]
            flood = [e for e in events if e["type"].startswith(("payment_intent.", "charge."))] * 2
            random.Random(7).shuffle(flood)
            for n, event in enumerate(flood):
                if n == len(flood) // 3:
                    kill(app2.proc, signal.SIGKILL)  # an app server dies
                    kill(workers[1], signal.SIGKILL)  # and a worker, maybe mid-task
                post_event(app1.base if n % 2 or app2.proc.poll() is not None else app2.base, event)

            def settled() -> bool:
                subprocess.run(  # the sweep (cron): replays failed deliveries, starts stuck follow-ups again
                    [sys.executable, "manage.py", "reconcile_payments", "--older-than", "0"],
                    cwd=ROOT,
                    env=env,
                    capture_output=True,
                    timeout=120,
                )
                paid = Order.objects.filter(public_id__in=orders, status=OrderStatus.PAID).count()
                busy = FollowUp.objects.exclude(status=FollowUp.Status.DONE).count()
                return paid == ORDERS and busy == 0 and len(relay.messages) >= ORDERS

            wait_until(settled, 90, "every order paid and every follow-up done", step=2)
            time.sleep(1)  # nothing more arrives
            assert len(relay.messages) == ORDERS  # every confirmation sent once
            assert len(set(relay.message_ids())) == ORDERS
            for public_id in orders:
                paid = Payment.objects.filter(order__public_id=public_id, status="succeeded")
                assert paid.count() == 1  # paid once
            assert not StripeEvent.objects.filter(status=StripeEvent.Status.FAILED).exists()
