# ruff: noqa: S310, S603, S311 - loopback addresses, the shop's own commands, a seeded shuffle
"""The task queue's benchmark: `make bench-queue` (= `python -m bench.queue`), about 3 minutes, PostgreSQL.

1. **A webhook answers whatever Stripe and the mail server do.** Stripe hangs 15 s on every call and the mail
   relay takes 15 s to answer: signed `payment_intent.succeeded` events (1 in 5 a duplicate) for orders that
   each have a second open object to close and a confirmation to send are posted by 8 senders. Their answer
   times (target: p99 < 100 ms), every answer that was not 2xx (each one a redelivery the shop caused: 0), then
   Stripe and SMTP come back and the time until every follow-up is done (one email per order).
2. **Throughput end to end**: signed events answered *and their follow-ups done*, 1 in 5 a duplicate, with one task
   worker and with two.
3. **Connections**: two app servers with the shipped gunicorn sizing (deploy/gunicorn.conf.py) and two task
   workers under the /buy load (new shoppers, Stripe at 250 ms): the most PostgreSQL connections seen at once,
   against `max_connections` (target: under 80 %).

Figures, never pass/fail: printed beside their targets. The database `--db` is made for the run and dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def setup_django(db: str) -> None:
    os.environ["DATABASE_URL"] = ADMIN_URL.rsplit("/", 1)[0] + f"/{db}"
    os.environ["DJANGO_SETTINGS_MODULE"] = "core.test_settings"
    import django

    django.setup()
    from django.conf import settings

    # This process only writes fixtures and reads results: the bench database itself, not a test database.
    settings.DATABASES["default"]["NAME"] = db


@contextmanager
def database(db: str) -> Iterator[None]:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{db}"')
    try:
        yield
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else 0.0


class Bench:
    def __init__(self, args: argparse.Namespace, stack: ExitStack) -> None:
        from deploy.tests import live

        self.live = live
        self.args = args
        self.stack = stack
        self.tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-queue-")))
        static = self.tmp / "static"
        live.collect_static(static)
        self.relay = live.SmtpRelay()
        self.relay.start()
        stack.callback(self.relay.stop)
        self.emulator = stack.enter_context(
            live.emulator(live.production_env(static), self.tmp / "emulator.log", latency_ms=0)
        ).base
        self.env = live.production_env(
            static,
            STRIPE_API_BASE=self.emulator,
            EMAIL_URL=self.relay.url,
            RATELIMIT_ENABLED="0",  # one address sends everything here
            STRIPE_TIMEOUT="5",
        )
        subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=self.env, check=True)

    # ------------------------------------------------------------------------------------------ processes

    @contextmanager
    def workers(self, count: int) -> Iterator[None]:
        procs = []
        for n in range(count):
            log = (self.tmp / f"worker{n}.log").open("wb")
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "manage.py",
                        "db_worker",
                        "--no-reload",
                        "--interval",
                        "0.1",
                        "--worker-id",
                        f"b{n}",
                    ],
                    cwd=ROOT,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        try:
            yield
        finally:
            for proc in procs:
                self.live_kill(proc)

    def live_kill(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=30)

    def hang(self, seconds: float) -> None:
        urllib.request.urlopen(
            urllib.request.Request(f"{self.emulator}/_emulator/hang", data=f"seconds={seconds}".encode()),
            timeout=5,
        ).read()

    # ------------------------------------------------------------------------------------------ fixtures

    def paid_orders(self, n: int) -> list[dict[str, Any]]:
        """`n` orders, each frozen with a PaymentIntent paid at Stripe and a Checkout Session still open (the work
        a worker must do: close the session, send the confirmation); their `payment_intent.succeeded` events."""
        from django.conf import settings

        from catalog.models import Item
        from payments import freezing, locks
        from payments.models import Order, OrderLine, Payment

        item = Item.objects.get_or_create(
            name="Bench beans", defaults={"price": Decimal("24.50"), "price_currency": "USD"}
        )[0]
        events = []
        for i in range(n):
            order = Order.objects.create(
                currency="usd", browser=f"bench-{uuid.uuid4().hex}", email=f"b{i}@example.com"
            )
            OrderLine.objects.create(order=order, item=item, quantity=1, unit_price=item.amount)
            with locks.locked(order.pk) as locked:
                freezing.freeze(locked)  # awaiting payment, v1: its snapshot is what Stripe is paid
            sk = settings.STRIPE_ACCOUNTS["usd"]["secret_key"]
            session = self.stripe(
                sk,
                "/v1/checkout/sessions",
                **{
                    "mode": "payment",
                    "success_url": "https://example.com/s",
                    "line_items[0][price_data][currency]": "usd",
                    "line_items[0][price_data][unit_amount]": "2450",
                    "line_items[0][price_data][product_data][name]": "Bench beans",
                    "line_items[0][quantity]": "1",
                },
            )
            Payment.objects.create(
                order=order,
                kind="checkout_session",
                account="usd",
                stripe_id=session["id"],
                order_version=1,
                amount=2450,
                currency="usd",
                status="open",
                idempotency_key=f"b-cs-{i}",
            )
            pi_id = f"pi_bench{uuid.uuid4().hex[:20]}"
            Payment.objects.create(
                order=order,
                kind="payment_intent",
                account="usd",
                stripe_id=pi_id,
                payment_intent_id=pi_id,
                order_version=1,
                amount=2450,
                currency="usd",
                status="open",
                idempotency_key=f"b-pi-{i}",
            )
            intent = {
                "id": pi_id,
                "object": "payment_intent",
                "status": "succeeded",
                "amount": 2450,
                "amount_received": 2450,
                "currency": "usd",
                "livemode": False,
                "metadata": {"order_id": str(order.public_id), "order_version": "1", "payment_ref": "bench"},
            }
            events.append(
                {
                    "id": f"evt_bench{uuid.uuid4().hex[:20]}",
                    "object": "event",
                    "type": "payment_intent.succeeded",
                    "api_version": "2026-10-28.endive",
                    "created": int(time.time()),
                    "livemode": False,
                    "data": {"object": intent},
                }
            )
        return events

    def stripe(self, secret: str, path: str, **params: str) -> Any:
        request = urllib.request.Request(
            f"{self.emulator}{path}",
            data=urllib.parse.urlencode(params).encode(),
            headers={"Authorization": f"Bearer {secret}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def send(
        self, base: str, events: list[dict[str, Any]], senders: int = 8
    ) -> tuple[list[float], list[int]]:
        """Post the events (each fifth one twice), signed, from `senders` threads: answer times (ms), statuses."""
        from django.conf import settings

        sign = self.live.emulator_package().sign_payload
        secret = settings.STRIPE_ACCOUNTS["usd"]["webhook_secret"]
        flood = [e for n, e in enumerate(events) for _ in range(2 if n % 5 == 0 else 1)]
        random.Random(5).shuffle(flood)
        times: list[float] = []
        statuses: list[int] = []
        lock = threading.Lock()

        def sender(part: list[dict[str, Any]]) -> None:
            for event in part:
                payload = json.dumps(event).encode()
                request = urllib.request.Request(
                    f"{base}/webhooks/stripe/usd/",
                    data=payload,
                    headers={"Content-Type": "application/json", "Stripe-Signature": sign(payload, secret)},
                )
                start = time.perf_counter()
                try:
                    with urllib.request.urlopen(request, timeout=60) as response:
                        status = response.status
                except urllib.error.HTTPError as exc:
                    status = exc.code
                elapsed = (time.perf_counter() - start) * 1000
                with lock:
                    times.append(elapsed)
                    statuses.append(status)

        threads = [threading.Thread(target=sender, args=(flood[i::senders],)) for i in range(senders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return times, statuses

    def follow_ups_left(self) -> int:
        from payments.models import FollowUp

        return FollowUp.objects.exclude(status="done").count()

    def sweep(self) -> None:
        subprocess.run(
            [sys.executable, "manage.py", "reconcile_payments", "--older-than", "0"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            timeout=300,
        )

    # ------------------------------------------------------------------------------------------ scenarios

    def hanging(self, events: int) -> dict[str, Any]:
        fixtures = self.paid_orders(events)
        sent_before = len(self.relay.messages)
        self.hang(15)
        self.relay.delay = 15
        with self.live.gunicorn(self.env, self.tmp / "app-hang.log") as app, self.workers(1):
            times, statuses = self.send(app.base, fixtures)
            self.hang(0)
            self.relay.delay = 0
            back = time.monotonic()
            self.sweep()  # brings the follow-ups waiting out their backoff forward
            while self.follow_ups_left():
                time.sleep(0.5)
                if time.monotonic() - back > 240:
                    break
            caught_up = time.monotonic() - back
        return {
            "answers": len(times),
            "p50": percentile(times, 50),
            "p99": percentile(times, 99),
            "max": max(times),
            "not_2xx": sum(1 for s in statuses if not 200 <= s < 300),
            "caught_up_s": caught_up,
            "left": self.follow_ups_left(),
            "emails": len(self.relay.messages) - sent_before,
            "orders": events,
        }

    def throughput(self, events: int, workers: int) -> dict[str, Any]:
        fixtures = self.paid_orders(events)
        with self.live.gunicorn(self.env, self.tmp / f"app-{workers}.log") as app, self.workers(workers):
            start = time.monotonic()
            times, statuses = self.send(app.base, fixtures)
            answered = time.monotonic() - start
            while self.follow_ups_left() and time.monotonic() - start < 300:
                time.sleep(0.05)
            done = time.monotonic() - start
            left = self.follow_ups_left()
        deliveries = len(statuses)
        return {
            "deliveries": deliveries,
            "answered_per_s": deliveries / answered,
            "done_per_s": deliveries / done,
            "p99": percentile(times, 99),
            "not_2xx": sum(1 for s in statuses if not 200 <= s < 300),
            "left": left,
        }

    def connections(self, seconds: float) -> dict[str, Any]:
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SHOW max_connections")
            max_connections = int(cursor.fetchone()[0])
        db = connection.settings_dict["NAME"]
        self.hang(0)
        urllib.request.urlopen(
            urllib.request.Request(f"{self.emulator}/_emulator/hang", data=b"seconds=0.25"), timeout=5
        ).read()
        env = {k: v for k, v in self.env.items() if k not in ("WEB_CONCURRENCY", "GUNICORN_THREADS")}
        peak = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                while not stop.is_set():
                    count = admin.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [db]
                    ).fetchone()
                    peak = max(peak, int(count[0]) if count else 0)
                    time.sleep(0.05)

        from catalog.models import Item

        item = Item.objects.first()
        assert item is not None
        with ExitStack() as apps, self.workers(2):
            servers = [
                apps.enter_context(self.live.gunicorn(env, self.tmp / f"app-c{n}.log")) for n in range(2)
            ]
            watcher = threading.Thread(target=sample)
            watcher.start()
            done = 0
            deadline = time.monotonic() + seconds
            lock = threading.Lock()

            def shopper(n: int) -> None:
                nonlocal done
                base = servers[n % 2].base
                while time.monotonic() < deadline:
                    request = urllib.request.Request(
                        f"{base}/buy/{item.pk}", headers={"Accept": "application/json"}
                    )
                    try:
                        urllib.request.urlopen(request, timeout=30).read()
                        with lock:
                            done += 1
                    except urllib.error.HTTPError:
                        pass

            threads = [threading.Thread(target=shopper, args=(n,)) for n in range(128)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            stop.set()
            watcher.join()
        self.hang(0)
        return {"peak": peak, "max_connections": max_connections, "buys": done, "seconds": seconds}


def report(hanging: dict[str, Any], tput: list[dict[str, Any]], conns: dict[str, Any]) -> str:
    rows = [
        "| Measure | Result | Target |",
        "|---|---|---|",
        f"| Webhook answer, Stripe hanging 15 s and SMTP 15 s ({hanging['answers']} deliveries) | p50 "
        f"{hanging['p50']:.0f} ms, p99 **{hanging['p99']:.0f} ms**, max {hanging['max']:.0f} ms | p99 < 100 ms: "
        f"{'met' if hanging['p99'] < 100 else 'NOT met'} |",
        f"| Answers that were not 2xx (a redelivery the shop caused) | **{hanging['not_2xx']}** | 0: "
        f"{'met' if hanging['not_2xx'] == 0 else 'NOT met'} |",
        f"| Stripe and SMTP back: every follow-up done | in {hanging['caught_up_s']:.1f} s, {hanging['left']} left; "
        f"{hanging['emails']} emails for {hanging['orders']} orders | all done, one email each |",
    ]
    for workers, row in zip((1, 2), tput, strict=True):
        rows.append(
            f"| Signed webhooks end to end, 1 in 5 a duplicate, {workers} worker{'s' if workers > 1 else ''} "
            f"({row['deliveries']} deliveries) | answered {row['answered_per_s']:.0f}/s, answered and followed "
            f"up **{row['done_per_s']:.0f}/s**, p99 {row['p99']:.0f} ms, {row['not_2xx']} not 2xx"
            f"{', ' + str(row['left']) + ' follow-ups left' if row['left'] else ''} | |"
        )
    share = conns["peak"] / conns["max_connections"]
    rows.append(
        f"| Peak PostgreSQL connections, 2 app servers x shipped sizing + 2 workers, /buy from 128 shoppers "
        f"({conns['buys']} in {conns['seconds']:.0f} s) | **{conns['peak']}** of {conns['max_connections']} "
        f"= {share:.0%} | < 80%: {'met' if share < 0.8 else 'NOT met'} |"
    )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="shop_bench_queue")
    parser.add_argument("--events", type=int, default=100, help="orders (and events) per scenario")
    parser.add_argument("--seconds", type=float, default=20, help="the /buy load of the connections row")
    args = parser.parse_args(argv)
    print(f"load average before: {os.getloadavg()}", flush=True)
    with database(args.db), ExitStack() as stack:
        setup_django(args.db)
        bench = Bench(args, stack)
        print("1. webhooks while Stripe and SMTP hang", flush=True)
        hanging = bench.hanging(args.events)
        print("2. throughput with 1 and 2 workers", flush=True)
        tput = [bench.throughput(args.events * 3, workers) for workers in (1, 2)]
        print("3. connections of 2 app servers and 2 workers under /buy", flush=True)
        conns = bench.connections(args.seconds)
        print()
        print(report(hanging, tput, conns))
    print(f"\nload average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
