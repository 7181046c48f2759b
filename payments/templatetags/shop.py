"""Template filters for amounts: `{{ amount|minor:currency }}` formats integer minor units with their currency."""

from __future__ import annotations

from decimal import Decimal

from django import template

from payments.money import format_money

register = template.Library()


@register.filter
def minor(amount: int, currency: str) -> str:
    return format_money(amount, currency, minor=True)


@register.filter
def percent(value: Decimal) -> str:
    """`20` for 20.0000, `2.5` for 2.5000: a rate as people write it."""
    text = format(Decimal(value).normalize(), "f")
    return text
