"""The emulated refunds: their events, pending and failing test cards, the list."""

from __future__ import annotations

import pytest
import stripe

from stripe_emulator import Emulator
from stripe_emulator.tests.helpers import (
    LIFECYCLE_EVENTS,
    paid_intent,
    recorder,
)


def test_refund_emits_charge_refunded(emu: Emulator, sc: stripe.StripeClient) -> None:
    pi = sc.v1.payment_intents.create(params={"amount": 5000, "currency": "usd"})
    emu.confirm_payment_intent(pi.id)
    refund = sc.v1.refunds.create(params={"payment_intent": pi.id, "amount": 2000, "metadata": {"r": "1"}})
    assert (refund.status, refund.amount, refund.payment_intent) == ("succeeded", 2000, pi.id)
    event = emu.events["usd"][-1]
    assert event["type"] == "charge.refunded"
    charge = event["data"]["object"]
    assert (charge["object"], charge["payment_intent"], charge["amount"]) == ("charge", pi.id, 5000)
    assert (charge["amount_refunded"], charge["refunded"], charge["currency"]) == (2000, False, "usd")
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.refunds.create(params={"payment_intent": pi.id, "amount": 3001})
    assert exc.value.code == "amount_too_large"
    sc.v1.refunds.create(params={"payment_intent": pi.id})
    assert emu.events["usd"][-1]["data"]["object"]["refunded"] is True
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.refunds.create(params={"payment_intent": pi.id})
    assert exc.value.code == "charge_already_refunded"


def test_refund_statuses_and_events(emu: Emulator, sc: stripe.StripeClient) -> None:
    emu.enabled_events = ("*",)
    sent: list[str] = []
    emu.deliver = recorder(sent)
    pi = sc.v1.payment_intents.create(params={"amount": 5000, "currency": "usd"})
    sc.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_refundFail"})
    sent.clear()
    refund = sc.v1.refunds.create(params={"payment_intent": pi.id, "amount": 2000})
    assert (refund.status, refund.amount, refund.payment_intent) == ("succeeded", 2000, pi.id)
    assert sent == ["refund.created", "charge.refunded"]
    failed = emu.fail_refund(refund.id)
    assert (failed["status"], failed["failure_reason"]) == ("failed", "expired_or_canceled_card")
    assert failed["failure_balance_transaction"]
    assert sent[2:] == ["refund.updated", "charge.refund.updated", "refund.failed"]
    updated = [e for e in emu.events["usd"] if e["type"] == "refund.updated"][-1]
    assert updated["data"]["previous_attributes"]["status"] == "succeeded"
    charge = emu.get(failed["charge"])
    assert (charge["amount_refunded"], charge["refunded"]) == (0, False)
    with pytest.raises(ValueError):
        emu.fail_refund(refund.id)

    pending_pi = sc.v1.payment_intents.create(params={"amount": 5000, "currency": "usd"})
    emu.confirm_payment_intent(pending_pi.id, card="4000000000007726")
    pending = sc.v1.refunds.create(params={"payment_intent": pending_pi.id})
    assert (pending.status, pending.pending_reason) == ("pending", "processing")
    assert emu.settle_refund(pending.id)["status"] == "succeeded"
    assert sc.v1.refunds.retrieve(pending.id).status == "succeeded"


def test_refund_events_are_sent_only_to_endpoints_enabled_for_them(
    emu: Emulator, sc: stripe.StripeClient
) -> None:
    # An endpoint enabled for the payment lifecycle and disputes, but not for `refund.*`.
    assert emu.enabled_events == LIFECYCLE_EVENTS
    sent: list[str] = []
    emu.deliver = recorder(sent)
    pi = sc.v1.payment_intents.create(params={"amount": 5000, "currency": "usd"})
    emu.confirm_payment_intent(pi.id)
    sc.v1.refunds.create(params={"payment_intent": pi.id})
    assert sent == ["payment_intent.created", "payment_intent.succeeded", "charge.refunded"]
    types = [e["type"] for e in emu.events["usd"]]
    assert "refund.created" in types  # recorded and listed all the same
    refund_event = next(e for e in emu.events["usd"] if e["type"] == "refund.created")
    assert refund_event["pending_webhooks"] == 0


def test_refunds_are_listed_newest_first_per_payment_intent_and_paged(
    emu: Emulator, sc: stripe.StripeClient
) -> None:
    first, second = paid_intent(emu, sc), paid_intent(emu, sc)
    made = [sc.v1.refunds.create(params={"payment_intent": first, "amount": a}).id for a in (100, 200, 300)]
    other = sc.v1.refunds.create(params={"payment_intent": second, "amount": 50}).id
    listed = sc.v1.refunds.list(params={"payment_intent": first})
    assert [r.id for r in listed.data] == made[::-1] and not listed.has_more
    page = sc.v1.refunds.list(params={"payment_intent": first, "limit": 2})
    assert [r.id for r in page.data] == made[:0:-1] and page.has_more
    rest = sc.v1.refunds.list(
        params={"payment_intent": first, "limit": 2, "starting_after": page.data[-1].id}
    )
    assert [r.id for r in rest.data] == made[:1] and not rest.has_more
    assert other in [r.id for r in sc.v1.refunds.list(params={"limit": 100}).data]
    charge = emu.get(second)["latest_charge"]
    assert [r.id for r in sc.v1.refunds.list(params={"charge": charge}).data] == [other]
