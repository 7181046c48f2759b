"""The emulator as an HTTP server: the API over HTTP, the hosted Checkout page, webhook retries, the CLI,
the hang control."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import stripe

from stripe_emulator import Emulator
from stripe_emulator.params import encode_form
from stripe_emulator.server import start_in_thread
from stripe_emulator.tests.helpers import (
    EUR,
    REPO,
    USD,
    http_get,
    post_form,
    session_params,
)


def test_http_server_mode(emu: Emulator, server: str) -> None:
    sc = stripe.StripeClient(USD.secret_key, base_addresses={"api": server}, max_network_retries=0)
    pi = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    assert sc.v1.payment_intents.retrieve(pi.id).status == "requires_payment_method"
    with pytest.raises(stripe.InvalidRequestError):
        sc.v1.payment_intents.create(params={"amount": 1, "currency": "usd"})

    assert http_get(f"{server}/healthz")[0] == 200
    status, headers, js = http_get(f"{server}/js/stripe.js")
    assert status == 200 and "javascript" in headers["Content-Type"]
    assert headers["Access-Control-Allow-Origin"] == "*"
    for needle in (
        "window.Stripe",
        "emulator-card-number",
        "confirmPayment",
        "emulator-3ds-complete",
        server,
    ):
        assert needle in js

    req = urllib.request.Request(f"{server}/v1/payment_intents/{pi.id}", method="OPTIONS")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 204
        assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]

    # Stripe.js-style publishable-key confirm over HTTP
    body = encode_form(
        {
            "client_secret": pi.client_secret,
            "payment_method_data": {"type": "card", "card": {"number": "4242424242424242"}},
        }
    ).encode()
    req = urllib.request.Request(
        f"{server}/v1/payment_intents/{pi.id}/confirm",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {USD.publishable_key}"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.loads(resp.read())["status"] == "succeeded"


def test_hosted_checkout_page(emu: Emulator, server: str) -> None:
    sc = stripe.StripeClient(EUR.secret_key, base_addresses={"api": server}, max_network_retries=0)
    vat = sc.v1.tax_rates.create(params={"display_name": "VAT", "percentage": 21, "inclusive": False})
    coupon = sc.v1.coupons.create(params={"percent_off": 50, "name": "HALF"})
    session = sc.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {
                        "currency": "eur",
                        "unit_amount": 1000,
                        "product_data": {"name": "Tea <b>"},
                    },
                    "quantity": 2,
                    "tax_rates": [vat.id],
                }
            ],
            "discounts": [{"coupon": coupon.id}],
            "success_url": "http://shop.test/ok?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "http://shop.test/cancel",
        }
    )
    assert session.url == f"{server}/checkout/{session.id}"
    status, _, page = http_get(session.url)
    assert status == 200
    assert "Tea &lt;b&gt;" in page
    assert "id='emulator-checkout-total'>€12.10<" in page  # 2000 - 1000 + 21% of 1000
    assert "VAT 21%" in page and "HALF" in page
    for element_id in ("card_number", "emulator-checkout-pay", "emulator-checkout-cancel"):
        assert f"id='{element_id}'" in page

    status, _, page = post_form(f"{server}/checkout/{session.id}/pay", {"card_number": "4000 0000 0000 9995"})
    assert status == 402 and "Your card has insufficient funds." in page
    status, headers, _ = post_form(
        f"{server}/checkout/{session.id}/pay", {"card_number": "4242 4242 4242 4242"}
    )
    assert status == 303
    assert headers["Location"] == f"http://shop.test/ok?session={session.id}"
    assert sc.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"
    status, _, page = http_get(session.url)
    assert "already complete" in page
    assert http_get(f"{server}/checkout/cs_test_unknown")[0] == 404


def test_http_webhook_delivery_with_retries(
    emu: Emulator, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    got: list[tuple[str, dict[str, Any]]] = []
    calls = {"n": 0}

    class Hook(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

        def do_POST(self) -> None:
            calls["n"] += 1
            payload = self.rfile.read(int(self.headers["Content-Length"]))
            if calls["n"] == 1:  # first attempt fails -> the emulator retries
                self.send_response(500)
            else:
                event = stripe.Webhook.construct_event(
                    payload, self.headers["Stripe-Signature"], USD.webhook_secret
                )
                got.append((self.path, event.to_dict()))
                self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    monkeypatch.setattr(time, "sleep", lambda s: None)
    try:
        emu.webhook_base = f"http://127.0.0.1:{hook.server_address[1]}"
        sc = stripe.StripeClient(USD.secret_key, base_addresses={"api": server}, max_network_retries=0)
        sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
        assert emu.flush_webhooks(10)
    finally:
        hook.shutdown()
        hook.server_close()
    assert [(p, e["type"]) for p, e in got] == [("/webhooks/stripe/usd/", "payment_intent.created")]
    assert [s for _, s in emu.deliveries] == [500, 200]


def test_cli_prints_banner_and_serves() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stripe_emulator",
            "--port",
            "0",
            "--account",
            f"usd:{USD.secret_key}:{USD.publishable_key}:{USD.webhook_secret}",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("Stripe emulator listening on http://127.0.0.1:")
        assert line.endswith("(in-memory, not a payment processor)")
        base = line.split()[4]
        assert http_get(f"{base}/healthz")[0] == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_server_latency(emu: Emulator) -> None:
    srv = start_in_thread(emu, latency_ms=120)
    try:
        started = time.monotonic()
        http_get(f"{emu.base_url}/v1/events")
        assert time.monotonic() - started >= 0.12
        started = time.monotonic()
        http_get(f"{emu.base_url}/healthz")  # not an API call: no latency
        assert time.monotonic() - started < 0.12
    finally:
        srv.shutdown()
        srv.server_close()


def test_hosted_page_authentication_step_and_invalid_number(emu: Emulator, server: str) -> None:
    sc = stripe.StripeClient(USD.secret_key, base_addresses={"api": server}, max_network_retries=0)
    session = sc.v1.checkout.sessions.create(params=session_params(cancel_url="http://shop.test/no"))
    pay, authenticate = f"{server}/checkout/{session.id}/pay", f"{server}/checkout/{session.id}/authenticate"

    status, _, page = post_form(pay, {"card_number": "1234"})
    assert status == 400 and "Your card number is invalid." in page and "declined" not in page

    status, _, page = post_form(pay, {"card_number": "4000 0025 0000 3155"})
    assert status == 200
    assert "id='emulator-3ds-complete'" in page and "id='emulator-3ds-fail'" in page
    assert "id='card_number'" not in page
    assert (
        http_get(session.url or "")[2].count("emulator-3ds-complete") == 1
    )  # reloading shows the step again
    status, _, page = post_form(authenticate, {"success": "false"})
    assert status == 402 and "unable to authenticate" in page and "id='card_number'" in page
    assert sc.v1.checkout.sessions.retrieve(session.id).status == "open"

    post_form(pay, {"card_number": "4000002500003155"})
    status, headers, _ = post_form(authenticate, {"success": "true"})
    assert status == 303 and headers["Location"] == "http://shop.test/ok"
    paid = sc.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent.latest_charge"]})
    assert paid.payment_status == "paid"
    assert isinstance(paid.payment_intent, stripe.PaymentIntent)
    charge = paid.payment_intent.latest_charge
    assert isinstance(charge, stripe.Charge) and charge.payment_method_details is not None


def test_hang_control_endpoint_and_cli_flag(emu: Emulator) -> None:
    srv = start_in_thread(emu)
    try:
        req = urllib.request.Request(f"{emu.base_url}/_emulator/hang", data=b"seconds=0.3", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert json.loads(resp.read()) == {"hang_seconds": 0.3}
        started = time.monotonic()
        http_get(f"{emu.base_url}/v1/events")
        assert time.monotonic() - started >= 0.3
        started = time.monotonic()
        assert http_get(f"{emu.base_url}/healthz")[0] == 200  # only /v1 calls hang
        assert time.monotonic() - started < 0.3
        req = urllib.request.Request(f"{emu.base_url}/_emulator/hang", data=b"seconds=0", method="POST")
        urllib.request.urlopen(req, timeout=10).close()
        assert srv.hang_seconds == 0
        bad = urllib.request.Request(f"{emu.base_url}/_emulator/hang", data=b"seconds=-1", method="POST")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(bad, timeout=10)
    finally:
        srv.shutdown()
        srv.server_close()
    from stripe_emulator.__main__ import main

    with pytest.raises(SystemExit):
        main(["--help"])
