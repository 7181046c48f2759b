"""Benchmark of the production-like stack on 127.0.0.1, in one command::

    .venv/bin/python -m bench.run [--concurrency 64] [--latency-ms 250] [--requests N] [--duration S]

It creates a fresh PostgreSQL database (`shop_bench`, dropped at the end whatever happens), migrates and seeds it,
starts the Stripe emulator with an added latency per API call, starts gunicorn with `deploy/gunicorn.conf.py` and
production settings (`bench.wsgi`: the shop plus a trivial `/bench/floor` view), drives load from separate
processes (wrk for the page scenarios when installed, otherwise the Python client below; the Python client for
shoppers and webhooks), and prints one table. Everything it started is stopped at the end.

The same file is also the load client (`--role client`) and the in-process query counter (`--role queries`),
each run as a separate process by the orchestrator.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import runpy
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
DB_NAME = "shop_bench"
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")

ACCOUNTS = {
    "usd": (
        "sk_test_bench_usd_0000000000000000",
        "pk_test_bench_usd_0000000000000000",
        "whsec_bench_usd_0000",
    ),
    "eur": (
        "sk_test_bench_eur_1111111111111111",
        "pk_test_bench_eur_1111111111111111",
        "whsec_bench_eur_1111",
    ),
}
EXTRA_ITEMS = 30  # items (and order lines) added to check that no query count grows with them
TOKEN_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


# ================================================================================================ load client


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


class Conn:
    """One keep-alive HTTP/1.1 connection with its own cookie jar (a browser tab, roughly)."""

    def __init__(self, base: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.conn: http.client.HTTPConnection | None = None
        self.cookies: dict[str, str] = {}

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        hdrs = {"Host": f"{self.host}:{self.port}", **(headers or {})}
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                self.conn.request(method, path, body=body, headers=hdrs)
                response = self.conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # the server closed an idle keep-alive connection: reconnect once
                self.close()
                if attempt:
                    raise
                continue
            for header in response.headers.get_all("Set-Cookie") or []:
                jar: SimpleCookie = SimpleCookie()
                jar.load(header)
                for name, morsel in jar.items():
                    self.cookies[name] = morsel.value
            if response.getheader("Connection", "").lower() == "close":
                self.close()
            return response.status, data
        raise RuntimeError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    answers: list[Any] = field(default_factory=list)


def run_client(spec: dict[str, Any]) -> dict[str, Any]:
    """Drive one scenario with `threads` threads, bounded by `requests` and `duration`; print JSON figures."""
    base: str = spec["base"]
    threads: int = spec["threads"]
    limit: int = spec["requests"]
    duration: float = spec["duration"]
    kind: str = spec["kind"]
    lock = threading.Lock()
    issued = 0
    tally = Tally()
    setup_errors: list[str] = []
    deadline = [0.0]
    started = [0.0]

    def release() -> None:  # runs once, before any thread passes the barrier
        started[0] = time.monotonic()
        deadline[0] = started[0] + duration

    barrier = threading.Barrier(threads + 1, action=release)
    events: list[tuple[str, bytes]] = []
    if kind == "webhooks":
        events = build_events(spec)

    def take() -> int | None:
        nonlocal issued
        with lock:
            if issued >= limit or time.monotonic() >= deadline[0]:
                return None
            issued += 1
            return issued - 1

    def worker(n: int) -> None:
        conn = Conn(base)
        headers: dict[str, str] = {}
        try:
            if kind == "shoppers":  # a session and a CSRF token from the item page, as a browser gets them
                status, page = conn.request("GET", f"/item/{spec['item_id']}")
                match = TOKEN_RE.search(page.decode("utf-8", "replace"))
                if status != 200 or not match or "sessionid" not in conn.cookies:
                    raise RuntimeError(
                        f"item page {status}, token={bool(match)}, cookies={list(conn.cookies)}"
                    )
                headers = {"X-CSRFToken": match.group(1), "Accept": "application/json"}
        except Exception as exc:
            with lock:
                setup_errors.append(f"{type(exc).__name__}: {exc}")
        barrier.wait()
        local_lat: list[float] = []
        local_status: dict[str, int] = {}
        local_errors: list[str] = []
        local_answers: list[Any] = []
        while (index := take()) is not None:
            method, path, extra = "GET", spec.get("path", "/"), dict(headers)
            body: bytes | None = None
            if kind == "shoppers":
                method = spec["method"]
            elif kind == "webhooks":
                currency, payload = events[index % len(events)]
                from stripe_emulator import sign_payload

                method, path, body = "POST", f"/webhooks/stripe/{currency}/", payload
                extra = {
                    "Content-Type": "application/json",
                    "Stripe-Signature": sign_payload(payload, spec["secrets"][currency]),
                }
            sent_at = time.perf_counter()
            try:
                status, data = conn.request(method, path, body=body, headers=extra)
            except Exception as exc:
                local_errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                continue
            local_lat.append(time.perf_counter() - sent_at)
            local_status[str(status)] = local_status.get(str(status), 0) + 1
            if not 200 <= status < 300:
                local_errors.append(f"{status}: {data[:200].decode('utf-8', 'replace')}")
            elif kind == "shoppers" and spec.get("collect") and not local_answers:
                local_answers.append(json.loads(data))
        conn.close()
        with lock:
            tally.latencies.extend(local_lat)
            tally.errors.extend(local_errors)
            tally.answers.extend(local_answers)
            for key, count in local_status.items():
                tally.statuses[key] = tally.statuses.get(key, 0) + count

    workers = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(threads)]
    for t in workers:
        t.start()
    barrier.wait(timeout=120)
    for t in workers:
        t.join(timeout=duration + 120)
    elapsed = time.monotonic() - started[0]
    done = len(tally.latencies)
    return {
        "requests": done,
        "elapsed": elapsed,
        "rps": done / elapsed if elapsed else 0.0,
        "p50_ms": percentile(tally.latencies, 50) * 1000,
        "p99_ms": percentile(tally.latencies, 99) * 1000,
        "statuses": tally.statuses,
        "errors": len(tally.errors) + len(setup_errors),
        "error_samples": (setup_errors + tally.errors)[:5],
        "answers": tally.answers,
        "distinct_events": len({p for _, p in events}),
    }


def build_events(spec: dict[str, Any]) -> list[tuple[str, bytes]]:
    """Distinct signed-to-be events: `payment_intent.succeeded` for the PaymentIntents the shoppers opened (real
    processing: payment and order locked and updated), then `payment_intent.created` for objects the shop does not
    know (stored and ignored); every fifth delivery repeats an earlier event (a duplicate, answered 200)."""
    now = int(time.time())
    distinct: list[tuple[str, bytes]] = []
    for n, intent in enumerate(spec["known_intents"]):
        obj = {
            "id": intent["id"],
            "object": "payment_intent",
            "amount": intent["amount"],
            "amount_received": intent["amount"],
            "currency": intent["currency"],
            "status": "succeeded",
        }
        distinct.append(
            (intent["currency"], _event(f"evt_bench_paid_{n}", "payment_intent.succeeded", obj, now))
        )
    n = 0
    while len(distinct) < spec["distinct"]:
        obj = {"id": f"pi_bench_unknown_{n}", "object": "payment_intent", "amount": 1000, "currency": "usd"}
        distinct.append(("usd", _event(f"evt_bench_other_{n}", "payment_intent.created", obj, now)))
        n += 1
    sequence: list[tuple[str, bytes]] = []
    for i, event in enumerate(distinct):
        sequence.append(event)
        if i % 4 == 3:
            sequence.append(distinct[(i * 7) % (i + 1)])  # a redelivery of an earlier event
    return sequence


def _event(event_id: str, event_type: str, obj: dict[str, Any], created: int) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": "2026-10-28.endive",
            "created": created,
            "livemode": False,
            "type": event_type,
            "data": {"object": obj},
        }
    ).encode()


# ================================================================================================ query counts


def count_queries(spec: dict[str, Any]) -> dict[str, Any]:
    """Queries per request, measured in-process with Django's test client against the benchmark database."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    django.setup()
    from decimal import Decimal

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from djmoney.money import Money

    from catalog.models import Item
    from payments.models import Order, OrderLine

    def measure(client: Client, method: str, path: str, **extra: Any) -> tuple[int, int, list[str]]:
        with CaptureQueriesContext(connection) as ctx:
            response = getattr(client, method)(path, **extra)
        return response.status_code, len(ctx.captured_queries), [q["sql"][:160] for q in ctx.captured_queries]

    item_id = spec["item_id"]
    out: dict[str, Any] = {}
    out["floor"] = measure(Client(HTTP_HOST="127.0.0.1"), "get", "/bench/floor")
    shopper = Client(HTTP_HOST="127.0.0.1")
    out["item_first"] = measure(shopper, "get", f"/item/{item_id}")
    out["item_repeat"] = measure(shopper, "get", f"/item/{item_id}")
    out["buy_first"] = measure(shopper, "get", f"/buy/{item_id}")
    out["buy_repeat"] = measure(shopper, "get", f"/buy/{item_id}")
    out["intent_first"] = measure(shopper, "post", f"/item/{item_id}/intent")
    out["intent_repeat"] = measure(shopper, "post", f"/item/{item_id}/intent")
    out["index_small"] = measure(shopper, "get", "/")
    first = Item.objects.get(pk=item_id)
    small = Order.objects.create(currency=first.currency)
    OrderLine.objects.create(order=small, item=first, quantity=1, unit_price=first.amount)
    big = Order.objects.create(currency=first.currency)
    for n in range(EXTRA_ITEMS):
        item = Item.objects.create(
            name=f"Bench item {n}",
            description="Added by bench.run",
            price=Money(Decimal("3.00"), "USD"),  # type: ignore[misc]
        )
        OrderLine.objects.create(order=big, item=item, quantity=1 + n % 5, unit_price=item.amount)
    out["index_big"] = measure(shopper, "get", "/")
    out["order_small"] = measure(shopper, "get", f"/order/{small.public_id}")
    out["order_big"] = measure(shopper, "get", f"/order/{big.public_id}")
    out["items"] = (Item.objects.count() - EXTRA_ITEMS, Item.objects.count())
    return out


