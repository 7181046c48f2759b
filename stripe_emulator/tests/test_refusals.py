"""Stripe's refusals and slow payments, as Stripe gives them: refunds of disputed, refunded and over-refunded
charges, captures and cancels in the wrong state, every test card of https://docs.stripe.com/testing that the
Payment Element takes, a bank debit that stays processing, and the charge events. Expected values are written
here from Stripe's pages, not read from the emulator's tables."""

from __future__ import annotations

from typing import Any

import pytest
import stripe

from stripe_emulator import Emulator, EmulatorAccount, EmulatorHTTPClient

USD = EmulatorAccount("usd", "sk_test_usd_refusals_0001", "pk_test_usd_refusals_0001", "whsec_usd_refusals")


@pytest.fixture
def emu() -> Emulator:
    return Emulator([USD], base_url="http://emulator.test")


@pytest.fixture
def sc(emu: Emulator) -> stripe.StripeClient:
    return stripe.StripeClient(
        USD.secret_key,
        http_client=EmulatorHTTPClient(emu),
        base_addresses={"api": "http://emulator"},
        max_network_retries=0,
    )


def paid(emu: Emulator, sc: stripe.StripeClient, card: str = "4242424242424242", amount: int = 1000) -> Any:
    pi = sc.v1.payment_intents.create(params={"amount": amount, "currency": "usd"})
    emu.confirm_payment_intent(pi.id, card=card)
    return sc.v1.payment_intents.retrieve(pi.id)


def types(emu: Emulator) -> list[str]:
    return [e["type"] for e in emu.events["usd"]]


# ----------------------------------------------------------------------------------------------------- refunds


def test_a_disputed_charge_cannot_be_refunded(emu: Emulator, sc: stripe.StripeClient) -> None:
    pi = paid(emu, sc, "4000000000000259")  # disputed as fraudulent at once
    with pytest.raises(stripe.InvalidRequestError) as refused:
        sc.v1.refunds.create(params={"payment_intent": pi.id})
    assert refused.value.code == "charge_disputed"
    assert emu.get(pi.latest_charge)["amount_refunded"] == 0


def test_an_inquiry_leaves_the_charge_refundable(emu: Emulator, sc: stripe.StripeClient) -> None:
    pi = paid(emu, sc, "4000000000001976")
    [dispute] = [o for o in emu.objects.values() if o["object"] == "dispute"]
    assert dispute["status"] == "warning_needs_response" and dispute["is_charge_refundable"] is True
    assert "charge.dispute.funds_withdrawn" not in types(emu)
    assert sc.v1.refunds.create(params={"payment_intent": pi.id}).status == "succeeded"


def test_a_refunded_charge_and_more_than_is_left(emu: Emulator, sc: stripe.StripeClient) -> None:
    pi = paid(emu, sc)
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        sc.v1.refunds.create(params={"payment_intent": pi.id, "amount": 1001})
    assert (too_much.value.code, too_much.value.param) == ("amount_too_large", "amount")
    sc.v1.refunds.create(params={"payment_intent": pi.id, "amount": 600})
    with pytest.raises(stripe.InvalidRequestError) as over:
        sc.v1.refunds.create(params={"payment_intent": pi.id, "amount": 401})
    assert "($4.00)" in str(over.value)
    sc.v1.refunds.create(params={"payment_intent": pi.id})  # the 4.00 left
    with pytest.raises(stripe.InvalidRequestError) as again:
        sc.v1.refunds.create(params={"payment_intent": pi.id})
    assert again.value.code == "charge_already_refunded"


# ------------------------------------------------------------------------------------------ capture and cancel


def test_capture_only_what_is_held(emu: Emulator, sc: stripe.StripeClient) -> None:
    pi = sc.v1.payment_intents.create(params={"amount": 2000, "currency": "usd", "capture_method": "manual"})
    with pytest.raises(stripe.InvalidRequestError) as early:
        sc.v1.payment_intents.capture(pi.id)
    assert early.value.code == "payment_intent_unexpected_state"
    emu.confirm_payment_intent(pi.id)
    held = sc.v1.payment_intents.retrieve(pi.id)
    assert (held.status, held.amount_capturable, held.amount_received) == ("requires_capture", 2000, 0)
    assert emu.get(held.latest_charge)["captured"] is False
    with pytest.raises(stripe.InvalidRequestError):
        sc.v1.payment_intents.capture(pi.id, params={"amount_to_capture": 2001})
    done = sc.v1.payment_intents.capture(pi.id, params={"amount_to_capture": 1500})
    assert (done.status, done.amount_received) == ("succeeded", 1500)
    charge = emu.get(done.latest_charge)
    assert (charge["captured"], charge["amount_captured"], charge["amount_refunded"]) == (True, 1500, 500)
    with pytest.raises(stripe.InvalidRequestError) as twice:
        sc.v1.payment_intents.capture(pi.id)
    assert twice.value.code == "payment_intent_unexpected_state"
    assert "charge.captured" in types(emu) and "payment_intent.amount_capturable_updated" in types(emu)


