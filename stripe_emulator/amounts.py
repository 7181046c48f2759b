"""Checkout's amounts: line subtotals, a coupon spread over the lines, tax rates per line, session totals.

Written from Stripe's documentation, independently of the shop's ``payments/pricing.py`` (the suite compares
the two in ``payments/tests/test_same_total.py``). Development/test-only code; integers and ``Decimal`` only.

What Stripe documents, and what this module does with it:

1. Minor units and the currency's step. Every amount is an integer in the currency's smallest unit; a
   three-decimal currency (KWD, BHD, JOD, OMR, TND) must be charged in multiples of 10 minor units, ISK in
   whole krónur (https://docs.stripe.com/currencies#minor-units, #three-decimal, #special-cases). Checkout's
   total is charged as it is, so every amount below is computed in whole steps of the currency
   (``money.step``), rounded half up (away from zero) when a fraction is left.
2. A line's ``amount_subtotal`` is "total before any discounts or taxes are applied": unit amount times
   quantity (Checkout Session line item object, https://docs.stripe.com/api/checkout/sessions/line_items).
3. A coupon is "the amount taken off the subtotal": ``percent_off`` of the session subtotal, or ``amount_off``
   (in the coupon's currency) but never more than the subtotal (https://docs.stripe.com/api/coupons/object,
   https://docs.stripe.com/payments/checkout/discounts). Each line reports its part in ``amount_discount``,
   and tax is computed on what the shopper pays for the line after the discount (a line item tax's
   ``taxable_amount`` is "the amount on which tax is calculated"). The coupon is spread over the lines in
   proportion to their subtotals, in whole steps whose sum is exactly the discount: each line first gets
   its share rounded down, then the steps left over go to the lines with the largest remainders (the
   earlier line on a tie).
4. Tax rates (https://docs.stripe.com/tax/tax-rates: "The inclusive property determines whether the tax
   percentage is added to, or included in, the overall amount"; Stripe "calculates the total tax amount
   per tax rate"; https://support.stripe.com/questions/inclusive-and-exclusive-tax-options-in-the-tax-rate-api-and-stripe-tax:
   a 10% inclusive rate leaves a EUR 600 price at EUR 600, a 10% exclusive rate makes it EUR 660). Per line,
   on its discounted amount ``A``:
   - inclusive rates are *included in* ``A``: ``A = net + sum of the inclusive taxes`` where each inclusive
     tax is its percentage of ``net``. So, with ``P`` the sum of the line's inclusive percentages, rate
     ``p``'s amount is ``A * p / (100 + P)`` (one inclusive rate: ``A * p / (100 + p)``); its
     ``taxable_amount`` is ``net`` (``A`` less the line's inclusive taxes). They add nothing to the total.
   - exclusive rates are *added to* ``A``: ``A * p / 100``, with ``taxable_amount`` ``A``.
   Each amount is computed per line and per rate, then rounded (rule 1).
5. ``amount_total`` of a line is ``A`` plus its exclusive taxes; ``amount_tax`` is all its taxes. The
   session's ``amount_subtotal``, ``total_details.amount_discount``, ``total_details.amount_tax`` and
   ``amount_total`` are the sums over the lines; ``total_details.breakdown.taxes`` sums each rate.

Not spelled out in the documentation, so chosen here and named so it can be checked against Stripe:
rounding half up (rule 1), the order in which a coupon's leftover steps are given out (rule 3), and the
split of a price between several inclusive rates (rule 4, the only split in which every inclusive rate is
its own percentage of the same net amount).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from stripe_emulator.money import round_half_up, step

__all__ = ["LineIn", "LineOut", "Priced", "RateIn", "TaxOut", "price_session", "spread"]

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class RateIn:
    id: str
    percentage: Decimal
    inclusive: bool


@dataclass(frozen=True)
class LineIn:
    unit_amount: int
    quantity: int
    rates: tuple[RateIn, ...] = ()


@dataclass(frozen=True)
class TaxOut:
    rate_id: str
    amount: int
    taxable_amount: int
    inclusive: bool


@dataclass(frozen=True)
class LineOut:
    amount_subtotal: int
    amount_discount: int
    taxes: tuple[TaxOut, ...]
    amount_tax: int
    amount_total: int


@dataclass(frozen=True)
class Priced:
    lines: tuple[LineOut, ...]
    amount_subtotal: int
    amount_discount: int
    amount_tax: int
    amount_total: int

    def tax_by_rate(self) -> dict[str, tuple[int, int]]:
        """``rate id -> (amount, taxable_amount)`` summed over the lines, in first-seen order."""
        totals: dict[str, tuple[int, int]] = {}
        for line in self.lines:
            for tax in line.taxes:
                amount, taxable = totals.get(tax.rate_id, (0, 0))
                totals[tax.rate_id] = (amount + tax.amount, taxable + tax.taxable_amount)
        return totals


def spread(discount: int, subtotals: list[int], unit: int) -> list[int]:
    """Rule 3's split of a coupon over the lines: each line's proportional share in whole ``unit`` steps, rounded
    down, then the steps still missing one each to the lines that lost the most to rounding (the earlier line
    first when two lost the same), so that the shares add up to ``discount``."""
    whole = sum(subtotals)
    if whole <= 0:
        return [0] * len(subtotals)
    steps = discount // unit
    exact = [(steps * amount, whole) for amount in subtotals]  # each line's share, as a fraction of steps
    shares = [numerator // denominator for numerator, denominator in exact]
    lost = [
        numerator - share * denominator for (numerator, denominator), share in zip(exact, shares, strict=True)
    ]
    missing = steps - sum(shares)
    order = sorted(range(len(subtotals)), key=lambda i: (-lost[i], i))
    for i in order[:missing]:
        shares[i] += 1
    return [share * unit for share in shares]


def coupon_amount(
    subtotal: int, currency: str, *, percent_off: Decimal | None = None, amount_off: int | None = None
) -> int:
    """The coupon's amount off ``subtotal`` (rule 3), in whole steps of the currency."""
    unit = step(currency)
    if percent_off is not None:
        amount = round_half_up(Decimal(subtotal) * Decimal(percent_off) / HUNDRED, unit)
    elif amount_off is not None:
        amount = round_half_up(Decimal(amount_off), unit)
    else:
        amount = 0
    return max(0, min(amount, subtotal))


