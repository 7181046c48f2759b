"""The demo catalog: items in USD, EUR and JPY, created for the currencies the shop has accounts for by
`manage.py seed_demo` (which adds the payments app's demo discount, taxes and sample order). Safe to run again."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from djmoney.money import Money

from catalog.models import Item

ITEMS = [
    (
        "Espresso beans, 1 kg",
        "Single-origin beans from Huila, Colombia, roasted for espresso.",
        "24.50",
        "USD",
    ),
    ("Pour-over kettle", "Gooseneck kettle with a thermometer, 1 litre.", "59.00", "USD"),
    ("Ceramic dripper", "Hand-made porcelain dripper for size 02 filters.", "18.00", "USD"),
    ("Hand grinder", "Steel burrs, 30 clicks per turn, for espresso to French press.", "89.90", "EUR"),
    ("Paper filters, 100", "Unbleached size 02 filters.", "4.90", "EUR"),
    ("Cupping spoon", "Stainless steel, deep bowl.", "12.00", "EUR"),
    # Yen have no minor unit: Stripe is sent 1500 for ¥1,500 (a zero-decimal currency).
    ("Drip bags, 10", "Single-serve pour-over bags, medium roast.", "1500", "JPY"),
    ("Cold brew bottle", "Glass bottle with a fine mesh filter, 1 litre.", "3200", "JPY"),
]


def seed_items(currencies: Iterable[str]) -> int:
    """Create the demo items priced in these currencies (upper case) that do not exist yet: how many."""
    wanted = set(currencies)
    created = 0
    for name, description, price, currency in ITEMS:
        if currency not in wanted:
            continue
        _, was_created = Item.objects.get_or_create(
            name=name,
            defaults={"description": description, "price": Money(Decimal(price), currency)},  # type: ignore[misc]
        )
        created += was_created
    return created
