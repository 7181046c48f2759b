"""Tests of the in-memory Stripe emulator (stripe_emulator) itself.

Plain pytest: no database and no Django settings needed. The SDK is driven through
``EmulatorHTTPClient`` (in-process) or through the HTTP server started on a free port.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import stripe

from stripe_emulator import Emulator, EmulatorAccount, EmulatorError, EmulatorHTTPClient, sign_payload
from stripe_emulator.params import encode_form
from stripe_emulator.server import start_in_thread
from stripe_emulator.stripe_js import render_stripe_js

USD = EmulatorAccount("usd", "sk_test_usd_emulator_0001", "pk_test_usd_emulator_0001", "whsec_usd_emulator")
EUR = EmulatorAccount("eur", "sk_test_eur_emulator_0001", "pk_test_eur_emulator_0001", "whsec_eur_emulator")
REPO = Path(__file__).resolve().parents[2]
# The endpoint most tests here listen with: the payment lifecycle and disputes (refunds and charges' own news
# are recorded and listed, not sent).
LIFECYCLE_EVENTS = ("payment_intent.*", "checkout.session.*", "charge.refunded", "charge.dispute.*")


@pytest.fixture
def emu() -> Emulator:
    return Emulator([USD, EUR], base_url="http://127.0.0.1:12111", enabled_events=LIFECYCLE_EVENTS)


@pytest.fixture
def http(emu: Emulator) -> EmulatorHTTPClient:
    return EmulatorHTTPClient(emu)


def client_for(
    http: EmulatorHTTPClient, account: EmulatorAccount = USD, retries: int = 0
) -> stripe.StripeClient:
    return stripe.StripeClient(
        account.secret_key,
        http_client=http,
        base_addresses={"api": "http://emulator"},
        max_network_retries=retries,
    )


@pytest.fixture
def sc(http: EmulatorHTTPClient) -> stripe.StripeClient:
    return client_for(http)


def raw(
    emu: Emulator,
    method: str,
    path: str,
    params: dict[str, Any] | None = None,
    key: str = USD.secret_key,
    headers: dict[str, str] | None = None,
    inject: str | None = None,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    body = encode_form(params or {}).encode()
    if method == "GET" and params:
        path, body = f"{path}?{body.decode()}", b""
    status, out_headers, out = emu.handle(
        method, path, {"Authorization": f"Bearer {key}", **(headers or {})}, body, inject=inject
    )
    return status, out_headers, json.loads(out)


# --------------------------------------------------------------------------- validation & auth


def test_module_is_documented_as_an_emulator_and_imports_no_django() -> None:
    import stripe_emulator as pkg

    assert "not a payment processor" in (pkg.__doc__ or "")
    code = "import sys, stripe_emulator.server; print(any(m.split('.')[0] == 'django' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_parameter_is_rejected(sc: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd", "colour": "red"})  # type: ignore[typeddict-unknown-key]
    assert exc.value.http_status == 400
    assert exc.value.param == "colour"
    assert exc.value.user_message == "Received unknown parameter: colour"
    assert exc.value.error is not None and exc.value.error.type == "invalid_request_error"


def test_payment_method_types_is_rejected(sc: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.payment_intents.create(
            params={"amount": 1000, "currency": "usd", "payment_method_types": ["card"]}  # type: ignore[typeddict-unknown-key]
        )
    assert exc.value.param == "payment_method_types"
    assert (exc.value.user_message or "").startswith("Received unknown parameter: payment_method_types")


def test_ill_typed_and_nested_unknown_parameters(emu: Emulator) -> None:
    status, _, body = raw(emu, "POST", "/v1/payment_intents", {"amount": "ten", "currency": "usd"})
    assert status == 400
    assert body["error"]["param"] == "amount"
    assert "Invalid integer" in body["error"]["message"]
    status, _, body = raw(
        emu,
        "POST",
        "/v1/checkout/sessions",
        {"mode": "payment", "success_url": "http://x", "line_items": [{"price_data": {"bogus": 1}}]},
    )
    assert status == 400
    assert body["error"]["message"] == "Received unknown parameter: line_items[0][price_data][bogus]"
    status, _, body = raw(emu, "POST", "/v1/payment_intents", {"currency": "usd"})
    assert (status, body["error"]["param"]) == (400, "amount")


@pytest.mark.parametrize(
    ("amount", "code"),
    [(49, "amount_too_small"), (100_000_000, "amount_too_large")],
)
def test_amount_limits(sc: stripe.StripeClient, amount: int, code: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.payment_intents.create(params={"amount": amount, "currency": "eur"})
    assert exc.value.code == code
    assert exc.value.param == "amount"


def test_authentication_errors(emu: Emulator) -> None:
    status, _, body = raw(emu, "GET", "/v1/events", key="sk_test_nope_000000000")
    assert status == 401
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("Invalid API Key provided")
    status, _, body = raw(emu, "GET", "/v1/events", key="")
    assert status == 401
    assert "did not provide an API key" in body["error"]["message"]
    # publishable keys can't use secret-key endpoints
    status, _, _ = raw(
        emu, "POST", "/v1/payment_intents", {"amount": 100, "currency": "usd"}, key=USD.publishable_key
    )
    assert status == 401


def test_authentication_error_through_sdk(http: EmulatorHTTPClient) -> None:
    bad = stripe.StripeClient("sk_test_wrong", http_client=http, base_addresses={"api": "http://emulator"})
    with pytest.raises(stripe.AuthenticationError):
        bad.v1.events.list()


def test_response_headers(emu: Emulator) -> None:
    status, headers, _ = raw(emu, "POST", "/v1/payment_intents", {"amount": 500, "currency": "usd"})
    assert status == 200
    assert headers["Stripe-Version"] == "2026-10-28.endive"
    assert headers["Request-Id"].startswith("req_")


def test_account_scoping(sc: stripe.StripeClient, http: EmulatorHTTPClient) -> None:
    pi = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    eur = client_for(http, EUR)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        eur.v1.payment_intents.retrieve(pi.id)
    assert exc.value.http_status == 404
    assert exc.value.code == "resource_missing"
    assert sc.v1.payment_intents.retrieve(pi.id).id == pi.id
    assert eur.v1.events.list().data == []


# --------------------------------------------------------------------------- idempotency


def test_idempotent_replay_and_conflict(emu: Emulator) -> None:
    params = {"amount": 1500, "currency": "usd", "metadata": {"order": "42"}}
    key = {"Idempotency-Key": "order-42-attempt-1"}
    s1, h1, b1 = raw(emu, "POST", "/v1/payment_intents", params, headers=key)
    s2, h2, b2 = raw(emu, "POST", "/v1/payment_intents", params, headers=key)
    assert (s1, s2) == (200, 200)
    assert b1 == b2
    assert "Idempotent-Replayed" not in h1
    assert h2["Idempotent-Replayed"] == "true"
    assert [o for o in emu.objects.values() if o["object"] == "payment_intent"] == [emu.get(b1["id"])]
    assert len(emu.events["usd"]) == 1

    s3, _, b3 = raw(emu, "POST", "/v1/payment_intents", {**params, "amount": 1600}, headers=key)
    assert s3 == 400
    assert b3["error"]["type"] == "idempotency_error"
    assert b3["error"]["message"].startswith(
        "Keys for idempotent requests can only be used with the same parameters"
    )

    # the same key under another account is a different key
    s4, _, b4 = raw(
        emu, "POST", "/v1/payment_intents", {**params, "currency": "eur"}, key=EUR.secret_key, headers=key
    )
    assert s4 == 200 and b4["id"] != b1["id"]


def test_validation_errors_are_not_saved(emu: Emulator) -> None:
    """Stripe saves no result for a request refused by validation: the same key may be sent again, and a
    corrected request under it then runs (https://docs.stripe.com/api/idempotent_requests)."""
    key = {"Idempotency-Key": "bad-1"}
    for params in (
        {"amount": 10, "currency": "usd"},
        {"currency": "usd"},
        {"amount": 1000, "currency": "usd", "x": 1},
    ):
        s1, h1, b1 = raw(emu, "POST", "/v1/payment_intents", params, headers=key)
        assert s1 == 400 and "Idempotent-Replayed" not in h1, b1
    s2, h2, b2 = raw(emu, "POST", "/v1/payment_intents", {"amount": 1000, "currency": "usd"}, headers=key)
    assert s2 == 200 and "Idempotent-Replayed" not in h2 and b2["id"].startswith("pi_")


def test_a_decline_is_saved_and_replayed(emu: Emulator) -> None:
    key = {"Idempotency-Key": "declined-1"}
    params = {"amount": 1000, "currency": "usd", "confirm": True, "payment_method": "pm_card_chargeDeclined"}
    s1, _, b1 = raw(emu, "POST", "/v1/payment_intents", params, headers=key)
    s2, h2, b2 = raw(emu, "POST", "/v1/payment_intents", params, headers=key)
    assert s1 == s2 == 402 and b1 == b2 and h2["Idempotent-Replayed"] == "true"
    assert len([o for o in emu.objects.values() if o["object"] == "payment_intent"]) == 1


@pytest.mark.parametrize(("kind", "objects"), [("500", 0), ("500_after", 1)])
def test_a_500_is_saved_and_replayed_for_its_key(emu: Emulator, kind: str, objects: int) -> None:
    """Stripe replays a saved 500 for the same key (for 24 hours): only a new key is a new attempt."""
    key = {"Idempotency-Key": "pi-1"}
    params = {"amount": 1000, "currency": "usd"}
    s1, _, b1 = raw(emu, "POST", "/v1/payment_intents", params, headers=key, inject=kind)
    assert s1 == 500 and b1["error"]["type"] == "api_error"
    made = [o["id"] for o in emu.objects.values() if o["object"] == "payment_intent"]
    assert len(made) == objects  # "500_after": it exists although the answer says it failed
    s2, h2, b2 = raw(emu, "POST", "/v1/payment_intents", params, headers=key)
    assert (s2, b2, h2["Idempotent-Replayed"]) == (500, b1, "true")
    s3, _, b3 = raw(emu, "POST", "/v1/payment_intents", params, headers={"Idempotency-Key": "pi-2"})
    assert s3 == 200 and b3["id"] not in made


# --------------------------------------------------------------------------- payment intents & cards


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


# --------------------------------------------------------------------------- checkout


def test_checkout_totals_with_coupon_and_taxes(emu: Emulator, sc: stripe.StripeClient) -> None:
    coupon = sc.v1.coupons.create(params={"percent_off": 10, "duration": "once", "name": "TEN"})
    vat = sc.v1.tax_rates.create(params={"display_name": "VAT", "percentage": 20, "inclusive": True})
    sales = sc.v1.tax_rates.create(
        params={"display_name": "Sales tax", "percentage": 8.25, "inclusive": False}
    )
    session = sc.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": 1999,
                        "product_data": {"name": "Mug", "description": "Blue"},
                    },
                    "quantity": 3,
                    "tax_rates": [sales.id],
                },
                {
                    "price_data": {
                        "currency": "usd",
                        "unit_amount": 1250,
                        "product_data": {"name": "Poster"},
                    },
                    "quantity": 1,
                    "tax_rates": [vat.id],
                },
            ],
            "discounts": [{"coupon": coupon.id}],
            "success_url": "http://shop/ok?cs={CHECKOUT_SESSION_ID}",
            "cancel_url": "http://shop/cancel",
            "metadata": {"order": "9"},
            "client_reference_id": "order-9",
            "payment_intent_data": {"metadata": {"order": "9"}, "description": "Order 9"},
        }
    )
    # subtotal 5997 + 1250 = 7247; 10% = 724.7 -> 725 spread 600/125 (largest remainder)
    # sales tax 8.25% of 5397 = 445.25 -> 445; VAT inclusive 20/120 of 1125 = 187.5 -> 188 (adds nothing)
    assert session.amount_subtotal == 7247
    assert session.total_details is not None
    assert session.total_details.amount_discount == 725
    assert session.total_details.amount_tax == 445 + 188
    assert session.amount_total == 7247 - 725 + 445
    assert session.url == f"http://127.0.0.1:12111/checkout/{session.id}"
    assert (session.status, session.payment_status, session.payment_intent) == ("open", "unpaid", None)
    items = sc.v1.checkout.sessions.line_items.list(session.id)
    assert [(i.amount_discount, i.amount_tax, i.amount_total) for i in items.data] == [
        (600, 445, 5397 + 445),
        (125, 188, 1125),
    ]

    paid = emu.pay_checkout_session(session.id)
    assert (paid["status"], paid["payment_status"]) == ("complete", "paid")
    pi = emu.get(paid["payment_intent"])
    assert (pi["status"], pi["amount"], pi["metadata"], pi["description"]) == (
        "succeeded",
        session.amount_total,
        {"order": "9"},
        "Order 9",
    )
    completed = [e for e in emu.events["usd"] if e["type"] == "checkout.session.completed"]
    assert len(completed) == 1 and completed[0]["data"]["object"]["client_reference_id"] == "order-9"
    with pytest.raises(EmulatorError):
        emu.pay_checkout_session(session.id)


