"""HTTP front end of the Stripe emulator (development/test-only; an in-memory emulator, not a processor).

Serves the emulated API under ``/v1``, the Stripe.js double at ``/js/stripe.js``, a hosted
Checkout page at ``/checkout/{id}`` (with its authentication step), ``/healthz`` and a control endpoint
``/_emulator/hang`` (``POST seconds=N`` makes every /v1 call sleep N seconds: a slow Stripe),
``/_emulator/stats`` (objects stored by kind and API calls by route, for load tests), with
permissive CORS so a shop page on another port can call it. Built on the standard library's ``ThreadingHTTPServer``.
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from stripe_emulator import money
from stripe_emulator.core import Emulator
from stripe_emulator.stripe_js import render_stripe_js

__all__ = ["EmulatorServer", "make_server", "render_checkout_page", "start_in_thread"]

_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": (
        "Authorization, Content-Type, Idempotency-Key, Stripe-Version, Stripe-Account"
    ),
    "Access-Control-Expose-Headers": "Request-Id, Stripe-Version, Idempotent-Replayed",
    "Access-Control-Max-Age": "600",
}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f6f9fc;color:#1a1f36;margin:0}
main{max-width:480px;margin:40px auto;background:#fff;border-radius:10px;padding:28px;
box-shadow:0 4px 16px rgba(50,50,93,.12)}
h1{font-size:20px;margin:0 0 4px}.emu{color:#697386;font-size:13px;margin:0 0 20px}
table{width:100%;border-collapse:collapse;margin-bottom:20px}td{padding:6px 0;vertical-align:top}
td.amt{text-align:right;white-space:nowrap}
tr.total td{border-top:1px solid #e3e8ee;font-weight:600;padding-top:10px}
small{color:#697386}label{display:block;font-size:14px;margin-bottom:6px}
input{width:100%;box-sizing:border-box;padding:10px;font-size:16px;border:1px solid #cfd7df;border-radius:6px}
button{margin-top:16px;width:100%;padding:12px;font-size:16px;background:#635bff;color:#fff;border:0;
border-radius:6px;cursor:pointer}.error{color:#df1b41;margin:12px 0}.notice{padding:12px;background:#fff8e1;
border-radius:6px}a{color:#635bff}.cancel{display:block;text-align:center;margin-top:14px}
button.secondary{background:#fff;color:#635bff;border:1px solid #635bff}
"""


# The hosted Checkout page's own words in the languages the shop asks for (`locale` of the session), as Stripe's
# page shows its words in the shopper's language; any other locale gets English. Amounts keep one format.
_WORDS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Checkout",
        "expired": "This checkout session has expired.",
        "complete": "This checkout session is already complete.",
        "3ds_title": "3D Secure test payment",
        "3ds_text": "Stripe emulator: your bank asks you to confirm the payment of {amount}. Complete or fail the "
        "authentication.",
        "3ds_complete": "Complete authentication",
        "3ds_fail": "Fail authentication",
        "qty": "Qty",
        "subtotal": "Subtotal",
        "discount": "Discount",
        "included": "included",
        "total": "Total due",
        "cancel": "Cancel and return",
        "email": "Email",
        "card": "Card number",
        "pay": "Pay {amount}",
    },
    "ru": {
        "title": "Оплата",
        "expired": "Срок этой сессии оплаты истёк.",
        "complete": "Эта сессия оплаты уже завершена.",
        "3ds_title": "Тестовая проверка 3D Secure",
        "3ds_text": "Эмулятор Stripe: банк просит подтвердить платёж на {amount}. Подтвердите или отклоните "
        "проверку.",
        "3ds_complete": "Подтвердить",
        "3ds_fail": "Отклонить",
        "qty": "Кол-во",
        "subtotal": "Промежуточный итог",
        "discount": "Скидка",
        "included": "включён",
        "total": "Итого к оплате",
        "cancel": "Отменить и вернуться",
        "email": "Электронная почта",
        "card": "Номер карты",
        "pay": "Оплатить {amount}",
    },
}


