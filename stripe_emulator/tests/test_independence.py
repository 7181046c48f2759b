"""The emulator owes the shop nothing: no module of it (outside its tests) imports the shop's apps, and its
currency tables are Stripe's documented ones, written out again here by hand from the pages they cite."""

from __future__ import annotations

import ast
from decimal import Decimal
from pathlib import Path

import pytest

from stripe_emulator import amounts, money

PACKAGE = Path(money.__file__).resolve().parent
SHOP_APPS = {"core", "catalog", "payments", "bench", "deploy"}


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, at any depth (a function-level import counts too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_the_emulator_imports_nothing_of_the_shop() -> None:
    sources = sorted(p for p in PACKAGE.rglob("*.py") if "tests" not in p.relative_to(PACKAGE).parts)
    assert len(sources) >= 8  # the package itself was found
    offending = {
        str(path.relative_to(PACKAGE)): sorted(
            m for m in imported_modules(path) if m.split(".")[0] in SHOP_APPS
        )
        for path in sources
    }
    assert {k: v for k, v in offending.items() if v} == {}


def test_the_import_check_sees_a_shop_import_inside_a_function(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from core.money import allocate\n    import payments.pricing as p\n")
    assert imported_modules(source) == {"core.money", "payments.pricing"}


# https://docs.stripe.com/currencies#zero-decimal, written out by hand.
STRIPE_ZERO_DECIMAL = [
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF",
]  # fmt: skip
# https://docs.stripe.com/currencies#three-decimal.
STRIPE_THREE_DECIMAL = ["BHD", "JOD", "KWD", "OMR", "TND"]
# https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts, as the page writes them.
STRIPE_MINIMUMS = {
    "USD": "0.50", "AED": "2.00", "AUD": "0.50", "BGN": "1.00", "BRL": "0.50", "CAD": "0.50", "CHF": "0.50",
    "CZK": "15.00", "DKK": "2.50", "EUR": "0.50", "GBP": "0.30", "HKD": "4.00", "HUF": "175.00", "INR": "0.50",
    "JPY": "50", "MXN": "10", "MYR": "2", "NOK": "3.00", "NZD": "0.50", "PLN": "2.00", "RON": "2.00",
    "SEK": "3.00", "SGD": "0.50", "THB": "10",
}  # fmt: skip


def test_zero_decimal_table_is_stripes() -> None:
    assert {c.lower() for c in STRIPE_ZERO_DECIMAL} == money.ZERO_DECIMAL
    assert [money.exponent(c) for c in STRIPE_ZERO_DECIMAL] == [0] * 16


def test_three_decimal_table_is_stripes() -> None:
    assert {c.lower() for c in STRIPE_THREE_DECIMAL} == money.THREE_DECIMAL
    assert {money.exponent(c) for c in STRIPE_THREE_DECIMAL} == {3}
    assert {money.step(c) for c in STRIPE_THREE_DECIMAL} == {10}  # "round amounts to the nearest ten"


@pytest.mark.parametrize(
    ("currency", "exponent", "step"),
    [
        ("isk", 2, 100),  # two-decimal in the API, whole kronur only
        ("huf", 2, 1),  # whole forints only for payouts; charges keep two decimals
        ("twd", 2, 1),  # likewise
        ("ugx", 0, 1),  # on the zero-decimal list
        ("usd", 2, 1),
        ("eur", 2, 1),
    ],
)
def test_special_cases(currency: str, exponent: int, step: int) -> None:
    assert (money.exponent(currency), money.step(currency)) == (exponent, step)


def test_minimum_charges_are_stripes() -> None:
    expected = {
        code.lower(): int(Decimal(amount).scaleb(money.exponent(code)))
        for code, amount in STRIPE_MINIMUMS.items()
    }
    assert expected == money.MINIMUM_CHARGE
    assert money.MINIMUM_CHARGE["huf"] == 17500 and money.MINIMUM_CHARGE["jpy"] == 50


def test_maximum_is_eight_digits() -> None:
    assert money.MAXIMUM_AMOUNT == 99_999_999


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (1234, "usd", "$12.34"),
        (500, "jpy", "¥500"),
        (5120, "kwd", "5.120 KWD"),
        (150000, "isk", "1,500.00 ISK"),
    ],
)
def test_format_amount(amount: int, currency: str, text: str) -> None:
    assert money.format_amount(amount, currency) == text


@pytest.mark.parametrize(
    ("discount", "subtotals", "unit", "shares"),
    [
        (100, [100, 100, 100], 1, [34, 33, 33]),  # a three-way tie: the earlier lines get the leftover steps
        (1, [50, 50], 1, [1, 0]),
        (10, [1, 1, 1, 1], 1, [3, 3, 2, 2]),
        (500, [1250, 3750], 10, [130, 370]),  # whole steps of 10 (KWD)
        (7, [3, 0, 4], 1, [3, 0, 4]),
        (0, [10, 20], 1, [0, 0]),
    ],
)
def test_coupon_spread(discount: int, subtotals: list[int], unit: int, shares: list[int]) -> None:
    assert amounts.spread(discount, subtotals, unit) == shares
