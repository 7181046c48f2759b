"""Load clients of the benchmark, each run as a process of its own (`python -m bench.run --role client`, the
scenario as JSON on stdin, figures as JSON on stdout), so that their CPU is not the server's: wrk for the page
scenarios when it is installed, Python threads with keep-alive connections for everything else.

Actors (one per thread):
- `get`: a returning visitor loading one page (session and CSRF cookies sent): the Python fallback of wrk;
- `buy`: a new shopper per request, `GET /buy/<id>` (a Checkout Session, JSON);
- `pay`: a new shopper per request, the Pay button of the item page (`POST /item/<id>/intent` with the CSRF
  token and the amount the page showed), as `static/js/pay.js` sends it;
- `webhooks`: signed Stripe events, one delivery in five a duplicate;
- `honest`: a person buying: loads the item page, then presses Pay, from an address of its own;
- `flood`: one address hammering the Pay endpoint (a new session each time) and the admin login (a wrong
  password each time);
- `guess`: one address guessing promotion codes through nginx, each thread a browser with a cart of its own,
  paced at `pace` guesses a second per thread.
"""

from __future__ import annotations

import http.client
import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any

TOKEN_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
AMOUNT_RE = re.compile(r'data-amount="(\d+)"')
FORM = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


class Conn:
    """One keep-alive HTTP/1.1 connection with its own cookie jar (a browser tab, roughly)."""

    def __init__(self, base: str, address: str | None = None) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        self.conn: http.client.HTTPConnection | None = None
        self.cookies: dict[str, str] = {}
        self.address = address  # sent as X-Forwarded-For: the shop trusts 127.0.0.1 as its proxy

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        hdrs = {"Host": f"{self.host}:{self.port}", **(headers or {})}
        if self.address:
            hdrs["X-Forwarded-For"] = self.address
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
                self.close()  # the server closed an idle keep-alive connection: reconnect once
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

    def page(self, path: str) -> tuple[str, str]:
        """Load a page with a form; its CSRF token and the amount its Pay button shows ("" when none)."""
        status, body = self.request("GET", path)
        text = body.decode("utf-8", "replace")
        token, amount = TOKEN_RE.search(text), AMOUNT_RE.search(text)
        if status != 200 or not token:
            raise RuntimeError(f"GET {path} answered {status} without a CSRF token")
        return token.group(1), amount.group(1) if amount else ""

    def forget_session(self) -> None:
        """A new shopper from now on, in a browser of its own: a new connection (so that, as behind nginx,
        gunicorn's workers share the shoppers), the session (browser id) goes, the CSRF cookie stays."""
        self.close()
        self.cookies.pop("sessionid", None)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


Sample = tuple[str, int, float, bytes]  # label, status, seconds, body


def timed(conn: Conn, label: str, method: str, path: str, **kw: Any) -> Sample:
    started = time.perf_counter()
    status, data = conn.request(method, path, **kw)
    return label, status, time.perf_counter() - started, data


def press_pay(conn: Conn, item_id: int, token: str, amount: str, label: str = "pay") -> Sample:
    """The item page's Pay button, as `static/js/pay.js` sends it: the page's CSRF token and amount."""
    body = f"expected_amount={amount}&page_age_ms=1500".encode()
    headers = {**FORM, "X-CSRFToken": token}
    return timed(conn, label, "POST", f"/item/{item_id}/intent", body=body, headers=headers)


class Actor:
    """One thread of a scenario: `setup` before the start line, then `step` until the scenario ends."""

    def __init__(self, spec: dict[str, Any], n: int) -> None:
        self.spec, self.n = spec, n
        self.conn = Conn(spec["base"])

    def setup(self) -> None:
        return None

    def step(self, index: int) -> list[Sample]:
        raise NotImplementedError


class GetActor(Actor):
    def setup(self) -> None:
        self.conn.request("GET", self.spec["path"])  # cookies of a returning visitor

    def step(self, index: int) -> list[Sample]:
        return [timed(self.conn, "get", "GET", self.spec["path"])]


class BuyActor(Actor):
    def step(self, index: int) -> list[Sample]:
        self.conn.forget_session()
        return [
            timed(
                self.conn,
                "buy",
                "GET",
                f"/buy/{self.spec['item_id']}",
                headers={"Accept": "application/json"},
            )
        ]


class PayActor(Actor):
    def setup(self) -> None:
        self.token, self.amount = self.conn.page(f"/item/{self.spec['item_id']}")

    def step(self, index: int) -> list[Sample]:
        self.conn.forget_session()
        return [press_pay(self.conn, self.spec["item_id"], self.token, self.amount)]


