"""An order is seen only by the browser that owns it and by staff: anyone else, even with its link, gets a 404
from every page and endpoint, whatever the order's state (a declined card's message, the card's brand and
last digits, a client secret are nobody else's)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from catalog.models import Item
from payments.models import Order, OrderStatus
from payments.tests.support import CARD_NO_FUNDS, Shopper, intent_id

pytestmark = pytest.mark.django_db


def urls(order: Order, pi: str) -> list[tuple[str, str]]:
    oid = order.public_id
    return [
        ("get", f"/order/{oid}"),
        ("get", f"/order/buy/{oid}"),
        ("post", f"/order/intent/{oid}"),
        ("post", f"/order/{oid}/change"),
        ("post", f"/order/put/{oid}"),
        ("post", f"/order/remove/{oid}"),
        ("get", f"/order/{oid}/return?payment_intent={pi}"),
        ("get", f"/order/{oid}/success?session_id=cs_x"),
        ("get", f"/order/{oid}/canceled"),
    ]


@pytest.mark.parametrize("state", ["declined", "canceled", "paid", "cart"])
def test_another_browser_gets_404_everywhere(usd_item: Item, stripe_fake: Any, state: str) -> None:
    owner = Shopper()
    owner.add(usd_item)
    order = owner.cart()
    pi = ""
    if state != "cart":
        pi = intent_id(owner.intent(order).json())
        if state == "declined":
            stripe_fake.pay_intent(pi, CARD_NO_FUNDS)
        elif state == "canceled":
            owner.change(order)
        else:
            stripe_fake.pay_intent(pi)
    calls = len(stripe_fake.requests)
    stranger = Client()
    for method, url in urls(order, pi):
        response = getattr(stranger, method)(url, {"item_id": usd_item.pk}, HTTP_ACCEPT="application/json")
        assert response.status_code == 404, (url, response.status_code)
        assert b"secret" not in response.content and b"insufficient" not in response.content
    assert len(stripe_fake.requests) == calls  # nothing was asked of Stripe for the stranger
    assert owner.web.get(f"/order/{order.public_id}").status_code == 200


def test_staff_see_every_order(admin_client: Client, usd_item: Item, stripe_fake: Any) -> None:
    owner = Shopper()
    owner.add(usd_item)
    order = owner.cart()
    stripe_fake.pay_intent(intent_id(owner.intent(order).json()))
    order.refresh_from_db()
    assert order.status == OrderStatus.PAID
    assert admin_client.get(f"/order/{order.public_id}").status_code == 200


def test_an_order_staff_made_belongs_to_whoever_pays_it_not_to_the_first_pay_click(
    usd_item: Item, stripe_fake: Any
) -> None:
    from payments.tests.factories import make_cart

    order = make_cart(usd_item, browser="")  # made in the admin, its link sent to the customer
    customer, stranger = Shopper(), Shopper()
    assert (
        stranger.web.get(f"/order/{order.public_id}").status_code == 200
    )  # anyone with the link, until paid
    strangers = intent_id(stranger.intent(order).json())  # a stranger with the link presses Pay, never pays
    order.refresh_from_db()
    assert order.browser == ""  # pressing Pay claims nothing

    # The customer can still see and pay it; their PaymentIntent is the only payable one.
    assert customer.web.get(f"/order/{order.public_id}").status_code == 200
    pi = intent_id(customer.intent(order).json())
    assert stripe_fake.emulator.get(strangers)["status"] == "canceled"
    stripe_fake.pay_intent(pi)
    order.refresh_from_db()
    assert (order.status, order.browser) == (OrderStatus.PAID, customer.web.session["browser"])

    # Now it is the customer's: the stranger sees nothing, and can pay nothing.
    assert stranger.web.get(f"/order/{order.public_id}").status_code == 404
    assert stranger.intent(order).status_code == 404
    assert customer.web.get(f"/order/{order.public_id}").status_code == 200


def test_a_stranger_who_pays_the_link_first_owns_it(usd_item: Item, stripe_fake: Any) -> None:
    from payments import intents
    from payments.tests.factories import make_cart

    order = make_cart(usd_item, browser="")
    customers = intents.open_intent(order, owner="customer-browser")
    strangers = intents.open_intent(order, owner="stranger-browser")  # closes the customer's: one payable
    assert stripe_fake.emulator.get(customers.payment.stripe_id)["status"] == "canceled"
    stripe_fake.pay_intent(strangers.payment.stripe_id)
    order.refresh_from_db()
    assert (order.status, order.browser) == (OrderStatus.PAID, "stranger-browser")


# ------------------------------------------------------------------------------------------------ stored events


def test_stored_events_and_the_admins_event_page_keep_no_client_secret(
    admin_client: Client, usd_item: Item, stripe_fake: Any
) -> None:
    """Stripe's PaymentIntent events carry the client secret, with which anyone could pay (or read) the
    payment: it is redacted before the event is stored, and the admin shows none."""
    from payments.models import StripeEvent

    owner = Shopper()
    answer = owner.intent(usd_item).json()
    secret = answer["client_secret"]
    stripe_fake.pay_intent(intent_id(answer))
    events = list(StripeEvent.objects.filter(type__startswith="payment_intent."))
    assert events, "the emulator sent PaymentIntent events"
    for event in events:
        stored = event.payload["data"]["object"]
        assert stored["id"] == intent_id(answer) and stored["client_secret"] == "[redacted]"
        assert "_secret_" not in str(event.payload)
        page = admin_client.get(f"/admin/payments/stripeevent/{event.pk}/change/").content.decode()
        assert intent_id(answer) in page and secret not in page and "_secret_" not in page


def test_the_admin_never_shows_a_secret_stored_before_redaction(admin_client: Client) -> None:
    from payments.models import StripeEvent

    secret = "pi_3Old000000000000000000_secret_AbCdEf0123456789"
    event = StripeEvent.objects.create(
        account="usd",
        event_id="evt_old",
        type="payment_intent.created",
        status=StripeEvent.Status.IGNORED,
        payload={"data": {"object": {"id": "pi_3Old000000000000000000", "client_secret": secret}}},
    )
    page = admin_client.get(f"/admin/payments/stripeevent/{event.pk}/change/").content.decode()
    assert "pi_3Old000000000000000000" in page and secret not in page and "_secret_" not in page


def test_a_refused_events_body_is_kept_without_its_secrets(client: Client) -> None:
    import json

    from payments.models import StripeEvent
    from payments.tests.test_webhook_input import post_raw

    secret = "pi_3Bad000000000000000000_secret_AbCdEf0123456789"
    body = json.dumps(
        {
            "id": "evt_bad",
            "type": "payment_intent.created",
            "created": -1,
            "data": {"object": {"client_secret": secret}},
        }
    ).encode()
    assert post_raw(client, body).status_code == 400
    row = StripeEvent.objects.get(event_id="evt_bad")
    assert secret not in row.payload["unparsed"] and "[redacted]" in row.payload["unparsed"]


@pytest.mark.django_db(transaction=True)
def test_the_migration_redacts_the_events_stored_before() -> None:
    """Rows stored while client secrets were still kept are redacted by payments' migration 0007."""
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before, after = (
        ("payments", "0006_order_language"),
        ("payments", "0007_promotion_holds_and_redacted_events"),
    )
    secret = "pi_3Kept00000000000000000_secret_Zyx9876543210"
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    try:
        old = executor.loader.project_state([before]).apps.get_model("payments", "StripeEvent")
        kept = old.objects.create(
            account="usd",
            event_id="evt_kept",
            type="payment_intent.created",
            status="ignored",
            payload={"data": {"object": {"id": "pi_3Kept00000000000000000", "client_secret": secret}}},
        )
        plain = old.objects.create(
            account="usd", event_id="evt_plain", type="customer.created", status="ignored", payload={"a": 1}
        )
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate([after])
        new = executor.loader.project_state([after]).apps.get_model("payments", "StripeEvent")
        stored = new.objects.get(pk=kept.pk).payload
        assert stored["data"]["object"] == {"id": "pi_3Kept00000000000000000", "client_secret": "[redacted]"}
        assert new.objects.get(pk=plain.pk).payload == {"a": 1}
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