def _language(locale: str) -> str:
    """`ru`, `ru-RU` -> `ru`; `auto` and languages without words here -> `en`."""
    language = locale.split("-")[0].lower()
    return language if language in _WORDS else "en"


def _page(title: str, body: str, language: str = "en") -> str:
    return (
        f"<!doctype html><html lang='{language}'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body><main>{body}</main></body></html>"
    )


def _percent(value: Any) -> str:
    text = f"{float(value):.4f}".rstrip("0").rstrip(".")
    return f"{text}%"


def render_checkout_page(data: dict[str, Any], error: str | None = None) -> str:
    """The hosted Checkout page for ``data`` (from ``Emulator.checkout_page_data``), as an HTML string.

    An open session shows its lines, discount, taxes, total and a card form; a session whose card asks for
    authentication shows the authentication step instead (complete or fail it, like Stripe's test page).
    """
    session = data["session"]
    cur = session["currency"]
    fmt = money.format_amount
    esc = html.escape
    locale = str(session.get("locale") or "auto")
    language = _language(locale)
    words = _WORDS[language]
    header = (
        f"<h1>{words['title']}</h1><p class='emu' lang='en'>Stripe emulator hosted checkout "
        "(in-memory test double, not a payment processor). "
        f"Locale asked for: <span id='emulator-checkout-locale'>{esc(locale)}</span></p>"
    )
    if session["status"] != "open":
        message = words["expired"] if session["status"] == "expired" else words["complete"]
        return _page(
            words["title"],
            header + f"<p class='notice' id='emulator-checkout-status'>{message}</p>",
            language,
        )
    action = f"/checkout/{esc(session['id'], quote=True)}"
    if data.get("awaiting_authentication"):
        step = (
            "<section id='emulator-checkout-3ds' role='dialog' aria-label='3D Secure test authentication'>"
            f"<h2>{words['3ds_title']}</h2>"
            f"<p>{words['3ds_text'].format(amount=fmt(session['amount_total'], cur))}</p>"
            f"<form method='post' action='{action}/authenticate'>"
            "<button type='submit' name='success' value='true' id='emulator-3ds-complete'>"
            f"{words['3ds_complete']}</button>"
            "<button type='submit' name='success' value='false' id='emulator-3ds-fail' class='secondary'>"
            f"{words['3ds_fail']}</button></form></section>"
        )
        return _page(words["title"], header + step, language)
    rows = []
    for item, (name, desc) in zip(data["lines"], data["products"], strict=True):
        desc_html = f"<br><small>{esc(desc)}</small>" if desc else ""
        rows.append(
            f"<tr class='line'><td>{esc(str(name))}{desc_html}<br><small>{words['qty']} {item['quantity']} &times; "
            f"{fmt(item['price']['unit_amount'], cur)}</small></td>"
            f"<td class='amt'>{fmt(item['amount_subtotal'], cur)}</td></tr>"
        )
    rows.append(
        f"<tr><td>{words['subtotal']}</td><td class='amt' id='emulator-checkout-subtotal'>"
        f"{fmt(session['amount_subtotal'], cur)}</td></tr>"
    )
    coupon = data.get("coupon") or {}
    for discount in data["breakdown"]["discounts"]:
        label = coupon.get("name") or discount["discount"]["source"]["coupon"]
        rows.append(
            f"<tr class='discount'><td>{words['discount']} ({esc(str(label))})</td>"
            f"<td class='amt' id='emulator-checkout-discount'>-{fmt(discount['amount'], cur)}</td></tr>"
        )
    for tax in data["breakdown"]["taxes"]:
        rate = tax["rate"]
        kind = f" ({words['included']})" if rate["inclusive"] else ""
        rows.append(
            f"<tr class='tax'><td>{esc(str(rate['display_name']))} {_percent(rate['percentage'])}{kind}</td>"
            f"<td class='amt'>{fmt(tax['amount'], cur)}</td></tr>"
        )
    rows.append(
        f"<tr class='total'><td>{words['total']}</td><td class='amt' id='emulator-checkout-total'>"
        f"{fmt(session['amount_total'], cur)}</td></tr>"
    )
    error_html = (
        f"<p class='error' id='emulator-checkout-error' role='alert'>{esc(error)}</p>" if error else ""
    )
    cancel = session.get("cancel_url")
    cancel_html = (
        f"<a class='cancel' id='emulator-checkout-cancel' href='{esc(cancel, quote=True)}'>"
        f"{words['cancel']}</a>"
        if cancel
        else ""
    )
    given = session.get("customer_email")
    email_html = (
        f"<p class='email'>{words['email']} <strong id='emulator-checkout-email'>{esc(str(given))}</strong></p>"
        if given
        else f"<label for='email'>{words['email']}</label>"
        "<input id='email' name='email' type='email' value='' autocomplete='email' placeholder='you@example.com'>"
    )
    form = (
        f"<form method='post' action='{action}/pay'>"
        f"{email_html}"
        f"<label for='card_number'>{words['card']}</label>"
        "<input id='card_number' name='card_number' value='' inputmode='numeric' autocomplete='cc-number' "
        "placeholder='4242 4242 4242 4242'>"
        "<small lang='en'>Stripe emulator test card form: 4242&hellip; succeeds, 4000 0000 0000 0002 declines, "
        "4000 0025 0000 3155 asks for authentication.</small>"
        f"<button type='submit' id='emulator-checkout-pay'>"
        f"{words['pay'].format(amount=fmt(session['amount_total'], cur))}</button>"
        "</form>"
    )
    body = header + f"<table>{''.join(rows)}</table>" + error_html + form + cancel_html
    return _page(words["title"], body, language)