class HonestActor(Actor):
    """A new person per purchase, each from an address of its own (10.<thread>.<n>), as behind nginx."""

    def step(self, index: int) -> list[Sample]:
        self.conn.close()
        self.conn = Conn(
            self.spec["base"], address=f"10.{self.n % 250 + 1}.{index // 250 % 250}.{index % 250 + 1}"
        )
        item = self.spec["item_id"]
        started = time.perf_counter()
        token, amount = self.conn.page(f"/item/{item}")
        page = ("page", 200, time.perf_counter() - started, b"")
        return [page, press_pay(self.conn, item, token, amount)]


class FloodActor(Actor):
    """One address (192.0.2.66); even threads press Pay with a new session each time, odd ones guess the admin
    password."""

    def setup(self) -> None:
        self.conn.address = "192.0.2.66"
        self.login = self.n % 2 == 1
        path = "/admin/login/" if self.login else f"/item/{self.spec['item_id']}"
        self.token, self.amount = self.conn.page(path)

    def step(self, index: int) -> list[Sample]:
        if self.login:
            body = f"username=admin&password=guess{index}&csrfmiddlewaretoken={self.token}".encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            return [timed(self.conn, "flood_login", "POST", "/admin/login/", body=body, headers=headers)]
        self.conn.forget_session()
        return [press_pay(self.conn, self.spec["item_id"], self.token, self.amount, "flood_pay")]


class GuessActor(Actor):
    """A browser of the guesser (all of them behind one address: nginx's own, 127.0.0.1): a cart of its own,
    then one promotion code after another on it. `guess` is a guess the shop answered (400, "not valid");
    `guess_nginx` and `guess_app` the ones refused with 429 by nginx's limit_req or by the app's budgets."""

    def setup(self) -> None:
        self.conn = Conn(self.spec["edge"])
        token, _ = self.conn.page(f"/item/{self.spec['item_id']}")
        status, body = self.conn.request(
            "POST",
            "/order/new/",
            body=f"item_id={self.spec['item_id']}".encode(),
            headers={**FORM, "X-CSRFToken": token},
        )
        if status != 201:
            raise RuntimeError(f"POST /order/new/ answered {status}: {body[:200]!r}")
        self.order = json.loads(body)["id"]
        self.token = token
        self.next_at = time.monotonic()

    def step(self, index: int) -> list[Sample]:
        self.next_at += 1 / self.spec["pace"]
        time.sleep(max(0.0, self.next_at - time.monotonic()))
        body = f"code=GUESS{self.n:02d}X{index:06d}".encode()
        headers = {**FORM, "X-CSRFToken": self.token}
        label, status, seconds, data = timed(
            self.conn, "guess", "POST", f"/order/{self.order}/promo", body=body, headers=headers
        )
        if status == 429:
            label = "guess_app" if b"rate_limited" in data else "guess_nginx"
        return [(label, status, seconds, data)]


