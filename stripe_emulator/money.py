"""Integer money helpers for the Stripe emulator (development/test-only code; no floats).

Stripe's currency facts (zero- and three-decimal currencies, minimum and maximum charge amounts), the
display of amounts and the largest-remainder allocation of a coupon over lines are not repeated here: they come from the shop's ``core.money``, a pure-Python module
(``decimal`` only, no Django), so each table is written once.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from core.money import (
    MAX_AMOUNT,
    allocate,
    format_money,
    minimum_charge,
    minor_unit_exponent,
    minor_unit_step,
)

__all__ = [
    "MAXIMUM_AMOUNT",
    "allocate",
    "exponent",
    "format_amount",
    "minimum_amount",
    "round_half_up",
    "step",
]


#: Stripe's largest ``amount`` (eight digits), https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts.
MAXIMUM_AMOUNT = MAX_AMOUNT


def exponent(currency: str) -> int:
    """Number of minor-unit digits of ``currency`` (0, 2 or 3)."""
    return minor_unit_exponent(currency)


def step(currency: str) -> int:
    """The granularity Stripe charges in, in minor units (10 for three-decimal currencies, 100 for ISK)."""
    return minor_unit_step(currency)


def minimum_amount(currency: str) -> int:
    """Stripe's minimum charge for ``currency``, in minor units."""
    return minimum_charge(currency)


def format_amount(amount: int, currency: str) -> str:
    """``1234, "usd"`` → ``"$12.34"``; ``500, "jpy"`` → ``"¥500"`` (the shop's display rule, not repeated)."""
    return format_money(amount, currency, minor=True)


def round_half_up(value: Decimal, unit: int = 1) -> int:
    """Round ``value`` (minor units) to a whole number of ``unit`` minor units, halves away from zero."""
    return int((value / unit).quantize(Decimal(1), rounding=ROUND_HALF_UP)) * unit
