"""Where a request's CPU goes, in one process, without gunicorn::

    .venv/bin/python -m bench.profile [--requests 300] [--profiled 100] [--top 20] [--only item,pay]

It creates a fresh PostgreSQL database (`--db`, dropped at the end; migrated, static files collected, the demo
catalog seeded), starts the Stripe emulator as a separate process (no added latency: its CPU is its own, never
counted in the shop's), and drives the shop in this process with Django's test client through the whole
middleware stack (production settings, `bench.settings`: CSRF enforced, the bulkhead on, rate limits off as in
the benchmark's throughput rows). For each endpoint it times `--requests` requests with `time.process_time()`
(this process only: the shop's Python, its SDK's HTTP client, the database driver; not PostgreSQL's nor the
emulator's CPU; the median of batches of 25), prints CPU ms per request and the ratio to the floor view's, then
profiles `--profiled` more with cProfile (CPU time) and prints the top functions by cumulative time and the own
time grouped by package.

Endpoints: `floor` (bench/urls.py's trivial view, as large as the item page), `item` (the item page, a returning
visitor), `buy` (`GET /buy/<id>`, a new shopper each time), `pay` (`POST /item/<id>/intent`, a new shopper
each time, the page's CSRF token), `webhook` (`payment_intent.succeeded`, signed, for a PaymentIntent the Pay
requests opened: the order is marked paid).

The test client adds a little work of its own to every request (building the WSGI environ, its cookie jar),
the same for each endpoint; it is in the floor's figure too, so the ratios are close to the benchmark's.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.clients import AMOUNT_RE, TOKEN_RE, succeeded_event
from bench.stack import ACCOUNTS, PG_ADMIN_URL, PYTHON, ROOT, admin_sql, free_port, stop, wait_http

ENDPOINTS = ("floor", "item", "buy", "pay", "webhook")


def environment(db_url: str, emu_base: str, work: Path) -> dict[str, str]:
    """The benchmark's production settings (bench/stack.py), for an in-process test client."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STRIPE_", "RATELIMIT_", "REDIS_")) and k.lower() not in ("debug", "secret_key")
    }
    env.update(
        {
            "ENV_FILE": str(work / "no.env"),
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "SECRET_KEY": "bench-profile-" + "x" * 50,
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SITE_URL": "http://127.0.0.1:8000",
            "RATELIMIT_ENABLED": "0",
            "SECURE_SSL_REDIRECT": "0",
            "SESSION_COOKIE_SECURE": "0",
            "CSRF_COOKIE_SECURE": "0",
            "DATABASE_URL": db_url,
            "STRIPE_CURRENCIES": ",".join(ACCOUNTS),
            "STRIPE_API_BASE": emu_base,
            "STRIPE_JS_URL": f"{emu_base}/js/stripe.js",
            "BENCH_STATIC_ROOT": str(work / "static"),
        }
    )
    for cur, (sk, pk, wh) in ACCOUNTS.items():
        env[f"STRIPE_{cur.upper()}_SECRET_KEY"] = sk
        env[f"STRIPE_{cur.upper()}_PUBLISHABLE_KEY"] = pk
        env[f"STRIPE_{cur.upper()}_WEBHOOK_SECRET"] = wh
    return env


