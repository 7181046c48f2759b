"""Table tests for core.money: Stripe minor units, rounding, limits and display.

Pure Python: no database. The shopper messages are checked as the shop shows them, in English, formatted by
`display_money` (pytest-django configures the settings; without Django they use `format_money`).
"""

from __future__ import annotations

import decimal
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.money import (
    MAX_AMOUNT,
    MINIMUM_CHARGE,
    THREE_DECIMAL_CURRENCIES,
    ZERO_DECIMAL_CURRENCIES,
    AmountError,
    AmountTooLarge,
    AmountTooSmall,
    InvalidAmount,
    check_chargeable,
    format_money,
    from_minor_units,
    minimum_charge,
    minor_unit_exponent,
    minor_unit_step,
    plain_percent,
    to_minor_units,
)

# The expected values are Stripe's documented lists, written out here by hand, never read from the module under
# test: https://docs.stripe.com/currencies#zero-decimal and #three-decimal.
ZERO = [
    "bif",
    "clp",
    "djf",
    "gnf",
    "jpy",
    "kmf",
    "krw",
    "mga",
    "pyg",
    "rwf",
    "ugx",
    "vnd",
    "vuv",
    "xaf",
    "xof",
    "xpf",
]
THREE = ["bhd", "jod", "kwd", "omr", "tnd"]
TWO_SAMPLE = ["usd", "eur", "gbp", "aud", "cad", "chf", "huf", "twd", "inr", "mxn", "sek", "thb", "xyz"]
ALL_SAMPLE = ZERO + THREE + TWO_SAMPLE + ["isk"]
# (digits of the minor unit, step in minor units) per https://docs.stripe.com/currencies: zero-decimal (0, 1),
# three-decimal charged to the nearest ten (3, 10), ISK two-decimal in whole kronur (2, 100), the rest (2, 1).
STRIPE_RULE = {**{c: (0, 1) for c in ZERO}, **{c: (3, 10) for c in THREE}, "isk": (2, 100)}


def stripe_rule(currency: str) -> tuple[int, int]:
    return STRIPE_RULE.get(currency, (2, 1))


# --- the currency tables -----------------------------------------------------------------------------


def test_lists_are_stripes() -> None:
    assert sorted(ZERO_DECIMAL_CURRENCIES) == ZERO
    assert sorted(THREE_DECIMAL_CURRENCIES) == THREE
    for code in MINIMUM_CHARGE:
        assert code == code.lower() and len(code) == 3


def test_ugx_is_charged_in_whole_shillings() -> None:
    """UGX is on Stripe's zero-decimal list: 5000 UGX is sent as 5000, not 500000."""
    assert to_minor_units(Decimal("5000"), "ugx") == 5000
    assert to_minor_units(Decimal("5000.40"), "UGX") == 5000
    assert from_minor_units(5000, "ugx") == Decimal("5000")


@pytest.mark.parametrize("currency", ZERO)
def test_zero_decimal_exponent(currency: str) -> None:
    assert minor_unit_exponent(currency) == 0
    assert minor_unit_exponent(currency.upper()) == 0
    assert minor_unit_step(currency) == 1


@pytest.mark.parametrize("currency", THREE)
def test_three_decimal_exponent(currency: str) -> None:
    assert minor_unit_exponent(currency) == 3
    assert minor_unit_exponent(currency.upper()) == 3
    assert minor_unit_step(currency) == 10


@pytest.mark.parametrize("currency", TWO_SAMPLE)
def test_two_decimal_exponent(currency: str) -> None:
    assert minor_unit_exponent(currency) == 2
    assert minor_unit_exponent(currency.title()) == 2
    assert minor_unit_step(currency) == 1


def test_isk_is_two_decimal_in_whole_kronur() -> None:
    assert minor_unit_exponent("ISK") == 2
    assert minor_unit_step("isk") == 100


@pytest.mark.parametrize("currency", ["", "us", "usdd", "u$d", "12a", "ÜSD"])
def test_malformed_currency_rejected(currency: str) -> None:
    with pytest.raises(ValueError):
        minor_unit_exponent(currency)


def test_non_string_currency_rejected() -> None:
    with pytest.raises(TypeError):
        minor_unit_exponent(840)  # type: ignore[arg-type]