class EmulatorServer(ThreadingHTTPServer):
    """``ThreadingHTTPServer`` carrying the emulator and the per-API-call latency."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], emulator: Emulator, latency_ms: int = 0, hang_seconds: float = 0
    ) -> None:
        self.emulator = emulator
        self.latency_ms = latency_ms
        #: Every /v1 call sleeps this long before it is answered (a slow or hanging Stripe); change it at
        #: run time with ``POST /_emulator/hang`` (``seconds=N``, 0 to stop).
        self.hang_seconds = hang_seconds
        super().__init__(address, _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: EmulatorServer
    protocol_version = "HTTP/1.1"
    server_version = "StripeEmulator/1.0"
    # Headers and body go out as two writes: without TCP_NODELAY the body waits for the client's delayed ACK
    # (40 ms on Linux), which would add to every call the latency a test or benchmark asked for.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        merged = {**_CORS, **headers}
        for key, value in merged.items():
            if key.lower() not in ("content-length", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _html(self, status: int, text: str) -> None:
        self._send(status, text.encode("utf-8"), {"Content-Type": "text/html; charset=utf-8"})

    def do_OPTIONS(self) -> None:
        self._send(204, b"", {})

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        emu = self.server.emulator
        path = urlsplit(self.path).path
        body = self._body() if method in ("POST", "DELETE") else b""
        if path.startswith("/v1/") or path == "/v1":
            delay = self.server.latency_ms / 1000 + self.server.hang_seconds
            if delay > 0:
                time.sleep(delay)
            status, headers, out = emu.handle(method, self.path, dict(self.headers.items()), body)
            self._send(status, out, headers)
            return
        if path == "/_emulator/hang" and method in ("GET", "POST"):
            self._hang(method, body)
            return
        if method == "GET" and path == "/_emulator/stats":
            self._send(200, json.dumps(emu.stats()).encode(), {"Content-Type": "application/json"})
            return
        if method == "GET" and path == "/healthz":
            self._send(200, b'{"status": "ok"}', {"Content-Type": "application/json"})
            return
        if method == "GET" and path == "/js/stripe.js":
            js = render_stripe_js(emu.base_url).encode("utf-8")
            self._send(
                200,
                js,
                {"Content-Type": "application/javascript; charset=utf-8", "Cache-Control": "no-store"},
            )
            return
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] == "checkout":
            self._checkout(method, parts[1], parts[2:], body)
            return
        self._send(
            404,
            b'{"error": {"type": "invalid_request_error", "message": "Not found"}}',
            {"Content-Type": "application/json"},
        )

    def _hang(self, method: str, body: bytes) -> None:
        """``POST /_emulator/hang`` with ``seconds=N``: every /v1 call sleeps N seconds from now on."""
        if method == "POST":
            form = parse_qs(body.decode("utf-8", "replace")) or parse_qs(urlsplit(self.path).query)
            try:
                seconds = float((form.get("seconds") or [""])[0])
            except ValueError:
                seconds = -1.0
            if not 0 <= seconds <= 3600:
                self._send(
                    400,
                    b'{"error": {"type": "invalid_request_error", "message": "seconds must be 0 to 3600"}}',
                    {"Content-Type": "application/json"},
                )
                return
            self.server.hang_seconds = seconds
        answer = json.dumps({"hang_seconds": self.server.hang_seconds}).encode()
        self._send(200, answer, {"Content-Type": "application/json", "Cache-Control": "no-store"})

    def _checkout(self, method: str, cs_id: str, rest: list[str], body: bytes) -> None:
        emu = self.server.emulator
        data = emu.checkout_page_data(cs_id)
        if data is None:
            self._html(
                404, _page("Checkout", "<h1>Checkout</h1><p class='notice'>No such checkout session.</p>")
            )
            return
        if method == "GET" and not rest:
            self._html(200, render_checkout_page(data))
            return
        if method != "POST" or rest not in (["pay"], ["authenticate"]):
            self._html(404, _page("Checkout", "<p class='notice'>Not found.</p>"))
            return
        if data["session"]["status"] != "open":
            self._html(409, render_checkout_page(data))
            return
        form = parse_qs(body.decode("utf-8", "replace"))
        if rest == ["pay"]:
            card = re.sub(r"[\s-]", "", (form.get("card_number") or [""])[0])
            if not card:
                self._html(400, render_checkout_page(data, "Your card number is incomplete."))
                return
            email = (form.get("email") or [""])[0].strip() or None
            outcome = emu.pay_checkout_page(cs_id, card, email=email)
        else:
            if not data["awaiting_authentication"]:
                self._html(409, render_checkout_page(data))
                return
            success = (form.get("success") or ["false"])[0] == "true"
            outcome = emu.authenticate_checkout_page(cs_id, success)
        if outcome["status"] == "complete":
            target = str(outcome["session"]["success_url"]).replace("{CHECKOUT_SESSION_ID}", cs_id)
            self._send(303, b"", {"Location": target, "Content-Type": "text/plain"})
            return
        data = emu.checkout_page_data(cs_id) or data
        status = {"requires_action": 200, "invalid_number": 400}.get(outcome["status"], 402)
        self._html(status, render_checkout_page(data, outcome["message"]))


def make_server(
    emulator: Emulator, host: str = "127.0.0.1", port: int = 0, latency_ms: int = 0, hang_seconds: float = 0
) -> EmulatorServer:
    """Bind a server (``port=0`` picks a free port) and point ``emulator.base_url`` at it."""
    server = EmulatorServer((host, port), emulator, latency_ms, hang_seconds)
    bound_host, bound_port = server.server_address[:2]
    emulator.base_url = f"http://{host if isinstance(bound_host, str) else bound_host!s}:{bound_port}"
    return server


def start_in_thread(
    emulator: Emulator, host: str = "127.0.0.1", port: int = 0, latency_ms: int = 0, hang_seconds: float = 0
) -> EmulatorServer:
    """Start a server in a daemon thread (for tests).

    Stop it with ``server.shutdown(); server.server_close()``.
    """
    server = make_server(emulator, host, port, latency_ms, hang_seconds)
    thread = threading.Thread(target=server.serve_forever, name="stripe-emulator", daemon=True)
    thread.start()
    return server
