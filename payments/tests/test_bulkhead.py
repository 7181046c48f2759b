"""The bulkhead for Stripe waits (payments/bulkhead.py): per process, at most STRIPE_CONCURRENCY requests wait on
Stripe at once; past it, an immediate 503 with Retry-After that writes nothing, while the pages, the webhook and
the admin are still served. The slot is given back however the request ends."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from django.test import Client

from payments import bulkhead
from payments.accounts import AccountRegistry, install_registry
from payments.models import Order, Payment
from payments.tests.support import JSON, intent_id, make_event

pytestmark = pytest.mark.django_db

SLOTS = 2


@pytest.fixture(autouse=True)
def _small_bulkhead(settings: Any, stripe_fake: Any) -> None:
    settings.STRIPE_CONCURRENCY = SLOTS
    settings.STRIPE_STAFF_CONCURRENCY = 1
    settings.STRIPE_BUSY_RETRY_AFTER = 7
    install_registry(AccountRegistry.from_settings(http_client=stripe_fake.client))  # settings changed


@contextmanager
def all_slots_taken(setting: str = bulkhead.SHOPPERS) -> Iterator[None]:
    """Other requests of this process are waiting on Stripe, as many as the bound."""
    with ExitStack() as stack:
        for _ in range(bulkhead.compartment(setting).size):
            assert stack.enter_context(bulkhead.compartment(setting).slot())
        yield


def free_slots(setting: str = bulkhead.SHOPPERS) -> int:
    """How many slots are free now (taken and given back again)."""
    compartment = bulkhead.compartment(setting)
    taken = 0
    while compartment.try_enter():
        taken += 1
    for _ in range(taken):
        compartment.leave()
    return taken


PAY_REQUESTS = [
    ("post", "/item/{item}/intent"),
    ("get", "/buy/{item}"),
    ("post", "/order/intent/{order}"),
    ("get", "/order/buy/{order}"),
    ("post", "/order/{order}/change"),
]


@pytest.mark.parametrize(("method", "path"), PAY_REQUESTS)
def test_past_the_bound_a_stripe_request_is_503_at_once_and_writes_nothing(
    client: Client, usd_item: Any, stripe_fake: Any, method: str, path: str
) -> None:
    client.post("/cart/add", {"item_id": usd_item.pk, "quantity": 1}, **JSON)
    order = Order.objects.get()
    orders, payments, calls = Order.objects.count(), Payment.objects.count(), len(stripe_fake.requests)
    before = Order.objects.values().get(pk=order.pk)
    url = path.format(item=usd_item.pk, order=order.public_id)
    with all_slots_taken():
        response = getattr(client, method)(url, **JSON)
    assert response.status_code == 503
    assert response["Retry-After"] == "7"
    assert "no-cache" in response["Cache-Control"]
    error = response.json()["error"]
    assert error["code"] == "stripe_busy"
    assert "try again" in error["message"]
    assert (Order.objects.count(), Payment.objects.count(), len(stripe_fake.requests)) == (
        orders,
        payments,
        calls,
    )
    assert Order.objects.values().get(pk=order.pk) == before
    assert free_slots() == SLOTS  # nothing kept by the refusal
    assert getattr(client, method)(url, **JSON).status_code in (200, 303)  # a slot free: served


def test_a_browser_loading_buy_gets_a_page_saying_so(client: Client, usd_item: Any) -> None:
    with all_slots_taken():
        response = client.get(f"/buy/{usd_item.pk}", HTTP_ACCEPT="text/html")
    assert response.status_code == 503
    assert response["Retry-After"] == "7"
    assert response["Content-Type"].startswith("text/html")
    assert "Many shoppers are paying right now" in response.content.decode()
    assert Order.objects.count() == 0


def test_the_slot_is_held_during_the_stripe_call_and_given_back(
    client: Client, usd_item: Any, stripe_fake: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[int] = []
    request = type(stripe_fake.client).request

    def watched(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(free_slots())
        return request(self, *args, **kwargs)

    monkeypatch.setattr(type(stripe_fake.client), "request", watched)
    assert client.post(f"/item/{usd_item.pk}/intent", **JSON).status_code == 200
    assert seen and all(free == SLOTS - 1 for free in seen)  # this request's slot, during each call
    assert free_slots() == SLOTS


@pytest.mark.parametrize("kind", ["timeout", "500"])
def test_the_slot_is_given_back_when_stripe_fails(
    client: Client, usd_item: Any, stripe_fake: Any, kind: str
) -> None:
    stripe_fake.client.fail_next(kind, times=5)
    assert client.get(f"/buy/{usd_item.pk}").status_code == 502
    assert free_slots() == SLOTS


def test_the_slot_is_given_back_when_the_view_raises(
    client: Client, usd_item: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from payments import intents

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(intents, "open_intent", broken)
    client.raise_request_exception = False
    assert client.post(f"/item/{usd_item.pk}/intent", **JSON).status_code == 500
    assert free_slots() == SLOTS


def test_pages_healthz_and_the_webhook_are_served_while_the_bound_is_reached(
    client: Client, usd_item: Any, stripe_fake: Any, post_event: Any
) -> None:
    answer = client.post(f"/item/{usd_item.pk}/intent", **JSON).json()
    intent = stripe_fake.emulator.confirm_payment_intent(intent_id(answer))
    stripe_fake.outbox.clear()
    with all_slots_taken():
        assert client.get("/").status_code == 200
        assert client.get(usd_item.get_absolute_url()).status_code == 200
        assert client.get("/healthz").status_code == 200
        assert client.get(f"/order/{answer['order_id']}").status_code == 200
        assert post_event("usd", make_event("payment_intent.succeeded", intent)).status_code == 200
        # the return page does without its quick look at Stripe: it shows what the webhook recorded
        calls = len(stripe_fake.requests)
        page = client.get(f"/order/{answer['order_id']}/return", {"payment_intent": intent["id"]})
        assert page.status_code == 200
        assert len(stripe_fake.requests) == calls
    assert Payment.objects.get(stripe_id=intent["id"]).status == "succeeded"


def test_the_return_page_asks_stripe_when_a_slot_is_free(
    client: Client, usd_item: Any, stripe_fake: Any
) -> None:
    answer = client.post(f"/item/{usd_item.pk}/intent", **JSON).json()
    stripe_fake.emulator.confirm_payment_intent(intent_id(answer))
    stripe_fake.outbox.clear()  # the webhook is late: only Stripe knows
    client.get(f"/order/{answer['order_id']}/return", {"payment_intent": intent_id(answer)})
    assert Payment.objects.get(stripe_id=intent_id(answer)).status == "succeeded"
    assert free_slots() == SLOTS


def test_no_bound_when_zero(settings: Any, client: Client, usd_item: Any, stripe_fake: Any) -> None:
    settings.STRIPE_CONCURRENCY = 0
    install_registry(AccountRegistry.from_settings(http_client=stripe_fake.client))
    assert bulkhead.compartment().try_enter()
    assert client.post(f"/item/{usd_item.pk}/intent", **JSON).status_code == 200


def test_staff_refunds_have_their_own_slots(admin_client: Client, usd_item: Any, stripe_fake: Any) -> None:
    """Shoppers filling their slots never refuse a refund; a refund is refused only when staff's are taken."""
    from payments.tests.support import pay_item

    order, payment = pay_item(Client(), stripe_fake, usd_item)
    url = f"/admin/payments/order/{order.pk}/refund/"
    form = {"amount": "24.50", "token": "a" * 32, "confirmed": "1", "reason": "requested_by_customer"}
    with all_slots_taken(bulkhead.STAFF):
        refused = admin_client.post(url, form)
        assert "Stripe is busy with other refunds" in refused.content.decode()
    assert payment.refunds.count() == 0
    with all_slots_taken(bulkhead.SHOPPERS):
        done = admin_client.post(url, form)
    assert done.status_code == 302, done.content.decode()[:2000]
    assert payment.refunds.count() == 1
    assert free_slots(bulkhead.STAFF) == 1


def test_the_view_refuses_too_when_the_slots_went_between_the_middleware_and_it(
    rf: Any, usd_item: Any
) -> None:
    """The middleware only peeks; the view's decorator takes the slot, and refuses if there is none."""
    from payments import views

    request = rf.post(f"/item/{usd_item.pk}/intent", HTTP_ACCEPT="application/json")
    with all_slots_taken():
        response = views.item_intent(request, item_id=usd_item.pk)
    assert response.status_code == 503 and response["Retry-After"] == "7"
    assert Order.objects.count() == 0


def test_a_refused_click_counts_against_no_rate_limit(settings: Any, client: Client, usd_item: Any) -> None:
    settings.RATELIMIT_ENABLED = True
    with all_slots_taken():
        for _ in range(40):  # more than the per-address and per-session limits of Pay
            assert client.post(f"/item/{usd_item.pk}/intent", **JSON).status_code == 503
    assert client.post(f"/item/{usd_item.pk}/intent", **JSON).status_code == 200