# --- to_minor_units / from_minor_units ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        # two-decimal
        ("12.50", "usd", 1250),
        ("12.5", "USD", 1250),
        ("0", "usd", 0),
        ("0.01", "usd", 1),
        ("0.005", "usd", 1),  # half up
        ("0.0049999", "usd", 0),
        ("0.015", "usd", 2),  # half up, not banker's
        ("0.025", "usd", 3),  # half up, not banker's (banker's would give 2)
        ("9.99", "eur", 999),
        ("999999.99", "eur", 99_999_999),
        ("1E+2", "eur", 10_000),
        ("175.00", "huf", 17_500),
        ("10.45", "twd", 1045),
        # zero-decimal
        ("1500", "jpy", 1500),
        ("1500.4", "jpy", 1500),
        ("1500.5", "jpy", 1501),  # half up
        ("2.5", "krw", 3),  # half up, not banker's
        ("50000", "KRW", 50_000),
        ("0.49", "vnd", 0),
        # three-decimal: Stripe needs the last digit to be 0
        ("5.120", "kwd", 5120),
        ("5.124", "kwd", 5120),
        ("5.125", "kwd", 5130),  # half up at the 0.01 step
        ("1.0005", "kwd", 1000),
        ("1.005", "kwd", 1010),
        ("1.004999", "kwd", 1000),
        ("0.5", "bhd", 500),
        ("12.345", "bhd", 12_350),
        ("12.3449", "bhd", 12_340),
        ("7", "omr", 7000),
        # ISK: two-decimal in the API but whole krónur only
        ("5", "isk", 500),
        ("40.10", "isk", 4000),
        ("40.50", "isk", 4100),
        ("40.49", "isk", 4000),
    ],
)
def test_to_minor_units_table(amount: str, currency: str, minor: int) -> None:
    assert to_minor_units(Decimal(amount), currency) == minor


def test_int_amounts_are_exact_major_units() -> None:
    assert to_minor_units(12, "usd") == 1200  # type: ignore[arg-type]
    assert to_minor_units(1500, "jpy") == 1500  # type: ignore[arg-type]
    assert to_minor_units(3, "kwd") == 3000  # type: ignore[arg-type]


def test_negative_zero_is_zero() -> None:
    assert to_minor_units(Decimal("-0"), "usd") == 0
    assert to_minor_units(Decimal("-0.00"), "jpy") == 0


def test_result_independent_of_thread_decimal_context() -> None:
    with decimal.localcontext() as ctx:
        ctx.prec = 3
        ctx.rounding = decimal.ROUND_DOWN
        assert to_minor_units(Decimal("123456.785"), "usd") == 12_345_679
        assert from_minor_units(12_345_679, "usd") == Decimal("123456.79")
        assert format_money(Decimal("123456.785"), "usd") == "$123,456.79"


@pytest.mark.parametrize(
    ("minor", "currency", "amount", "text"),
    [
        (1250, "usd", "12.50", "12.50"),
        (1, "eur", "0.01", "0.01"),
        (0, "gbp", "0.00", "0.00"),
        (1500, "jpy", "1500", "1500"),
        (50_000, "krw", "50000", "50000"),
        (5120, "kwd", "5.120", "5.120"),
        (10, "bhd", "0.010", "0.010"),
        (500, "isk", "5.00", "5.00"),
        (-1250, "usd", "-12.50", "-12.50"),
    ],
)
def test_from_minor_units_table(minor: int, currency: str, amount: str, text: str) -> None:
    result = from_minor_units(minor, currency)
    assert result == Decimal(amount)
    assert str(result) == text  # quantized to the currency's exponent
    assert result.as_tuple().exponent == -stripe_rule(currency)[0]


@pytest.mark.parametrize("currency", ALL_SAMPLE)
@pytest.mark.parametrize("units", [0, 1, 7, 50, 999, 123_456])
def test_round_trip_every_currency(currency: str, units: int) -> None:
    step = stripe_rule(currency)[1]
    minor = units * step
    amount = from_minor_units(minor, currency)
    assert to_minor_units(amount, currency) == minor
    assert from_minor_units(to_minor_units(amount, currency), currency) == amount


@pytest.mark.parametrize("currency", ["usd", "jpy", "kwd"])
@pytest.mark.parametrize("value", [0.5, 1.0, 0.1 + 0.2, float("nan")])
def test_floats_rejected(currency: str, value: float) -> None:
    with pytest.raises(TypeError):
        to_minor_units(value, currency)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        format_money(value, currency)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        from_minor_units(value, currency)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        check_chargeable(value, currency)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["12.50", True, None, object()])
