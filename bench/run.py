"""Benchmark of the production-like stack on 127.0.0.1, in one command::

    .venv/bin/python -m bench.run [--concurrency 64] [--latency-ms 250] [--duration S] [--db NAME] [--only flood]

It starts the stack (`bench/stack.py`: a fresh PostgreSQL database, the Stripe emulator adding a latency to
every API call, gunicorn with `deploy/gunicorn.conf.py` and production settings), runs each scenario with load
from a separate process (`bench/clients.py`), counts queries per request in another (`bench/queries.py`) and
prints one table with each figure beside its target (`bench/report.py`). Everything it started is stopped and
the database dropped at the end, whatever happens.

This module is the orchestration; `--role client` and `--role queries` run this same module as those processes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

from bench import clients, report
from bench.stack import ACCOUNTS, PYTHON, ROOT, Stack, nginx_binary

# The floor and the item page are measured in this many alternated rounds (gunicorn's workers share wrk's
# keep-alive connections unevenly, differently each round); the table shows the median round of each.
PAGE_ROUNDS = 3


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


@contextlib.contextmanager
def cpu_of(stack: Stack, into: dict[str, Any]) -> Iterator[None]:
    """CPU seconds spent while the block runs, by the app's workers and by what shares the machine with them
    (`Stack.cpu`), stored in `into`."""
    before = stack.cpu()
    yield
    after = stack.cpu()
    into.update({key: after[key] - before[key] for key in after})


def per_request(cpu: dict[str, float], requests: int) -> dict[str, float]:
    """Milliseconds of CPU per request, by process group (and `all`)."""
    if not requests:
        return {key: float("nan") for key in (*cpu, "all")}
    out = {key: 1000 * value / requests for key, value in cpu.items()}
    out["all"] = sum(out.values())
    return out


def page_load(stack: Stack, path: str, connections: int, duration: float) -> dict[str, Any]:
    """A page hammered by a returning visitor (session and CSRF cookies sent): wrk when installed."""
    visitor = clients.Conn(stack.base)
    status, body = visitor.request("GET", path)
    visitor.close()
    if status != 200:
        raise RuntimeError(f"GET {path} answered {status}")
    result: dict[str, Any]
    cpu: dict[str, Any] = {}
    with cpu_of(stack, cpu):
        if clients.have_wrk():
            cookie = "; ".join(f"{k}={v}" for k, v in visitor.cookies.items()) or "none=1"
            result = clients.run_wrk(stack.base + path, connections, duration, cookie)
        else:
            spec = {"kind": "get", "base": stack.base, "path": path, "threads": connections}
            spec |= {"requests": 10**9, "duration": duration}
            answer = run_role("client", spec, stack.env, duration + 180)
            result = {**answer["labels"]["get"], "tool": "python"}
            result["errors"] += answer["errors"]
    result["bytes"] = len(body)
    result["cpu"] = per_request(cpu, result["requests"])
    result["cpu_ms"] = result["cpu"]["app"]
    return result


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round of median throughput, with every round's figure beside it."""
    ordered = sorted(rounds, key=lambda result: float(result["rps"]))
    median = dict(ordered[len(ordered) // 2])
    median["rounds"] = [round(float(result["rps"])) for result in rounds]
    return median


def shoppers(stack: Stack, spec: dict[str, Any], label: str, timeout: float) -> dict[str, Any]:
    """A client scenario; the figures of requests labelled `label`, with the workers' CPU per request."""
    cpu: dict[str, Any] = {}
    with cpu_of(stack, cpu):
        answer = run_role("client", {"base": stack.base, **spec}, stack.env, timeout)
    result: dict[str, Any] = dict(answer["labels"].get(label, {"requests": 0, "rps": 0.0, "errors": 0}))
    result["errors"] = result.get("errors", 0) + answer["errors"]
    result["error_samples"] = result.get("error_samples", []) + answer["error_samples"]
    result["cpu"] = per_request(cpu, result["requests"])
    result["cpu_ms"] = result["cpu"]["app"]
    result["answers"] = answer["answers"]
    result["labels"] = answer["labels"]
    result["elapsed"] = answer["elapsed"]
    return result


def abandonment(stack: Stack, item_id: int, views: int, clicks: int) -> dict[str, Any]:
    """`views` new browsers load the item page; `clicks` of them press Pay. PaymentIntents made: `clicks`."""
    before = stack.stripe_objects("payment_intent")
    paid = 0
    for n in range(views):
        browser = clients.Conn(stack.base)
        token, amount = browser.page(f"/item/{item_id}")
        if n % (views // clicks) == 0 and paid < clicks:
            paid += clients.press_pay(browser, item_id, token, amount)[1] == 200
        browser.close()
    return {"views": views, "clicks": paid, "intents": stack.stripe_objects("payment_intent") - before}


# The promotion code flood lasts a minute: guesses accepted per minute are counted, not extrapolated.
GUESS_SECONDS = 60.0
GUESS_THREADS = 4
GUESS_PACE = 50.0  # guesses a second per thread: 200 a second in all, the rate measured through nginx before


def measure_throughput(stack: Stack, args: argparse.Namespace, r: dict[str, Any], say: Any) -> None:
    """Query counts, pages, new shoppers, abandonment, webhooks and the workers' memory (rate limits off)."""
    workers, threads = r["size"]
    slots = workers * threads
    item_id = r["item_id"]
    # The bulkhead (payments/bulkhead.py) would refuse most of these 64 shoppers with 503: the rows measure
    # what a request costs and what the stack can carry, so they run without it (the starvation row with it).
    stack.start_app(STRIPE_CONCURRENCY="0")
    probe = clients.Conn(stack.base)
    _, amount = probe.page(f"/item/{item_id}")
    probe.close()

    say("query counts (in-process test client)")
    r["queries"] = run_role("queries", {"item_id": item_id, "amount": amount}, stack.env, 180)

    conns = min(args.concurrency, 2 * slots)
    page_time = min(args.duration, 15.0)
    item_path = f"/item/{item_id}"
    size = len(clients.Conn(stack.base).request("GET", item_path)[1])
    floor_path = f"/bench/floor?bytes={size}"
    say(
        f"warm-up, then GET {floor_path} and GET {item_path} for {page_time:.0f} s each ({conns} connections)"
    )
    page_load(stack, floor_path, conns, 2)
    page_load(stack, item_path, conns, 2)
    objects_before = stack.stripe_objects("payment_intent", "checkout.session")
    orders_before = stack.scalar("SELECT count(*) FROM payments_order")
    rounds: dict[str, list[dict[str, Any]]] = {"floor": [], "item": []}
    for _ in range(PAGE_ROUNDS):  # alternated, so that both see the same machine
        rounds["floor"].append(page_load(stack, floor_path, conns, page_time / PAGE_ROUNDS))
        rounds["item"].append(page_load(stack, item_path, conns, page_time / PAGE_ROUNDS))
    r["floor"], r["item"] = median_round(rounds["floor"]), median_round(rounds["item"])
    r["item"]["stripe_objects"] = stack.stripe_objects("payment_intent", "checkout.session") - objects_before
    r["item"]["orders"] = stack.scalar("SELECT count(*) FROM payments_order") - orders_before

    shop_time = min(args.duration, 20.0)
    for name, kind, path in (
        ("buy", "buy", f"GET /buy/{item_id}"),
        ("pay", "pay", f"POST /item/{item_id}/intent"),
    ):
        say(f"{path}: {args.concurrency} new shoppers at once for {shop_time:.0f} s")
        spec = {"kind": kind, "item_id": item_id, "threads": args.concurrency, "requests": 10**9}
        spec |= {"duration": shop_time, "collect": kind == "pay"}
        r[name] = shoppers(stack, spec, kind, shop_time + 300)

    say("abandonment: 100 item page views by new browsers, 10 of them press Pay")
    r["abandonment"] = abandonment(stack, item_id, 100, 10)

    known = [
        {"id": a["client_secret"].split("_secret_")[0], "amount": a["amount"], "currency": a["currency"]}
        for a in r["pay"].pop("answers")
    ]
    hook_time = min(args.duration, 10.0)
    time.sleep(1.5)  # let the emulator's own webhooks (payment_intent.created) drain
    events_before = stack.scalar("SELECT count(*) FROM payments_stripeevent")
    say(f"webhooks for {hook_time:.0f} s ({len(known)} payments to mark paid, then other events)")
    spec = {
        "kind": "webhooks",
        "threads": min(args.concurrency, slots),
        "requests": 10**9,
        "duration": hook_time,
        "known_intents": known,
        "distinct": 20000,
        "secrets": {c: wh for c, (_, _, wh) in ACCOUNTS.items()},
    }
    hooks = shoppers(stack, spec, "webhook", hook_time + 120)
    hooks["stored"] = stack.scalar("SELECT count(*) FROM payments_stripeevent") - events_before
    hooks["paid_orders"] = stack.scalar(
        "SELECT count(DISTINCT o.id) FROM payments_order o JOIN payments_payment p ON p.order_id = o.id "
        "WHERE o.status = 'paid' AND p.kind = 'payment_intent'"
    )
    hooks["known"] = len(known)
    r["webhooks"] = hooks

    assert stack.workers is not None
    stack.workers.stop()
    r["rss_mb"] = stack.workers.peak_kb / 1024
    r["worker_pids"] = len(stack.workers.pids)


STARVATION_CLICKS = 200
STARVATION_STRIPE_S = 10.0  # Stripe answers in this long (more than STRIPE_TIMEOUT: each attempt times out)
STARVATION_MEASURE_S = 6.0


def p99_ms(values: list[float]) -> float:
    ordered = sorted(values) or [float("nan")]
    return 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def stripe_hangs(stack: Stack, seconds: float) -> None:
    """Every Stripe call sleeps this long more, from now on (the emulator's control endpoint)."""
    url = f"{stack.emu_base}/_emulator/hang"  # our own http:// emulator
    request = urllib.request.Request(url, data=f"seconds={seconds}".encode())  # noqa: S310
    urllib.request.urlopen(request, timeout=5).close()  # noqa: S310


def measure_starvation(stack: Stack, r: dict[str, Any], say: Any) -> None:
    """200 new shoppers press Pay at once (from another process, an address each) while Stripe answers in 10 s;
    meanwhile the pages and /healthz are timed (shipped config: the bulkhead on)."""
    item_id = r["item_id"]
    stack.start_app()
    first = clients.Conn(stack.base)
    token, _ = first.page(f"/item/{item_id}")
    cookie = first.cookies.get("csrftoken", "")
    first.close()
    stripe_hangs(stack, STARVATION_STRIPE_S)
    say(
        f"starvation: {STARVATION_CLICKS} Pay clicks at once while Stripe answers in {STARVATION_STRIPE_S:.0f} s"
    )
    crowd = subprocess.Popen(  # noqa: S603
        [
            PYTHON,
            "-m",
            "deploy.tests.crowd",
            stack.base,
            f"/item/{item_id}/intent",
            str(STARVATION_CLICKS),
            cookie,
            token,
        ],
        cwd=ROOT,
        env=stack.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert crowd.stdin is not None and crowd.stdout is not None
    crowd.stdout.readline()  # ready
    crowd.stdin.write("go\n")
    crowd.stdin.flush()
    pressed = time.monotonic()
    paths = {"pages": ["/", f"/item/{item_id}"], "healthz": ["/healthz"]}
    timings: dict[str, list[float]] = {"pages": [], "healthz": []}
    failed: list[int] = []

    def look(kind: str) -> None:
        conn = clients.Conn(stack.base)
        n = 0
        while time.monotonic() - pressed < STARVATION_MEASURE_S:
            path = paths[kind][n % len(paths[kind])]
            n += 1
            started = time.monotonic()
            try:
                status, _ = conn.request("GET", path)
            except OSError:
                status = 0
            timings[kind].append(time.monotonic() - started)
            if status != 200:
                failed.append(status)
            time.sleep(0.02)
        conn.close()

    lookers = [threading.Thread(target=look, args=(kind,)) for kind in timings for _ in range(2)]
    for t in lookers:
        t.start()
    for t in lookers:
        t.join()
    out, _ = crowd.communicate(timeout=120)
    answers = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    stripe_hangs(stack, 0)
    r["starvation"] = {
        "clicks": len(answers),
        "refused": sum(1 for a in answers if a["status"] == 503),
        "waited": sum(1 for a in answers if a["status"] != 503),
        "pages_p99_ms": p99_ms(timings["pages"]),
        "pages_max_ms": 1000 * max(timings["pages"], default=float("nan")),
        "healthz_p99_ms": p99_ms(timings["healthz"]),
        "healthz_max_ms": 1000 * max(timings["healthz"], default=float("nan")),
        "requests": len(timings["pages"]) + len(timings["healthz"]),
        "failed": len(failed),
    }


def measure_floods(stack: Stack, args: argparse.Namespace, r: dict[str, Any], say: Any) -> None:
    """Honest shoppers alone, then beside one address flooding Pay and the admin login, then beside one address
    guessing promotion codes through nginx (rate limits on)."""
    item_id = r["item_id"]
    flood_time = min(args.duration, 10.0)
    stack.start_app(RATELIMIT_ENABLED="1")
    honest = {"kind": "honest", "item_id": item_id, "threads": 16, "requests": 10**9}
    honest["duration"] = flood_time
    say(f"16 honest shoppers alone for {flood_time:.0f} s (rate limits on, an address each)")
    r["calm"] = shoppers(stack, honest, "pay", flood_time + 120)
    stack.start_app(RATELIMIT_ENABLED="1")  # fresh counters and no lockout left
    before = stack.stripe_objects("payment_intent")
    say(f"flood: one address hammers Pay and the admin login, 16 honest shoppers buy ({flood_time:.0f} s)")
    r["flood"] = shoppers(stack, {**honest, "beside": [["flood", 8]]}, "pay", flood_time + 120)
    made = stack.stripe_objects("payment_intent") - before
    honest_paid = r["flood"]["labels"].get("pay", {}).get("statuses", {}).get("200", 0)
    r["flood"]["flood_intents"] = made - honest_paid

    if nginx_binary() is None:
        say("nginx is not installed: the promotion code flood is skipped (make bench installs it)")
        return
    stack.start_app(RATELIMIT_ENABLED="1")
    edge = stack.start_nginx()
    say(
        f"promotion codes: one address guesses {GUESS_THREADS * GUESS_PACE:.0f} a second through nginx, "
        f"16 honest shoppers buy ({GUESS_SECONDS:.0f} s)"
    )
    spec = {**honest, "duration": GUESS_SECONDS, "edge": edge, "pace": GUESS_PACE}
    spec["beside"] = [["guess", GUESS_THREADS]]
    r["guessing"] = shoppers(stack, spec, "pay", GUESS_SECONDS + 180)


def orchestrate(args: argparse.Namespace) -> int:
    t0 = time.monotonic()

    def say(message: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {message}", file=sys.stderr, flush=True)

    r: dict[str, Any] = {"only": args.only}
    try:
        with Stack(args.db, args.latency_ms, say) as stack:
            r["size"] = stack.gunicorn_size()
            r["item_id"] = stack.scalar("SELECT min(id) FROM catalog_item WHERE price_currency = 'USD'")
            if args.only == "all":
                measure_throughput(stack, args, r, say)
                measure_starvation(stack, r, say)
            measure_floods(stack, args, r, say)
    except BaseException as exc:
        print(f"benchmark failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    r["took_s"] = time.monotonic() - t0
    report.print_table(r, args)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=64, help="concurrent shoppers (default 64)")
    parser.add_argument("--latency-ms", type=int, default=250, help="added latency per Stripe call (250)")
    parser.add_argument("--duration", type=float, default=20.0, help="at most this many seconds per scenario")
    parser.add_argument(
        "--db", default="shop_bench", help="PostgreSQL database to create and drop (shop_bench)"
    )
    parser.add_argument(
        "--only",
        choices=["all", "flood"],
        default="all",
        help="flood: only the rows of honest shoppers under floods (rate limits on, nginx in front), about 2 minutes",
    )
    parser.add_argument("--role", choices=["orchestrator", "client", "queries"], default="orchestrator")
    args = parser.parse_args(argv)
    if args.role == "client":
        print(json.dumps(clients.run_client(json.loads(sys.stdin.read()))))
        return 0
    if args.role == "queries":
        from bench.queries import count_queries

        print(json.dumps(count_queries(json.loads(sys.stdin.read()))))
        return 0
    if not args.db.isidentifier():
        parser.error("--db must be a plain name (letters, digits, _)")
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
