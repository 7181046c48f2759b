"""Promotion codes against a hostile shopper: guesses are limited per browser and per address (and by nginx, see
deploy/tests), and a guess learns nothing (test_promotions.py); one client cannot hold a code's uses with
abandoned carts: holds are short, tied to the payment object's own life, given back at once when the object is
canceled or expires, and limited per browser and per address."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from core import ratelimit
from core.ratelimit import parse_rates
from payments import promotions
from payments.models import Discount, Order, OrderStatus, Payment, PaymentStatus
from payments.tests.support import JSON, cart_with, intent_id, pay_order, stripe_client

pytestmark = pytest.mark.django_db

WINDOW_START = (
    1_900_000_020.0  # the start of a calendar minute (and of an hour: 1_900_000_800 is 60 min later)
)


def apply(web: Client, order: Order, code: str) -> Any:
    return web.post(f"/order/{order.public_id}/promo", {"code": code}, **JSON)


def pay(web: Client, order: Order) -> Any:
    return web.post(f"/order/intent/{order.public_id}", **JSON)


def shopper(address: str) -> Client:
    return Client(REMOTE_ADDR=address)


@pytest.fixture
def five_uses() -> Discount:
    return Discount.objects.create(name="Launch", percent_off=Decimal("20"), code="LAUNCH", max_uses=5)


# ------------------------------------------------------------------------------------------------ guessing


@pytest.fixture
def limits(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The rate limits on with their default budgets, the clock at the start of a calendar minute."""
    settings.RATELIMIT_ENABLED = True
    clock = {"now": WINDOW_START + 0.5}
    monkeypatch.setattr(ratelimit, "clock", lambda: clock["now"])
    caches["default"].clear()
    yield clock
    caches["default"].clear()


def guesses(web: Client, order: Order, count: int, start: int = 0) -> list[int]:
    return [apply(web, order, f"GUESS{n:05d}").status_code for n in range(start, start + count)]


def test_one_browser_guessing_codes_is_stopped_by_its_budget(
    limits: Any, settings: Any, usd_item: Any
) -> None:
    per_minute, per_hour = parse_rates(settings.RATELIMITS["promo"]["session"])
    web = shopper("203.0.113.40")
    cart = cart_with(web, (usd_item, 1))
    answers = guesses(web, cart, per_minute.limit + 5)
    assert answers == [400] * per_minute.limit + [429] * 5
    refused = apply(web, cart, "LAUNCH")  # even the right code: nothing more is looked at this minute
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused["Retry-After"]) <= 60
    # Minute after minute, the hour's budget ends it.
    tried = per_minute.limit
    for minute in range(1, 10):
        limits["now"] = WINDOW_START + 60 * minute + 0.5
        tried += guesses(web, cart, per_minute.limit, start=1000 * minute).count(400)
    assert tried == per_hour.limit


def test_new_browsers_from_one_address_share_the_addresses_budget(
    limits: Any, settings: Any, usd_item: Any
) -> None:
    """A guesser dropping its cookie each time is counted by its address: at most 20 guesses a minute get an
    answer (the issue's ceiling: 60), each one a 400 that says nothing about the code."""
    per_minute, *_ = parse_rates(settings.RATELIMITS["promo"]["address"])
    assert per_minute.limit <= 30 and per_minute.period == 60
    answers = []
    for n in range(per_minute.limit + 10):
        web = shopper("203.0.113.41")
        cart = cart_with(web, (usd_item, 1))
        answers.append(apply(web, cart, f"GUESS{n:05d}").status_code)
    assert answers == [400] * per_minute.limit + [429] * 10
    other = shopper("198.51.100.41")  # another shopper elsewhere is not affected
    assert apply(other, cart_with(other, (usd_item, 1)), "NOPE").status_code == 400


def test_the_promo_budget_applies_to_the_promo_endpoint_only(limits: Any, usd_item: Any) -> None:
    web = shopper("203.0.113.42")
    cart = cart_with(web, (usd_item, 1))
    guesses(web, cart, 40)
    assert web.get(f"/order/{cart.public_id}").status_code == 200
    assert web.post(f"/order/put/{cart.public_id}", {"item_id": usd_item.pk}, **JSON).status_code == 200


# ------------------------------------------------------------------------------------------------ holding