def test_checkout_amount_off_coupon_and_currency_mismatch(sc: stripe.StripeClient) -> None:
    def line(amount: int, currency: str = "usd") -> Any:
        return {
            "price_data": {"currency": currency, "unit_amount": amount, "product_data": {"name": "x"}},
            "quantity": 1,
        }

    coupon = sc.v1.coupons.create(params={"amount_off": 500, "currency": "usd", "duration": "once"})
    session = sc.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [line(3000), line(1000)],
            "discounts": [{"coupon": coupon.id}],
            "success_url": "http://shop/ok",
        }
    )
    assert session.total_details is not None
    assert (session.amount_total, session.total_details.amount_discount) == (3500, 500)
    with pytest.raises(stripe.InvalidRequestError):
        sc.v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "line_items": [line(3000, "eur")],
                "discounts": [{"coupon": coupon.id}],
                "success_url": "http://shop/ok",
            }
        )
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "line_items": [{**line(3000), "tax_rates": ["txr_missing"]}],
                "success_url": "x",
            }
        )
    assert exc.value.code == "resource_missing"


def test_checkout_decline_and_expire(emu: Emulator, sc: stripe.StripeClient) -> None:
    params: Any = {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {"currency": "usd", "unit_amount": 999, "product_data": {"name": "x"}},
                "quantity": 1,
            }
        ],
        "success_url": "http://shop/ok",
    }
    session = sc.v1.checkout.sessions.create(params=params)
    with pytest.raises(EmulatorError) as exc:
        emu.pay_checkout_session(session.id, card="4000000000000002")
    assert exc.value.message == "Your card was declined."
    assert emu.get(session.id)["status"] == "open"
    expired = sc.v1.checkout.sessions.expire(session.id)
    assert expired.status == "expired"
    assert emu.events["usd"][-1]["type"] == "checkout.session.expired"
    with pytest.raises(stripe.InvalidRequestError):
        sc.v1.checkout.sessions.expire(session.id)

    other = sc.v1.checkout.sessions.create(params=params)
    assert emu.expire_checkout_session(other.id)["status"] == "expired"


