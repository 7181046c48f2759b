"""End to end in headless Chromium: the shop served by a real server, Stripe played by the emulator over HTTP
(its Stripe.js double in the page, its hosted Checkout page, its signed webhooks), every path ending in an
assertion on the database. Screenshots of the final pages go to `artifacts/e2e/` (ignored by git)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from catalog.models import Item
from catalog.tests.factories import make_item
from core import csp
from core.money import format_money
from payments import events
from payments.accounts import AccountRegistry, install_registry
from payments.models import Order, StripeEvent
from payments.orders import with_pricing
from payments.pricing import price_order
from payments.tests.factories import make_tax, percent_off, with_taxes
from stripe_emulator import Emulator, EmulatorAccount
from stripe_emulator.server import start_in_thread

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "e2e"


@dataclass
class Shop:
    url: str
    emulator: Emulator
    server: Any  # the emulator's HTTP server (its `hang_seconds` makes every API call slow)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Playwright's sync API runs an event loop in this thread; the ORM calls in these tests are synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def shop(live_server: Any, settings: Any) -> Iterator[Shop]:
    accounts = [
        EmulatorAccount(currency, keys["secret_key"], keys["publishable_key"], keys["webhook_secret"])
        for currency, keys in settings.STRIPE_ACCOUNTS.items()
    ]
    emulator = Emulator(accounts, webhook_base=live_server.url, enabled_events=events.HANDLED)
    server = start_in_thread(emulator)
    settings.STRIPE_API_BASE = emulator.base_url
    settings.STRIPE_JS_URL = f"{emulator.base_url}/js/stripe.js"
    settings.CONTENT_SECURITY_POLICY = csp.policy(settings.STRIPE_JS_URL, settings.STRIPE_API_BASE)
    install_registry(AccountRegistry.from_settings())  # real HTTP to the emulator, as in demo mode
    yield Shop(live_server.url, emulator, server)
    emulator.flush_webhooks(timeout=10)
    server.shutdown()
    server.server_close()
    emulator.close()
    install_registry(None)


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{request.node.name}.png"), full_page=True)
    context.close()


def wait_until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the webhook")
        time.sleep(0.1)


def paid_by_webhook(order: Order) -> bool:
    order.refresh_from_db()
    return (
        order.status == "paid"
        and StripeEvent.objects.filter(
            status="processed", type__in=["payment_intent.succeeded", "checkout.session.completed"]
        ).exists()
    )


def pay_on_page(page: Any, card: str) -> None:
    page.wait_for_selector("#emulator-card-number")
    page.fill("#emulator-card-number", card)
    page.click("#pay-button")


@pytest.fixture
def beans() -> Item:
    return make_item("Espresso beans", "24.50", description="1 kg.")


@pytest.fixture
def grinder() -> Item:
    return make_item("Hand grinder", "89.90", "EUR", description="Steel burrs.")


def test_pay_with_the_payment_element(shop: Shop, page: Any, beans: Item) -> None:
    page.goto(f"{shop.url}/item/{beans.pk}")
    pay_on_page(page, "4242424242424242")
    page.wait_for_url("**/return?**")
    assert page.inner_text("#result-title") == "Payment received"
    order = Order.objects.get()
    wait_until(lambda: paid_by_webhook(order))


def test_declined_card_then_a_good_one(shop: Shop, page: Any, beans: Item) -> None:
    page.goto(f"{shop.url}/item/{beans.pk}")
    pay_on_page(page, "4000000000009995")
    page.wait_for_selector("#payment-message:not([hidden])")
    assert page.inner_text("#payment-message") == "Your card has insufficient funds."
    order = Order.objects.get()
    assert order.status != "paid"
    page.fill("#emulator-card-number", "4242424242424242")
    page.click("#pay-button")
    page.wait_for_url("**/return?**")
    assert page.inner_text("#result-title") == "Payment received"
    wait_until(lambda: paid_by_webhook(order))
    assert order.payments.count() == 1  # the same PaymentIntent, paid on the second try


def test_authentication_completed(shop: Shop, page: Any, beans: Item) -> None:
    page.goto(f"{shop.url}/item/{beans.pk}")
    pay_on_page(page, "4000002500003155")
    page.click("#emulator-3ds-complete")
    page.wait_for_url("**/return?**")
    assert page.inner_text("#result-title") == "Payment received"
    wait_until(lambda: paid_by_webhook(Order.objects.get()))


def test_authentication_failed(shop: Shop, page: Any, beans: Item) -> None:
    page.goto(f"{shop.url}/item/{beans.pk}")
    pay_on_page(page, "4000002500003155")
    page.click("#emulator-3ds-fail")
    page.wait_for_selector("#payment-message:not([hidden])")
    assert "unable to authenticate" in page.inner_text("#payment-message")
    shop.emulator.flush_webhooks()
    order = Order.objects.get()
    assert order.status == "awaiting_payment"  # the same PaymentIntent can still be paid with another card


def test_checkout_fallback(shop: Shop, page: Any, beans: Item) -> None:
    page.goto(f"{shop.url}/item/{beans.pk}")
    page.click("#checkout-button")
    page.wait_for_selector("#emulator-checkout-pay")
    assert "24.50" in page.inner_text("#emulator-checkout-total")
    page.fill("#card_number", "4242424242424242")
    page.click("#emulator-checkout-pay")
    page.wait_for_url("**/success?session_id=cs_*")
    assert page.inner_text("#result-title") == "Payment received"
    wait_until(lambda: paid_by_webhook(Order.objects.get()))


def test_canceling_checkout(shop: Shop, page: Any, beans: Item) -> None:
    page.goto(f"{shop.url}/item/{beans.pk}")
    page.click("#checkout-button")
    page.click("#emulator-checkout-cancel")
    page.wait_for_url("**/canceled")
    assert page.inner_text("#result-title") == "Payment canceled"
    order = Order.objects.get()
    assert order.status == "awaiting_payment" and not order.payments.filter(status="succeeded").exists()


def test_order_with_discount_and_taxes_same_total_everywhere(shop: Shop, page: Any, beans: Item) -> None:
    dripper = make_item("Ceramic dripper", "18.00")
    page.goto(f"{shop.url}/item/{beans.pk}")
    page.click("#add-to-order")
    page.wait_for_url("**/order/*")
    page.fill("input[name=quantity]", "2")
    page.click("text=Update")
    page.wait_for_selector("#order-total")
    page.goto(f"{shop.url}/item/{dripper.pk}")
    page.click("#add-to-order")
    page.wait_for_url("**/order/*")
    order = Order.objects.get(public_id=page.url.rstrip("/").rsplit("/", 1)[1])
    assert sorted(order.lines.values_list("item__name", "quantity")) == [
        ("Ceramic dripper", 1),
        ("Espresso beans", 2),
    ]
    with_taxes(
        order,
        [make_tax("Sales tax", "8.875", inclusive=False), make_tax("City levy", "2.5", inclusive=False)],
        percent_off("10", "Welcome 10%"),
    )
    expected = format_money(price_order(with_pricing().get(pk=order.pk)).total, "usd", minor=True)

    page.goto(f"{shop.url}/order/{order.public_id}")
    assert page.inner_text("#order-total") == expected
    page.click("#checkout-button")
    page.wait_for_selector("#emulator-checkout-total")
    assert expected.lstrip("$") in page.inner_text("#emulator-checkout-total")
    page.go_back()
    pay_on_page(page, "4242424242424242")
    page.wait_for_url("**/return?**")
    assert page.inner_text("#result-title") == "Payment received"
    wait_until(lambda: paid_by_webhook(order))


def test_eur_item_goes_through_the_eur_account(shop: Shop, page: Any, grinder: Item, settings: Any) -> None:
    page.goto(f"{shop.url}/item/{grinder.pk}")
    key = page.get_attribute("#payment-form", "data-publishable-key")
    assert key == settings.STRIPE_ACCOUNTS["eur"]["publishable_key"]
    pay_on_page(page, "4242424242424242")
    page.wait_for_url("**/return?**")
    payment = Order.objects.get().payments.get()
    assert shop.emulator.owner_of(payment.stripe_id).currency == "eur"
    assert shop.emulator.events["usd"] == []
    wait_until(lambda: paid_by_webhook(Order.objects.get()))


# ------------------------------------------------------------------------------------------------ two tabs


def charged(shop: Shop) -> list[tuple[str, int]]:
    return sorted(
        (o["metadata"]["order_id"], o["amount_received"])
        for o in list(shop.emulator.objects.values())
        if o.get("object") == "payment_intent" and o["status"] == "succeeded"
    )


def test_a_stale_tab_cannot_buy_the_item_again(shop: Shop, page: Any, beans: Item) -> None:
    page.goto(f"{shop.url}/item/{beans.pk}")  # tab 1: the card form, typed in but not sent yet
    page.wait_for_selector("#emulator-card-number")
    page.fill("#emulator-card-number", "4242424242424242")
    other = page.context.new_page()  # tab 2 of the same browser pays on Checkout
    other.goto(f"{shop.url}/item/{beans.pk}")
    other.click("#checkout-button")
    other.fill("#card_number", "4242424242424242")
    other.click("#emulator-checkout-pay")
    other.wait_for_url("**/success?session_id=cs_*")
    order = Order.objects.get()
    wait_until(lambda: paid_by_webhook(order))

    page.click("#pay-button")
    page.wait_for_selector("#payment-message:not([hidden])")
    assert "in another tab" in page.inner_text("#payment-message")
    assert Order.objects.count() == 1
    assert charged(shop) == [(str(order.public_id), 2450)]


def test_two_tabs_on_one_cart_pay_it_once(shop: Shop, page: Any, beans: Item) -> None:
    page.goto(f"{shop.url}/item/{beans.pk}")
    page.click("#add-to-order")
    page.wait_for_url("**/order/*")
    cart = page.url
    other = page.context.new_page()
    other.goto(cart)
    other.wait_for_selector("#emulator-card-number")
    page.wait_for_selector("#emulator-card-number")

    page.click("#checkout-button")  # tab 1 goes to Checkout: the order is frozen for this session
    page.wait_for_selector("#emulator-checkout-pay")
    other.fill("#emulator-card-number", "4242424242424242")  # tab 2 pays by card: Checkout's session closes
    other.click("#pay-button")
    other.wait_for_url("**/return?**")
    assert other.inner_text("#result-title") == "Payment received"
    order = Order.objects.get()
    wait_until(lambda: paid_by_webhook(order))

    page.fill("#card_number", "4242424242424242")  # tab 1 now pays on the closed Checkout page
    page.click("#emulator-checkout-pay")
    assert "expired" in page.inner_text("#emulator-checkout-status")
    assert charged(shop) == [(str(order.public_id), 2450)]


def test_a_declined_card_then_a_good_one_in_the_same_cart(shop: Shop, page: Any, beans: Item) -> None:
    """A declined card reads as "not paid yet": the cart stays a cart (quantities, the promotion code), and the
    next change or payment needs no "Change order" step."""
    page.goto(f"{shop.url}/item/{beans.pk}")
    page.click("#add-to-order")
    page.wait_for_url("**/order/*")
    pay_on_page(page, "4000000000000002")
    page.wait_for_selector("#payment-message:not([hidden])")
    assert page.inner_text("#payment-message") == "Your card was declined."

    page.reload()
    assert page.inner_text("#order-status") == "Not paid yet"
    assert page.locator("#change-order").count() == 0
    assert page.locator("input[name=quantity]").count() == 1 and page.locator("#promo-code").count() == 1
    page.wait_for_selector("#emulator-card-number")
    page.screenshot(path=str(SHOTS / "declined-cart-still-a-cart.png"), full_page=True)
    page.goto(f"{shop.url}/orders/")
    assert "Not paid yet" in page.inner_text("#order-list")
    page.go_back()

    page.fill("input[name=quantity]", "2")  # the declined PaymentIntent is canceled at Stripe first
    page.click("text=Update")
    page.wait_for_selector("#order-total")
    assert page.inner_text("#order-total") == "$49.00"
    order = Order.objects.get()
    [declined] = order.payments.all()
    assert shop.emulator.get(declined.stripe_id)["status"] == "canceled"
    pay_on_page(page, "4242424242424242")
    page.wait_for_url("**/return?**")
    assert page.inner_text("#result-title") == "Payment received"
    wait_until(lambda: paid_by_webhook(order))
    assert (order.total, charged(shop)) == (4900, [(str(order.public_id), 4900)])


# ------------------------------------------------------------------------------------------------ deferred flow


def test_viewing_pages_creates_nothing_at_stripe_and_pay_creates_one_payment_intent(
    shop: Shop, page: Any, beans: Item
) -> None:
    for _ in range(3):
        page.goto(f"{shop.url}/item/{beans.pk}")
        page.wait_for_selector("#emulator-card-number")  # the Payment Element, mounted in deferred mode
    page.goto(f"{shop.url}/")
    assert [o for o in shop.emulator.objects.values() if o.get("object") == "payment_intent"] == []
    assert Order.objects.count() == 0
    page.goto(f"{shop.url}/item/{beans.pk}")
    pay_on_page(page, "4242424242424242")
    page.wait_for_url("**/return?**")
    intents = [o for o in shop.emulator.objects.values() if o.get("object") == "payment_intent"]
    assert len(intents) == 1 and intents[0]["amount"] == 2450


def test_the_pay_button_shows_a_spinner_and_the_form_is_disabled_while_waiting(
    shop: Shop, page: Any, beans: Item
) -> None:
    page.goto(f"{shop.url}/item/{beans.pk}")
    page.wait_for_selector("#emulator-card-number")
    page.fill("#emulator-card-number", "4242424242424242")
    shop.server.hang_seconds = 2  # Stripe answers slowly: the shopper waits on the shop's PaymentIntent
    page.click("#pay-button")
    page.wait_for_selector("#pay-button[aria-busy=true] .spinner:not([hidden])")
    assert page.inner_text("#pay-button") == "Processing…"
    assert page.is_disabled("#pay-button") and page.is_disabled("#checkout-button")
    assert page.is_disabled("#receipt-email") and not page.is_editable("#emulator-card-number")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "pay-button-spinner.png"), full_page=True)
    shop.server.hang_seconds = 0
    page.wait_for_url("**/return?**", timeout=30_000)
    assert page.inner_text("#result-title") == "Payment received"


def test_a_total_changed_in_another_tab_is_refused_before_anything_is_charged(
    shop: Shop, page: Any, beans: Item
) -> None:
    page.goto(f"{shop.url}/item/{beans.pk}")
    page.click("#add-to-order")
    page.wait_for_url("**/order/*")
    page.wait_for_selector("#emulator-card-number")
    other = page.context.new_page()
    other.goto(page.url)
    other.fill("input[name=quantity]", "3")
    other.click("text=Update")
    other.wait_for_selector("#order-total")
    pay_on_page(page, "4242424242424242")  # the first tab still shows one item's total
    page.wait_for_selector("#payment-message:not([hidden])")
    assert "changed" in page.inner_text("#payment-message")
    assert [o for o in shop.emulator.objects.values() if o.get("object") == "payment_intent"] == []
    assert Order.objects.get().status == "draft"
