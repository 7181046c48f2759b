"""The emulated disputes: opened by the test cards and the helpers, answered, closed."""

from __future__ import annotations

import pytest
import stripe

from stripe_emulator import Emulator
from stripe_emulator.tests.helpers import (
    recorder,
    session_params,
)


def test_disputes_from_the_test_card_and_the_helpers(emu: Emulator, sc: stripe.StripeClient) -> None:
    sent: list[str] = []
    emu.deliver = recorder(sent)
    pi = sc.v1.payment_intents.create(params={"amount": 7000, "currency": "usd"})
    emu.confirm_payment_intent(pi.id, card="4000 0000 0000 0259")
    assert sent == [
        "payment_intent.created",
        "payment_intent.succeeded",
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
    ]
    dispute = emu.events["usd"][-2]["data"]["object"]
    assert (dispute["reason"], dispute["status"], dispute["amount"], dispute["currency"]) == (
        "fraudulent",
        "needs_response",
        7000,
        "usd",
    )
    assert dispute["payment_intent"] == pi.id and dispute["charge"] == emu.get(pi.id)["latest_charge"]
    assert dispute["evidence_details"]["due_by"] > dispute["created"]
    assert [t["amount"] for t in dispute["balance_transactions"]] == [-7000]
    assert emu.get(dispute["charge"])["disputed"] is True

    answered = sc.v1.disputes.update(dispute["id"], params={"evidence": {"uncategorized_text": "Delivered"}})
    assert answered.status == "under_review" and sent[-1] == "charge.dispute.updated"
    won = emu.close_dispute(dispute["id"], won=True)
    assert won["status"] == "won"
    assert sent[-2:] == ["charge.dispute.closed", "charge.dispute.funds_reinstated"]
    assert [t["amount"] for t in won["balance_transactions"]] == [-7000, 7000]

    other = sc.v1.payment_intents.create(params={"amount": 3000, "currency": "usd"})
    emu.confirm_payment_intent(other.id)
    opened = emu.open_dispute(emu.get(other.id)["latest_charge"], reason="product_not_received")
    assert opened["reason"] == "product_not_received"
    lost = emu.close_dispute(opened["id"], won=False)
    assert lost["status"] == "lost" and sent[-1] == "charge.dispute.closed"
    with pytest.raises(stripe.InvalidRequestError):
        sc.v1.disputes.close(opened["id"])


def test_checkout_with_the_dispute_card(emu: Emulator, sc: stripe.StripeClient) -> None:
    session = sc.v1.checkout.sessions.create(params=session_params())
    emu.pay_checkout_session(session.id, card="4000000000000259")
    types = [e["type"] for e in emu.events["usd"]]
    assert types.index("checkout.session.completed") < types.index("charge.dispute.created")