def test_other_non_decimals_rejected(value: object) -> None:
    with pytest.raises(TypeError):
        to_minor_units(value, "usd")  # type: ignore[arg-type]


@pytest.mark.parametrize("currency", ["usd", "jpy", "kwd"])
@pytest.mark.parametrize("amount", ["-0.01", "-1", "-0.001", "-1E+3"])
def test_negative_rejected(currency: str, amount: str) -> None:
    with pytest.raises(InvalidAmount) as excinfo:
        to_minor_units(Decimal(amount), currency)
    assert isinstance(excinfo.value, ValueError)
    assert excinfo.value.shopper_message == "The total can't be a negative amount."


@pytest.mark.parametrize("amount", ["NaN", "sNaN", "Infinity", "-Infinity"])
def test_non_finite_rejected(amount: str) -> None:
    with pytest.raises(InvalidAmount) as excinfo:
        to_minor_units(Decimal(amount), "usd")
    assert excinfo.value.shopper_message == "The total is not a valid amount."
    with pytest.raises(InvalidAmount):
        format_money(Decimal(amount), "usd")


def test_absurd_magnitude_rejected_without_huge_allocation() -> None:
    with pytest.raises(AmountTooLarge) as excinfo:
        to_minor_units(Decimal("1E+999999999"), "usd")
    assert excinfo.value.amount_minor is None and excinfo.value.currency == "usd"
    assert (
        excinfo.value.shopper_message
        == "The total is above the maximum of $999,999.99 that can be charged in USD."
    )
    assert str(excinfo.value) == "1E+999999999 USD is far beyond any chargeable amount"  # for the logs


def test_large_but_sane_amount_converts_exactly() -> None:
    # Not chargeable, but conversion itself stays exact; check_chargeable reports it.
    assert to_minor_units(Decimal("123456789012345678.905"), "usd") == 12_345_678_901_234_567_891


# --- minimums and maximum ----------------------------------------------------------------------------


def test_minimum_charge_table_is_stripes() -> None:
    """https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts, in minor units."""
    assert MINIMUM_CHARGE == {
        "usd": 50, "aed": 200, "aud": 50, "bgn": 100, "brl": 50, "cad": 50, "chf": 50, "czk": 1500, "dkk": 250,
        "eur": 50, "gbp": 30, "hkd": 400, "huf": 17500, "inr": 50, "jpy": 50, "mxn": 1000, "myr": 200,
        "nok": 300, "nzd": 50, "pln": 200, "ron": 200, "sek": 300, "sgd": 50, "thb": 1000,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("currency", "minimum"),
    [("usd", 50), ("EUR", 50), ("gbp", 30), ("jpy", 50), ("huf", 17500), ("xyz", 50), ("twd", 50)]
    + [(c, 1) for c in ZERO if c != "jpy"]
    + [(c, 500) for c in THREE]
    + [("isk", 100)],
)
def test_minimum_charge(currency: str, minimum: int) -> None:
    assert minimum_charge(currency) == minimum
    check_chargeable(minimum, currency)  # exactly the minimum is fine
    with pytest.raises(AmountTooSmall):
        check_chargeable(minimum - stripe_rule(currency.lower())[1], currency)


@pytest.mark.parametrize(
    ("amount_minor", "currency", "message"),
    [
        (20, "eur", "The total of €0.20 is below the minimum of €0.50 that can be charged in EUR."),
        (49, "usd", "The total of $0.49 is below the minimum of $0.50 that can be charged in USD."),
        (29, "GBP", "The total of £0.29 is below the minimum of £0.30 that can be charged in GBP."),
        (10, "jpy", "The total of ¥10 is below the minimum of ¥50 that can be charged in JPY."),
        (0, "krw", "The total of ₩0 is below the minimum of ₩1 that can be charged in KRW."),
        (
            17499,
            "huf",
            "The total of HUF\xa0174.99 is below the minimum of HUF\xa0175.00 that can be charged in HUF.",
        ),
        (
            490,
            "kwd",
            "The total of KWD\xa00.490 is below the minimum of KWD\xa00.500 that can be charged in KWD.",
        ),
    ],
)
def test_too_small_shopper_message(amount_minor: int, currency: str, message: str) -> None:
    with pytest.raises(AmountTooSmall) as excinfo:
        check_chargeable(amount_minor, currency)
    error = excinfo.value
    assert isinstance(error, AmountError) and isinstance(error, ValueError)
    assert error.shopper_message == message
    assert str(error).endswith(f"is below Stripe's minimum of {minimum_charge(currency)}")  # for the logs
    assert error.amount_minor == amount_minor
    assert error.minimum_minor == minimum_charge(currency)
    assert error.currency == currency.lower()


