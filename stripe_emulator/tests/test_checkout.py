"""The emulated Checkout Sessions: totals with coupons and taxes, declines, expiry, line items and ``expand[]``,
the shopper's email."""

from __future__ import annotations

import time
from typing import Any

import pytest
import stripe

from stripe_emulator import Emulator, EmulatorError
from stripe_emulator.tests.helpers import (
    session_params,
)


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


def test_expand_and_line_items(emu: Emulator, sc: stripe.StripeClient) -> None:
    pi = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    emu.confirm_payment_intent(pi.id)
    expanded = sc.v1.payment_intents.retrieve(pi.id, params={"expand": ["latest_charge"]})
    assert isinstance(expanded.latest_charge, stripe.Charge) and expanded.latest_charge.amount == 1000
    with pytest.raises(stripe.InvalidRequestError):
        sc.v1.payment_intents.retrieve(pi.id, params={"expand": ["nonsense"]})


def test_sessions_are_hosted_page_and_breakdown_only_when_expanded(sc: stripe.StripeClient) -> None:
    coupon = sc.v1.coupons.create(params={"percent_off": 10})
    session = sc.v1.checkout.sessions.create(params=session_params(discounts=[{"coupon": coupon.id}]))
    assert session.ui_mode == "hosted_page"
    assert session.payment_method_types == ["card"]
    assert "breakdown" not in session.total_details  # type: ignore[operator]
    assert "line_items" not in session
    explicit = sc.v1.checkout.sessions.create(params=session_params(ui_mode="hosted_page"))
    assert explicit.ui_mode == "hosted_page"
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.checkout.sessions.create(params=session_params(ui_mode="hosted"))  # type: ignore[typeddict-item]
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
    session = sc.v1.checkout.sessions.create(params=session_params())
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
    created = sc.v1.checkout.sessions.create(params=session_params(expand=["line_items"]))
    assert created.line_items is not None and created.line_items.data[0].amount_total == 4900


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