def test_cancel_in_the_wrong_state_and_a_released_hold(emu: Emulator, sc: stripe.StripeClient) -> None:
    pi = paid(emu, sc)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        sc.v1.payment_intents.cancel(pi.id)
    assert refused.value.code == "payment_intent_unexpected_state"
    assert "status of succeeded" in str(refused.value)
    held = sc.v1.payment_intents.create(params={"amount": 900, "currency": "usd", "capture_method": "manual"})
    emu.confirm_payment_intent(held.id)
    canceled = sc.v1.payment_intents.cancel(held.id)
    assert canceled.status == "canceled" and emu.get(canceled.latest_charge)["refunded"] is True
    with pytest.raises(stripe.InvalidRequestError):
        sc.v1.payment_intents.cancel(held.id)


# ------------------------------------------------------------------------------------------------ test cards

# https://docs.stripe.com/testing: number -> (PaymentIntent status, error code, decline code)
CARDS: dict[str, tuple[str, str | None, str | None]] = {
    "4242424242424242": ("succeeded", None, None),
    "4000056655665556": ("succeeded", None, None),
    "5555555555554444": ("succeeded", None, None),
    "2223003122003222": ("succeeded", None, None),
    "5200828282828210": ("succeeded", None, None),
    "5105105105105100": ("succeeded", None, None),
    "378282246310005": ("succeeded", None, None),
    "371449635398431": ("succeeded", None, None),
    "6011111111111117": ("succeeded", None, None),
    "6011000990139424": ("succeeded", None, None),
    "3056930009020004": ("succeeded", None, None),
    "36227206271667": ("succeeded", None, None),
    "3566002020360505": ("succeeded", None, None),
    "6200000000000005": ("succeeded", None, None),
    "4000000000000002": ("requires_payment_method", "card_declined", "generic_decline"),
    "4000000000009995": ("requires_payment_method", "card_declined", "insufficient_funds"),
    "4000000000009987": ("requires_payment_method", "card_declined", "lost_card"),
    "4000000000009979": ("requires_payment_method", "card_declined", "stolen_card"),
    "4000000000000069": ("requires_payment_method", "expired_card", "expired_card"),
    "4000000000000127": ("requires_payment_method", "incorrect_cvc", "incorrect_cvc"),
    "4000000000000119": ("requires_payment_method", "processing_error", "processing_error"),
    "4000002760003184": ("requires_action", None, None),  # always authenticate
    "4000002500003155": ("requires_action", None, None),  # authenticate unless set up
    "4000000000003220": ("requires_action", None, None),  # 3D Secure 2 required
    "4000000000000259": ("succeeded", None, None),  # then disputed: fraudulent
    "4000000000002685": ("succeeded", None, None),  # then disputed: product not received
    "4000000000001976": ("succeeded", None, None),  # then an inquiry
    "4000000000007726": ("succeeded", None, None),  # its refund pends
    "4000000000005126": ("succeeded", None, None),  # its refund fails later
}


@pytest.mark.parametrize("card", list(CARDS))
def test_every_test_card_of_stripes_testing_page(emu: Emulator, sc: stripe.StripeClient, card: str) -> None:
    status, code, decline_code = CARDS[card]
    pi = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    after = emu.confirm_payment_intent(pi.id, card=card)
    assert after["status"] == status
    error = after["last_payment_error"]
    assert (error or {}).get("code") == code and (error or {}).get("decline_code") == decline_code
    if status == "succeeded":
        assert types(emu)[-2:] in (
            ["charge.succeeded", "payment_intent.succeeded"],
            ["charge.dispute.created", "charge.dispute.funds_withdrawn"],
            ["payment_intent.succeeded", "charge.dispute.created"],
        )
    if code is not None:
        assert "charge.failed" in types(emu) and types(emu)[-1] == "payment_intent.payment_failed"


def test_always_authenticate_can_be_failed_and_then_paid(emu: Emulator, sc: stripe.StripeClient) -> None:
    pi = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    emu.confirm_payment_intent(pi.id, card="4000002760003184")
    failed = emu.complete_authentication(pi.id, success=False)
    assert failed["last_payment_error"]["code"] == "payment_intent_authentication_failure"
    emu.confirm_payment_intent(pi.id, card="4000002760003184")
    assert emu.complete_authentication(pi.id, success=True)["status"] == "succeeded"


