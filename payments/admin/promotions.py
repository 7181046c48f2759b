"""Discounts (promotion codes) and taxes, as staff set them up, and what staff see of promotion codes that
shoppers do not: why tries of a code were refused, and how often.

Shoppers read the same "not valid" for every refusal (`payments.promotions`), so the reason is kept for staff
only: a `PromotionRefusal` per code and reason, shown on the discount's admin page.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils.safestring import SafeString

from core.admin_display import when
from core.money import plain_percent
from payments import promotions, states
from payments.admin.base import ReadOnlyInline
from payments.models import Discount, OrderStatus, PromotionRefusal, Tax


class PromotionRefusalInline(ReadOnlyInline):
    model = PromotionRefusal
    verbose_name = "refused try"
    verbose_name_plural = "Refused tries (shoppers read “The code … is not valid.” whatever the reason)"
    fields = ("reason", "count", "first", "last")
    readonly_fields = fields
    ordering = ("-last_at",)

    @admin.display(description="First")
    def first(self, refusal: PromotionRefusal) -> SafeString | str:
        return when(refusal.first_at)

    @admin.display(description="Last")
    def last(self, refusal: PromotionRefusal) -> SafeString | str:
        return when(refusal.last_at)


def currency_field(model_field: Any, *, required: bool = False) -> forms.ChoiceField:
    """A currency chosen among the shop's Stripe accounts (a code no account has would apply to no order)."""
    choices = [(c, c.upper()) for c in settings.STRIPE_ACCOUNTS]
    return forms.ChoiceField(
        choices=([] if required else [("", "-")]) + choices,
        required=required,
        help_text=model_field.help_text,
        label=str(model_field.verbose_name).capitalize(),
    )


class DiscountForm(forms.ModelForm):
    class Meta:
        model = Discount
        fields = (
            "name",
            "percent_off",
            "amount_off",
            "currency",
            "is_active",
            "code",
            "valid_from",
            "valid_until",
            "max_uses",
        )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["currency"] = currency_field(Discount._meta.get_field("currency"))

    def clean_max_uses(self) -> int | None:
        """A maximum below the uses already made (or held by an order being paid) would be broken already."""
        max_uses = self.cleaned_data.get("max_uses")
        if max_uses is not None and self.instance.pk:
            taken = promotions.holders(self.instance).count()
            if max_uses < taken:
                raise ValidationError(
                    f"{taken} orders have used this code or are being paid with it: the maximum cannot be lower."
                )
        return max_uses


class TaxForm(forms.ModelForm):
    class Meta:
        model = Tax
        fields = ("name", "percentage", "inclusive", "is_active", "applies_to_every_order", "currency")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["currency"] = currency_field(Tax._meta.get_field("currency"))


@admin.register(Discount)
class DiscountAdmin(admin.ModelAdmin):
    form = DiscountForm
    list_display = ("name", "off", "code", "until", "uses", "is_active", "updated")
    inlines = [PromotionRefusalInline]
    list_filter = ("is_active", "currency")
    search_fields = ("name", "code")
    fieldsets = (
        (None, {"fields": ("name", "percent_off", "amount_off", "currency", "is_active")}),
        (
            "Promotion code",
            {
                "fields": ("code", "valid_from", "valid_until", "max_uses"),
                "description": "Shoppers enter the code on their cart's page. A use is counted when the "
                "order is paid; an order being paid holds one, so the maximum is never exceeded.",
            },
        ),
    )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Discount]:
        paid = Q(orders__status__in=states.PAID_STATES)
        held = Q(orders__status=OrderStatus.PROCESSING) | Q(  # as promotions.holders counts them
            orders__status=OrderStatus.AWAITING_PAYMENT, orders__payments__status__in=states.LIVE_PAYMENTS
        )
        return (
            super()
            .get_queryset(request)
            .annotate(
                paid_uses=Count("orders", filter=paid, distinct=True),
                held_uses=Count("orders", filter=held, distinct=True),
            )
        )

    @admin.display(description="Off")
    def off(self, discount: Discount) -> str:
        return discount.describe()

    @admin.display(description="Valid until", ordering="valid_until")
    def until(self, discount: Discount) -> SafeString | str:
        return when(discount.valid_until)

    @admin.display(description="Updated", ordering="updated_at")
    def updated(self, discount: Discount) -> SafeString | str:
        return when(discount.updated_at)

    @admin.display(description="Paid uses")
    def uses(self, discount: Any) -> str:
        text = f"{discount.paid_uses}" + (f" of {discount.max_uses}" if discount.max_uses else "")
        return text + (f" ({discount.held_uses} being paid)" if discount.held_uses else "")


@admin.register(Tax)
class TaxAdmin(admin.ModelAdmin):
    form = TaxForm
    list_display = ("name", "rate", "default_for", "is_active", "updated")
    list_filter = ("inclusive", "is_active", "applies_to_every_order", "currency")
    search_fields = ("name",)

    @admin.display(description="Rate", ordering="percentage")
    def rate(self, tax: Tax) -> str:
        return f"{plain_percent(tax.percentage)}% ({'included in prices' if tax.inclusive else 'added'})"

    @admin.display(description="Updated", ordering="updated_at")
    def updated(self, tax: Tax) -> SafeString | str:
        return when(tax.updated_at)

    @admin.display(description="Every order in", ordering="currency")
    def default_for(self, tax: Tax) -> str:
        return tax.currency.upper() if tax.applies_to_every_order else "-"