def test_five_quick_carts_from_one_browser_hold_one_use(
    usd_item: Any, five_uses: Discount, stripe_fake: Any
) -> None:
    """The attack of the issue: 5 x (new cart, apply the code, Pay) on a 5-use code in a fraction of a second.
    The browser holds one use; the four others stay for everyone else."""
    attacker = shopper("203.0.113.50")
    answers = []
    for _ in range(5):
        cart = cart_with(attacker, (usd_item, 1))
        assert apply(attacker, cart, "LAUNCH").status_code == 200
        answers.append(pay(attacker, cart))
    assert [a.status_code for a in answers] == [200, 409, 409, 409, 409]
    assert {a.json()["error"]["code"] for a in answers[1:]} == {"code_held_elsewhere"}
    assert "already held by another of your orders" in answers[1].json()["error"]["message"]
    assert promotions.holders(five_uses).count() == 1
    assert len(stripe_fake.calls("POST", "/v1/payment_intents")) == 1  # the refused carts made nothing
    for n in range(4):  # four other shoppers, elsewhere, get the four other uses
        other = shopper(f"198.51.100.{60 + n}")
        cart = cart_with(other, (usd_item, 1))
        assert apply(other, cart, "LAUNCH").status_code == 200
        assert pay_order(other, stripe_fake, cart).status == PaymentStatus.SUCCEEDED
    assert promotions.paid_uses(five_uses) == 4


def test_new_browsers_from_one_address_hold_at_most_two_uses(
    usd_item: Any, five_uses: Discount, stripe_fake: Any
) -> None:
    statuses = []
    for _ in range(5):
        web = shopper("203.0.113.51")  # a new browser (no cookie) each time, from one address
        cart = cart_with(web, (usd_item, 1))
        assert apply(web, cart, "LAUNCH").status_code == 200
        statuses.append(pay(web, cart).status_code)
    assert statuses == [200, 200, 409, 409, 409]
    assert promotions.holders(five_uses).count() == 2


@pytest.mark.parametrize(("max_uses", "cap"), [(1, 1), (2, 1), (3, 1), (4, 2), (50, 2)])
def test_one_address_never_holds_more_than_half_of_a_codes_uses(
    usd_item: Any, stripe_fake: Any, max_uses: int, cap: int
) -> None:
    code = Discount.objects.create(name="Few", percent_off=Decimal("20"), code="FEW", max_uses=max_uses)
    assert promotions.address_cap(code) == cap
    held = 0
    for _ in range(cap + 1):
        web = shopper("203.0.113.52")
        cart = cart_with(web, (usd_item, 1))
        held += apply(web, cart, "FEW").status_code == 200 and pay(web, cart).status_code == 200
    assert held == cap
    if max_uses > cap:  # someone else can still use the code
        other = shopper("198.51.100.52")
        cart = cart_with(other, (usd_item, 1))
        assert apply(other, cart, "FEW").status_code == 200 and pay(other, cart).status_code == 200


def test_paying_the_held_use_lets_the_same_browser_use_the_code_again(
    usd_item: Any, five_uses: Discount, stripe_fake: Any
) -> None:
    web = shopper("203.0.113.53")
    first = cart_with(web, (usd_item, 1))
    apply(web, first, "LAUNCH")
    pay_order(web, stripe_fake, first)
    second = cart_with(web, (usd_item, 1))
    apply(web, second, "LAUNCH")
    assert pay(web, second).status_code == 200  # a paid use is no longer held


def test_a_use_is_given_back_at_once_when_its_payment_intent_is_canceled(
    usd_item: Any, stripe_fake: Any
) -> None:
    once = Discount.objects.create(name="Once", percent_off=Decimal("50"), code="ONCE", max_uses=1)
    web = shopper("203.0.113.54")
    cart = cart_with(web, (usd_item, 1))
    apply(web, cart, "ONCE")
    answer = pay(web, cart).json()
    stripe_fake.deliver_webhooks()
    rival = shopper("198.51.100.54")
    rival_cart = cart_with(rival, (usd_item, 1))
    assert apply(rival, rival_cart, "ONCE").status_code == 400  # held

    stripe_client("usd").v1.payment_intents.cancel(intent_id(answer))  # e.g. in Stripe's dashboard
    stripe_fake.deliver_webhooks()  # payment_intent.canceled
    assert promotions.holders(once).count() == 0
    assert apply(rival, rival_cart, "ONCE").status_code == 200
    assert pay_order(rival, stripe_fake, rival_cart).status == PaymentStatus.SUCCEEDED
    cart.refresh_from_db()
    assert cart.status == OrderStatus.AWAITING_PAYMENT  # the first shopper's Pay now says the code is used up
    again = pay(web, cart)
    assert again.status_code == 409 and again.json()["error"]["code"] == "code_used_up"


