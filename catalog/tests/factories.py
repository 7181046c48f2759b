"""Items as the tests need them: `make_item("Beans", "24.50")`, in USD unless told."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from djmoney.money import Money

from catalog.models import Item


def make_item(
    name: str = "Espresso beans", price: str = "24.50", currency: str = "USD", **fields: Any
) -> Item:
    fields.setdefault("description", f"{name}, described.")
    return Item.objects.create(name=name, price=Money(Decimal(price), currency), **fields)
