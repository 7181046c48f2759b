"""The catalog admin: a per-currency catalog with prices shown in their currency."""

from __future__ import annotations

from django.contrib import admin

from catalog.models import Item


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ("name", "price_with_currency", "currency_code", "is_active", "updated_at")
    list_filter = ("price_currency", "is_active")
    search_fields = ("name", "description")
    ordering = ("price_currency", "name")
    list_per_page = 50
    fields = ("name", "description", "price", "is_active")

    @admin.display(description="Price", ordering="price")
    def price_with_currency(self, item: Item) -> str:
        return item.display_price

    @admin.display(description="Currency", ordering="price_currency")
    def currency_code(self, item: Item) -> str:
        return item.currency.upper()
