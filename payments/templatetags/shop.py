"""Template filters for amounts: `{{ amount|minor:currency }}` formats integer minor units with their currency."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import template

from catalog.models import Item
from payments.money import format_money
from payments.pricing import LineInput, default_taxes, price, tax_input

register = template.Library()


@register.filter
def minor(amount: int, currency: str) -> str:
    return format_money(amount, currency, minor=True)


@register.filter
def percent(value: Decimal) -> str:
    """`20` for 20.0000, `2.5` for 2.5000: a rate as people write it."""
    text = format(Decimal(value).normalize(), "f")
    return text


@register.filter
def index(sequence: Sequence[Any], position: int) -> Any:
    """`{{ lines|index:i }}`: the i-th element."""
    return sequence[position]


@dataclass(frozen=True)
class BuyNow:
    total: int  # minor units
    note: str


@register.filter
def buy_now(item: Item) -> BuyNow:
    """What a one-item order of `item` costs (its price plus the exclusive taxes that apply to every order in
    its currency: what the item page's Pay button charges), and those taxes in words (`Plus Sales tax
    8.875%`, `Includes VAT 20%`)."""
    defaults = default_taxes(item.currency)
    line = LineInput(item.pk, item.name, item.description, item.amount, 1)
    total = price(item.currency, [line], None, [tax_input(t) for t in defaults]).total
    note = "; ".join(
        f"{'Includes' if t.inclusive else 'Plus'} {t.name} {percent(t.percentage)}%" for t in defaults
    )
    return BuyNow(total, note)
