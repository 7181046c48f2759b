"""`payments.pricing`: the one function that turns lines, a discount and taxes into amounts in minor units.

Pure functions, no database. Hand-computed examples first, then properties checked by hypothesis.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.money import allocate, from_minor_units, minor_unit_step
from payments.pricing import DiscountInput, LineInput, TaxInput, discount_amount, price


def line(unit_price: str, quantity: int = 1, item_id: int = 1, name: str = "Item") -> LineInput:
    return LineInput(
        item_id=item_id, name=name, description="", unit_price=Decimal(unit_price), quantity=quantity
    )


def percent_off(value: str, discount_id: int = 1) -> DiscountInput:
    return DiscountInput(id=discount_id, name=f"{value}% off", percent_off=Decimal(value))


def amount_off(value: str, currency: str = "usd", discount_id: int = 2) -> DiscountInput:
    return DiscountInput(id=discount_id, name=f"{value} off", amount_off=Decimal(value), currency=currency)


def tax(percentage: str, *, inclusive: bool = False, tax_id: int = 1, name: str = "Tax") -> TaxInput:
    return TaxInput(id=tax_id, name=name, percentage=Decimal(percentage), inclusive=inclusive)


@pytest.fixture
def beans_and_dripper() -> list[LineInput]:
    """2 x $24.50 + 1 x $18.00 = $67.00."""
    return [line("24.50", 2, item_id=1, name="Espresso beans"), line("18.00", 1, item_id=2, name="Dripper")]


# ------------------------------------------------------------------------------------------ subtotal


def test_subtotal_is_unit_price_times_quantity_in_cents(beans_and_dripper) -> None:
    priced = price("usd", beans_and_dripper)
    assert [(p.unit_amount, p.quantity, p.amount) for p in priced.lines] == [(2450, 2, 4900), (1800, 1, 1800)]
    assert priced.subtotal == 6700
    assert priced.discount_total == 0
    assert priced.discount is None
    assert priced.exclusive_tax == priced.inclusive_tax == 0
    assert priced.total == 6700
    assert [p.total for p in priced.lines] == [4900, 1800]


def test_an_empty_order_prices_to_zero() -> None:
    priced = price("usd", [], percent_off("10"), [tax("20")])
    assert priced.is_empty
    assert (priced.subtotal, priced.discount_total, priced.exclusive_tax, priced.total) == (0, 0, 0, 0)


def test_currency_is_lower_cased_and_displayed(beans_and_dripper) -> None:
    priced = price("USD", beans_and_dripper)
    assert priced.currency == "usd"
    assert priced.display(priced.total) == "$67.00"


# ------------------------------------------------------------------------------------------ discounts


def test_percent_discount_is_spread_in_proportion(beans_and_dripper) -> None:
    priced = price("usd", beans_and_dripper, percent_off("10"))
    assert priced.discount_total == 670
    assert [p.discount for p in priced.lines] == [490, 180]
    assert [p.total for p in priced.lines] == [4410, 1620]
    assert priced.total == 6030
    assert priced.discount == percent_off("10")


def test_fixed_discount_is_spread_with_shares_summing_exactly(beans_and_dripper) -> None:
    # 500 x 4900/6700 = 365.67 and 500 x 1800/6700 = 134.33: floors 365 + 134, the leftover cent goes to the
    # larger remainder (the first line).
    priced = price("usd", beans_and_dripper, amount_off("5.00"))
    assert priced.discount_total == 500
    assert [p.discount for p in priced.lines] == [366, 134]
    assert priced.total == 6200


def test_percent_discount_rounds_half_up() -> None:
    # 12.5% of $1.00 = 12.5 cents -> 13
    assert price("usd", [line("1.00")], percent_off("12.5")).discount_total == 13
    # 0.01% of $49.99 = 0.4999 cents -> 0, and a zero discount is not shown
    priced = price("usd", [line("49.99")], percent_off("0.01"))
    assert priced.discount_total == 0
    assert priced.discount is None


@pytest.mark.parametrize(
    ("total", "weights", "shares"),
    [
        (100, [1, 1, 1], [34, 33, 33]),  # tie: the earlier line gets the cent
        (2, [4, 1, 1], [2, 0, 0]),  # ties between lines with different whole shares, too (Stripe's split)
        (20, [400, 100, 100], [14, 3, 3]),
        (7, [0, 5, 0], [0, 7, 0]),
        (0, [3, 4], [0, 0]),
        (5, [0, 0], [0, 0]),
        (10, [], []),
    ],
)
def test_allocate_is_largest_remainder_with_ties_to_the_earlier_line(total, weights, shares) -> None:
    assert allocate(total, weights) == shares
    assert sum(shares) == (total if any(weights) else 0)


def test_allocate_in_steps_of_ten_for_three_decimal_currencies() -> None:
    assert allocate(370, [1240, 2500], step=10) == [120, 250]


def test_fixed_discount_is_capped_at_the_subtotal(beans_and_dripper) -> None:
    priced = price("usd", beans_and_dripper, amount_off("100.00"), [tax("10")])
    assert priced.discount_total == 6700
    assert [p.discount for p in priced.lines] == [4900, 1800]
    assert priced.exclusive_tax == 0
    assert priced.total == 0


def test_hundred_percent_discount_makes_the_order_free(beans_and_dripper) -> None:
    priced = price("usd", beans_and_dripper, percent_off("100"), [tax("8.875")])
    assert priced.discount_total == priced.subtotal == 6700
    assert priced.total == 0


def test_discount_amount() -> None:
    assert discount_amount(None, 1000, "usd") == 0
    assert discount_amount(percent_off("10"), 0, "usd") == 0
    assert discount_amount(percent_off("10"), 1000, "usd") == 100
    assert discount_amount(amount_off("2.50"), 1000, "usd") == 250
    assert discount_amount(amount_off("2.50", currency="USD"), 1000, "usd") == 250
    assert discount_amount(amount_off("25.00"), 1000, "usd") == 1000  # capped
    assert discount_amount(DiscountInput(id=9, name="Nothing"), 1000, "usd") == 0


def test_fixed_discount_in_another_currency_is_refused(beans_and_dripper) -> None:
    with pytest.raises(ValueError, match=r"in EUR, the order in USD"):
        discount_amount(amount_off("5.00", currency="eur"), 6700, "usd")
    with pytest.raises(ValueError, match="EUR"):
        price("usd", beans_and_dripper, amount_off("5.00", currency="eur"))


def test_percent_discount_applies_to_any_currency() -> None:
    assert price("eur", [line("10.00")], percent_off("10")).total == 900


# ------------------------------------------------------------------------------------------ taxes


def test_exclusive_tax_per_line_on_the_discounted_amount(beans_and_dripper) -> None:
    # Discounted lines 4410 and 1620; 8.875%: 391.3875 -> 391 and 143.775 -> 144.
    priced = price("usd", beans_and_dripper, percent_off("10"), [tax("8.875", name="Sales tax")])
    assert [p.taxes[0].amount for p in priced.lines] == [391, 144]
    assert [p.exclusive_tax for p in priced.lines] == [391, 144]
    assert [p.total for p in priced.lines] == [4801, 1764]
    assert priced.exclusive_tax == 535
    assert [(t.tax.name, t.amount) for t in priced.taxes] == [("Sales tax", 535)]
    assert priced.total == 6700 - 670 + 535 == 6565


def test_exclusive_tax_rounds_half_up_per_line() -> None:
    # 5% of 250 = 12.5 -> 13 on each line (banker's rounding would give 12); per order it would be 25.
    priced = price("usd", [line("2.50", item_id=1), line("2.50", item_id=2)], taxes=[tax("5")])
    assert [p.exclusive_tax for p in priced.lines] == [13, 13]
    assert priced.exclusive_tax == 26
    assert priced.total == 526


def test_inclusive_tax_is_shown_but_adds_nothing(beans_and_dripper) -> None:
    vat = tax("20", inclusive=True, name="VAT")
    priced = price("usd", beans_and_dripper, taxes=[vat])
    # The VAT part of 4900 is 4900 x 20/120 = 816.67 -> 817; of 1800 it is 300.
    assert [p.taxes[0].amount for p in priced.lines] == [817, 300]
    assert priced.inclusive_tax == 1117
    assert priced.exclusive_tax == 0
    assert priced.total == priced.subtotal == 6700


def test_inclusive_and_exclusive_taxes_together(beans_and_dripper) -> None:
    vat = tax("20", inclusive=True, tax_id=1, name="VAT")
    levy = tax("2.5", tax_id=2, name="City levy")
    priced = price("usd", beans_and_dripper, percent_off("10"), [vat, levy])
    # Discounted lines 4410 and 1620. VAT part: 735 and 270. Levy 2.5%: 110.25 -> 110 and 40.5 -> 41.
    assert [[t.amount for t in p.taxes] for p in priced.lines] == [[735, 110], [270, 41]]
    assert priced.inclusive_tax == 1005
    assert priced.exclusive_tax == 151
    assert [(t.tax.name, t.amount) for t in priced.taxes] == [("VAT", 1005), ("City levy", 151)]
    assert priced.total == 6700 - 670 + 151 == 6181


def test_several_exclusive_taxes_are_each_rounded_per_line() -> None:
    state = tax("6.25", tax_id=1, name="State")
    city = tax("2.25", tax_id=2, name="City")
    priced = price("usd", [line("19.99", 3)], taxes=[state, city])
    # 5997 x 6.25% = 374.8125 -> 375; 5997 x 2.25% = 134.9325 -> 135
    assert [t.amount for t in priced.lines[0].taxes] == [375, 135]
    assert priced.total == 5997 + 375 + 135


def test_zero_percent_tax_adds_nothing(beans_and_dripper) -> None:
    priced = price("usd", beans_and_dripper, taxes=[tax("0")])
    assert priced.total == 6700
    assert priced.taxes[0].amount == 0


# ------------------------------------------------------------------------------------------ currencies


def test_jpy_is_a_zero_decimal_currency() -> None:
    lines = [line("1500", 3, item_id=1), line("999", 1, item_id=2)]
    priced = price("jpy", lines, percent_off("15"), [tax("8")])
    assert [p.amount for p in priced.lines] == [4500, 999]
    assert priced.subtotal == 5499
    # 15% of 5499 = 824.85 -> 825, spread 675.06 / 149.94 -> 675 + 150
    assert priced.discount_total == 825
    assert [p.discount for p in priced.lines] == [675, 150]
    # 8% of 3825 = 306; of 849 = 67.92 -> 68
    assert [p.exclusive_tax for p in priced.lines] == [306, 68]
    assert priced.total == 5499 - 825 + 374 == 5048
    assert priced.display(priced.total) == "¥5,048"


def test_jpy_fixed_discount_in_whole_yen() -> None:
    priced = price("jpy", [line("1000")], amount_off("300", currency="jpy"))
    assert priced.discount_total == 300
    assert priced.total == 700


def test_kwd_amounts_are_in_steps_of_ten_fils() -> None:
    # 1.235 KWD is rounded to what Stripe accepts: 1.240 -> 1240 fils
    lines = [line("1.235", 1, item_id=1), line("2.500", 1, item_id=2)]
    priced = price("kwd", lines, percent_off("10"), [tax("5")])
    assert [p.unit_amount for p in priced.lines] == [1240, 2500]
    assert priced.subtotal == 3740
    # 10% = 374 -> 370 (37.4 steps -> 37); spread 37 steps 12.27 / 24.73 -> 12 + 25
    assert priced.discount_total == 370
    assert [p.discount for p in priced.lines] == [120, 250]
    # 5% of 1120 = 56 -> 60; of 2250 = 112.5 -> 110
    assert [p.exclusive_tax for p in priced.lines] == [60, 110]
    assert priced.total == 3740 - 370 + 170 == 3540
    amounts = [priced.subtotal, priced.discount_total, priced.exclusive_tax, priced.total]
    amounts += [v for p in priced.lines for v in (p.amount, p.discount, p.exclusive_tax, p.total)]
    assert all(a % 10 == 0 for a in amounts)
    assert priced.display(priced.total) == "3.540 KWD"


def test_kwd_fixed_discount_is_rounded_to_the_step() -> None:
    priced = price("kwd", [line("5.000")], amount_off("0.005", currency="kwd"))
    assert priced.discount_total == 10
    assert priced.total == 4990


# ------------------------------------------------------------------------------------------ properties

CURRENCIES = ["usd", "eur", "jpy", "kwd", "isk"]


@st.composite
def orders(draw: st.DrawFn) -> tuple[str, list[LineInput], DiscountInput | None, list[TaxInput]]:
    currency = draw(st.sampled_from(CURRENCIES))
    step = minor_unit_step(currency)
    count = draw(st.integers(min_value=0, max_value=6))
    lines = [
        LineInput(
            item_id=i,
            name=f"Item {i}",
            description="",
            unit_price=from_minor_units(draw(st.integers(min_value=1, max_value=100_000)) * step, currency),
            quantity=draw(st.integers(min_value=1, max_value=99)),
        )
        for i in range(count)
    ]
    kind = draw(st.sampled_from(["none", "percent", "amount"]))
    discount: DiscountInput | None = None
    if kind == "percent":
        cents = draw(st.integers(min_value=1, max_value=10_000))
        discount = DiscountInput(id=1, name="Percent", percent_off=Decimal(cents) / 100)
    elif kind == "amount":
        minor = draw(st.integers(min_value=1, max_value=20_000_000)) * step
        discount = DiscountInput(
            id=2, name="Amount", amount_off=from_minor_units(minor, currency), currency=currency
        )
    taxes = [
        TaxInput(
            id=i,
            name=f"Tax {i}",
            percentage=Decimal(draw(st.integers(min_value=0, max_value=1_000_000))) / 10_000,
            inclusive=draw(st.booleans()),
        )
        for i in range(draw(st.integers(min_value=0, max_value=3)))
    ]
    return currency, lines, discount, taxes


@given(orders())
def test_property_total_is_subtotal_minus_discount_plus_exclusive_tax(order) -> None:
    currency, lines, discount, taxes = order
    priced = price(currency, lines, discount, taxes)
    assert priced.total == priced.subtotal - priced.discount_total + priced.exclusive_tax
    assert priced.total == sum(p.total for p in priced.lines)
    assert priced.exclusive_tax == sum(t.amount for t in priced.taxes if not t.tax.inclusive)
    assert priced.inclusive_tax == sum(t.amount for t in priced.taxes if t.tax.inclusive)


@given(orders())
def test_property_discount_shares_add_up_and_nothing_is_negative(order) -> None:
    currency, lines, discount, taxes = order
    priced = price(currency, lines, discount, taxes)
    assert sum(p.discount for p in priced.lines) == priced.discount_total
    assert 0 <= priced.discount_total <= priced.subtotal
    assert priced.total >= 0
    for p in priced.lines:
        assert 0 <= p.discount <= p.amount
        assert p.total >= 0
        assert all(t.amount >= 0 for t in p.taxes)


@given(orders())
def test_property_inclusive_taxes_add_nothing(order) -> None:
    currency, lines, discount, taxes = order
    with_taxes = price(currency, lines, discount, taxes)
    only_exclusive = price(currency, lines, discount, [t for t in taxes if not t.inclusive])
    assert with_taxes.total == only_exclusive.total


@given(orders())
def test_property_amounts_are_in_the_currency_step(order) -> None:
    currency, lines, discount, taxes = order
    step = minor_unit_step(currency)
    priced = price(currency, lines, discount, taxes)
    amounts = [priced.subtotal, priced.discount_total, priced.exclusive_tax, priced.total]
    amounts += [v for p in priced.lines for v in (p.amount, p.discount, p.exclusive_tax, p.total)]
    assert all(a % step == 0 for a in amounts)


@given(
    st.lists(st.integers(min_value=0, max_value=10_000_000), min_size=1, max_size=12),
    st.integers(min_value=0, max_value=10_000),
    st.sampled_from([1, 10, 100]),
)
def test_property_allocate_shares_sum_to_the_discount(weights, units, step) -> None:
    total = units * step
    shares = allocate(total, weights, step)
    weight_sum = sum(weights)
    assert len(shares) == len(weights)
    assert sum(shares) == (total if weight_sum else 0)
    for share, weight in zip(shares, weights, strict=True):
        assert share >= 0
        assert share % step == 0
        if weight_sum:
            # each share is its exact proportion rounded down or up by one step
            assert share // step in (units * weight // weight_sum, units * weight // weight_sum + 1)
        if weight == 0:
            assert share == 0