def test_checkout_expires_at_bounds(sc: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.checkout.sessions.create(
            params={
                "mode": "payment",
                "line_items": [
                    {
                        "price_data": {"currency": "usd", "unit_amount": 999, "product_data": {"name": "x"}},
                        "quantity": 1,
                    }
                ],
                "success_url": "http://shop/ok",
                "expires_at": int(time.time()) + 60,
            }
        )
    assert exc.value.param == "expires_at"


# --------------------------------------------------------------------------- refunds, events, webhooks


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


# --------------------------------------------------------------------------- failure injection


@pytest.mark.parametrize("kind", ["connection", "timeout"])
def test_fail_next_connection_kinds(
    emu: Emulator, http: EmulatorHTTPClient, sc: stripe.StripeClient, kind: str
) -> None:
    http.fail_next(kind)
    with pytest.raises(stripe.APIConnectionError) as exc:
        sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    assert exc.value.should_retry is True
    assert not emu.events["usd"]
    assert len(http.requests) == 1
    sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    assert len(emu.events["usd"]) == 1


def test_fail_next_http_kinds(emu: Emulator, http: EmulatorHTTPClient, sc: stripe.StripeClient) -> None:
    http.fail_next("500")
    with pytest.raises(stripe.APIError) as exc500:
        sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    assert exc500.value.http_status == 500
    http.fail_next("429")
    with pytest.raises(stripe.RateLimitError) as exc429:
        sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    assert exc429.value.http_status == 429
    assert not emu.events["usd"]
    assert [r.path for r in http.requests] == ["/v1/payment_intents"] * 2
    assert http.requests[0].api_key == USD.secret_key
    assert http.requests[0].params == {"amount": "1000", "currency": "usd"}
    with pytest.raises(ValueError, match="unknown failure kind"):
        http.fail_next("gremlins")


def test_fail_next_500_after_then_the_same_key_gets_the_500_again(
    emu: Emulator, http: EmulatorHTTPClient, sc: stripe.StripeClient
) -> None:
    http.fail_next("500_after")
    opts: Any = {"idempotency_key": "order-77"}
    with pytest.raises(stripe.APIError):
        sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"}, options=opts)
    created = [o for o in emu.objects.values() if o["object"] == "payment_intent"]
    assert len(created) == 1  # processed although the answer was a 500
    with pytest.raises(stripe.APIError) as again:
        sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"}, options=opts)
    assert again.value.http_status == 500  # the saved answer, replayed
    assert [r.idempotency_key for r in http.requests] == ["order-77", "order-77"]


def test_fail_next_lost_then_the_same_key_gets_the_saved_answer(
    emu: Emulator, http: EmulatorHTTPClient, sc: stripe.StripeClient
) -> None:
    http.fail_next("lost")
    opts: Any = {"idempotency_key": "order-78"}
    with pytest.raises(stripe.APIConnectionError):
        sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"}, options=opts)
    [created] = [o for o in emu.objects.values() if o["object"] == "payment_intent"]
    pi = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"}, options=opts)
    assert pi.id == created["id"]
    assert pi.last_response is not None and pi.last_response.headers["Idempotent-Replayed"] == "true"


def test_sdk_retries_recover_from_lost_response(
    emu: Emulator, http: EmulatorHTTPClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stripe.HTTPClient, "_sleep_time_seconds", lambda self, n: 0.0)
    sc = client_for(http, retries=2)
    http.fail_next("lost")
    http.fail_next("connection")
    pi = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    assert len(http.requests) == 3
    assert len({r.idempotency_key for r in http.requests}) == 1  # SDK reused its generated key
    assert [o["id"] for o in emu.objects.values() if o["object"] == "payment_intent"] == [pi.id]


# --------------------------------------------------------------------------- HTTP server mode


@pytest.fixture
def server(emu: Emulator) -> Iterator[str]:
    srv = start_in_thread(emu)
    try:
        yield emu.base_url
    finally:
        srv.shutdown()
        srv.server_close()
        emu.close()


def _get(url: str) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, dict(resp.headers.items()), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read().decode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _post_form(url: str, data: dict[str, str]) -> tuple[int, dict[str, str], str]:
    opener = urllib.request.build_opener(_NoRedirect)
    req = urllib.request.Request(url, data=encode_form(data).encode(), method="POST")
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, dict(resp.headers.items()), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read().decode()


def test_http_server_mode(emu: Emulator, server: str) -> None:
    sc = stripe.StripeClient(USD.secret_key, base_addresses={"api": server}, max_network_retries=0)
    pi = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    assert sc.v1.payment_intents.retrieve(pi.id).status == "requires_payment_method"
    with pytest.raises(stripe.InvalidRequestError):
        sc.v1.payment_intents.create(params={"amount": 1, "currency": "usd"})

    assert _get(f"{server}/healthz")[0] == 200
    status, headers, js = _get(f"{server}/js/stripe.js")
    assert status == 200 and "javascript" in headers["Content-Type"]
    assert headers["Access-Control-Allow-Origin"] == "*"
    for needle in (
        "window.Stripe",
        "emulator-card-number",
        "confirmPayment",
        "emulator-3ds-complete",
        server,
    ):
        assert needle in js

    req = urllib.request.Request(f"{server}/v1/payment_intents/{pi.id}", method="OPTIONS")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 204
        assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]

    # Stripe.js-style publishable-key confirm over HTTP
    body = encode_form(
        {
            "client_secret": pi.client_secret,
            "payment_method_data": {"type": "card", "card": {"number": "4242424242424242"}},
        }
    ).encode()
    req = urllib.request.Request(
        f"{server}/v1/payment_intents/{pi.id}/confirm",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {USD.publishable_key}"},
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert json.loads(resp.read())["status"] == "succeeded"


def test_hosted_checkout_page(emu: Emulator, server: str) -> None:
    sc = stripe.StripeClient(EUR.secret_key, base_addresses={"api": server}, max_network_retries=0)
    vat = sc.v1.tax_rates.create(params={"display_name": "VAT", "percentage": 21, "inclusive": False})
    coupon = sc.v1.coupons.create(params={"percent_off": 50, "name": "HALF"})
    session = sc.v1.checkout.sessions.create(
        params={
            "mode": "payment",
            "line_items": [
                {
                    "price_data": {
                        "currency": "eur",
                        "unit_amount": 1000,
                        "product_data": {"name": "Tea <b>"},
                    },
                    "quantity": 2,
                    "tax_rates": [vat.id],
                }
            ],
            "discounts": [{"coupon": coupon.id}],
            "success_url": "http://shop.test/ok?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "http://shop.test/cancel",
        }
    )
    assert session.url == f"{server}/checkout/{session.id}"
    status, _, page = _get(session.url)
    assert status == 200
    assert "Tea &lt;b&gt;" in page
    assert "id='emulator-checkout-total'>€12.10<" in page  # 2000 - 1000 + 21% of 1000
    assert "VAT 21%" in page and "HALF" in page
    for element_id in ("card_number", "emulator-checkout-pay", "emulator-checkout-cancel"):
        assert f"id='{element_id}'" in page

    status, _, page = _post_form(
        f"{server}/checkout/{session.id}/pay", {"card_number": "4000 0000 0000 9995"}
    )
    assert status == 402 and "Your card has insufficient funds." in page
    status, headers, _ = _post_form(
        f"{server}/checkout/{session.id}/pay", {"card_number": "4242 4242 4242 4242"}
    )
    assert status == 303
    assert headers["Location"] == f"http://shop.test/ok?session={session.id}"
    assert sc.v1.checkout.sessions.retrieve(session.id).payment_status == "paid"
    status, _, page = _get(session.url)
    assert "already complete" in page
    assert _get(f"{server}/checkout/cs_test_unknown")[0] == 404


def test_http_webhook_delivery_with_retries(
    emu: Emulator, server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    got: list[tuple[str, dict[str, Any]]] = []
    calls = {"n": 0}

    class Hook(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            return None

        def do_POST(self) -> None:
            calls["n"] += 1
            payload = self.rfile.read(int(self.headers["Content-Length"]))
            if calls["n"] == 1:  # first attempt fails -> the emulator retries
                self.send_response(500)
            else:
                event = stripe.Webhook.construct_event(
                    payload, self.headers["Stripe-Signature"], USD.webhook_secret
                )
                got.append((self.path, event.to_dict()))
                self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    monkeypatch.setattr(time, "sleep", lambda s: None)
    try:
        emu.webhook_base = f"http://127.0.0.1:{hook.server_address[1]}"
        sc = stripe.StripeClient(USD.secret_key, base_addresses={"api": server}, max_network_retries=0)
        sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
        assert emu.flush_webhooks(10)
    finally:
        hook.shutdown()
        hook.server_close()
    assert [(p, e["type"]) for p, e in got] == [("/webhooks/stripe/usd/", "payment_intent.created")]
    assert [s for _, s in emu.deliveries] == [500, 200]


def test_cli_prints_banner_and_serves() -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stripe_emulator",
            "--port",
            "0",
            "--account",
            f"usd:{USD.secret_key}:{USD.publishable_key}:{USD.webhook_secret}",
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("Stripe emulator listening on http://127.0.0.1:")
        assert line.endswith("(in-memory, not a payment processor)")
        base = line.split()[4]
        assert _get(f"{base}/healthz")[0] == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --------------------------------------------------------------------------- Stripe.js double (node)

_NODE_DRIVER = r"""
const fs = require("fs");
const [jsPath, pk, secretsJson] = process.argv.slice(2);
const secrets = JSON.parse(secretsJson);

function El(tag) {
  this.tagName = tag; this.children = []; this.style = {}; this.listeners = {};
  this.attrs = {}; this.parentNode = null; this.value = ""; this.id = "";
}
El.prototype.appendChild = function (c) { c.parentNode = this; this.children.push(c); return c; };
El.prototype.removeChild = function (c) {
  this.children = this.children.filter((x) => x !== c);
  c.parentNode = null;
};
El.prototype.setAttribute = function (k, v) { this.attrs[k] = v; };
El.prototype.addEventListener = function (t, f) { (this.listeners[t] = this.listeners[t] || []).push(f); };
El.prototype.dispatch = function (t) { (this.listeners[t] || []).forEach((f) => f({})); };
El.prototype.focus = function () {};
function find(node, id) {
  if (node.id === id) return node;
  for (const c of node.children) { const f = find(c, id); if (f) return f; }
  return null;
}
const body = new El("body");
const host = new El("div"); host.id = "payment-element"; body.appendChild(host);
const redirects = [];
global.window = { location: { assign: (url) => redirects.push(url) } };
global.document = {
  body, currentScript: null,
  createElement: (t) => new El(t),
  querySelector: (sel) => find(body, sel.replace(/^#/, "")),
};
eval(fs.readFileSync(jsPath, "utf8"));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function mount(secret) {
  body.children = [host]; host.children = [];
  const stripe = window.Stripe(pk);
  const elements = stripe.elements({ clientSecret: secret, appearance: {} });
  const el = elements.create("payment");
  const seen = [];
  el.on("ready", () => seen.push("ready"));
  el.on("change", (e) => seen.push("change:" + e.complete));
  el.mount("#payment-element");
  await sleep(5);
  return { stripe, elements, seen };
}

async function pay(secret, card, button) {
  const { stripe, elements, seen } = await mount(secret);
  const input = find(body, "emulator-card-number");
  const out = { placeholder: input.placeholder, emptySubmit: await elements.submit() };
  input.value = card; input.dispatch("input");
  out.submit = await elements.submit();
  out.seen = seen;
  const before = redirects.length;
  const confirmParams = { return_url: "http://shop.test/return?o=1" };
  const pending = stripe.confirmPayment({ elements, confirmParams });
  if (button) {
    for (let i = 0; i < 200 && !find(body, "emulator-3ds"); i++) await sleep(10);
    out.modal = !!find(body, "emulator-3ds");
    find(body, button).dispatch("click");
  }
  const result = await Promise.race([pending, sleep(400).then(() => "pending")]);
  out.result = result;
  out.redirect = redirects.length > before ? redirects[redirects.length - 1] : null;
  out.retrieved = (await stripe.retrievePaymentIntent(secret)).paymentIntent.status;
  return out;
}

(async () => {
  const results = {
    ok: await pay(secrets.ok, "4242 4242 4242 4242"),
    declined: await pay(secrets.declined, "4000000000009995"),
    threeDsOk: await pay(secrets.threeDsOk, "4000002500003155", "emulator-3ds-complete"),
    threeDsFail: await pay(secrets.threeDsFail, "4000002500003155", "emulator-3ds-fail"),
  };
  const wrongKey = window.Stripe(pk.replace("usd", "eur"));
  results.wrongKey = await wrongKey.retrievePaymentIntent(secrets.ok);
  process.stdout.write(JSON.stringify(results));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def _run_stripe_js_driver(
    server: str, tmp_path: Path, script: str, names: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run a node `script` against the served Stripe.js double, with one fresh PaymentIntent's client secret per
    name; what the script printed (JSON), and the PaymentIntents by name."""
    sc = stripe.StripeClient(USD.secret_key, base_addresses={"api": server}, max_network_retries=0)
    pis = {name: sc.v1.payment_intents.create(params={"amount": 1234, "currency": "usd"}) for name in names}
    js = tmp_path / "stripe.js"
    js.write_text(_get(f"{server}/js/stripe.js")[2])
    driver = tmp_path / "driver.js"
    driver.write_text(script)
    secrets_json = json.dumps({name: pi.client_secret for name, pi in pis.items()})
    proc = subprocess.run(
        ["node", str(driver), str(js), USD.publishable_key, secrets_json],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(json.loads(proc.stdout)), pis


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")
def test_stripe_js_double_flows(emu: Emulator, server: str, tmp_path: Path) -> None:
    out, pis = _run_stripe_js_driver(
        server, tmp_path, _NODE_DRIVER, ("ok", "declined", "threeDsOk", "threeDsFail")
    )

    ok = out["ok"]
    assert ok["placeholder"] == "4242 4242 4242 4242"
    assert ok["emptySubmit"]["error"]["message"] == "Your card number is incomplete."
    assert ok["submit"] == {}
    assert ok["seen"] == ["ready", "change:true"]
    pi_ok = pis["ok"]
    assert ok["redirect"] == (
        f"http://shop.test/return?o=1&payment_intent={pi_ok.id}"
        f"&payment_intent_client_secret={pi_ok.client_secret}&redirect_status=succeeded"
    )
    assert ok["retrieved"] == "succeeded"

    declined = out["declined"]
    assert declined["redirect"] is None
    assert declined["result"]["error"]["type"] == "card_error"
    assert declined["result"]["error"]["decline_code"] == "insufficient_funds"
    assert declined["retrieved"] == "requires_payment_method"

    assert out["threeDsOk"]["modal"] is True
    assert out["threeDsOk"]["redirect"].endswith("redirect_status=succeeded")
    assert out["threeDsOk"]["retrieved"] == "succeeded"

    fail = out["threeDsFail"]["result"]["error"]
    assert (fail["type"], fail["code"]) == ("card_error", "payment_intent_authentication_failure")
    assert out["threeDsFail"]["redirect"] is None

    assert out["wrongKey"]["error"]["code"] == "resource_missing"
    assert [e["type"] for e in emu.events["usd"]].count("payment_intent.succeeded") == 2


def test_expand_and_line_items(emu: Emulator, sc: stripe.StripeClient) -> None:
    pi = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    emu.confirm_payment_intent(pi.id)
    expanded = sc.v1.payment_intents.retrieve(pi.id, params={"expand": ["latest_charge"]})
    assert isinstance(expanded.latest_charge, stripe.Charge) and expanded.latest_charge.amount == 1000
    with pytest.raises(stripe.InvalidRequestError):
        sc.v1.payment_intents.retrieve(pi.id, params={"expand": ["nonsense"]})


def test_concurrent_idempotent_requests_create_one_object(emu: Emulator) -> None:
    results: list[str] = []

    def worker() -> None:
        _, _, body = raw(
            emu,
            "POST",
            "/v1/payment_intents",
            {"amount": 700, "currency": "usd"},
            headers={"Idempotency-Key": "k"},
        )
        results.append(body["id"])

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 16
    assert sum(1 for o in emu.objects.values() if o["object"] == "payment_intent") == 1


def test_server_latency(emu: Emulator) -> None:
    srv = start_in_thread(emu, latency_ms=120)
    try:
        started = time.monotonic()
        _get(f"{emu.base_url}/v1/events")
        assert time.monotonic() - started >= 0.12
        started = time.monotonic()
        _get(f"{emu.base_url}/healthz")  # not an API call: no latency
        assert time.monotonic() - started < 0.12
    finally:
        srv.shutdown()
        srv.server_close()


# --------------------------------------------------------------------------- Stripe.js double: deferred intents

_NODE_DEFERRED = (
    _NODE_DRIVER.split("async function mount")[0]
    + r"""
async function deferred(opts, card, steps) {
  body.children = [host]; host.children = [];
  const stripe = window.Stripe(pk, { locale: "fr" });
  const elements = stripe.elements(Object.assign({ mode: "payment", appearance: {} }, opts));
  elements.create("payment").mount("#payment-element");
  await sleep(5);
  const input = find(body, "emulator-card-number");
  const out = { calls: [] };
  const realFetch = global.fetch;
  global.fetch = (url, init) => { out.calls.push((init && init.method) + " " + url.split("?")[0]); return realFetch(url, init); };
  try {
    out.emptySubmit = await elements.submit();
    input.value = "1234"; input.dispatch("input");
    out.invalidSubmit = await elements.submit();
    input.value = card; input.dispatch("input");
    if (steps.update) { elements.update(steps.update); }
    if (steps.submit !== false) { out.submit = await elements.submit(); }
    const before = redirects.length;
    out.result = await Promise.race([
      stripe.confirmPayment({ elements, clientSecret: steps.secret,
        confirmParams: { return_url: "http://shop.test/return", receipt_email: "shopper@example.com" } }),
      sleep(400).then(() => "pending"),
    ]);
    out.redirect = redirects.length > before ? redirects[redirects.length - 1] : null;
  } finally {
    global.fetch = realFetch;
  }
  out.retrieved = (await stripe.retrievePaymentIntent(steps.secret)).paymentIntent;
  return out;
}

(async () => {
  const results = {
    ok: await deferred({ amount: 1234, currency: "usd", locale: "en" }, "4242424242424242", { secret: secrets.ok }),
    noSubmit: await deferred({ amount: 1234, currency: "usd" }, "4242424242424242",
      { secret: secrets.noSubmit, submit: false }),
    amountDiffers: await deferred({ amount: 1000, currency: "usd" }, "4242424242424242", { secret: secrets.amount }),
    currencyDiffers: await deferred({ amount: 1234, currency: "eur" }, "4242424242424242",
      { secret: secrets.currency }),
    updated: await deferred({ amount: 1000, currency: "usd" }, "4242424242424242",
      { secret: secrets.updated, update: { amount: 1234 } }),
    declined: await deferred({ amount: 1234, currency: "usd" }, "4000000000000002", { secret: secrets.declined }),
  };
  let thrown = null;
  try { window.Stripe(pk).elements({ mode: "payment", currency: "usd" }); } catch (e) { thrown = e.name + ": " + e.message; }
  results.missingAmount = thrown;
  process.stdout.write(JSON.stringify(results));
})().catch((e) => { console.error(e); process.exit(1); });
"""
)


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")
def test_stripe_js_double_deferred_intent_flow(emu: Emulator, server: str, tmp_path: Path) -> None:
    out, pis = _run_stripe_js_driver(
        server, tmp_path, _NODE_DEFERRED, ("ok", "noSubmit", "amount", "currency", "updated", "declined")
    )

    ok = out["ok"]
    assert ok["emptySubmit"]["error"] == {
        "type": "validation_error",
        "code": "incomplete_number",
        "message": "Your card number is incomplete.",
    }
    assert ok["invalidSubmit"]["error"] == {
        "type": "validation_error",
        "code": "invalid_number",
        "message": "Your card number is invalid.",
    }
    assert ok["submit"] == {}
    assert ok["redirect"] == (
        f"http://shop.test/return?payment_intent={pis['ok'].id}"
        f"&payment_intent_client_secret={pis['ok'].client_secret}&redirect_status=succeeded"
    )
    assert ok["retrieved"]["status"] == "succeeded"
    assert ok["retrieved"]["receipt_email"] == "shopper@example.com"

    # Refused, nothing confirmed: no submit, or a PaymentIntent for another amount or currency.
    assert out["noSubmit"]["result"]["error"]["message"].startswith("elements.submit() must be called before")
    assert out["noSubmit"]["calls"] == []
    for name in ("amountDiffers", "currencyDiffers"):
        assert "does not match" in out[name]["result"]["error"]["message"]
        assert out[name]["redirect"] is None
        assert out[name]["retrieved"]["status"] == "requires_payment_method"
        assert not [c for c in out[name]["calls"] if c.startswith("POST")]
    # elements.update({amount}) brings the deferred amount up to date.
    assert out["updated"]["retrieved"]["status"] == "succeeded"

    declined = out["declined"]
    assert declined["result"]["error"]["decline_code"] == "generic_decline"
    assert declined["redirect"] is None
    assert out["missingAmount"].startswith("IntegrationError: elements(): amount must be")
    assert emu.get(pis["ok"].id)["receipt_email"] == "shopper@example.com"


def test_redirect_status_follows_the_payment_intent() -> None:
    from stripe_emulator.core import redirect_status

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


# --------------------------------------------------------------------------- endive shapes, expand, events


def _recorder(sent: list[str]) -> Any:
    """A webhook endpoint that keeps the type of every event it receives and answers 200."""

    def deliver(account: EmulatorAccount, payload: bytes, signature: str) -> int:
        sent.append(json.loads(payload)["type"])
        return 200

    return deliver


def _session_params(**extra: Any) -> Any:
    return {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {"currency": "usd", "unit_amount": 2450, "product_data": {"name": "Beans"}},
                "quantity": 2,
            }
        ],
        "success_url": "http://shop.test/ok",
        **extra,
    }


def test_sessions_are_hosted_page_and_breakdown_only_when_expanded(sc: stripe.StripeClient) -> None:
    coupon = sc.v1.coupons.create(params={"percent_off": 10})
    session = sc.v1.checkout.sessions.create(params=_session_params(discounts=[{"coupon": coupon.id}]))
    assert session.ui_mode == "hosted_page"
    assert session.payment_method_types == ["card"]
    assert "breakdown" not in session.total_details  # type: ignore[operator]
    assert "line_items" not in session
    explicit = sc.v1.checkout.sessions.create(params=_session_params(ui_mode="hosted_page"))
    assert explicit.ui_mode == "hosted_page"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.checkout.sessions.create(params=_session_params(ui_mode="hosted"))  # type: ignore[typeddict-item]
    assert exc.value.param == "ui_mode"

    full = sc.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["total_details.breakdown", "line_items.data.discounts"]}
    )
    assert full.total_details is not None and full.total_details.breakdown is not None
    [discount] = full.total_details.breakdown.discounts
    assert (discount.amount, discount.discount.source.coupon, discount.discount.object) == (
        490,
        coupon.id,
        "discount",
    )
    assert full.line_items is not None
    assert (
        full.line_items.data[0].discounts is not None and full.line_items.data[0].discounts[0].amount == 490
    )
    assert "taxes" not in full.line_items.data[0]
    plain = sc.v1.checkout.sessions.line_items.list(session.id)
    assert "discounts" not in plain.data[0] and "_product_name" not in plain.data[0].price  # type: ignore[operator]


