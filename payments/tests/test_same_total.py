"""Both ways to pay charge the same total: the shop's `payments.pricing.price()` (PaymentIntents) against the
Stripe emulator's Checkout, whose amounts follow Stripe's documented rules (`stripe_emulator/amounts.py`) and
are written independently of the shop's pricing.

The same order is priced by the shop and sent to Checkout as the shop sends it (one line item per order line,
every tax as a tax rate on every line, the discount as one coupon taking off exactly the shop's discount); the
totals, the discount, the tax and each line's amounts must agree. An order that would put an inclusive and an
exclusive rate on one line is refused by the shop (Stripe does not document that arithmetic). Hand-picked cases
first, then hypothesis over many orders, then the shop's own `checkout.session_params`.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import stripe
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from catalog.tests.factories import make_item
from core.money import MAX_AMOUNT, from_minor_units, minimum_charge, minor_unit_step, to_minor_units
from payments.models import mixes_inclusive_and_exclusive
from payments.pricing import (
    DiscountInput,
    LineInput,
    PricedOrder,
    TaxInput,
    price,
)
from payments.tests.factories import make_tax, percent_off
from stripe_emulator import Emulator, EmulatorAccount, EmulatorHTTPClient

ACCOUNTS = {
    cur: EmulatorAccount(cur, f"sk_test_{cur}_same_total", f"pk_test_{cur}_same_total", f"whsec_{cur}")
    for cur in ("usd", "jpy", "kwd", "eur", "ugx", "isk")
}


def checkout(
    currency: str, lines: list[LineInput], discount_total: int, taxes: list[TaxInput]
) -> dict[str, Any]:
    """The Checkout Session Stripe (here: the emulator) makes of this order, with its line items."""
    emulator = Emulator(list(ACCOUNTS.values()))
    sc = stripe.StripeClient(
        ACCOUNTS[currency].secret_key,
        http_client=EmulatorHTTPClient(emulator),
        base_addresses={"api": "http://emulator"},
        max_network_retries=0,
    )
    rates = [
        sc.v1.tax_rates.create(
            params={"display_name": t.name, "percentage": float(t.percentage), "inclusive": t.inclusive}
        ).id
        for t in taxes
    ]
    params: Any = {
        "mode": "payment",
        "success_url": "http://shop.test/ok",
        "line_items": [
            {
                "price_data": {
                    "currency": currency,
                    "unit_amount": to_minor_units(line.unit_price, currency),
                    "product_data": {"name": line.name},
                },
                "quantity": line.quantity,
                **({"tax_rates": rates} if rates else {}),
            }
            for line in lines
        ],
    }
    if discount_total:  # as `checkout.coupon_for` sends it: the shop's discount, a fixed amount
        coupon = sc.v1.coupons.create(params={"amount_off": discount_total, "currency": currency})
        params["discounts"] = [{"coupon": coupon.id}]
    session = sc.v1.checkout.sessions.create(params=params)
    full = sc.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["line_items.data.taxes", "total_details.breakdown"]}
    )
    return full.to_dict()


def assert_same(priced: PricedOrder, session: dict[str, Any]) -> None:
    assert session["amount_total"] == priced.total
    assert session["amount_subtotal"] == priced.subtotal
    assert session["total_details"]["amount_discount"] == priced.discount_total
    assert session["total_details"]["amount_tax"] == priced.exclusive_tax + priced.inclusive_tax
    items = session["line_items"]["data"]
    assert [(i["amount_subtotal"], i["amount_discount"], i["amount_total"]) for i in items] == [
        (p.amount, p.discount, p.total) for p in priced.lines
    ]
    assert [[t["amount"] for t in i["taxes"]] for i in items] == [
        [t.amount for t in p.taxes] for p in priced.lines
    ]
    assert [t["amount"] for t in session["total_details"]["breakdown"]["taxes"]] == [
        t.amount for t in priced.taxes
    ]


def line(unit_price: str, quantity: int, item_id: int) -> LineInput:
    return LineInput(
        item_id=item_id,
        name=f"Item {item_id}",
        description="",
        unit_price=Decimal(unit_price),
        quantity=quantity,
    )


TWO_INCLUSIVE = [
    TaxInput(id=1, name="VAT", percentage=Decimal("20"), inclusive=True),
    TaxInput(id=2, name="Regional", percentage=Decimal("2.5"), inclusive=True),
]
TWO_EXCLUSIVE = [
    TaxInput(id=3, name="City levy", percentage=Decimal("8.875"), inclusive=False),
    TaxInput(id=4, name="State tax", percentage=Decimal("2.5"), inclusive=False),
]

CASES = {
    "usd percent": ("usd", [line("24.50", 2, 1), line("18.00", 1, 2), line("3.99", 7, 3)], "percent", "12.5"),
    "usd amount": ("usd", [line("24.50", 2, 1), line("18.00", 1, 2), line("3.99", 7, 3)], "amount", "5.00"),
    "jpy percent": ("jpy", [line("1500", 3, 1), line("999", 1, 2), line("120", 11, 3)], "percent", "15"),
    "jpy amount": ("jpy", [line("1500", 3, 1), line("999", 1, 2), line("120", 11, 3)], "amount", "777"),
    "kwd percent": ("kwd", [line("1.235", 1, 1), line("2.500", 3, 2), line("0.990", 4, 3)], "percent", "10"),
    "kwd amount": ("kwd", [line("1.235", 1, 1), line("2.500", 3, 2), line("0.990", 4, 3)], "amount", "0.750"),
    "ugx percent": ("ugx", [line("15000", 3, 1), line("9999", 1, 2), line("1200", 11, 3)], "percent", "15"),
    "isk percent": ("isk", [line("1500", 3, 1), line("999", 1, 2), line("120", 11, 3)], "percent", "15"),
}


def discount_of(currency: str, kind: str, value: str) -> DiscountInput:
    if kind == "percent":
        return DiscountInput(id=1, name="Percent", percent_off=Decimal(value))
    return DiscountInput(id=2, name="Amount", amount_off=Decimal(value), currency=currency)


@pytest.mark.parametrize("taxes", [TWO_INCLUSIVE, TWO_EXCLUSIVE], ids=["inclusive", "exclusive"])
@pytest.mark.parametrize("name", list(CASES))
def test_coupon_and_two_rates_of_one_kind(name: str, taxes: list[TaxInput]) -> None:
    currency, lines, kind, value = CASES[name]
    priced = price(currency, lines, discount_of(currency, kind, value), taxes)
    session = checkout(currency, lines, priced.discount_total, taxes)
    assert_same(priced, session)
    assert (
        priced.discount_total > 0
        and (priced.inclusive_tax if taxes[0].inclusive else priced.exclusive_tax) > 0
    )
    if currency == "kwd":
        assert all(a % 10 == 0 for a in (session["amount_total"], priced.total, priced.inclusive_tax))
    if currency == "ugx":  # whole shillings: 45000 + 9999 + 13200 before the discount
        assert priced.subtotal == session["amount_subtotal"] == 68_199


def test_a_tie_in_the_coupon_split_goes_to_the_same_line_as_stripes() -> None:
    """2 cents off 3.00 and 1.00: both lines' shares are x.5 cents. The earlier line takes the cent (Stripe's
    split, as the emulator reads it); given to the other line, the 50% tax on it would round differently."""
    lines = [line("3.00", 1, 1), line("1.00", 1, 2)]
    taxes = [TaxInput(id=1, name="Half", percentage=Decimal("50"), inclusive=False)]
    priced = price("usd", lines, discount_of("usd", "amount", "0.02"), taxes)
    assert [p.discount for p in priced.lines] == [2, 0]
    assert priced.total == 597  # 298 + 149 and 100 + 50
    assert_same(priced, checkout("usd", lines, priced.discount_total, taxes))


def test_the_shop_never_mixes_included_and_added_taxes() -> None:
    assert mixes_inclusive_and_exclusive([*TWO_INCLUSIVE, TWO_EXCLUSIVE[0]])
    assert not mixes_inclusive_and_exclusive(TWO_INCLUSIVE)
    assert not mixes_inclusive_and_exclusive(TWO_EXCLUSIVE)
    assert not mixes_inclusive_and_exclusive([])


@st.composite
def orders(draw: st.DrawFn) -> tuple[str, list[LineInput], DiscountInput | None, list[TaxInput]]:
    currency = draw(st.sampled_from(["usd", "jpy", "kwd", "eur", "ugx", "isk"]))
    step = minor_unit_step(currency)
    lines = [
        LineInput(
            item_id=i,
            name=f"Item {i}",
            description="",
            unit_price=from_minor_units(draw(st.integers(min_value=1, max_value=50_000)) * step, currency),
            quantity=draw(st.integers(min_value=1, max_value=20)),
        )
        for i in range(draw(st.integers(min_value=1, max_value=5)))
    ]
    kind = draw(st.sampled_from(["none", "percent", "amount"]))
    discount = None
    if kind == "percent":
        discount = DiscountInput(
            id=1, name="Percent", percent_off=Decimal(draw(st.integers(min_value=1, max_value=9_999))) / 100
        )
    elif kind == "amount":
        minor = draw(st.integers(min_value=1, max_value=100_000)) * step
        discount = DiscountInput(
            id=2, name="Amount", amount_off=from_minor_units(minor, currency), currency=currency
        )
    taxes = [
        TaxInput(
            id=i,
            name=f"Tax {i}",
            percentage=Decimal(draw(st.integers(min_value=0, max_value=300_000))) / 10_000,
            inclusive=draw(st.booleans()),
        )
        for i in range(draw(st.integers(min_value=0, max_value=4)))
    ]
    return currency, lines, discount, taxes


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orders())
def test_property_checkout_and_pricing_agree(order: Any) -> None:
    """Every generated order: the shop refuses it for Checkout (an inclusive and an exclusive rate together), or
    Stripe's arithmetic as the emulator reads it from the docs gives the shop's amounts, line by line."""
    currency, lines, discount, taxes = order
    priced = price(currency, lines, discount, taxes)
    if mixes_inclusive_and_exclusive(taxes):
        return  # refused: `checkout._create` raises CheckoutUnavailable (test_a_mixed_order_is_refused_...)
    # Checkout refuses totals it could not charge; the shop checks the same limits before calling Stripe.
    assume(priced.total == 0 or minimum_charge(currency) <= priced.total <= MAX_AMOUNT)
    assert_same(priced, checkout(currency, lines, priced.discount_total, taxes))


@pytest.mark.django_db
@pytest.mark.parametrize("currency", ["usd", "eur"])
def test_the_shops_own_session_params_give_the_same_total(currency: str, stripe_fake: Any) -> None:
    """Through `payments.checkout.session_params`, exactly what the shop sends to Checkout."""

    from payments.accounts import account_for
    from payments.checkout import session_params
    from payments.models import Order, OrderLine
    from payments.orders import with_pricing
    from payments.pricing import price_order

    order = Order.objects.create(currency=currency)
    for i, (unit, quantity) in enumerate([("24.50", 2), ("18.00", 1), ("3.99", 7)]):
        item = make_item(f"Item {i}", unit, currency.upper())
        OrderLine.objects.create(order=order, item=item, quantity=quantity, unit_price=Decimal(unit))
    order.discount = percent_off("10", "Ten")
    order.save()
    for tax in TWO_EXCLUSIVE:
        order.taxes.add(make_tax(tax.name, str(tax.percentage), inclusive=tax.inclusive))
    priced = price_order(with_pricing().get(pk=order.pk))
    acct = account_for(currency)
    params = session_params(
        order, priced, acct, success_url="http://shop.test/ok", cancel_url="http://shop.test/no"
    )
    session = acct.client.v1.checkout.sessions.create(params=params)
    full = acct.client.v1.checkout.sessions.retrieve(
        session.id, params={"expand": ["line_items.data.taxes", "total_details.breakdown"]}
    ).to_dict()
    assert_same(priced, full)


@pytest.mark.django_db
def test_checkout_after_the_card_form_sends_the_frozen_snapshots_discount(
    client: Any, stripe_fake: Any
) -> None:
    """The card form froze the order; Checkout, opened next, prices it from the stored snapshot and must still
    send its discount as the coupon (else Checkout's total differs and the session is closed)."""
    from payments.tests.support import JSON, cart_with

    item = make_item("Beans", "24.50")
    order = cart_with(client, (item, 2))
    order.discount = percent_off("10", "Ten")
    order.save()
    order.taxes.add(make_tax("City levy", "2.5", inclusive=False))
    assert client.post(f"/order/intent/{order.public_id}", **JSON).status_code == 200
    session = client.get(f"/order/buy/{order.public_id}", **JSON)
    assert session.status_code == 200, session.content
    [coupon] = stripe_fake.calls("POST", "/v1/coupons")
    assert coupon.params["amount_off"] == "490"
    [rate] = stripe_fake.calls("POST", "/v1/tax_rates")
    assert (rate.params["percentage"], rate.params["inclusive"]) == ("2.5", "false")
    assert stripe_fake.emulator.get(session.json()["id"])["amount_total"] == 4410 + 110