@pytest.mark.parametrize(
    ("currency", "message"),
    [
        (
            "usd",
            "The total of $1,000,000.00 is above the maximum of $999,999.99 that can be charged in USD.",
        ),
        ("jpy", "The total of ¥100,000,000 is above the maximum of ¥99,999,999 that can be charged in JPY."),
        (
            "kwd",
            "The total of KWD\xa0100,000.000 is above the maximum of KWD\xa099,999.990 that can be charged in KWD.",
        ),
    ],
)
def test_too_large_shopper_message(currency: str, message: str) -> None:
    check_chargeable(MAX_AMOUNT - MAX_AMOUNT % stripe_rule(currency)[1], currency)
    with pytest.raises(AmountTooLarge) as excinfo:
        check_chargeable(MAX_AMOUNT + 1, currency)
    assert excinfo.value.shopper_message == message
    assert str(excinfo.value).endswith(f"exceeds Stripe's maximum of {MAX_AMOUNT}")
    assert excinfo.value.maximum_minor == MAX_AMOUNT and excinfo.value.currency == currency.lower()
    assert excinfo.value.amount_minor == MAX_AMOUNT + 1


def test_max_amount_is_eight_digits() -> None:
    assert MAX_AMOUNT == 99_999_999  # https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts


@pytest.mark.parametrize("currency", ALL_SAMPLE)
def test_max_boundary_every_currency(currency: str) -> None:
    check_chargeable(MAX_AMOUNT - MAX_AMOUNT % stripe_rule(currency)[1], currency)
    with pytest.raises(AmountTooLarge):
        check_chargeable(MAX_AMOUNT + 1, currency)


@pytest.mark.parametrize(
    ("amount_minor", "currency", "message"),
    [
        (
            5125,
            "kwd",
            "The total of KWD\xa05.125 can't be charged: amounts in KWD must be in steps of KWD\xa00.010.",
        ),
        (
            4010,
            "isk",
            "The total of ISK\xa040.10 can't be charged: amounts in ISK must be in steps of ISK\xa01.00.",
        ),
    ],
)
def test_off_step_amount_rejected(amount_minor: int, currency: str, message: str) -> None:
    with pytest.raises(InvalidAmount) as excinfo:
        check_chargeable(amount_minor, currency)
    assert excinfo.value.shopper_message == message


def test_negative_minor_amount_rejected() -> None:
    with pytest.raises(InvalidAmount):
        check_chargeable(-50, "usd")


def test_bool_minor_amount_rejected() -> None:
    with pytest.raises(TypeError):
        check_chargeable(True, "usd")


@pytest.mark.parametrize("currency", ALL_SAMPLE)
def test_converted_amounts_pass_check_chargeable(currency: str) -> None:
    amount = from_minor_units(minimum_charge(currency), currency) + Decimal("0.004")
    check_chargeable(to_minor_units(amount, currency), currency)


# --- format_money ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "minor", "text"),
    [
        (Decimal("12.50"), "usd", False, "$12.50"),
        (Decimal("12.5"), "USD", False, "$12.50"),
        (1250, "usd", True, "$12.50"),
        (12, "usd", False, "$12.00"),
        (Decimal("9.99"), "eur", False, "€9.99"),
        (Decimal("0.30"), "gbp", False, "£0.30"),
        (Decimal("1500"), "jpy", False, "¥1,500"),
        (1500, "jpy", True, "¥1,500"),
        (Decimal("12.5"), "kwd", False, "12.500 KWD"),
        (12_500, "kwd", True, "12.500 KWD"),
        (Decimal("1234.5"), "xyz", False, "1,234.50 XYZ"),
        (Decimal("1234567.891"), "chf", False, "1,234,567.89 CHF"),
        (Decimal("0.005"), "usd", False, "$0.01"),
        (Decimal("0"), "eur", False, "€0.00"),
        (-1250, "usd", True, "-$12.50"),
        (Decimal("-0.001"), "usd", False, "$0.00"),
        (Decimal("-12.5"), "bhd", False, "-12.500 BHD"),
        (500, "isk", True, "5.00 ISK"),
        (Decimal("50000"), "krw", False, "50,000 KRW"),
    ],
)
def test_format_money(amount: Decimal | int, currency: str, minor: bool, text: str) -> None:
    assert format_money(amount, currency, minor=minor) == text