def test_expand_nested_paths_like_stripe(emu: Emulator, sc: stripe.StripeClient) -> None:
    session = sc.v1.checkout.sessions.create(params=_session_params())
    emu.pay_checkout_session(session.id)
    deep = sc.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["payment_intent.latest_charge.balance_transaction"]}
    )
    assert isinstance(deep.payment_intent, stripe.PaymentIntent)
    charge = deep.payment_intent.latest_charge
    assert isinstance(charge, stripe.Charge) and charge.amount == 4900
    assert isinstance(charge.balance_transaction, stripe.BalanceTransaction)
    refund = sc.v1.refunds.create(params={"charge": charge.id, "amount": 100})
    with_refunds = sc.v1.charges.retrieve(charge.id, params={"expand": ["refunds"]})
    assert with_refunds.refunds is not None and [r.id for r in with_refunds.refunds.data] == [refund.id]
    assert "refunds" not in sc.v1.charges.retrieve(charge.id)
    for bad in (["nonsense"], ["amount"], ["payment_intent.nonsense"]):
        with pytest.raises(stripe.InvalidRequestError) as exc:
            sc.v1.checkout.sessions.retrieve(session.id, params={"expand": bad})
        assert "cannot be expanded" in str(exc.value.user_message)
    # expand on create answers too
    created = sc.v1.checkout.sessions.create(params=_session_params(expand=["line_items"]))
    assert created.line_items is not None and created.line_items.data[0].amount_total == 4900


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


