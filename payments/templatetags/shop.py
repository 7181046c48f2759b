"""What the shop's templates need from payments: `{{ amount|minor:currency }}` formats integer minor units with
their currency; `{% publishable_key currency %}` and `{% stripe_js_url %}` give a page the Stripe.js it loads and
the key of the account of its currency (the item and order pages' pay box, `payments/_pay.html`)."""

from __future__ import annotations

from decimal import Decimal

from django import template
from django.conf import settings

from core.money import format_money
from payments.accounts import publishable_key_for

register = template.Library()


@register.filter
def minor(amount: int, currency: str) -> str:
    return format_money(amount, currency, minor=True)


@register.filter
def percent(value: Decimal) -> str:
    """`20` for 20.0000, `2.5` for 2.5000: a rate as people write it."""
    text = format(Decimal(value).normalize(), "f")
    return text


@register.simple_tag
def publishable_key(currency: str) -> str:
    """The publishable key of `currency`'s account ("" when payments in it are not set up)."""
    return publishable_key_for(currency)


@register.simple_tag
def stripe_js_url() -> str:
    return str(settings.STRIPE_JS_URL)