class WebhookActor(Actor):
    def __init__(self, spec: dict[str, Any], n: int, events: list[tuple[str, bytes]]) -> None:
        super().__init__(spec, n)
        self.events = events

    def step(self, index: int) -> list[Sample]:
        from stripe_emulator import sign_payload

        currency, payload = self.events[index % len(self.events)]
        headers = {
            "Content-Type": "application/json",
            "Stripe-Signature": sign_payload(payload, self.spec["secrets"][currency]),
        }
        return [
            timed(
                self.conn, "webhook", "POST", f"/webhooks/stripe/{currency}/", body=payload, headers=headers
            )
        ]


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[str, dict[str, int]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    answers: list[Any] = field(default_factory=list)

    def add(self, sample: Sample, keep_answer: bool) -> None:
        label, status, seconds, data = sample
        self.latencies.setdefault(label, []).append(seconds)
        by_status = self.statuses.setdefault(label, {})
        by_status[str(status)] = by_status.get(str(status), 0) + 1
        if not 200 <= status < 300:
            self.errors.setdefault(label, []).append(f"{status}: {data[:200].decode('utf-8', 'replace')}")
        elif keep_answer:
            self.answers.append(json.loads(data))

    def merge(self, other: Tally) -> None:
        for label, values in other.latencies.items():
            self.latencies.setdefault(label, []).extend(values)
        for label, counts in other.statuses.items():
            mine = self.statuses.setdefault(label, {})
            for status, count in counts.items():
                mine[status] = mine.get(status, 0) + count
        for label, errors in other.errors.items():
            self.errors.setdefault(label, []).extend(errors)
        self.answers.extend(other.answers)


def run_client(spec: dict[str, Any]) -> dict[str, Any]:
    """Drive one scenario, bounded by `requests` steps and `duration` seconds; figures per request label."""
    events = build_events(spec) if spec["kind"] == "webhooks" else []
    factories: dict[str, Callable[[int], Actor]] = {
        "get": lambda n: GetActor(spec, n),
        "buy": lambda n: BuyActor(spec, n),
        "pay": lambda n: PayActor(spec, n),
        "honest": lambda n: HonestActor(spec, n),
        "flood": lambda n: FloodActor(spec, n),
        "guess": lambda n: GuessActor(spec, n),
        "webhooks": lambda n: WebhookActor(spec, n, events),
    }
    groups: list[tuple[str, int]] = [(spec["kind"], spec["threads"]), *spec.get("beside", [])]
    actors = [factories[kind](n) for kind, count in groups for n in range(count)]
    lock = threading.Lock()
    issued = 0
    total = Tally()
    setup_errors: list[str] = []
    clock = {"start": 0.0, "end": 0.0}

    def release() -> None:  # once, before any thread passes the barrier
        clock["start"] = time.monotonic()
        clock["end"] = clock["start"] + spec["duration"]

    barrier = threading.Barrier(len(actors) + 1, action=release)

    def take() -> int | None:
        nonlocal issued
        with lock:
            if issued >= spec["requests"] or time.monotonic() >= clock["end"]:
                return None
            issued += 1
            return issued - 1

    def worker(actor: Actor) -> None:
        try:
            actor.setup()
        except Exception as exc:
            with lock:
                setup_errors.append(f"{type(actor).__name__} setup: {type(exc).__name__}: {exc}")
        barrier.wait()
        tally = Tally()
        keep = bool(spec.get("collect"))
        while (index := take()) is not None:
            try:
                for sample in actor.step(index):
                    tally.add(sample, keep and sample[0] == "pay" and not tally.answers and sample[1] == 200)
            except Exception as exc:
                tally.errors.setdefault("connection", []).append(f"{type(exc).__name__}: {exc}")
                actor.conn.close()
        actor.conn.close()
        with lock:
            total.merge(tally)

    threads = [threading.Thread(target=worker, args=(a,), daemon=True) for a in actors]
    for t in threads:
        t.start()
    barrier.wait(timeout=120)
    for t in threads:
        t.join(timeout=spec["duration"] + 120)
    elapsed = time.monotonic() - clock["start"]
    labels: dict[str, Any] = {}
    for label, values in total.latencies.items():
        labels[label] = {
            "requests": len(values),
            "rps": len(values) / elapsed if elapsed else 0.0,
            "p50_ms": percentile(values, 50) * 1000,
            "p99_ms": percentile(values, 99) * 1000,
            "statuses": total.statuses.get(label, {}),
            "errors": len(total.errors.get(label, [])),
            "error_samples": total.errors.get(label, [])[:3],
        }
    connection_errors = total.errors.get("connection", [])
    return {
        "elapsed": elapsed,
        "labels": labels,
        "errors": len(setup_errors) + len(connection_errors),
        "error_samples": (setup_errors + connection_errors)[:5],
        "answers": total.answers,
        "distinct_events": len({p for _, p in events}),
    }


def build_events(spec: dict[str, Any]) -> list[tuple[str, bytes]]:
    """Distinct events to sign: `payment_intent.succeeded` for the PaymentIntents the shoppers opened (real
    processing: payment and order locked and updated), then `payment_intent.created` for objects the shop does not
    know (stored and ignored); every fifth delivery repeats an earlier event (a duplicate, answered 200)."""
    now = int(time.time())
    distinct: list[tuple[str, bytes]] = []
    for n, intent in enumerate(spec["known_intents"]):
        distinct.append((intent["currency"], succeeded_event(f"evt_bench_paid_{n}", intent, now)))
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


def succeeded_event(event_id: str, intent: dict[str, Any], created: int) -> bytes:
    """`payment_intent.succeeded` for a PaymentIntent a Pay request opened (its id, amount and currency)."""
    obj = {
        "id": intent["id"],
        "object": "payment_intent",
        "amount": intent["amount"],
        "amount_received": intent["amount"],
        "currency": intent["currency"],
        "status": "succeeded",
    }
    return _event(event_id, "payment_intent.succeeded", obj, created)


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


# ------------------------------------------------------------------------------------------------ wrk

_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(url: str, connections: int, duration: float, cookie: str) -> dict[str, Any]:
    """wrk with one thread (the other core is the server's), the returning visitor's cookies."""
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