@pytest.mark.parametrize(
    ("reason_card", "reason"),
    [("4000000000000259", "fraudulent"), ("4000000000002685", "product_not_received")],
)
def test_dispute_cards(emu: Emulator, sc: stripe.StripeClient, reason_card: str, reason: str) -> None:
    paid(emu, sc, reason_card)
    [dispute] = [o for o in emu.objects.values() if o["object"] == "dispute"]
    assert (dispute["reason"], dispute["status"]) == (reason, "needs_response")


def test_a_decline_to_a_publishable_key_caller_keeps_the_metadata_out(
    emu: Emulator, sc: stripe.StripeClient
) -> None:
    pi = sc.v1.payment_intents.create(
        params={"amount": 1000, "currency": "usd", "metadata": {"order_id": "o-1"}}
    )
    body = f"client_secret={pi.client_secret}&payment_method=pm_card_chargeDeclinedExpiredCard".encode()
    status, _, out = emu.handle(
        "POST",
        f"/v1/payment_intents/{pi.id}/confirm",
        {"Authorization": f"Bearer {USD.publishable_key}"},
        body,
    )
    assert status == 402 and b"o-1" not in out and b'"expired_card"' in out


# ------------------------------------------------------------------------------------------------ bank debits


@pytest.mark.parametrize(
    ("iban", "final", "last"),
    [
        ("DE89370400440532013000", "succeeded", "payment_intent.succeeded"),
        ("DE62370400440532013001", "requires_payment_method", "payment_intent.payment_failed"),
    ],
)
def test_a_bank_debit_stays_processing_then_settles(
    emu: Emulator, sc: stripe.StripeClient, iban: str, final: str, last: str
) -> None:
    pi = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    processing = emu.pay_by_bank_debit(pi.id, iban)
    assert processing["status"] == "processing"
    charge = emu.get(processing["latest_charge"])
    assert (charge["status"], charge["paid"], charge["balance_transaction"]) == ("pending", False, None)
    assert charge["payment_method_details"]["type"] == "sepa_debit"
    assert types(emu)[-2:] == ["charge.pending", "payment_intent.processing"]
    with pytest.raises(stripe.InvalidRequestError):
        sc.v1.payment_intents.cancel(pi.id) if False else sc.v1.refunds.create(
            params={"payment_intent": pi.id}
        )
    settled = emu.settle_bank_debit(pi.id)
    assert settled["status"] == final and types(emu)[-1] == last
    if final == "succeeded":
        assert "charge.succeeded" in types(emu) and "charge.updated" in types(emu)
        assert emu.get(settled["latest_charge"])["balance_transaction"]
    else:
        assert settled["last_payment_error"]["decline_code"] == "insufficient_funds"
        assert "charge.failed" in types(emu)


def test_a_bank_debit_confirmed_through_the_api(emu: Emulator, sc: stripe.StripeClient) -> None:
    pi = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    confirmed = sc.v1.payment_intents.confirm(
        pi.id,
        params={
            "payment_method_data": {
                "type": "sepa_debit",
                "sepa_debit": {"iban": "DE89370400440532013000"},
                "billing_details": {"name": "Jenny Rosen", "email": "jenny@example.com"},
            }
        },
    )
    assert confirmed.status == "processing"


@pytest.mark.parametrize(
    ("iban", "event", "payment_status"),
    [
        ("DE89370400440532013000", "checkout.session.async_payment_succeeded", "paid"),
        ("DE62370400440532013001", "checkout.session.async_payment_failed", "unpaid"),
    ],
)
def test_checkout_by_bank_debit_completes_unpaid_then_settles(
    emu: Emulator, sc: stripe.StripeClient, iban: str, event: str, payment_status: str
) -> None:
    session = sc.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "success_url": "http://shop.test/ok",
            "line_items": [
                {
                    "price_data": {"currency": "usd", "unit_amount": 1500, "product_data": {"name": "Beans"}},
                    "quantity": 1,
                }
            ],
        }
    )
    done = emu.pay_checkout_session_by_bank_debit(session.id, iban)
    assert (done["status"], done["payment_status"]) == ("complete", "unpaid")
    assert types(emu)[-1] == "checkout.session.completed"
    emu.settle_bank_debit(session.id)
    assert types(emu)[-1] == event
    assert emu.get(session.id)["payment_status"] == payment_status
