"""What the shop's templates need from payments: `{{ amount|money:currency }}` formats integer minor units with
their currency for the shopper's language (`{{ item|price }}` an item's price, `{{ tax.percentage|rate }}` a tax
rate), `{{ amount|minor:currency }}` the locale-independent way the admin writes them; `{% publishable_key
currency %}`, `{% stripe_js_url %}` and `{% stripe_locale %}` give a page the Stripe.js it loads, the key of the
account of its currency and the language Stripe.js speaks (the item and order pages' pay box,
`payments/_pay.html`), and `{% pay_text %}` the words its script shows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django import template
from django.conf import settings
from django.utils.translation import get_language, gettext

from catalog.models import Item
from core.money import display_money, display_percent, format_money
from payments.accounts import publishable_key_for
from payments.checkout import stripe_locale_for
from payments.models import Refund
from payments.pricing import PricedOrder, price_buy_now

register = template.Library()


@register.filter
def minor(amount: int, currency: str) -> str:
    return format_money(amount, currency, minor=True)


@register.filter
def money(amount: int, currency: str) -> str:
    """Minor units as the shopper reads them: `€89.90` in English, `89,90 €` in Russian (`core.money`)."""
    return display_money(amount, currency, minor=True)


@register.filter
def price(item: Item) -> str:
    """An item's price in the shopper's language (`Item.display_price` is the admin's, locale-independent)."""
    return display_money(item.amount, item.currency)


@register.filter
def rate(value: Decimal) -> str:
    """A tax rate as the shopper's language writes it: `2.5%` in English, `2,5 %` in Russian."""
    return display_percent(value)


@register.simple_tag
def publishable_key(currency: str) -> str:
    """The publishable key of `currency`'s account ("" when payments in it are not set up)."""
    return publishable_key_for(currency)


@register.simple_tag
def stripe_js_url() -> str:
    return str(settings.STRIPE_JS_URL)


@register.simple_tag
def stripe_locale() -> str:
    """The language Stripe.js and the Payment Element are told (`Stripe(pk, {locale})`), as Checkout is."""
    return stripe_locale_for(get_language())


@register.simple_tag
def pay_text() -> dict[str, str]:
    """The words `static/js/pay.js` shows, in the page's language (read from a `json_script` block: no inline
    script, nothing for the Content Security Policy to allow)."""
    return {
        "loading": gettext("Loading the secure card form…"),
        "processing": gettext("Processing…"),
        "redirecting": gettext("Opening Stripe Checkout…"),
        "no_stripe": gettext("The card form could not load. You can pay on Stripe Checkout instead."),
        "check_card": gettext("Check your card details."),
        "unreachable": gettext("We could not reach the shop. Check your connection and try again."),
        "generic": gettext(
            "Something went wrong and the payment was not made. Nothing was charged; please try again."
        ),
        "checkout_unavailable": gettext("Stripe Checkout is not available right now. Please try again."),
    }


@register.filter
def units(priced: PricedOrder) -> int:
    """How many things an order holds: its lines' quantities added up ("Your orders")."""
    return sum(line.quantity for line in priced.lines)


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
        (gettext("Includes %(tax)s %(rate)s") if t.tax.inclusive else gettext("Plus %(tax)s %(rate)s"))
        % {"tax": t.tax.name, "rate": rate(t.tax.percentage)}
        for t in priced.taxes
    )
    return BuyNow(priced.total, note)


@register.filter
def refund_reason(value: str) -> str:
    """A refund's reason code in words (`requested_by_customer` -> "Requested by the customer")."""
    return str(Refund.Reason(value).label) if value in Refund.Reason.values else value