def _line_taxes(amount: int, rates: tuple[RateIn, ...], unit: int) -> tuple[TaxOut, ...]:
    """Rule 4 for one line whose discounted amount is ``amount``."""
    included = sum((r.percentage for r in rates if r.inclusive), Decimal(0))
    inclusive_amounts = {
        i: round_half_up(Decimal(amount) * r.percentage / (HUNDRED + included), unit)
        for i, r in enumerate(rates)
        if r.inclusive
    }
    net = amount - sum(inclusive_amounts.values())
    taxes = []
    for i, rate in enumerate(rates):
        if rate.inclusive:
            taxes.append(TaxOut(rate.id, inclusive_amounts[i], net, True))
        else:
            value = round_half_up(Decimal(amount) * rate.percentage / HUNDRED, unit)
            taxes.append(TaxOut(rate.id, value, amount, False))
    return tuple(taxes)


def price_session(
    currency: str,
    lines: list[LineIn],
    *,
    percent_off: Decimal | None = None,
    amount_off: int | None = None,
) -> Priced:
    """Price a Checkout Session's line items with an optional coupon, by rules 1-5 above."""
    unit = step(currency)
    subtotals = [line.unit_amount * line.quantity for line in lines]
    subtotal = sum(subtotals)
    discount = coupon_amount(subtotal, currency, percent_off=percent_off, amount_off=amount_off)
    shares = spread(discount, subtotals, unit)
    out = []
    for line, line_subtotal, share in zip(lines, subtotals, shares, strict=True):
        discounted = line_subtotal - share
        taxes = _line_taxes(discounted, line.rates, unit)
        exclusive = sum(t.amount for t in taxes if not t.inclusive)
        out.append(
            LineOut(
                amount_subtotal=line_subtotal,
                amount_discount=share,
                taxes=taxes,
                amount_tax=sum(t.amount for t in taxes),
                amount_total=discounted + exclusive,
            )
        )
    return Priced(
        lines=tuple(out),
        amount_subtotal=subtotal,
        amount_discount=discount,
        amount_tax=sum(line.amount_tax for line in out),
        amount_total=sum(line.amount_total for line in out),
    )
