"""The emulated events and webhook endpoint: the event list, signed deliveries."""

from __future__ import annotations

import json

import pytest
import stripe

from stripe_emulator import Emulator, EmulatorAccount, EmulatorHTTPClient, sign_payload
from stripe_emulator.tests.helpers import (
    EUR,
    USD,
    client_for,
    recorder,
)


def test_events_retrieve_and_list(emu: Emulator, sc: stripe.StripeClient) -> None:
    for amount in (1000, 2000, 3000):
        sc.v1.payment_intents.create(params={"amount": amount, "currency": "usd"})
    listed = sc.v1.events.list(params={"limit": 2})
    assert listed.has_more is True
    assert [e.id for e in listed.data] == [e["id"] for e in reversed(emu.events["usd"])][:2]
    event = sc.v1.events.retrieve(listed.data[0].id)
    assert event.type == "payment_intent.created"
    assert event.api_version == "2026-10-28.endive"
    page2 = sc.v1.events.list(params={"limit": 2, "starting_after": listed.data[1].id})
    assert len(page2.data) == 1 and page2.has_more is False


def test_webhook_delivery_signature_verifies(emu: Emulator, sc: stripe.StripeClient) -> None:
    received: list[stripe.Event] = []

    def deliver(account: EmulatorAccount, payload: bytes, sig_header: str) -> int:
        received.append(stripe.Webhook.construct_event(payload, sig_header, account.webhook_secret))
        return 200

    emu.deliver = deliver
    pi = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    emu.confirm_payment_intent(pi.id)
    assert [e.type for e in received] == ["payment_intent.created", "payment_intent.succeeded"]
    assert emu.deliveries == [(received[0].id, 200), (received[1].id, 200)]
    verified = stripe.StripeClient(USD.secret_key).construct_event(
        json.dumps(emu.events["usd"][0]),
        sign_payload(json.dumps(emu.events["usd"][0]).encode(), USD.webhook_secret),
        USD.webhook_secret,
    )
    assert verified.id == received[0].id
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(b"{}", sign_payload(b"{}", EUR.webhook_secret), USD.webhook_secret)


def test_webhook_hook_can_call_back_into_the_emulator(emu: Emulator, http: EmulatorHTTPClient) -> None:
    sc = client_for(http)
    seen: list[str] = []

    def deliver(account: EmulatorAccount, payload: bytes, sig_header: str) -> int:
        event = json.loads(payload)
        seen.append(sc.v1.payment_intents.retrieve(event["data"]["object"]["id"]).status)
        return 200

    emu.deliver = deliver
    pi = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    emu.confirm_payment_intent(pi.id)
    assert seen == ["requires_payment_method", "succeeded"]


def test_sign_payload_format() -> None:
    header = sign_payload(b'{"a":1}', "whsec_x", timestamp=1700000000)
    assert header.startswith("t=1700000000,v1=") and len(header.split("v1=")[1]) == 64


def test_event_list_filters(emu: Emulator, sc: stripe.StripeClient) -> None:
    clock = {"now": 1_700_000_000.0}
    emu.clock = lambda: clock["now"]
    statuses = iter([500, 200, 0])
    emu.deliver = lambda account, payload, sig: next(statuses)
    for amount in (1000, 2000, 3000):
        sc.v1.payment_intents.create(params={"amount": amount, "currency": "usd"})
        clock["now"] += 60
    first, second, third = emu.events["usd"]
    failed = sc.v1.events.list(params={"delivery_success": False})
    assert [e.id for e in failed.data] == [third["id"], first["id"]]
    assert [e.id for e in sc.v1.events.list(params={"delivery_success": True}).data] == [second["id"]]
    since = sc.v1.events.list(params={"created": {"gte": second["created"]}})
    assert [e.id for e in since.data] == [third["id"], second["id"]]
    exact = sc.v1.events.list(params={"created": first["created"]})
    assert [e.id for e in exact.data] == [first["id"]]
    before = sc.v1.events.list(params={"created": {"lt": third["created"], "gt": first["created"]}})
    assert [e.id for e in before.data] == [second["id"]]
    newer = sc.v1.events.list(params={"ending_before": first["id"], "limit": 1})
    assert [e.id for e in newer.data] == [second["id"]] and newer.has_more is True


def test_the_default_endpoint_is_sent_every_event() -> None:
    """Unless whoever starts it says otherwise, as `stripe listen` without `--events`: refunds included."""
    emu = Emulator([USD, EUR], base_url="http://127.0.0.1:12111")
    assert emu.enabled_events == ("*",)
    sent: list[str] = []
    emu.deliver = recorder(sent)
    sc = client_for(EmulatorHTTPClient(emu))
    pi = sc.v1.payment_intents.create(params={"amount": 5000, "currency": "usd"})
    emu.confirm_payment_intent(pi.id)
    sc.v1.refunds.create(params={"payment_intent": pi.id})
    assert "refund.created" in sent and "charge.refunded" in sent
    assert sent == [e["type"] for e in emu.events["usd"]]
