"""An order's lines in its admin page: a cart's lines can be edited (item, quantity, unit price, in the
order's currency), the lines of any other order are read-only."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest

from core.money import minor_unit_exponent
from payments import states
from payments.models import OrderLine


def is_draft(obj: Any) -> bool:
    """A new order or a cart: what staff may edit (`states.is_editable`)."""
    return obj is None or not obj.pk or states.is_editable(obj)


def _quantized(amount: Decimal, currency: str) -> Decimal:
    """`24.500` -> `24.50` for USD, `1500.000` -> `1500` for JPY: the decimals the currency has, when exact."""
    shown = amount.quantize(Decimal(1).scaleb(-minor_unit_exponent(currency)))
    return shown if shown == amount else amount


class OrderLineFormSet(BaseInlineFormSet):
    """Lines added by staff: the item's current price when none is typed, and one currency per order."""

    def clean(self) -> None:
        super().clean()
        currency = (self.instance.currency or "").lower()
        for form in self.forms:
            item = form.cleaned_data.get("item") if hasattr(form, "cleaned_data") else None
            if item is None or form.cleaned_data.get("DELETE"):
                continue
            if currency and item.currency != currency:
                raise ValidationError(
                    f"{item.name} is priced in {item.currency.upper()}; this order is in {currency.upper()}."
                )
            if form.cleaned_data.get("unit_price") is None:
                form.instance.unit_price = item.amount


class OrderLineForm(forms.ModelForm):
    """A cart's line: its unit price shown with the decimals of the order's currency (24.50, 1500, 12.500)."""

    class Meta:
        model = OrderLine
        fields = ("item", "quantity", "unit_price")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        line = self.instance
        if line.pk and line.order_id and line.unit_price is not None:
            self.initial["unit_price"] = _quantized(line.unit_price, line.order.currency)


class OrderLineInline(admin.TabularInline):
    """A cart's lines can be edited (item, quantity, unit price); the lines of any other order are read-only."""

    model = OrderLine
    form = OrderLineForm
    formset = OrderLineFormSet
    extra = 0
    autocomplete_fields = ("item",)
    readonly_fields = ("item_name", "unit_price_display", "amount_display")

    def get_fields(self, request: HttpRequest, obj: Any = None) -> tuple[str, ...]:
        if is_draft(obj):
            return ("item", "quantity", "unit_price", "amount_display")
        return ("item_name", "quantity", "unit_price_display", "amount_display")

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderLine]:
        return super().get_queryset(request).select_related("item", "order")

    @admin.display(description="Item")
    def item_name(self, line: OrderLine) -> str:
        return line.item.name if line.item_id else ""

    @admin.display(description="Unit price")
    def unit_price_display(self, line: OrderLine) -> str:
        return line.display_unit_price if line.pk else ""

    @admin.display(description="Amount")
    def amount_display(self, line: OrderLine) -> str:
        """Quantity times unit price, before the order's discount and taxes."""
        return line.display_amount if line.pk and line.unit_price is not None else ""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_draft(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_draft(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_draft(obj) and super().has_delete_permission(request, obj)

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        if "unit_price" in formset.form.base_fields:
            currency = (obj.currency if obj is not None and obj.currency else "").upper()
            where = f"In the order's currency ({currency})" if currency else "In the order's currency"
            field = formset.form.base_fields["unit_price"]
            field.required = False
            field.help_text = f"{where}, as a decimal: 24.50, or 1500 for JPY, 12.500 for KWD. Empty: the item's current price."
        return formset
