"""Order -> priced lines and totals, in minor units. The one source of every amount the shop shows or charges.

Rules (the same Stripe Checkout applies to a coupon and tax rates, so both payment paths charge one total):
- each line's amount is unit price x quantity, in minor units;
- a discount (percentage, or a fixed amount capped at the subtotal) is spread over the lines in proportion
  to their amounts, with shares that add up exactly (largest remainder, ties to the earlier line);
- each exclusive tax is computed per line on the discounted amount, rounded half up, and added;
- an inclusive tax is already in the price: its part is shown, nothing is added;
- amounts are computed in the steps Stripe accepts for the currency (`money.minor_unit_step`: 10 minor
  units for three-decimal currencies such as KWD, whole kronur for ISK).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Prefetch, prefetch_related_objects

from catalog.models import Item
from core.money import allocate, format_money, minor_unit_step, to_minor_units
from payments.models import Order, OrderLine, Tax, default_taxes

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class LineInput:
    item_id: int
    name: str
    description: str
    unit_price: Decimal
    quantity: int


@dataclass(frozen=True)
class DiscountInput:
    id: int
    name: str
    percent_off: Decimal | None = None
    amount_off: Decimal | None = None
    currency: str = ""
    code: str = ""  # the promotion code the shopper entered, if it is one


@dataclass(frozen=True)
class TaxInput:
    id: int
    name: str
    percentage: Decimal
    inclusive: bool


@dataclass(frozen=True)
class LineTax:
    tax_id: int
    amount: int


@dataclass(frozen=True)
class PricedLine:
    item_id: int
    name: str
    description: str
    quantity: int
    unit_amount: int
    amount: int  # unit_amount x quantity
    discount: int  # this line's share of the order discount
    taxes: tuple[LineTax, ...]
    exclusive_tax: int
    total: int  # amount - discount + exclusive_tax


@dataclass(frozen=True)
class TaxTotal:
    tax: TaxInput
    amount: int


@dataclass(frozen=True)
class PricedOrder:
    currency: str
    lines: tuple[PricedLine, ...]
    discount: DiscountInput | None
    taxes: tuple[TaxTotal, ...]
    subtotal: int
    discount_total: int
    exclusive_tax: int
    inclusive_tax: int
    total: int

    @property
    def is_empty(self) -> bool:
        return not self.lines

    def display(self, amount: int) -> str:
        return format_money(amount, self.currency, minor=True)


def _round(value: Decimal, step: int) -> int:
    """Round half up to a whole number of `step` minor units."""
    return int((value / step).quantize(Decimal(1), rounding=ROUND_HALF_UP)) * step


def discount_amount(discount: DiscountInput | None, subtotal: int, currency: str) -> int:
    """The order-level discount in minor units, never more than the subtotal."""
    if discount is None or subtotal <= 0:
        return 0
    step = minor_unit_step(currency)
    if discount.percent_off is not None:
        amount = _round(Decimal(subtotal) * discount.percent_off / HUNDRED, step)
    elif discount.amount_off is not None:
        if discount.currency.lower() != currency.lower():
            raise ValueError(
                f"The discount {discount.name} is in {discount.currency.upper()}, the order in {currency.upper()}."
            )
        amount = to_minor_units(discount.amount_off, currency)
    else:
        amount = 0
    return min(amount, subtotal)


def price(
    currency: str,
    lines: Sequence[LineInput],
    discount: DiscountInput | None = None,
    taxes: Sequence[TaxInput] = (),
) -> PricedOrder:
    currency = currency.lower()
    step = minor_unit_step(currency)
    unit_amounts = [to_minor_units(line.unit_price, currency) for line in lines]
    amounts = [u * line.quantity for u, line in zip(unit_amounts, lines, strict=True)]
    subtotal = sum(amounts)
    discount_total = discount_amount(discount, subtotal, currency)
    shares = allocate(discount_total, amounts, step)

    inclusive_sum = sum((t.percentage for t in taxes if t.inclusive), Decimal(0))
    tax_totals = {t.id: 0 for t in taxes}
    priced: list[PricedLine] = []
    for line, unit_amount, amount, share in zip(lines, unit_amounts, amounts, shares, strict=True):
        taxable = amount - share
        line_taxes: list[LineTax] = []
        exclusive = 0
        for tax in taxes:
            if tax.inclusive:
                # The tax's part of a price that already contains all inclusive taxes.
                value = _round(Decimal(taxable) * tax.percentage / (HUNDRED + inclusive_sum), step)
            else:
                value = _round(Decimal(taxable) * tax.percentage / HUNDRED, step)
                exclusive += value
            tax_totals[tax.id] += value
            line_taxes.append(LineTax(tax_id=tax.id, amount=value))
        priced.append(
            PricedLine(
                item_id=line.item_id,
                name=line.name,
                description=line.description,
                quantity=line.quantity,
                unit_amount=unit_amount,
                amount=amount,
                discount=share,
                taxes=tuple(line_taxes),
                exclusive_tax=exclusive,
                total=taxable + exclusive,
            )
        )
    exclusive_total = sum(p.exclusive_tax for p in priced)
    inclusive_total = sum(tax_totals[t.id] for t in taxes if t.inclusive)
    return PricedOrder(
        currency=currency,
        lines=tuple(priced),
        discount=discount if discount_total else None,
        taxes=tuple(TaxTotal(tax=t, amount=tax_totals[t.id]) for t in taxes),
        subtotal=subtotal,
        discount_total=discount_total,
        exclusive_tax=exclusive_total,
        inclusive_tax=inclusive_total,
        total=subtotal - discount_total + exclusive_total,
    )


def tax_input(tax: Tax) -> TaxInput:
    return TaxInput(id=tax.pk, name=tax.name, percentage=tax.percentage, inclusive=tax.inclusive)


def price_buy_now(item: Item) -> PricedOrder:
    """A one-item order of `item`: its price and the taxes every order in its currency carries. What the item
    page shows and its Pay and Checkout buttons charge (`freezing.make_frozen` freezes exactly this)."""
    line = LineInput(item.pk, item.name, item.description, item.amount, 1)
    return price(item.currency, [line], None, [tax_input(t) for t in default_taxes(item.currency)])


def order_inputs(order: Order) -> tuple[list[LineInput], DiscountInput | None, list[TaxInput]]:
    """Read an order's lines, discount and taxes, in a fixed order (lines and taxes by id). What
    `orders.with_pricing()` prefetched is used; anything missing is fetched in one query each.

    The taxes are those staff attached to the order and those that apply to every order in its currency
    (`Tax.applies_to_every_order`), each once: a default tax is priced, shown and sent to Checkout exactly as
    an attached one."""
    prefetch_related_objects(
        [order],
        Prefetch("lines", queryset=OrderLine.objects.select_related("item").order_by("id")),
        Prefetch("taxes", queryset=Tax.objects.order_by("id")),
    )
    lines = [
        LineInput(
            item_id=line.item_id,
            name=line.item.name,
            description=line.item.description,
            unit_price=line.unit_price,
            quantity=line.quantity,
        )
        for line in order.lines.all()
    ]
    discount = None
    # A fixed discount in another currency cannot apply (Order.clean refuses it in the admin).
    if order.discount is not None and order.discount.is_active and order.discount.applies_to(order.currency):
        d = order.discount
        discount = DiscountInput(
            id=d.pk,
            name=d.name,
            percent_off=d.percent_off,
            amount_off=d.amount_off,
            currency=d.currency,
            code=d.code,
        )
    chosen = {t.pk: t for t in order.taxes.all() if t.is_active}
    for tax in default_taxes(order.currency):
        chosen.setdefault(tax.pk, tax)
    taxes = [tax_input(chosen[pk]) for pk in sorted(chosen)]
    return lines, discount, taxes


def price_order(order: Order) -> PricedOrder:
    """What the order costs: its frozen snapshot once the shopper started paying, else its lines as they are.

    Every page, the admin and both payment paths read amounts through here, so a frozen order shows and is
    charged exactly the snapshot its Stripe objects were created for, whatever staff edit afterwards.
    """
    if order.snapshot:
        return from_snapshot(order.snapshot)
    return price_live(order)


def price_live(order: Order) -> PricedOrder:
    """The order priced from its current lines, discount and taxes (a draft; or a new snapshot)."""
    lines, discount, taxes = order_inputs(order)
    return price(order.currency, lines, discount, taxes)


def describe(order_id: object, priced: PricedOrder) -> str:
    """The payment's description at Stripe: the order and its lines (Stripe allows 1000 characters)."""
    names = ", ".join(f"{line.quantity} x {line.name}" for line in priced.lines)
    return f"Order {str(order_id)[:8]}: {names}"[:1000]


