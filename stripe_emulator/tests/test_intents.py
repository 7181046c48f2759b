"""The emulated PaymentIntents: test cards, declines, 3D Secure, Stripe.js's publishable-key calls, state rules."""

from __future__ import annotations

import pytest
import stripe

from stripe_emulator import Emulator
from stripe_emulator.stripe_js import render_stripe_js
from stripe_emulator.tests.helpers import (
    EUR,
    USD,
    raw,
)


def test_success_card(emu: Emulator, sc: stripe.StripeClient) -> None:
    pi = sc.v1.payment_intents.create(params={"amount": 2000, "currency": "usd", "description": "Order 1"})
    assert (pi.client_secret or "").startswith(f"{pi.id}_secret_")
    assert pi.status == "requires_payment_method"
    done = emu.confirm_payment_intent(pi.id)
    assert done["status"] == "succeeded"
    assert done["amount_received"] == 2000
    assert emu.get(done["latest_charge"])["amount"] == 2000
    types = [e["type"] for e in emu.events["usd"]]
    assert types == ["payment_intent.created", "charge.succeeded", "payment_intent.succeeded"]
    assert emu.events["usd"][-1]["data"]["object"]["status"] == "succeeded"


@pytest.mark.parametrize(
    ("card", "decline_code", "message"),
    [
        ("4000000000009995", "insufficient_funds", "Your card has insufficient funds."),
        ("4000000000000002", "generic_decline", "Your card was declined."),
        ("4111111111111111", "generic_decline", "Your card was declined."),
    ],
)
def test_declined_cards(
    emu: Emulator, sc: stripe.StripeClient, card: str, decline_code: str, message: str
) -> None:
    pi = sc.v1.payment_intents.create(params={"amount": 2000, "currency": "usd"})
    out = emu.confirm_payment_intent(pi.id, card=card)
    assert out["status"] == "requires_payment_method"
    err = out["last_payment_error"]
    assert (err["code"], err["decline_code"], err["message"], err["type"]) == (
        "card_declined",
        decline_code,
        message,
        "card_error",
    )
    assert emu.events["usd"][-1]["type"] == "payment_intent.payment_failed"
    # a retry with a good card succeeds
    assert emu.confirm_payment_intent(pi.id)["status"] == "succeeded"


def test_confirm_through_sdk_declines_with_card_error(sc: stripe.StripeClient) -> None:
    pi = sc.v1.payment_intents.create(params={"amount": 2000, "currency": "usd"})
    with pytest.raises(stripe.CardError) as exc:
        sc.v1.payment_intents.confirm(
            pi.id, params={"payment_method": "pm_card_visa_chargeDeclinedInsufficientFunds"}
        )
    assert exc.value.http_status == 402
    assert exc.value.code == "card_declined"
    assert exc.value.error is not None and exc.value.error.decline_code == "insufficient_funds"
    assert sc.v1.payment_intents.retrieve(pi.id).status == "requires_payment_method"
    ok = sc.v1.payment_intents.confirm(pi.id, params={"payment_method": "pm_card_visa"})
    assert ok.status == "succeeded"


def test_3ds_complete_and_fail(emu: Emulator, sc: stripe.StripeClient) -> None:
    pi = sc.v1.payment_intents.create(params={"amount": 2000, "currency": "usd"})
    out = emu.confirm_payment_intent(pi.id, card="4000002500003155")
    assert out["status"] == "requires_action"
    assert out["next_action"]["type"] == "use_stripe_sdk"
    assert emu.complete_authentication(pi.id, True)["status"] == "succeeded"

    pi2 = sc.v1.payment_intents.create(params={"amount": 2000, "currency": "usd"})
    emu.confirm_payment_intent(pi2.id, card="4000002500003155")
    failed = emu.complete_authentication(pi2.id, False)
    assert failed["status"] == "requires_payment_method"
    assert failed["last_payment_error"]["code"] == "payment_intent_authentication_failure"
    assert failed["last_payment_error"]["message"] == (
        "We are unable to authenticate your payment method. "
        "Please choose a different payment method and try again."
    )
    assert emu.events["usd"][-1]["type"] == "payment_intent.payment_failed"


