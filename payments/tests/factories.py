"""Orders, discounts and taxes as the tests need them, made directly in the database (the shopper's way through
the endpoints is `support.Shopper`)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from catalog.models import Item
from payments.models import Discount, Order, OrderLine, Tax


def make_cart(*lines: tuple[Item, int] | Item, browser: str = "test-browser", currency: str = "") -> Order:
    """A draft owned by `browser` with a line per item (an item alone is one of it), at its current price."""
    pairs = [line if isinstance(line, tuple) else (line, 1) for line in lines]
    order = Order.objects.create(
        currency=currency or (pairs[0][0].currency if pairs else "usd"), browser=browser
    )
    for item, quantity in pairs:
        OrderLine.objects.create(order=order, item=item, quantity=quantity, unit_price=item.amount)
    return order


def percent_off(percent: str = "10", name: str = "Ten percent off") -> Discount:
    return Discount.objects.create(name=name, percent_off=Decimal(percent))


def amount_off(amount: str, currency: str, name: str = "") -> Discount:
    return Discount.objects.create(
        name=name or f"{amount} {currency.upper()} off", amount_off=Decimal(amount), currency=currency
    )


def make_tax(name: str, percentage: str, *, inclusive: bool) -> Tax:
    return Tax.objects.create(name=name, percentage=Decimal(percentage), inclusive=inclusive)


def with_taxes(order: Order, taxes: Sequence[Tax], discount: Discount | None = None) -> Order:
    if discount is not None:
        order.discount = discount
        order.save()
    order.taxes.add(*taxes)
    return order
