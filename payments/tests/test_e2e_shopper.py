"""End to end in headless Chromium, as shoppers meet the shop: in Russian (Accept-Language and the language
switch), with the keyboard alone, without JavaScript, on a phone, and through axe-core's accessibility checks.

Every shopper page (catalog, item, order, your orders, result, canceled, refusal, another currency's offer, not
found, a stale form's 403) is checked with axe-core at 1280 and 390 px in English and Russian, and saved as a screenshot under
`artifacts/e2e/pages/` (ignored by git): `<language>-<width>-<page>.png`. axe-core is vendored under
`payments/tests/axe/` (never served to shoppers) and injected into the page under test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core import mail

from catalog.models import Item
from catalog.tests.factories import make_item
from core import pagecache
from payments.models import Order
from payments.tests import test_e2e as e2e
from payments.tests.test_e2e import SHOTS, Shop, paid_by_webhook, pay_on_page, wait_until

# The browser tests' fixtures: Chromium, a live server with the emulator over HTTP, a page, items.
browser, shop, page, beans, grinder = e2e.browser, e2e.shop, e2e.page, e2e.beans, e2e.grinder

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE = Path(__file__).resolve().parent / "axe" / "axe.min.js"
# npm's published integrity of axe-core 4.14.1's axe.min.js (node_modules/axe-core/sri-history.json).
AXE_SRI = "sha256-KTSJmUUM3yhJqOcLeRL8LahahJ2jnA0NU5T1HUqe2Vw="
PAGES = SHOTS / "pages"
NBSP = "\xa0"
WIDTHS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture
def russian(browser: Any) -> Iterator[Any]:
    """A page of a browser that asks for Russian (Accept-Language: ru, navigator.language ru-RU)."""
    context = browser.new_context(locale="ru-RU", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def shot(page: Any, name: str) -> None:
    PAGES.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(PAGES / f"{name}.png"), full_page=True)


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it is now (its default rules: WCAG 2.x A and
    AA, and best practices)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    results = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in results["violations"]
        if v["impact"] in ("serious", "critical")
    ]


def test_the_vendored_axe_core_is_the_published_one() -> None:
    digest = base64.b64encode(hashlib.sha256(AXE.read_bytes()).digest()).decode()
    assert f"sha256-{digest}" == AXE_SRI


# ------------------------------------------------------------------------------------------------ Russian


def test_a_russian_shopper_pays_in_eur_and_reads_russian(shop: Shop, russian: Any, grinder: Item) -> None:
    page = russian
    page.goto(f"{shop.url}/item/{grinder.pk}")
    assert page.get_attribute("html", "lang") == "ru"
    assert page.inner_text("#item-price") == f"89,90{NBSP}€"  # Russian number formatting, the sign after
    assert page.inner_text("#pay-title") == "Оплата картой"
    assert page.inner_text("#pay-button") == f"Оплатить 89,90{NBSP}€"
    assert page.inner_text("#checkout-button") == "Оплатить через Stripe Checkout"
    # Stripe.js and its Payment Element were told the page's language.
    assert page.get_attribute("#payment-form", "data-locale") == "ru"
    page.wait_for_selector("#emulator-card-number")
    assert page.get_attribute(".emulator-payment-element", "data-locale") == "ru"
    assert page.inner_text(".emulator-payment-element label") == "Номер карты"

    page.fill("#receipt-email", "ivan@example.com")
    pay_on_page(page, "4000000000009995")  # declined: Stripe.js words it in Russian
    page.wait_for_selector("#payment-message:not([hidden])")
    assert page.inner_text("#payment-message") == "На карте недостаточно средств."  # noqa: RUF001
    page.fill("#emulator-card-number", "4242424242424242")
    page.click("#pay-button")
    page.wait_for_url("**/return?**")
    assert page.inner_text("#result-title") == "Платёж получен"
    assert page.inner_text("#order-total") == f"89,90{NBSP}€"
    assert page.inner_text("#payment-amount") == f"89,90{NBSP}€"
    assert page.inner_text("#payment-currency") == "EUR"
    assert page.inner_text("#payment-state") == "оплачен"
    assert "Hand grinder" in page.inner_text("#result-summary")
    order = Order.objects.get()
    wait_until(lambda: paid_by_webhook(order))
    order.refresh_from_db()
    assert order.language == "ru"
    # The shop's confirmation is written in the language the shopper paid in.
    wait_until(lambda: len(mail.outbox) == 1)
    assert mail.outbox[0].subject == f"Ваш заказ {str(order.public_id)[:8]} подтверждён: 89,90{NBSP}€"
    assert "Спасибо за заказ!" in mail.outbox[0].body and f"Итого    89,90{NBSP}€" in mail.outbox[0].body


def test_a_russian_shopper_on_checkout(shop: Shop, russian: Any, grinder: Item) -> None:
    page = russian
    page.goto(f"{shop.url}/item/{grinder.pk}")
    page.click("#checkout-button")
    page.wait_for_selector("#emulator-checkout-pay")
    assert page.inner_text("#emulator-checkout-locale") == "ru"  # Checkout was told the shopper's language
    session = shop.emulator.get(Order.objects.get().payments.get().stripe_id)
    assert session["locale"] == "ru"
    # ... and speaks it, as Stripe's page does.
    assert page.get_attribute("html", "lang") == "ru"
    assert page.inner_text("#emulator-checkout-pay").startswith("Оплатить")
    assert (
        "Итого к оплате" in page.inner_text("table")
        and page.inner_text("label[for=card_number]") == "Номер карты"
    )
    shot(page, "ru-1280-checkout")
    page.fill("#card_number", "4242424242424242")
    page.click("#emulator-checkout-pay")
    page.wait_for_url("**/success?session_id=cs_*")
    assert page.inner_text("#result-title") == "Платёж получен"
    assert page.inner_text("#payment-charged") == f"89,90{NBSP}€"
    wait_until(lambda: paid_by_webhook(Order.objects.get()))


def test_the_language_switch_works_with_the_cached_pages(shop: Shop, page: Any, beans: Item) -> None:
    page.goto(f"{shop.url}/item/{beans.pk}")
    assert page.get_attribute("html", "lang") == "en"
    assert page.inner_text("#item-price") == "$24.50"
    assert page.get_attribute("#lang-en", "aria-current") == "true"
    page.click("#lang-ru")  # a plain form to Django's set_language: back to the same page, in Russian
    page.wait_for_selector("html[lang=ru]")
    assert page.url == f"{shop.url}/item/{beans.pk}"
    assert page.inner_text("#item-price") == f"24,50{NBSP}$"
    assert page.inner_text("#add-to-order") == "Добавить в заказ"
    assert page.get_attribute("#lang-ru", "aria-current") == "true"
    # One render per language in the shared cache, each served to its own visitors.
    assert pagecache.cache.get(pagecache.key(f"item:{beans.pk}", "en")) is not None
    assert pagecache.cache.get(pagecache.key(f"item:{beans.pk}", "ru")) is not None
    page.goto(f"{shop.url}/")
    assert page.inner_text("h1") == "Каталог"
    page.click("#lang-en")
    page.wait_for_selector("html[lang=en]")
    assert page.inner_text("h1") == "Catalog" and page.url == f"{shop.url}/"


# ------------------------------------------------------------------------------------------------ keyboard


def test_a_payment_with_the_keyboard_alone(shop: Shop, page: Any, beans: Item) -> None:
    page.goto(f"{shop.url}/item/{beans.pk}")
    page.wait_for_selector("#emulator-card-number")
    focused = ""
    for _ in range(30):  # Tab through the page until the card field has the focus
        page.keyboard.press("Tab")
        focused = page.evaluate("() => document.activeElement.id")
        if focused == "emulator-card-number":
            break
    assert focused == "emulator-card-number"
    page.keyboard.type("4242424242424242")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.id") == "pay-button"
    page.keyboard.press("Enter")
    page.wait_for_url("**/return?**")
    assert page.inner_text("#result-title") == "Payment received"
    wait_until(lambda: paid_by_webhook(Order.objects.get()))


def test_the_first_tab_offers_to_skip_to_the_content(shop: Shop, page: Any, beans: Item) -> None:
    page.goto(f"{shop.url}/item/{beans.pk}")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip-link"
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "main"


# ------------------------------------------------------------------------------------------------ errors in words


def test_a_stripe_that_cannot_be_reached_is_a_plain_message(shop: Shop, page: Any, beans: Item) -> None:
    logged: list[str] = []
    page.on("console", lambda message: logged.append(message.text))
    page.route("**/v1/payment_intents/*/confirm", lambda route: route.abort())  # the network fails
    page.goto(f"{shop.url}/item/{beans.pk}")
    pay_on_page(page, "4242424242424242")
    page.wait_for_selector("#payment-message:not([hidden])")
    message = page.inner_text("#payment-message")
    assert message == (
        "Something went wrong and the payment was not made. Nothing was charged; please try again."
    )
    assert "emulator" not in message and "127.0.0.1" not in message
    assert any("Could not reach the Stripe emulator" in text for text in logged)  # the details: console only
    assert not page.is_disabled("#pay-button") and not page.is_disabled("#checkout-button")


def test_an_unexpected_answer_from_the_shop_is_a_plain_message(shop: Shop, page: Any, beans: Item) -> None:
    page.route(
        "**/item/*/intent",
        lambda route: route.fulfill(status=502, content_type="text/html", body="<h1>Bad Gateway</h1>"),
    )
    page.goto(f"{shop.url}/item/{beans.pk}")
    pay_on_page(page, "4242424242424242")
    page.wait_for_selector("#payment-message:not([hidden])")
    assert page.inner_text("#payment-message").startswith("Something went wrong")
    page.unroute("**/item/*/intent")
    page.click("#pay-button")  # the same card, once the shop answers again
    page.wait_for_url("**/return?**")
    assert page.inner_text("#result-title") == "Payment received"


def test_card_errors_are_shown_as_stripe_words_them(shop: Shop, page: Any, beans: Item) -> None:
    page.goto(f"{shop.url}/item/{beans.pk}")
    pay_on_page(page, "1234")
    page.wait_for_selector("#payment-message:not([hidden])")
    assert page.inner_text("#payment-message") == "Your card number is invalid."
    assert Order.objects.count() == 0  # refused by Stripe.js before the shop was asked


# ------------------------------------------------------------------------------------------------ no JavaScript


@pytest.fixture
def no_js(browser: Any) -> Iterator[Any]:
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def test_checkout_without_javascript(shop: Shop, no_js: Any, beans: Item) -> None:
    page = no_js
    page.goto(f"{shop.url}/item/{beans.pk}")
    assert page.is_visible("#card-needs-js")  # the card form says it needs JavaScript
    assert not page.is_visible("#payment-form") and "Loading" not in page.inner_text("#pay")
    shot(page, "no-js-item")
    page.click("#checkout-button")  # a plain form: the shop answers 303 to the hosted page
    page.wait_for_selector("#emulator-checkout-pay")
    assert "24.50" in page.inner_text("#emulator-checkout-total")
    page.fill("#card_number", "4242424242424242")
    page.click("#emulator-checkout-pay")
    page.wait_for_url("**/success?session_id=cs_*")
    assert page.inner_text("#result-title") == "Payment received"
    wait_until(lambda: paid_by_webhook(Order.objects.get()))
    shot(page, "no-js-result")


def test_an_order_paid_on_checkout_without_javascript(shop: Shop, no_js: Any, beans: Item) -> None:
    page = no_js
    page.goto(f"{shop.url}/item/{beans.pk}")
    page.click("#add-to-order")
    page.wait_for_url("**/order/*")
    page.fill("input[name=quantity]", "2")
    page.click("text=Update")
    page.wait_for_url("**/order/*")
    assert page.inner_text("#order-total") == "$49.00"
    page.click("#checkout-button")
    page.wait_for_selector("#emulator-checkout-pay")
    assert "49.00" in page.inner_text("#emulator-checkout-total")
    page.click("#emulator-checkout-cancel")
    page.wait_for_url("**/canceled")
    assert page.inner_text("#result-title") == "Payment canceled"


# ------------------------------------------------------------------------------------------------ every page


def phone_layout_problems(page: Any) -> list[str]:
    """At 390 px: nothing wider than the screen, and every amount of the lines table under its heading."""
    problems = []
    width = page.evaluate("() => document.documentElement.scrollWidth")
    if width > 390:
        problems.append(f"the page is {width}px wide")
    if page.locator("#order-lines").count():
        heading = page.locator("#order-lines th.amount").bounding_box()
        for cell in page.locator("#order-lines td.amount").all():
            box = cell.bounding_box()
            if abs(box["x"] - heading["x"]) > 1 or abs(box["width"] - heading["width"]) > 1:
                problems.append(f"{cell.inner_text()!r} is not under its heading")
    return problems


def shopper_pages(shop: Shop, page: Any, beans: Item, grinder: Item) -> dict[str, str]:
    """Every shopper page, made once in this browser: its URL by name (the refusal and the offer of a new
    order are answers to forms, so they are made again when visited: see `visit`)."""
    page.goto(f"{shop.url}/item/{beans.pk}")
    pay_on_page(page, "4242424242424242")
    page.wait_for_url("**/return?**")
    result = page.url
    page.goto(f"{shop.url}/item/{beans.pk}")
    page.click("#add-to-order")
    page.wait_for_url("**/order/*")
    page.fill("input[name=quantity]", "2")
    page.click("text=Update")
    page.wait_for_selector("#order-total")
    order = page.url
    page.wait_for_selector("#emulator-card-number")
    return {
        "catalog": f"{shop.url}/",
        "item": f"{shop.url}/item/{grinder.pk}",
        "order": order,
        "orders": f"{shop.url}/orders/",
        "result": result,
        "canceled": f"{order}/canceled",
        "refusal": f"{shop.url}/item/{beans.pk}",
        "other-currency": f"{shop.url}/item/{grinder.pk}",
        "not-found": f"{shop.url}/item/999999",
        "stale-form": f"{shop.url}/item/{beans.pk}",
    }


def visit(page: Any, name: str, url: str) -> None:
    page.goto(url)
    if name == "refusal":  # a quantity the shop refuses, sent from the (cached) item page's form
        page.eval_on_selector(
            ".add-form",
            "f => f.insertAdjacentHTML('beforeend', '<input type=hidden name=quantity value=100>')",
        )
        page.click("#add-to-order")
        page.wait_for_selector("#refused")
    elif name == "other-currency":  # an EUR item for the USD cart: the offer of a new order
        page.click("#add-to-order")
        page.wait_for_selector("#other-currency")
    elif name == "stale-form":  # a form whose CSRF token is no longer valid: the error layout's 403
        page.eval_on_selector(".add-form input[name=csrfmiddlewaretoken]", "e => { e.value = 'stale'; }")
        page.click("#add-to-order")
        page.wait_for_selector("main h1")
    elif name in ("item", "order"):
        page.wait_for_selector("#emulator-card-number")


def test_every_shopper_page_passes_axe_at_both_widths_in_both_languages(
    shop: Shop, browser: Any, beans: Item, grinder: Item, settings: Any
) -> None:
    settings.STRIPE_DEMO_MODE = True  # the demo banner, as `make run` shows it
    make_item("Ceramic dripper", "18.00", description="For one cup.")
    found: dict[str, Any] = {}
    for device, viewport in WIDTHS.items():
        # axe-core is injected as an inline script, which the shop's Content Security Policy forbids (rightly):
        # this context alone lets the test's own script in.
        context = browser.new_context(viewport=viewport, bypass_csp=True)
        page = context.new_page()
        page.set_default_timeout(15_000)
        urls = shopper_pages(shop, page, beans, grinder)
        for language in ("en", "ru"):
            context.add_cookies([{"name": "django_language", "value": language, "url": shop.url}])
            for name, url in urls.items():
                visit(page, name, url)
                assert page.get_attribute("html", "lang") == language, (name, language)
                label = f"{language}-{viewport['width']}-{name}"
                shot(page, label)
                problems = axe_violations(page)
                if device == "phone":
                    problems += phone_layout_problems(page)
                if problems:
                    found[label] = problems
        context.close()
    assert found == {}, json.dumps(found, indent=1, ensure_ascii=False)


# What a cart row shows: the item's name, each control of the Quantity column, and the line's amount. Every box
# is measured around what is drawn (a text's own rectangle, not its cell), so a control drawn over the amount
# shows as an overlap even though table cells never overlap.
ROW_BOXES = """row => {
  const box = el => { const r = el.getBoundingClientRect(); return {x: r.x, y: r.y, w: r.width, h: r.height}; };
  const text = el => { const range = document.createRange(); range.selectNodeContents(el); return box(range); };
  return {
    name: text(row.querySelector('th.item-name').firstChild),
    quantity: box(row.querySelector('input[name=quantity]')),
    update: box(row.querySelector('.qty-form button')),
    remove: box(row.querySelector('.remove-form button')),
    amount: text(row.querySelector('td.amount')),
    cell: box(row.querySelector('td.qty')),
  };
}"""


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


@pytest.mark.parametrize("language", ["en", "ru"])
def test_the_carts_controls_never_cover_its_names_or_amounts(
    shop: Shop, browser: Any, beans: Item, language: str
) -> None:
    """The cart at 390, 600, 900, 1280 and 1440 px: no two of a row's boxes overlap, and the controls stay in
    the Quantity column. (Once "Remove" was drawn over the amount from 600 px up: "Remov$49.00".)"""
    kettle = make_item("Pour-over kettle", "59.00", description="1 litre.")
    context = browser.new_context(locale="ru-RU" if language == "ru" else "en-US")
    page = context.new_page()
    page.set_default_timeout(15_000)
    for item in (beans, kettle):
        page.goto(f"{shop.url}/item/{item.pk}")
        page.click("#add-to-order")
        page.wait_for_url("**/order/*")
    problems = []
    for width in (390, 600, 900, 1280, 1440):
        page.set_viewport_size({"width": width, "height": 900})
        for i, row in enumerate(page.locator("#order-lines tbody tr").all()):
            boxes = row.evaluate(ROW_BOXES)
            cell = boxes.pop("cell")
            names = list(boxes)
            for j, first in enumerate(names):
                for second in names[j + 1 :]:
                    if overlap(boxes[first], boxes[second]):
                        problems.append(f"{width}px row {i}: {first} overlaps {second}")
            for control in ("quantity", "update", "remove"):
                box = boxes[control]
                if box["x"] < cell["x"] - 0.5 or box["x"] + box["w"] > cell["x"] + cell["w"] + 0.5:
                    problems.append(f"{width}px row {i}: {control} leaves the Quantity column")
        if page.evaluate("document.documentElement.scrollWidth") > width:
            problems.append(f"{width}px: the page scrolls sideways")
        shot(page, f"{language}-{width}-cart")
    context.close()
    assert problems == []


def test_the_order_totals_sit_under_the_amount_heading_on_a_phone(
    shop: Shop, browser: Any, beans: Item
) -> None:
    context = browser.new_context(viewport=WIDTHS["phone"])
    page = context.new_page()
    page.goto(f"{shop.url}/item/{beans.pk}")
    page.click("#add-to-order")
    page.wait_for_url("**/order/*")
    heading = page.locator("#order-lines th.amount")
    assert heading.inner_text() == "Amount"
    right = heading.bounding_box()["x"] + heading.bounding_box()["width"]
    for amount in ("#order-subtotal", "#order-total"):
        box = page.locator(amount).bounding_box()
        assert abs(box["x"] + box["width"] - right) <= 1, amount
    assert page.is_visible("#order-lines .unit-inline") and not page.is_visible("#order-lines th.unit")
    context.close()


def test_the_favicon_is_linked_and_served(shop: Shop, page: Any, beans: Item) -> None:
    for path in ("/", f"/item/{beans.pk}", "/no-such-page"):
        page.goto(f"{shop.url}{path}")
        href = page.get_attribute("link[rel=icon]", "href")
        assert href and re.search(r"favicon(\.[0-9a-f]+)?\.svg$", href)
        response = page.request.get(f"{shop.url}{href}")
        assert response.ok and response.headers["content-type"].startswith("image/svg+xml")
