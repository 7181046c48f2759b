"""Demo data: the demo catalog (`catalog.demo`: items in USD, EUR and JPY, those of the configured accounts),
a discount, two taxes and a sample order. Safe to run again."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from catalog.demo import seed_items
from catalog.models import Item
from payments.models import Discount, Order, OrderLine, Tax


class Command(BaseCommand):
    help = "Create demo items (USD, EUR, JPY), a discount, two taxes and a sample order. Idempotent."

    @transaction.atomic
    def handle(self, *args: Any, **options: Any) -> None:
        created = seed_items(settings.CURRENCIES)
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