# --------------------------------------------------------------------------- refunds and disputes


def test_refund_statuses_and_events(emu: Emulator, sc: stripe.StripeClient) -> None:
    emu.enabled_events = ("*",)
    sent: list[str] = []
    emu.deliver = _recorder(sent)
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
    emu.deliver = _recorder(sent)
    pi = sc.v1.payment_intents.create(params={"amount": 5000, "currency": "usd"})
    emu.confirm_payment_intent(pi.id)
    sc.v1.refunds.create(params={"payment_intent": pi.id})
    assert sent == ["payment_intent.created", "payment_intent.succeeded", "charge.refunded"]
    types = [e["type"] for e in emu.events["usd"]]
    assert "refund.created" in types  # recorded and listed all the same
    refund_event = next(e for e in emu.events["usd"] if e["type"] == "refund.created")
    assert refund_event["pending_webhooks"] == 0


def test_the_default_endpoint_is_sent_every_event() -> None:
    """Unless whoever starts it says otherwise, as `stripe listen` without `--events`: refunds included."""
    emu = Emulator([USD, EUR], base_url="http://127.0.0.1:12111")
    assert emu.enabled_events == ("*",)
    sent: list[str] = []
    emu.deliver = _recorder(sent)
    sc = client_for(EmulatorHTTPClient(emu))
    pi = sc.v1.payment_intents.create(params={"amount": 5000, "currency": "usd"})
    emu.confirm_payment_intent(pi.id)
    sc.v1.refunds.create(params={"payment_intent": pi.id})
    assert "refund.created" in sent and "charge.refunded" in sent
    assert sent == [e["type"] for e in emu.events["usd"]]


