"""What the shop's templates need from payments: `{{ amount|minor:currency }}` formats integer minor units with
their currency; `{% publishable_key currency %}` and `{% stripe_js_url %}` give a page the Stripe.js it loads and
the key of the account of its currency (the item and order pages' pay box, `payments/_pay.html`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import template
from django.conf import settings

from catalog.models import Item
from core.money import format_money
from payments.accounts import publishable_key_for
from payments.pricing import price_buy_now

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
    priced = price_buy_now(item)
    note = "; ".join(
        f"{'Includes' if t.tax.inclusive else 'Plus'} {t.tax.name} {percent(t.tax.percentage)}%"
        for t in priced.taxes
    )
    return BuyNow(priced.total, note)