# ================================================================================================ orchestrator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f} s")


def admin_sql(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql)


def db_scalar(db_url: str, sql: str) -> int:
    import psycopg

    with psycopg.connect(db_url, connect_timeout=5) as conn:
        row = conn.execute(sql).fetchone()
        return int(row[0]) if row else 0


class Workers:
    """Peak memory of gunicorn's workers: VmHWM of every child of the master, sampled twice a second (workers
    are recycled after GUNICORN_MAX_REQUESTS, so pids change during the run)."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.peak_kb = 0
        self.pids: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def children(self) -> list[int]:
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{entry}/stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == self.master:
                    pids.append(int(entry))
        return pids

    def sample(self) -> None:
        for pid in self.children():
            self.pids.add(pid)
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_kb = max(self.peak_kb, int(line.split()[1]))

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            self.sample()

    def stop(self) -> None:
        self.sample()
        self._stop.set()


def stop(proc: subprocess.Popen[bytes] | None, name: str) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)  # its own session: gunicorn's master and workers
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        print(f"{name} did not stop in 20 s; killing it", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def run_role(role: str, spec: dict[str, Any], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run this module as a separate process in `role`; it reads `spec` on stdin and answers JSON."""
    done = subprocess.run(  # noqa: S603
        [PYTHON, "-m", "bench.run", "--role", role],
        input=json.dumps(spec).encode(),
        capture_output=True,
        env=env,
        cwd=ROOT,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{role} failed: {done.stderr.decode()[-3000:]}")
    return dict(json.loads(done.stdout.decode().strip().splitlines()[-1]))


_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def run_wrk(url: str, connections: int, duration: float, cookie: str) -> dict[str, Any]:
    cmd = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{max(1, round(duration))}s", "--latency"]
    cmd += ["-H", f"Cookie: {cookie}", "--timeout", "30s", url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, check=True).stdout  # noqa: S603

    def latency(pct: str) -> float:
        match = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        return float(match.group(1)) * _WRK_UNITS[match.group(2)] if match else float("nan")

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(g) for g in sock.groups()) if sock else 0)
    return {
        "rps": float(rps.group(1)) if rps else 0.0,
        "requests": int(total.group(1)) if total else 0,
        "p50_ms": latency("50"),
        "p99_ms": latency("99"),
        "errors": errors,
        "tool": "wrk",
    }