def test_disputes_from_the_test_card_and_the_helpers(emu: Emulator, sc: stripe.StripeClient) -> None:
    sent: list[str] = []
    emu.deliver = _recorder(sent)
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
    session = sc.v1.checkout.sessions.create(params=_session_params())
    emu.pay_checkout_session(session.id, card="4000000000000259")
    types = [e["type"] for e in emu.events["usd"]]
    assert types.index("checkout.session.completed") < types.index("charge.dispute.created")


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


# --------------------------------------------------------------------------- hosted page: cards like Stripe


def test_hosted_page_authentication_step_and_invalid_number(emu: Emulator, server: str) -> None:
    sc = stripe.StripeClient(USD.secret_key, base_addresses={"api": server}, max_network_retries=0)
    session = sc.v1.checkout.sessions.create(params=_session_params(cancel_url="http://shop.test/no"))
    pay, authenticate = f"{server}/checkout/{session.id}/pay", f"{server}/checkout/{session.id}/authenticate"

    status, _, page = _post_form(pay, {"card_number": "1234"})
    assert status == 400 and "Your card number is invalid." in page and "declined" not in page

    status, _, page = _post_form(pay, {"card_number": "4000 0025 0000 3155"})
    assert status == 200
    assert "id='emulator-3ds-complete'" in page and "id='emulator-3ds-fail'" in page
    assert "id='card_number'" not in page
    assert _get(session.url or "")[2].count("emulator-3ds-complete") == 1  # reloading shows the step again
    status, _, page = _post_form(authenticate, {"success": "false"})
    assert status == 402 and "unable to authenticate" in page and "id='card_number'" in page
    assert sc.v1.checkout.sessions.retrieve(session.id).status == "open"

    _post_form(pay, {"card_number": "4000002500003155"})
    status, headers, _ = _post_form(authenticate, {"success": "true"})
    assert status == 303 and headers["Location"] == "http://shop.test/ok"
    paid = sc.v1.checkout.sessions.retrieve(session.id, params={"expand": ["payment_intent.latest_charge"]})
    assert paid.payment_status == "paid"
    assert isinstance(paid.payment_intent, stripe.PaymentIntent)
    charge = paid.payment_intent.latest_charge
    assert isinstance(charge, stripe.Charge) and charge.payment_method_details is not None


