"""Demo data: items in USD, EUR and JPY (those of the configured accounts), a discount, two taxes and a sample
order. Safe to run again."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction
from djmoney.money import Money

from catalog.models import Item
from payments.models import Discount, Order, OrderLine, Tax

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


class Command(BaseCommand):
    help = "Create demo items (USD, EUR, JPY), a discount, two taxes and a sample order. Idempotent."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        currencies = set(settings.CURRENCIES)
        created = 0
        for name, description, price, currency in ITEMS:
            if currency not in currencies:
                continue
            _, was_created = Item.objects.get_or_create(
                name=name,
                defaults={"description": description, "price": Money(Decimal(price), currency)},  # type: ignore[misc]
            )
            created += was_created
        discount, _ = Discount.objects.get_or_create(
            name="Welcome 10%", defaults={"percent_off": Decimal("10"), "code": "WELCOME10"}
        )
        Tax.objects.get_or_create(name="VAT", defaults={"percentage": Decimal("20"), "inclusive": True})
        levy, _ = Tax.objects.get_or_create(
            name="City levy", defaults={"percentage": Decimal("2.5"), "inclusive": False}
        )
        sample = Order.objects.filter(browser="", lines__isnull=False, discount=discount).distinct().first()
        usd_items = list(Item.objects.filter(price_currency="USD").order_by("id")[:2])
        if sample is None and len(usd_items) == 2:
            sample = Order.objects.create(currency="usd", discount=discount)
            # An exclusive levy only: one order never mixes a tax included in prices (the VAT, for staff to
            # attach to EUR orders) with one added to them (README, "What Stripe documents").
            sample.taxes.set([levy])
            for quantity, item in enumerate(usd_items, start=1):
                OrderLine.objects.create(order=sample, item=item, quantity=quantity, unit_price=item.amount)
        self.stdout.write(
            self.style.SUCCESS(f"Demo data ready: {created} new items, {Item.objects.count()} in all.")
        )
        if sample is not None:
            self.stdout.write(f"Sample order with a discount and a tax: /order/{sample.public_id}")