def page_load(
    base: str, path: str, connections: int, duration: float, limit: int, env: dict[str, str]
) -> dict[str, Any]:
    """A page hammered by a returning visitor (session and CSRF cookies sent): wrk when installed."""
    browser = Conn(base)
    status, _ = browser.request("GET", path)
    browser.close()
    if status != 200:
        raise RuntimeError(f"GET {path} answered {status}")
    cookie = "; ".join(f"{k}={v}" for k, v in browser.cookies.items()) or "none=1"
    if shutil.which("wrk"):
        return run_wrk(base + path, connections, duration, cookie)
    spec = {
        "kind": "get",
        "base": base,
        "path": path,
        "threads": connections,
        "requests": limit,
        "duration": duration,
    }
    result = run_role("client", spec, env, duration + 180)
    result["tool"] = "python"
    return result


@contextlib.contextmanager
def terminate_on_signals() -> Iterator[None]:
    def raise_exit(signum: int, frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    previous = {s: signal.signal(s, raise_exit) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def fmt(value: float, digits: int = 1) -> str:
    return "n/a" if value != value else f"{value:,.{digits}f}"  # NaN check


def orchestrate(args: argparse.Namespace) -> int:
    t0 = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="shop-bench-"))
    app_port, emu_port = free_port(), free_port()
    while emu_port == app_port:
        emu_port = free_port()
    base = f"http://127.0.0.1:{app_port}"
    db_url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{DB_NAME}"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("STRIPE_") and k.lower() not in ("debug", "secret_key", "allowed_hosts")
    }
    env.update(
        {
            "ENV_FILE": str(work / "no.env"),
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "PYTHONUNBUFFERED": "1",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SITE_URL": base,  # required with DEBUG off
            # Every simulated shopper comes from 127.0.0.1: the app's per-address limits would refuse the
            # throughput scenarios (a flood scenario turns them on and gives shoppers addresses of their own).
            "RATELIMIT_ENABLED": "0",
            "SECURE_SSL_REDIRECT": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "DATABASE_URL": db_url,
            "STRIPE_CURRENCIES": ",".join(ACCOUNTS),
            "STRIPE_API_BASE": f"http://127.0.0.1:{emu_port}",
            "STRIPE_JS_URL": f"http://127.0.0.1:{emu_port}/js/stripe.js",
            "STRIPE_MAX_NETWORK_RETRIES": "0",
            "GUNICORN_BIND": f"127.0.0.1:{app_port}",
            "BENCH_STATIC_ROOT": str(Path(tempfile.gettempdir()) / "shop-bench-static"),
        }
    )
    for cur, (sk, pk, wh) in ACCOUNTS.items():
        env.update({f"STRIPE_{cur.upper()}_SECRET_KEY": sk, f"STRIPE_{cur.upper()}_PUBLISHABLE_KEY": pk})
        env[f"STRIPE_{cur.upper()}_WEBHOOK_SECRET"] = wh
    with_env = dict(os.environ)
    os.environ.update(env)
    try:  # what gunicorn will read, with the same environment
        conf = runpy.run_path(str(ROOT / "deploy" / "gunicorn.conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(with_env)
    workers, threads = int(conf["workers"]), int(conf["threads"])
    server_slots = workers * threads
    latency_s = args.latency_ms / 1000
    ideal = min(args.concurrency, server_slots) / latency_s if latency_s else float("inf")

    emulator: subprocess.Popen[bytes] | None = None
    gunicorn: subprocess.Popen[bytes] | None = None
    monitor: Workers | None = None
    db_created = False
    results: dict[str, Any] = {}
    exit_code = 0
    try:
        with terminate_on_signals():
            step = lambda msg: print(f"[{time.monotonic() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)  # noqa: E731
            step(f"database {DB_NAME}")
            admin_sql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
            admin_sql(f"CREATE DATABASE {DB_NAME}")
            db_created = True
            for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"], ["seed_demo"]):
                step("manage.py " + " ".join(command))
                subprocess.run(  # noqa: S603
                    [PYTHON, "manage.py", *command], env=env, cwd=ROOT, check=True, capture_output=True
                )
            step(f"emulator on :{emu_port} (latency {args.latency_ms} ms per API call)")
            emu_log = (work / "emulator.log").open("wb")
            accounts = [f"{c}:{sk}:{pk}:{wh}" for c, (sk, pk, wh) in ACCOUNTS.items()]
            emulator = subprocess.Popen(  # noqa: S603
                [PYTHON, "-m", "stripe_emulator", "--port", str(emu_port), "--webhook-base", base]
                + [a for acct in accounts for a in ("--account", acct)]
                + ["--latency-ms", str(args.latency_ms)],
                env=env,
                cwd=ROOT,
                stdout=emu_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            wait_http(f"http://127.0.0.1:{emu_port}/healthz", emulator, "emulator")
            step(f"gunicorn on :{app_port} ({workers} workers x {threads} threads)")
            gun_log = (work / "gunicorn.log").open("wb")
            gunicorn = subprocess.Popen(  # noqa: S603
                [PYTHON, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "bench.wsgi"],
                env=env,
                cwd=ROOT,
                stdout=gun_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            wait_http(f"{base}/healthz", gunicorn, "gunicorn")
            monitor = Workers(gunicorn.pid)
            item_id = db_scalar(db_url, "SELECT min(id) FROM catalog_item WHERE price_currency = 'USD'")

            step("query counts (in-process test client)")
            results["queries"] = run_role("queries", {"item_id": item_id}, env, 120)

            conns = min(args.concurrency, 2 * server_slots)
            page_time = min(args.duration, 10.0)
            step(f"warm-up, then GET /bench/floor for {page_time:.0f} s ({conns} connections)")
            page_load(base, "/bench/floor", conns, 2, args.requests, env)
            results["floor"] = page_load(base, "/bench/floor", conns, page_time, args.requests, env)
            step(f"GET /item/{item_id} for {page_time:.0f} s")
            page_load(base, f"/item/{item_id}", conns, 2, args.requests, env)
            results["item"] = page_load(base, f"/item/{item_id}", conns, page_time, args.requests, env)

            shop_time = min(args.duration, 20.0)
            for name, method, path in (
                ("buy", "GET", f"/buy/{item_id}"),
                ("intent", "POST", f"/item/{item_id}/intent"),
            ):
                step(f"{method} {path}: {args.concurrency} shoppers for {shop_time:.0f} s")
                spec = {
                    "kind": "shoppers",
                    "base": base,
                    "item_id": item_id,
                    "method": method,
                    "path": path,
                    "threads": args.concurrency,
                    "requests": args.requests,
                    "duration": shop_time,
                    "collect": name == "intent",
                }
                results[name] = run_role("client", spec, env, shop_time + 300)

            known = []
            for answer in results["intent"].pop("answers", []):
                known.append(
                    {
                        "id": answer["client_secret"].split("_secret_")[0],
                        "amount": answer["amount"],
                        "currency": answer["currency"],
                    }
                )
            results["buy"].pop("answers", None)
            hook_time = min(args.duration, 10.0)
            time.sleep(1.5)  # let the emulator's own webhooks (payment_intent.created) drain
            events_before = db_scalar(db_url, "SELECT count(*) FROM payments_stripeevent")
            step(f"webhooks for {hook_time:.0f} s ({len(known)} payments to mark paid, then other events)")
            spec = {
                "kind": "webhooks",
                "base": base,
                "threads": min(args.concurrency, server_slots),
                "requests": args.requests,
                "duration": hook_time,
                "known_intents": known,
                "distinct": max(len(known), min(args.requests, 20000)),
                "secrets": {c: wh for c, (_, _, wh) in ACCOUNTS.items()},
            }
            hooks = run_role("client", spec, env, hook_time + 120)
            results["webhooks"] = hooks
            hooks["stored"] = db_scalar(db_url, "SELECT count(*) FROM payments_stripeevent") - events_before
            hooks["paid_orders"] = db_scalar(
                db_url,
                "SELECT count(DISTINCT o.id) FROM payments_order o JOIN payments_payment p ON p.order_id = o.id "
                "WHERE o.status = 'paid' AND p.kind = 'payment_intent'",
            )
            hooks["known"] = len(known)
            monitor.stop()
            results["rss_mb"] = monitor.peak_kb / 1024
            results["worker_pids"] = len(monitor.pids)
    except BaseException as exc:
        print(f"benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        exit_code = 1
    finally:
        if monitor is not None:
            monitor.stop()
        stop(gunicorn, "gunicorn")
        stop(emulator, "emulator")
        if db_created:
            try:
                admin_sql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
            except Exception as exc:
                print(f"could not drop {DB_NAME}: {exc}", file=sys.stderr)
        if exit_code:
            for log in ("gunicorn.log", "emulator.log"):
                log_path = work / log
                if log_path.exists():
                    print(f"--- tail of {log} ---", file=sys.stderr)
                    print("\n".join(log_path.read_text(errors="replace").splitlines()[-30:]), file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
    if exit_code:
        return exit_code
    print_table(results, args, workers, threads, ideal, time.monotonic() - t0)
    return 0


def print_table(
    r: dict[str, Any], args: argparse.Namespace, workers: int, threads: int, ideal: float, took: float
) -> None:
    q = r["queries"]
    floor, item = r["floor"], r["item"]
    ratio = item["rps"] / floor["rps"] if floor["rps"] else 0.0
    rows: list[tuple[str, str, str, str, str]] = []

    def ok(flag: bool) -> str:
        return "yes" if flag else "NO"

    rows.append(
        (
            "GET /bench/floor (trivial view)",
            f"{fmt(floor['rps'])} req/s",
            f"{fmt(floor['p50_ms'])} / {fmt(floor['p99_ms'])}",
            f"{q['floor'][1]} queries, {floor['errors']} errors",
            "-",
        )
    )
    item_ok = ratio >= 0.70 and q["item_repeat"][1] <= 2 and item["errors"] == 0
    rows.append(
        (
            "GET /item/<id> (returning visitor)",
            f"{fmt(item['rps'])} req/s = {ratio:.0%} of floor",
            f"{fmt(item['p50_ms'])} / {fmt(item['p99_ms'])}",
            f"{q['item_repeat'][1]} queries (first visit {q['item_first'][1]}), {item['errors']} errors",
            f">=70% of floor, <=2 queries: {ok(item_ok)}",
        )
    )
    for key, label in (("buy", "GET /buy/<id>"), ("intent", "POST /item/<id>/intent")):
        res = r[key]
        share = res["rps"] / ideal if ideal else 0.0
        rows.append(
            (
                f"{label} ({args.concurrency} shoppers)",
                f"{fmt(res['rps'])} req/s = {share:.0%} of ideal {fmt(ideal)}",
                f"{fmt(res['p50_ms'])} / {fmt(res['p99_ms'])}",
                f"{q[key + '_repeat'][1]} queries (first {q[key + '_first'][1]}), {res['errors']} errors",
                f">=90% of ideal, 0 errors: {ok(share >= 0.9 and res['errors'] == 0)}",
            )
        )
    hooks = r["webhooks"]
    dupes = hooks["requests"] - min(hooks["requests"], hooks["stored"])
    rows.append(
        (
            "POST /webhooks/stripe/<cur>/ (signed)",
            f"{fmt(hooks['rps'])} events/s",
            f"{fmt(hooks['p50_ms'])} / {fmt(hooks['p99_ms'])}",
            f"{hooks['requests']} sent, {hooks['stored']} stored once, ~{dupes} duplicates, {hooks['errors']} errors",
            f"paid {hooks['paid_orders']}/{hooks['known']} orders, 0 errors: "
            + ok(hooks["errors"] == 0 and hooks["paid_orders"] >= hooks["known"]),
        )
    )
    rows.append(
        (
            "Peak RSS of a gunicorn worker",
            f"{fmt(r['rss_mb'])} MB",
            "-",
            f"VmHWM, {r['worker_pids']} worker pids seen",
            "-",
        )
    )
    growth = (
        f"/order/<id> 1 line: {q['order_small'][1]}, {EXTRA_ITEMS} lines: {q['order_big'][1]}; "
        f"/ with {q['items'][0]} items: {q['index_small'][1]}, {q['items'][1]} items: {q['index_big'][1]}"
    )
    flat = q["order_small"][1] == q["order_big"][1] and q["index_small"][1] == q["index_big"][1]
    rows.append(("Queries vs items/lines", growth, "-", "-", f"no growth: {ok(flat)}"))
    headers = ("Measure", "Figure", "p50 / p99 ms", "Details", "Target (issue 8)")
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
    line = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    print(
        f"\nStripe Shop benchmark: gunicorn {workers} workers x {threads} threads (gthread) on "
        f"{os.cpu_count()} cores, PostgreSQL, emulator latency {args.latency_ms} ms/call, "
        f"load from separate processes ({floor.get('tool', 'python')} for pages, Python threads for the rest); "
        f"ran {took:.0f} s"
    )
    print(line)
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print(line)
    for row in rows:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
    print(line)
    print(
        f"ideal = min(C={args.concurrency}, workers*threads={workers * threads}) / {args.latency_ms} ms; "
        "every /buy and intent request makes one Stripe call (create on the first, retrieve to reuse after)."
    )
    if q["item_first"][1] > 2:
        print("item page first visit queries:", *q["item_first"][2], sep="\n  ")
    print("item page repeat visit queries:", *q["item_repeat"][2], sep="\n  ")
    for key in ("buy", "intent", "webhooks"):
        if r[key]["errors"]:
            print(f"{key} error samples:", *r[key]["error_samples"], sep="\n  ")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent shoppers (default 64)")
    parser.add_argument("--latency-ms", type=int, default=250, help="added latency per Stripe call (250)")
    parser.add_argument(
        "--requests", type=int, default=100_000, help="at most this many requests per scenario"
    )
    parser.add_argument("--duration", type=float, default=20.0, help="at most this many seconds per scenario")
    parser.add_argument("--role", choices=["orchestrator", "client", "queries"], default="orchestrator")
    args = parser.parse_args(argv)
    if args.role == "client":
        print(json.dumps(run_client(json.loads(sys.stdin.read()))))
        return 0
    if args.role == "queries":
        print(json.dumps(count_queries(json.loads(sys.stdin.read()))))
        return 0
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