def test_hang_control_endpoint_and_cli_flag(emu: Emulator) -> None:
    srv = start_in_thread(emu)
    try:
        req = urllib.request.Request(f"{emu.base_url}/_emulator/hang", data=b"seconds=0.3", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert json.loads(resp.read()) == {"hang_seconds": 0.3}
        started = time.monotonic()
        _get(f"{emu.base_url}/v1/events")
        assert time.monotonic() - started >= 0.3
        started = time.monotonic()
        assert _get(f"{emu.base_url}/healthz")[0] == 200  # only /v1 calls hang
        assert time.monotonic() - started < 0.3
        req = urllib.request.Request(f"{emu.base_url}/_emulator/hang", data=b"seconds=0", method="POST")
        urllib.request.urlopen(req, timeout=10).close()
        assert srv.hang_seconds == 0
        bad = urllib.request.Request(f"{emu.base_url}/_emulator/hang", data=b"seconds=-1", method="POST")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(bad, timeout=10)
    finally:
        srv.shutdown()
        srv.server_close()
    from stripe_emulator.__main__ import main

    with pytest.raises(SystemExit):
        main(["--help"])


def test_stats_count_objects_by_kind_and_calls_by_route(emu: Emulator, sc: stripe.StripeClient) -> None:
    """What a load test reads to tell how many Stripe objects a scenario made (bench.run's abandonment row)."""
    assert emu.stats() == {"objects": {}, "calls": {}}
    first = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    sc.v1.payment_intents.create(params={"amount": 500, "currency": "usd"})
    sc.v1.payment_intents.retrieve(first.id)
    stats = emu.stats()
    assert stats["objects"] == {"payment_intent": 2, "event": 2}  # and their payment_intent.created
    assert stats["calls"] == {"POST /v1/payment_intents": 2, "GET /v1/payment_intents/{id}": 1}
    srv = start_in_thread(emu)
    try:
        status, _, body = _get(f"{emu.base_url}/_emulator/stats")
        assert status == 200 and json.loads(body) == stats
    finally:
        srv.shutdown()
        srv.server_close()


# --------------------------------------------------------------------------- what the package imports


def test_the_emulator_imports_only_the_standard_library_and_stripe() -> None:
    """Nothing of the shop (``core``, ``catalog``, ``payments``): see also ``test_independence.py``."""
    import ast

    allowed_third_party = {"stripe", "typing_extensions"}
    for path in (REPO / "stripe_emulator").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                ok = top in sys.stdlib_module_names or top in allowed_third_party or top == "stripe_emulator"
                assert ok, f"{path.name} imports {name}"


def test_the_product_never_imports_the_emulator() -> None:
    for app in ("core", "catalog", "payments"):
        for path in (REPO / app).rglob("*.py"):
            if "tests" in path.parts:
                continue
            text = path.read_text()
            assert "import stripe_emulator" not in text and "from stripe_emulator" not in text, path


# ------------------------------------------------------------------------------------------------ merchant


def _paid(emu: Emulator, sc: stripe.StripeClient, amount: int = 5000) -> str:
    pi = sc.v1.payment_intents.create(params={"amount": amount, "currency": "usd"})
    emu.confirm_payment_intent(pi.id)
    return pi.id


def test_refunds_are_listed_newest_first_per_payment_intent_and_paged(
    emu: Emulator, sc: stripe.StripeClient
) -> None:
    first, second = _paid(emu, sc), _paid(emu, sc)
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


def test_checkout_collects_the_shoppers_email_when_none_was_given(
    emu: Emulator, sc: stripe.StripeClient
) -> None:
    params: Any = {
        "mode": "payment",
        "success_url": "http://shop.test/ok",
        "line_items": [
            {
                "price_data": {"currency": "usd", "unit_amount": 1000, "product_data": {"name": "A"}},
                "quantity": 1,
            }
        ],
    }
    session = sc.v1.checkout.sessions.create(params=params)
    paid = emu.pay_checkout_session(session.id, email="typed@example.com")
    assert paid["customer_details"]["email"] == "typed@example.com"
    assert emu.get(paid["payment_intent"])["receipt_email"] == "typed@example.com"
    given = sc.v1.checkout.sessions.create(params={**params, "customer_email": "given@example.com"})
    paid = emu.pay_checkout_session(given.id, email="ignored@example.com")
    assert paid["customer_details"]["email"] == "given@example.com"