# ------------------------------------------------------------------------------------------------ snapshots


def to_snapshot(priced: PricedOrder) -> dict[str, Any]:
    """The priced order as JSON-safe data (Decimals as strings), stored on the order when it is frozen."""

    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [plain(v) for v in value]
        return value

    data: dict[str, Any] = plain(asdict(priced))
    return data


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def from_snapshot(data: Mapping[str, Any]) -> PricedOrder:
    """Inverse of `to_snapshot`."""
    discount = data.get("discount")
    return PricedOrder(
        currency=data["currency"],
        lines=tuple(
            PricedLine(
                **{k: v for k, v in line.items() if k != "taxes"},
                taxes=tuple(LineTax(**t) for t in line["taxes"]),
            )
            for line in data["lines"]
        ),
        discount=(
            DiscountInput(
                id=discount["id"],
                name=discount["name"],
                percent_off=_decimal(discount["percent_off"]),
                amount_off=_decimal(discount["amount_off"]),
                currency=discount["currency"],
                code=discount.get("code", ""),
            )
            if discount
            else None
        ),
        taxes=tuple(
            TaxTotal(
                tax=TaxInput(
                    id=t["tax"]["id"],
                    name=t["tax"]["name"],
                    percentage=Decimal(str(t["tax"]["percentage"])),
                    inclusive=t["tax"]["inclusive"],
                ),
                amount=t["amount"],
            )
            for t in data["taxes"]
        ),
        subtotal=data["subtotal"],
        discount_total=data["discount_total"],
        exclusive_tax=data["exclusive_tax"],
        inclusive_tax=data["inclusive_tax"],
        total=data["total"],
    )
