"""Template filters for amounts: `{{ amount|minor:currency }}` formats integer minor units with their currency."""

from __future__ import annotations

from django import template

from payments.money import format_money

register = template.Library()


@register.filter
def minor(amount: int, currency: str) -> str:
    return format_money(amount, currency, minor=True)