@contextlib.contextmanager
def prepared(db_name: str, say: Callable[[str], None]) -> Iterator[None]:
    """A fresh database and the emulator in a process of its own; this process's environment points at them."""
    work = Path(tempfile.mkdtemp(prefix="shop-profile-"))
    emu_port = free_port()
    emu_base = f"http://127.0.0.1:{emu_port}"
    db_url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{db_name}"
    env = environment(db_url, emu_base, work)
    emulator: subprocess.Popen[bytes] | None = None
    say(f"database {db_name}")
    admin_sql(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
    admin_sql(f"CREATE DATABASE {db_name}")
    try:
        for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"], ["seed_demo"]):
            say("manage.py " + " ".join(command))
            subprocess.run(  # noqa: S603
                [PYTHON, "manage.py", *command], env=env, cwd=ROOT, check=True, capture_output=True
            )
        accounts = [f"{c}:{sk}:{pk}:{wh}" for c, (sk, pk, wh) in ACCOUNTS.items()]
        emulator = subprocess.Popen(  # noqa: S603
            [PYTHON, "-m", "stripe_emulator", "--port", str(emu_port)]
            + [a for acct in accounts for a in ("--account", acct)],
            env=env,
            cwd=ROOT,
            stdout=(work / "emulator.log").open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_http(f"{emu_base}/healthz", emulator, "emulator")
        say(f"emulator on :{emu_port} (its own process)")
        os.environ.clear()
        os.environ.update(env)
        yield
    finally:
        stop(emulator, "emulator")
        with contextlib.suppress(Exception):
            from django.db import connections

            connections.close_all()
        admin_sql(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")


class Shop:
    """The shop's requests as the benchmark's clients send them (bench/clients.py), through the test client."""

    def __init__(self, item_id: int) -> None:
        from django.test import Client

        self.item_id = item_id
        self.visitor = Client(enforce_csrf_checks=True, HTTP_HOST="127.0.0.1")
        page = self.visitor.get(f"/item/{item_id}")
        text = page.content.decode()
        token, amount = TOKEN_RE.search(text), AMOUNT_RE.search(text)
        if page.status_code != 200 or token is None or amount is None:
            raise RuntimeError(f"GET /item/{item_id} answered {page.status_code} without a token and amount")
        self.token, self.amount = token.group(1), amount.group(1)
        self.page_bytes = len(page.content)
        self.shopper = Client(enforce_csrf_checks=True, HTTP_HOST="127.0.0.1")
        self.shopper.cookies = self.visitor.cookies.__class__(self.visitor.cookies)  # the CSRF cookie
        self.intents: list[dict[str, Any]] = []
        self.paid = 0

    def new_shopper(self) -> Any:
        """A new person in a browser that has the CSRF cookie but no session (bench/clients.py's forget_session)."""
        self.shopper.cookies.pop("sessionid", None)
        return self.shopper

    def floor(self) -> int:
        return int(self.visitor.get(f"/bench/floor?bytes={self.page_bytes}").status_code)

    def item(self) -> int:
        return int(self.visitor.get(f"/item/{self.item_id}").status_code)

    def buy(self) -> int:
        return int(self.new_shopper().get(f"/buy/{self.item_id}", HTTP_ACCEPT="application/json").status_code)

    def pay(self) -> int:
        response = self.new_shopper().post(
            f"/item/{self.item_id}/intent",
            data=f"expected_amount={self.amount}&page_age_ms=1500",
            content_type="application/x-www-form-urlencoded",
            HTTP_X_CSRFTOKEN=self.token,
            HTTP_ACCEPT="application/json",
        )
        if response.status_code == 200:
            answer = response.json()
            self.intents.append(
                {
                    "id": answer["client_secret"].split("_secret_")[0],
                    "amount": answer["amount"],
                    "currency": answer["currency"],
                }
            )
        return int(response.status_code)

    def webhook(self) -> int:
        """`payment_intent.succeeded` for the next PaymentIntent a Pay request opened, signed by its account."""
        from stripe_emulator import sign_payload

        intent = self.intents[self.paid]
        self.paid += 1
        payload = succeeded_event(f"evt_profile_paid_{self.paid}", intent, int(time.time()))
        currency = intent["currency"]
        response = self.visitor.post(
            f"/webhooks/stripe/{currency}/",
            data=payload,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=sign_payload(payload, ACCOUNTS[currency][2]),
        )
        return int(response.status_code)


BATCH = 25  # requests per timed batch: the figure is the median batch, robust to other work on the machine


def timed(call: Callable[[], int], requests: int) -> dict[str, float]:
    """CPU (this process) and wall time per request, in ms: the median of batches of `BATCH` requests (a batch
    that shared the cores with someone else's burst does not move it); every answer must be 200."""
    statuses: dict[int, int] = {}
    batches: list[tuple[float, float]] = []
    for _ in range(max(1, requests // BATCH)):
        cpu = wall = 0.0
        for _ in range(BATCH):
            c0, w0 = time.process_time(), time.perf_counter()
            status = call()
            cpu += time.process_time() - c0
            wall += time.perf_counter() - w0
            statuses[status] = statuses.get(status, 0) + 1
        batches.append((1000 * cpu / BATCH, 1000 * wall / BATCH))
    if set(statuses) != {200}:
        raise RuntimeError(f"{call.__name__} answered {statuses}")
    batches.sort()
    cpu_ms = batches[len(batches) // 2][0]
    wall_ms = sorted(w for _, w in batches)[len(batches) // 2]
    return {"cpu_ms": cpu_ms, "wall_ms": wall_ms}


def queries(call: Callable[[], int], requests: int = 5, show: bool = False) -> float:
    """Database queries per request (counted apart from the timings: counting costs CPU of its own); with
    `show`, the last request's statements are printed."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    count = 0
    for _ in range(requests):
        with CaptureQueriesContext(connection) as captured:
            call()
        count += len(captured.captured_queries)
    if show:
        for query in captured.captured_queries:
            print(f"    sql: {query['sql'][:220]}")
    return count / requests


SITE = Path(sysconfig.get_paths()["purelib"])
STDLIB = Path(sysconfig.get_paths()["stdlib"])


def where(filename: str) -> str:
    """A function's file, short: the package under site-packages, the project's module, or the stdlib's."""
    path = Path(filename)
    for base, prefix in ((ROOT, ""), (SITE, ""), (STDLIB, "stdlib/")):
        with contextlib.suppress(ValueError):
            return prefix + str(path.relative_to(base))
    return filename


def area(filename: str) -> str:
    """What a function belongs to: a third-party package, a project app, the stdlib module, or `builtins`."""
    if filename.startswith(("~", "<")):
        return "builtins"
    short = where(filename)
    if short.startswith(".venv/"):
        short = short.split("site-packages/", 1)[-1]
    head = short.split("/")
    return "/".join(head[:2]) if head[0] == "stdlib" else head[0].removesuffix(".py")


def show_profile(
    profile: cProfile.Profile, requests: int, top: int, sort: str, focus: tuple[str, ...]
) -> float:
    """Print the profile's top functions and its own time by package; return the Python function calls per
    request (a measure of the work that other load on the machine does not move)."""
    stats = pstats.Stats(profile)
    entries: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    column = 3 if sort == "cumulative" else 2
    rows = sorted(entries.items(), key=lambda kv: kv[1][column], reverse=True)
    print(f"    top {top} by {sort} time (cumulative ms per request; own ms; calls per request)")
    shown = 0
    for (filename, line, name), (_, calls, own, cumulative, _) in rows:
        if shown >= top:
            break
        if name.startswith("<") or "django/test/" in filename or filename.endswith("bench/profile.py"):
            continue
        if focus and not where(filename).startswith(focus):
            continue
        print(
            f"    {1000 * cumulative / requests:8.3f} {1000 * own / requests:7.3f} {calls / requests:7.1f}  "
            f"{where(filename)}:{line}({name})"
        )
        shown += 1
    by_area: dict[str, float] = {}
    for (filename, _, _), (_, _, own, _, _) in entries.items():
        by_area[area(filename)] = by_area.get(area(filename), 0.0) + own
    total = sum(by_area.values()) or 1.0
    parts = sorted(by_area.items(), key=lambda kv: kv[1], reverse=True)[:12]
    print("    own time by package: " + ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in parts))
    return sum(calls for (_, calls, _, _, _) in entries.values()) / requests


def silence_logs() -> None:
    """The shop's log lines are still formatted and written (their CPU is the shop's), to /dev/null."""
    import logging

    quiet = open(os.devnull, "w")  # noqa: SIM115 - kept open for the process's life
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in logging.root.manager.loggerDict)]
    for logger in loggers:
        for handler in logger.handlers:
            if isinstance(handler, logging.StreamHandler):
                handler.setStream(quiet)


def measure(
    only: list[str],
    requests: int,
    profiled: int,
    top: int,
    sort: str,
    focus: tuple[str, ...],
    sql: bool,
    say: Callable[[str], None],
) -> None:
    import django

    django.setup()
    silence_logs()
    from catalog.models import Item

    item = Item.objects.active().filter(price_currency="USD").order_by("pk").first()
    assert item is not None, "seed_demo made no USD item"
    shop = Shop(item.pk)
    # In ENDPOINTS' order, whatever order they were asked in: the webhooks pay what Pay opened.
    wanted = {*only, "pay"} if "webhook" in only else set(only)
    only = [name for name in ENDPOINTS if name in wanted]
    figures: dict[str, dict[str, float]] = {}
    for name in only:
        call: Callable[[], int] = getattr(shop, name)
        for _ in range(
            min(20, requests)
        ):  # warm-up: imports, compiled templates, the page cache, connections
            if name == "webhook" and shop.paid >= len(shop.intents):
                break
            call()
        say(f"{name}: {requests} requests timed, {profiled} profiled")
        figures[name] = timed(call, requests)
        # CPU time, not wall time: the waits on PostgreSQL and on the emulator are not the shop's work.
        profile = cProfile.Profile(time.process_time)
        profile.enable()
        for _ in range(profiled):
            call()
        profile.disable()
        figures[name]["queries"] = queries(call, show=False)
        floor = figures.get("floor", {}).get("cpu_ms")
        ratio = f"{figures[name]['cpu_ms'] / floor:5.1f}x floor" if floor else ""
        print(
            f"\n{name}: CPU {figures[name]['cpu_ms']:.2f} ms per request {ratio}"
            f" (wall {figures[name]['wall_ms']:.2f} ms, {figures[name]['queries']:.0f} queries)"
        )
        figures[name]["calls"] = show_profile(profile, profiled, top, sort, focus)
        if sql:
            queries(call, requests=1, show=True)
    floor = figures.get("floor", {}).get("cpu_ms", float("nan"))
    print("\n| endpoint | CPU ms per request | / floor | wall ms | queries | Python calls |")
    print("|---|---|---|---|---|---|")
    for name, got in figures.items():
        print(
            f"| {name} | {got['cpu_ms']:.2f} | {got['cpu_ms'] / floor:.1f}x | {got['wall_ms']:.2f} "
            f"| {got['queries']:.0f} | {got['calls']:.0f} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--requests", type=int, default=300, help="timed requests per endpoint (300)")
    parser.add_argument(
        "--profiled", type=int, default=100, help="requests per endpoint under cProfile (100)"
    )
    parser.add_argument("--top", type=int, default=20, help="functions shown per endpoint (20)")
    parser.add_argument("--only", default=",".join(ENDPOINTS), help="endpoints, comma separated (all)")
    parser.add_argument(
        "--sort", choices=["cumulative", "own"], default="cumulative", help="order of the functions shown"
    )
    parser.add_argument(
        "--focus", action="append", default=[], help="only functions of files under this path (repeatable)"
    )
    parser.add_argument("--sql", action="store_true", help="print the statements of one request per endpoint")
    parser.add_argument("--db", default="shop_profile", help="PostgreSQL database to create and drop")
    args = parser.parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    if unknown := set(only) - set(ENDPOINTS):
        parser.error(f"unknown endpoints: {', '.join(sorted(unknown))}")
    if not args.db.isidentifier():
        parser.error("--db must be a plain name (letters, digits, _)")
    t0 = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {message}", file=sys.stderr, flush=True)

    with prepared(args.db, say):
        measure(only, args.requests, args.profiled, args.top, args.sort, tuple(args.focus), args.sql, say)
    return 0


if __name__ == "__main__":
    sys.exit(main())
