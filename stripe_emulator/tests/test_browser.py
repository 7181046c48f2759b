"""The Stripe.js double and the hosted Checkout page in headless Chromium (Debian's, through Playwright).

No shop here: a blank page loads the double from the emulator and pays in deferred-intent mode, and the hosted
page is driven directly, so these check the emulator's own browser side (the shop's paths are in
`payments/tests/test_e2e.py`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from stripe_emulator import Emulator, EmulatorAccount
from stripe_emulator.server import EmulatorServer, start_in_thread

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
USD = EmulatorAccount("usd", "sk_test_usd_browser_01", "pk_test_usd_browser_01", "whsec_usd_browser")

PAGE = """<!doctype html><html><body>
<form id="f"><div id="payment-element"></div><button id="pay" type="submit">Pay</button></form>
<p id="message" hidden></p>
<script src="{base}/js/stripe.js"></script>
<script>
  const stripe = Stripe("{pk}", {{locale: "en"}});
  const elements = stripe.elements({{mode: "payment", amount: {amount}, currency: "usd", locale: "en"}});
  elements.create("payment").mount("#payment-element");
  document.getElementById("f").addEventListener("submit", async (event) => {{
    event.preventDefault();
    const show = (text) => {{ const m = document.getElementById("message"); m.textContent = text; m.hidden = false; }};
    const {{error: invalid}} = await elements.submit();
    if (invalid) {{ show(invalid.message); return; }}
    const {{error}} = await stripe.confirmPayment({{
      elements, clientSecret: "{secret}",
      confirmParams: {{return_url: "{base}/healthz?back=1", receipt_email: "shopper@example.com"}},
    }});
    if (error) {{ show(error.message); }}
  }});
</script></body></html>"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (make test installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def served() -> Iterator[tuple[Emulator, EmulatorServer, stripe.StripeClient]]:
    emulator = Emulator([USD])
    server = start_in_thread(emulator)
    sc = stripe.StripeClient(USD.secret_key, base_addresses={"api": emulator.base_url}, max_network_retries=0)
    yield emulator, server, sc
    server.shutdown()
    server.server_close()
    emulator.close()


def test_deferred_payment_element_with_authentication(browser: Any, served: Any) -> None:
    emulator, _, sc = served
    intent = sc.v1.payment_intents.create(params={"amount": 1234, "currency": "usd"})
    page = browser.new_page()
    page.set_default_timeout(15_000)
    page.set_content(
        PAGE.format(base=emulator.base_url, pk=USD.publishable_key, amount=1234, secret=intent.client_secret)
    )
    page.wait_for_selector("#emulator-card-number")
    page.fill("#emulator-card-number", "1234")
    page.click("#pay")
    page.wait_for_selector("#message:not([hidden])")
    assert page.inner_text("#message") == "Your card number is invalid."
    page.fill("#emulator-card-number", "4000 0025 0000 3155")
    page.click("#pay")
    page.click("#emulator-3ds-complete")
    page.wait_for_url("**/healthz?back=1&**")
    assert "redirect_status=succeeded" in page.url and f"payment_intent={intent.id}" in page.url
    paid = emulator.get(intent.id)
    assert (paid["status"], paid["receipt_email"]) == ("succeeded", "shopper@example.com")
    page.close()


def test_deferred_amount_mismatch_is_refused(browser: Any, served: Any) -> None:
    emulator, _, sc = served
    intent = sc.v1.payment_intents.create(params={"amount": 1500, "currency": "usd"})
    page = browser.new_page()
    page.set_content(
        PAGE.format(base=emulator.base_url, pk=USD.publishable_key, amount=1234, secret=intent.client_secret)
    )
    page.fill("#emulator-card-number", "4242 4242 4242 4242")
    page.click("#pay")
    page.wait_for_selector("#message:not([hidden])")
    assert "does not match" in page.inner_text("#message")
    assert emulator.get(intent.id)["status"] == "requires_payment_method"
    page.close()


def test_hosted_page_authentication_step(browser: Any, served: Any) -> None:
    emulator, _, sc = served
    session = sc.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {"currency": "usd", "unit_amount": 2450, "product_data": {"name": "Beans"}},
                    "quantity": 1,
                }
            ],
            "success_url": f"{emulator.base_url}/healthz?session={{CHECKOUT_SESSION_ID}}",
        }
    )
    page = browser.new_page()
    page.set_default_timeout(15_000)
    page.goto(session.url)
    page.fill("#card_number", "1234")
    page.click("#emulator-checkout-pay")
    assert page.inner_text("#emulator-checkout-error") == "Your card number is invalid."
    page.fill("#card_number", "4000002500003155")
    page.click("#emulator-checkout-pay")
    page.click("#emulator-3ds-fail")
    assert "unable to authenticate" in page.inner_text("#emulator-checkout-error")
    page.fill("#card_number", "4000002500003155")
    page.click("#emulator-checkout-pay")
    page.click("#emulator-3ds-complete")
    page.wait_for_url(f"**/healthz?session={session.id}")
    assert emulator.get(session.id)["payment_status"] == "paid"
    page.close()
