"""The catalog admin: a per-currency catalog with prices shown in their currency, as Stripe shows them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from djmoney.money import Money

from catalog.models import Item
from core.money import minor_unit_exponent
from payments.admin.display import when

PRICE_HELP = (
    "A decimal in the currency chosen next to it, with at most the decimals Stripe charges in it: 89.90 (EUR, "
    "USD), 1500 (JPY), 12.500 (KWD); shoppers then see €89.90, ¥1,500, 12.500 KWD. The currency picks the "
    "Stripe account that takes the payment."
)


class ItemForm(forms.ModelForm):
    """The price field shows the currency's decimals (89.90, 1500, 12.500), not the database's three."""

    class Meta:
        model = Item
        fields = ("name", "description", "price", "is_active")
        help_texts = {"price": PRICE_HELP}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.price is not None and not self.is_bound:
            amount, currency = self.instance.amount, self.instance.currency
            shown = amount.quantize(Decimal(1).scaleb(-minor_unit_exponent(currency)))
            if shown == amount:
                self.initial["price"] = Money(shown, currency.upper())


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    form = ItemForm
    list_display = ("name", "price_with_currency", "currency_code", "is_active", "updated")
    list_filter = ("price_currency", "is_active")
    search_fields = ("name", "description")
    ordering = ("price_currency", "name")
    list_per_page = 50
    fields = ("name", "description", "price", "shown_as", "is_active")
    readonly_fields = ("shown_as",)

    def view_on_site(self, obj: Item) -> str:
        """ "View on site" opens the item's page in the shop itself (not the admin's redirect)."""
        return obj.shop_url

    @admin.display(description="Price", ordering="price")
    def price_with_currency(self, item: Item) -> str:
        return item.display_price

    @admin.display(description="Shoppers see")
    def shown_as(self, item: Item) -> str:
        return item.display_price if item.pk else "-"

    @admin.display(description="Currency", ordering="price_currency")
    def currency_code(self, item: Item) -> str:
        return item.currency.upper()

    @admin.display(description="Updated", ordering="updated_at")
    def updated(self, item: Item) -> str:
        return when(item.updated_at)
