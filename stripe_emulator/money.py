"""Stripe's currency facts, as the emulator applies them (development/test-only code; integers and ``Decimal``).

Every table here is copied from Stripe's documentation, the page named beside it, and from nowhere else: the
emulator imports nothing from the shop (``core``, ``catalog``, ``payments``), so that a wrong rule in the shop's
``core.money`` shows up as a difference between the shop and this emulator instead of being shared by both.
``stripe_emulator/tests/test_money_tables.py`` pins each table against a list written out in the test itself.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Final

__all__ = [
    "MAXIMUM_AMOUNT",
    "MINIMUM_CHARGE",
    "THREE_DECIMAL",
    "WHOLE_UNIT_TWO_DECIMAL",
    "ZERO_DECIMAL",
    "exponent",
    "format_amount",
    "minimum_amount",
    "round_half_up",
    "step",
]

#: https://docs.stripe.com/currencies#zero-decimal ("Zero-decimal currencies"): "the charge and the amount are
#: the same, without requiring multiplication. For example, to charge 500 JPY, provide an amount value of 500."
ZERO_DECIMAL: Final = frozenset(
    [
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
)

#: https://docs.stripe.com/currencies#three-decimal ("Three-decimal currencies"): amounts carry three decimals,
#: but "these API calls require the least-significant (last) digit to be 0. Your integration must round amounts
#: to the nearest ten. For example, 5.124 KWD must be rounded to 5120 or 5130."
THREE_DECIMAL: Final = frozenset(["bhd", "jod", "kwd", "omr", "tnd"])

#: https://docs.stripe.com/currencies#special-cases, ISK (and https://support.stripe.com/questions/
#: deprecation-of-fractional-isk-charges-and-refunds): "ISK will remain a two-decimal currency in the Stripe API,
#: and an ISK amount of 100 will continue to represent 1 krona"; fractions of a krona are refused with
#: ``invalid_charge_amount_no_decimal_compatible`` ("charged amounts must be evenly divisible by 100").
#: The same table's HUF and TWD rows concern payouts only ("Stripe treats HUF as a zero-decimal currency for
#: payouts, even though you can charge two-decimal amounts"): charges in them are plain two-decimal amounts.
#: UGX is charged as a zero-decimal currency (it is on the list above).
WHOLE_UNIT_TWO_DECIMAL: Final = frozenset({"isk"})

#: https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts: "The amount value supports up to
#: eight digits (for example, a value of 99999999 for a USD charge of $999,999.99)."
MAXIMUM_AMOUNT: Final = 99_999_999

#: https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts, the table of minimum charge amounts
#: (written there in major units; here in minor units). The page states them for the settlement currency; each
#: emulated account settles in its own currency, so the charge currency's row applies.
MINIMUM_CHARGE: Final = {
    "usd": 50,  # $0.50
    "aed": 200,  # 2.00 د.إ
    "aud": 50,  # $0.50
    "bgn": 100,  # лв1.00
    "brl": 50,  # R$0.50
    "cad": 50,  # $0.50
    "chf": 50,  # 0.50 Fr
    "czk": 1500,  # 15.00Kč
    "dkk": 250,  # 2.50 kr.
    "eur": 50,  # €0.50
    "gbp": 30,  # £0.30
    "hkd": 400,  # $4.00
    "huf": 17500,  # 175.00 Ft
    "inr": 50,  # ₹0.50
    "jpy": 50,  # ¥50
    "mxn": 1000,  # $10
    "myr": 200,  # RM 2
    "nok": 300,  # 3.00 kr.
    "nzd": 50,  # $0.50
    "pln": 200,  # 2.00 zł
    "ron": 200,  # lei2.00
    "sek": 300,  # 3.00 kr.
    "sgd": 50,  # $0.50
    "thb": 1000,  # ฿10
}

#: How the hosted page writes a few currencies (anything else: "12.34 XYZ").
_SYMBOLS: Final = {"usd": "$", "eur": "€", "gbp": "£", "jpy": "¥"}


def exponent(currency: str) -> int:
    """Digits of ``currency``'s minor unit in API amounts: 0, 3, or the default 2
    (https://docs.stripe.com/currencies#minor-units)."""
    code = currency.lower()
    if code in ZERO_DECIMAL:
        return 0
    if code in THREE_DECIMAL:
        return 3
    return 2


def step(currency: str) -> int:
    """The granularity a charge's amount must have, in minor units: 10 for three-decimal currencies (last digit
    0), 100 for ISK (whole kronur), else 1."""
    code = currency.lower()
    if code in THREE_DECIMAL:
        return 10
    if code in WHOLE_UNIT_TWO_DECIMAL:
        return 100
    return 1


def minimum_amount(currency: str) -> int:
    """Stripe's minimum charge for ``currency`` in minor units. A currency the table leaves out is held to one
    step of the currency (its real floor, "$0.50 US or equivalent", depends on an exchange rate)."""
    code = currency.lower()
    return MINIMUM_CHARGE.get(code, step(code))


def format_amount(amount: int, currency: str) -> str:
    """``1234, "usd"`` -> ``"$12.34"``; ``500, "jpy"`` -> ``"¥500"``; ``5120, "kwd"`` -> ``"5.120 KWD"``."""
    code = currency.lower()
    digits = exponent(code)
    value = Decimal(amount).scaleb(-digits)
    number = f"{abs(value):,.{digits}f}"
    sign = "-" if amount < 0 else ""
    symbol = _SYMBOLS.get(code)
    return f"{sign}{symbol}{number}" if symbol else f"{sign}{number} {code.upper()}"


def round_half_up(value: Decimal, unit: int = 1) -> int:
    """Round ``value`` (minor units) to a whole number of ``unit`` minor units, halves away from zero."""
    return int((value / unit).quantize(Decimal(1), rounding=ROUND_HALF_UP)) * unit
