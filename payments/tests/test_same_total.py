"""Both ways to pay charge the same total: the shop's `payments.pricing.price()` (PaymentIntents) against the
Stripe emulator's Checkout, whose amounts follow Stripe's documented rules (`stripe_emulator/amounts.py`) and
are written independently of the shop's pricing.

The same order is priced by the shop and sent to Checkout as the shop sends it (one line item per order line,
every tax as a tax rate on every line, the discount as one coupon); the totals, the discount, the tax and
each line's amounts must agree. Hand-picked cases first (a coupon plus two inclusive and one exclusive rate in
USD, JPY and KWD), then hypothesis over many orders, then the shop's own `checkout.session_params`.
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
from payments.pricing import DiscountInput, LineInput, PricedOrder, TaxInput, price
from payments.tests.factories import make_tax, percent_off
from stripe_emulator import Emulator, EmulatorAccount, EmulatorHTTPClient

ACCOUNTS = {
    cur: EmulatorAccount(cur, f"sk_test_{cur}_same_total", f"pk_test_{cur}_same_total", f"whsec_{cur}")
    for cur in ("usd", "jpy", "kwd", "eur")
}


def checkout(
    currency: str, lines: list[LineInput], discount: DiscountInput | None, taxes: list[TaxInput]
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
    if discount is not None:
        if discount.percent_off is not None:
            coupon = sc.v1.coupons.create(params={"percent_off": float(discount.percent_off)})
        else:
            assert discount.amount_off is not None
            coupon = sc.v1.coupons.create(
                params={"amount_off": to_minor_units(discount.amount_off, currency), "currency": currency}
            )
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


TWO_INCLUSIVE_ONE_EXCLUSIVE = [
    TaxInput(id=1, name="VAT", percentage=Decimal("20"), inclusive=True),
    TaxInput(id=2, name="Regional", percentage=Decimal("2.5"), inclusive=True),
    TaxInput(id=3, name="City levy", percentage=Decimal("8.875"), inclusive=False),
]

CASES = {
    "usd percent": ("usd", [line("24.50", 2, 1), line("18.00", 1, 2), line("3.99", 7, 3)], "percent", "12.5"),
    "usd amount": ("usd", [line("24.50", 2, 1), line("18.00", 1, 2), line("3.99", 7, 3)], "amount", "5.00"),
    "jpy percent": ("jpy", [line("1500", 3, 1), line("999", 1, 2), line("120", 11, 3)], "percent", "15"),
    "jpy amount": ("jpy", [line("1500", 3, 1), line("999", 1, 2), line("120", 11, 3)], "amount", "777"),
    "kwd percent": ("kwd", [line("1.235", 1, 1), line("2.500", 3, 2), line("0.990", 4, 3)], "percent", "10"),
    "kwd amount": ("kwd", [line("1.235", 1, 1), line("2.500", 3, 2), line("0.990", 4, 3)], "amount", "0.750"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_coupon_two_inclusive_and_one_exclusive_rate(name: str) -> None:
    currency, lines, kind, value = CASES[name]
    discount = (
        DiscountInput(id=1, name="Percent", percent_off=Decimal(value))
        if kind == "percent"
        else DiscountInput(id=2, name="Amount", amount_off=Decimal(value), currency=currency)
    )
    priced = price(currency, lines, discount, TWO_INCLUSIVE_ONE_EXCLUSIVE)
    session = checkout(currency, lines, discount, TWO_INCLUSIVE_ONE_EXCLUSIVE)
    assert_same(priced, session)
    assert priced.inclusive_tax > 0 and priced.exclusive_tax > 0 and priced.discount_total > 0
    if currency == "kwd":
        assert all(a % 10 == 0 for a in (session["amount_total"], priced.total, priced.inclusive_tax))


@st.composite
def orders(draw: st.DrawFn) -> tuple[str, list[LineInput], DiscountInput | None, list[TaxInput]]:
    currency = draw(st.sampled_from(["usd", "jpy", "kwd", "eur"]))
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
    currency, lines, discount, taxes = order
    priced = price(currency, lines, discount, taxes)
    # Checkout refuses totals it could not charge; the shop checks the same limits before calling Stripe.
    assume(priced.total == 0 or minimum_charge(currency) <= priced.total <= MAX_AMOUNT)
    assert_same(priced, checkout(currency, lines, discount, taxes))


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
    for tax in TWO_INCLUSIVE_ONE_EXCLUSIVE:
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