def test_publishable_key_confirm_like_stripe_js(emu: Emulator, sc: stripe.StripeClient) -> None:
    pi = sc.v1.payment_intents.create(params={"amount": 2000, "currency": "usd", "metadata": {"o": "1"}})
    confirm = {
        "client_secret": pi.client_secret,
        "payment_method_data": {"type": "card", "card": {"number": "4000002500003155"}},
        "return_url": "http://shop/return",
    }
    path = f"/v1/payment_intents/{pi.id}"
    # wrong account's publishable key: like Stripe, the PI does not exist for it
    status, _, body = raw(emu, "POST", f"{path}/confirm", confirm, key=EUR.publishable_key)
    assert (status, body["error"]["code"]) == (404, "resource_missing")
    status, _, body = raw(
        emu, "POST", f"{path}/confirm", {**confirm, "client_secret": "x"}, key=USD.publishable_key
    )
    assert (status, body["error"]["param"]) == (400, "client_secret")
    status, _, body = raw(emu, "POST", f"{path}/confirm", confirm, key=USD.publishable_key)
    assert status == 200 and body["status"] == "requires_action"
    assert "metadata" not in body
    status, _, body = raw(
        emu,
        "POST",
        f"{path}/emulator_authenticate",
        {"client_secret": pi.client_secret, "success": "true"},
        key=USD.publishable_key,
    )
    assert status == 200 and body["status"] == "succeeded"
    status, _, body = raw(emu, "GET", path, {"client_secret": pi.client_secret}, key=USD.publishable_key)
    assert status == 200 and body["status"] == "succeeded"
    status, _, _ = raw(emu, "GET", path, key=USD.publishable_key)
    assert status == 400


def test_update_and_cancel_state_rules(emu: Emulator, sc: stripe.StripeClient) -> None:
    pi = sc.v1.payment_intents.create(params={"amount": 2000, "currency": "usd", "metadata": {"a": "1"}})
    upd = sc.v1.payment_intents.update(
        pi.id, params={"amount": 2500, "metadata": {"b": "2"}, "description": "Order 7"}
    )
    assert (upd.amount, upd.description, upd.metadata.to_dict()) == (2500, "Order 7", {"a": "1", "b": "2"})
    emu.confirm_payment_intent(pi.id)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.payment_intents.update(pi.id, params={"amount": 3000})
    assert exc.value.code == "payment_intent_unexpected_state"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.payment_intents.cancel(pi.id)
    assert exc.value.code == "payment_intent_unexpected_state"

    pi2 = sc.v1.payment_intents.create(params={"amount": 2000, "currency": "usd"})
    canceled = sc.v1.payment_intents.cancel(pi2.id)
    assert canceled.status == "canceled" and canceled.canceled_at
    assert emu.events["usd"][-1]["type"] == "payment_intent.canceled"


def test_redirect_status_follows_the_payment_intent() -> None:
    from stripe_emulator.cards import redirect_status

    assert [
        redirect_status(s) for s in ("succeeded", "processing", "requires_payment_method", "canceled")
    ] == [
        "succeeded",
        "processing",
        "failed",
        "failed",
    ]
    js = render_stripe_js("http://emulator.test")
    assert "redirect_status=succeeded" not in js
    assert 'return "processing"' in js and 'return "failed"' in js


def test_cancel_of_a_canceled_intent_answers_unexpected_state_with_the_intent(
    sc: stripe.StripeClient,
) -> None:
    pi = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    sc.v1.payment_intents.cancel(pi.id)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.payment_intents.cancel(pi.id)
    assert exc.value.code == "payment_intent_unexpected_state"
    assert exc.value.http_status == 400
    assert exc.value.error is not None and exc.value.error.payment_intent is not None
    assert (exc.value.error.payment_intent.id, exc.value.error.payment_intent.status) == (pi.id, "canceled")
    assert "Only a PaymentIntent with one of the following statuses may be canceled" in str(
        exc.value.user_message
    )


def test_receipt_email_on_create_and_confirm(sc: stripe.StripeClient, emu: Emulator) -> None:
    pi = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd", "receipt_email": "a@x.test"})
    assert pi.receipt_email == "a@x.test"
    done = sc.v1.payment_intents.confirm(
        pi.id, params={"payment_method": "pm_card_visa", "receipt_email": "b@x.test"}
    )
    assert done.receipt_email == "b@x.test"
    assert emu.get(str(done.latest_charge))["receipt_email"] == "b@x.test"


def test_invalid_card_number_is_refused_like_stripe(emu: Emulator) -> None:
    status, _, created = raw(emu, "POST", "/v1/payment_intents", {"amount": 1000, "currency": "usd"})
    confirm = {
        "client_secret": created["client_secret"],
        "payment_method_data": {"type": "card", "card": {"number": "1234"}},
    }
    status, _, body = raw(
        emu, "POST", f"/v1/payment_intents/{created['id']}/confirm", confirm, key=USD.publishable_key
    )
    assert status == 402
    assert (body["error"]["type"], body["error"]["code"]) == ("card_error", "invalid_number")
    assert body["error"]["message"] == "Your card number is invalid."
    assert emu.get(created["id"])["status"] == "requires_payment_method"