def test_format_money_minor_requires_int() -> None:
    with pytest.raises(TypeError):
        format_money(Decimal("12.50"), "usd", minor=True)


# --- properties ------------------------------------------------------------------------------------------

SAMPLE_CURRENCIES = st.sampled_from(ALL_SAMPLE)
AMOUNTS = st.decimals(min_value=0, max_value=Decimal("9999999"), allow_nan=False, allow_infinity=False)


#: (amount, currency, minor units sent to Stripe), worked out by hand from https://docs.stripe.com/currencies:
#: two-decimal currencies in cents, zero-decimal ones in whole units, three-decimal ones in thousandths that end
#: in 0 (to the nearest 0.010), ISK in whole kronur (x100); a half goes up (the ties are where half-even, the
#: other usual rule, would answer one step less).
ROUNDING = [
    ("24.50", "usd", 2450),
    ("10.004", "usd", 1000),
    ("10.005", "usd", 1001),
    ("0.025", "usd", 3),  # half-even: 2
    ("0.125", "eur", 13),  # half-even: 12
    ("9999999", "usd", 999999900),
    ("1500", "jpy", 1500),
    ("1499.49", "jpy", 1499),
    ("1500.5", "jpy", 1501),  # half-even: 1500
    ("2.5", "krw", 3),  # half-even: 2
    ("12.5", "bhd", 12500),
    ("1.2345", "kwd", 1230),
    ("1.225", "kwd", 1230),  # half-even: 1220
    ("0.005", "jod", 10),  # half-even: 0
    ("1234.49", "isk", 123400),
    ("198.50", "isk", 19900),  # half-even: 19800
    ("0", "usd", 0),
]


@pytest.mark.parametrize(("amount", "currency", "minor"), ROUNDING)
def test_rounding_to_what_stripe_charges(amount: str, currency: str, minor: int) -> None:
    assert to_minor_units(Decimal(amount), currency) == minor


@given(amount=AMOUNTS, currency=SAMPLE_CURRENCIES)
def test_property_round_trip_is_the_nearest_chargeable_amount(amount: Decimal, currency: str) -> None:
    minor = to_minor_units(amount, currency)
    assert isinstance(minor, int) and minor >= 0
    back = from_minor_units(minor, currency)
    digits, step = stripe_rule(currency)
    assert minor == int(back.scaleb(digits)) and minor % step == 0
    assert abs(back - amount) <= Decimal(step).scaleb(-digits) / 2


@given(amount=AMOUNTS, currency=st.sampled_from(THREE))
def test_property_three_decimal_always_ends_in_zero(amount: Decimal, currency: str) -> None:
    assert to_minor_units(amount, currency) % 10 == 0


@given(units=st.integers(min_value=0, max_value=10**15), currency=SAMPLE_CURRENCIES)
def test_property_minor_round_trip(units: int, currency: str) -> None:
    minor = units * stripe_rule(currency)[1]
    assert to_minor_units(from_minor_units(minor, currency), currency) == minor


@given(minor=st.integers(min_value=0, max_value=MAX_AMOUNT * 2), currency=SAMPLE_CURRENCIES)
def test_property_check_chargeable_matches_limits(minor: int, currency: str) -> None:
    ok = minimum_charge(currency) <= minor <= 99_999_999 and minor % stripe_rule(currency)[1] == 0
    try:
        check_chargeable(minor, currency)
    except AmountError as error:
        assert not ok
        assert error.shopper_message
    else:
        assert ok


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("20.0000"), "20"),
        (Decimal("2.5000"), "2.5"),
        (Decimal("0.1250"), "0.125"),
        (Decimal("100"), "100"),
    ],
)
def test_plain_percent(value: Decimal, text: str) -> None:
    assert plain_percent(value) == text