def test_a_checkout_session_holding_a_use_expires_within_the_hold(
    usd_item: Any, stripe_fake: Any, settings: Any
) -> None:
    once = Discount.objects.create(name="Once", percent_off=Decimal("50"), code="ONCE", max_uses=1)
    web = shopper("203.0.113.55")
    cart = cart_with(web, (usd_item, 1))
    apply(web, cart, "ONCE")
    before = timezone.now().timestamp()
    session = web.get(f"/order/buy/{cart.public_id}", **JSON).json()
    [created] = stripe_fake.calls("POST", "/v1/checkout/sessions")
    expires_at = int(created.params["expires_at"])
    assert before + 30 * 60 <= expires_at <= before + (settings.PROMO_HOLD_MINUTES + 10) * 60 + 1
    assert Payment.objects.get(stripe_id=session["id"]).expires_at.timestamp() == expires_at

    stripe_fake.emulator.expire_checkout_session(session["id"])  # Stripe expires it
    stripe_fake.deliver_webhooks()  # checkout.session.expired
    assert promotions.holders(once).count() == 0


def test_a_session_without_a_limited_code_keeps_stripes_default_expiry(
    usd_item: Any, stripe_fake: Any
) -> None:
    Discount.objects.create(name="Always", percent_off=Decimal("10"), code="ALWAYS")
    web = shopper("203.0.113.56")
    cart = cart_with(web, (usd_item, 1))
    apply(web, cart, "ALWAYS")
    web.get(f"/order/buy/{cart.public_id}", **JSON)
    [created] = stripe_fake.calls("POST", "/v1/checkout/sessions")
    assert "expires_at" not in created.params


@pytest.mark.parametrize(("minutes", "released"), [(25, False), (35, True)])
def test_a_payment_intent_holding_a_use_is_canceled_once_the_hold_is_over(
    usd_item: Any, stripe_fake: Any, minutes: int, released: bool
) -> None:
    """The scheduled reconcile closes the PaymentIntents that held a use for longer than PROMO_HOLD_MINUTES (30)
    and makes their orders carts again; a younger one keeps its hold."""
    once = Discount.objects.create(name="Once", percent_off=Decimal("50"), code="ONCE", max_uses=1)
    web = shopper("203.0.113.57")
    cart = cart_with(web, (usd_item, 1))
    apply(web, cart, "ONCE")
    answer = pay(web, cart).json()
    stripe_fake.deliver_webhooks()
    Payment.objects.update(created_at=timezone.now() - timedelta(minutes=minutes))
    call_command("reconcile_payments", stdout=open("/dev/null", "w"))  # noqa: SIM115
    cart.refresh_from_db()
    intent = stripe_fake.emulator.get(intent_id(answer))
    if released:
        assert cart.status == OrderStatus.DRAFT and intent["status"] == "canceled"
        assert promotions.holders(once).count() == 0
    else:
        assert cart.status == OrderStatus.AWAITING_PAYMENT and intent["status"] == "requires_payment_method"
        assert promotions.holders(once).count() == 1


def test_the_admin_counts_the_uses_held_as_the_hold_does(
    usd_item: Any, five_uses: Discount, stripe_fake: Any, admin_client: Client
) -> None:
    web = shopper("203.0.113.58")
    cart = cart_with(web, (usd_item, 1))
    apply(web, cart, "LAUNCH")
    pay(web, cart)
    session = web.get(
        f"/order/buy/{cart.public_id}", **JSON
    ).json()  # closes the PaymentIntent: one use still
    stripe_fake.deliver_webhooks()
    assert Payment.objects.filter(status=PaymentStatus.CANCELED).count() == 1
    assert "0 of 5 (1 being paid)" in admin_client.get("/admin/payments/discount/").content.decode()
    stripe_fake.emulator.expire_checkout_session(session["id"])
    stripe_fake.deliver_webhooks()
    listing = admin_client.get("/admin/payments/discount/").content.decode()
    assert "0 of 5" in listing and "being paid" not in listing
