"""Staff views of orders, payments, refunds and webhook events.

Only carts (drafts) can be edited. An order that is being paid, processing, paid or refunded is shown read-only:
its snapshot is what Stripe charges. Staff change such orders only through the actions: refund, cancel its open
payment (which makes it a cart again, as the shopper's "Change order" does), clear the flag.
"""

from __future__ import annotations

import functools
from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from core.money import format_money
from payments import orders, promotions, refunds, states
from payments.admin_merchant import DisputeInline, refund_view
from payments.errors import ShopError
from payments.models import (
    Discount,
    Order,
    OrderLine,
    OrderStatus,
    Payment,
    Refund,
    StripeEvent,
    StripeObject,
    Tax,
)
from payments.orders import with_pricing
from payments.pricing import price_order


@admin.register(Discount)
class DiscountAdmin(admin.ModelAdmin):
    list_display = ("name", "describe", "code", "valid_until", "uses", "is_active", "updated_at")
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
        paid = Q(orders__status__in=promotions.USED)
        held = Q(orders__status__in=[OrderStatus.AWAITING_PAYMENT, OrderStatus.PROCESSING])
        return (
            super()
            .get_queryset(request)
            .annotate(paid_uses=Count("orders", filter=paid), held_uses=Count("orders", filter=held))
        )

    @admin.display(description="Paid uses")
    def uses(self, discount: Any) -> str:
        text = f"{discount.paid_uses}" + (f" of {discount.max_uses}" if discount.max_uses else "")
        return text + (f" ({discount.held_uses} being paid)" if discount.held_uses else "")


@admin.register(Tax)
class TaxAdmin(admin.ModelAdmin):
    list_display = ("name", "percentage", "inclusive", "default_for", "is_active", "updated_at")
    list_filter = ("inclusive", "is_active", "applies_to_every_order", "currency")
    search_fields = ("name",)

    @admin.display(description="Every order in", ordering="currency")
    def default_for(self, tax: Tax) -> str:
        return tax.currency.upper() if tax.applies_to_every_order else "-"


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


def _is_draft(obj: Any) -> bool:
    return obj is None or not obj.pk or states.is_editable(obj)


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    formset = OrderLineFormSet
    extra = 0
    autocomplete_fields = ("item",)
    fields = ("item", "quantity", "unit_price")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_draft(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_draft(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_draft(obj) and super().has_delete_permission(request, obj)

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        if "unit_price" in formset.form.base_fields:
            formset.form.base_fields["unit_price"].required = False
            formset.form.base_fields["unit_price"].help_text = "Empty: the item's current price."
        return formset


class PaymentInline(admin.TabularInline):
    model = Payment
    extra = 0
    can_delete = False
    fields = (
        "kind",
        "stripe_id",
        "account",
        "amount",
        "status",
        "stripe_status",
        "amount_refunded",
        "last_error",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RefundInline(admin.TabularInline):
    model = Refund
    extra = 0
    can_delete = False
    fields = (
        "stripe_id",
        "amount_display",
        "reason",
        "status",
        "description",
        "requested_by",
        "created_at",
        "last_error",
    )
    readonly_fields = fields

    @admin.display(description="Amount")
    def amount_display(self, refund: Refund) -> str:
        return format_money(refund.amount, refund.currency, minor=True)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = (
        "short_id",
        "currency_code",
        "status",
        "total_display",
        "refunded",
        "dispute_status",
        "needs_attention",
        "created_at",
    )
    list_filter = ("status", "currency", "needs_attention", "dispute_status")
    search_fields = ("public_id", "payments__stripe_id", "lines__item__name")
    readonly_fields = (
        "public_id",
        "status",
        "version",
        "total_display",
        "refunded",
        "amount_refunded",
        "paid_at",
        "browser",
        "created_at",
        "refund_page",
        "dispute_status",
        "confirmation_sent_at",
    )
    filter_horizontal = ("taxes",)
    inlines = (OrderLineInline, PaymentInline, RefundInline, DisputeInline)

    def get_inlines(self, request: HttpRequest, obj: Any) -> list[Any]:
        """Disputes only where there are some (never on a cart's form)."""
        shown = list(super().get_inlines(request, obj))
        if obj is None or not obj.pk or not obj.disputes.exists():
            shown.remove(DisputeInline)
        return shown

    actions = ("refund_in_full", "cancel_open_payment", "clear_flag")
    date_hierarchy = "created_at"

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Carts only: an order being paid or paid is changed through the actions."""
        return _is_draft(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return (
            obj is not None
            and _is_draft(obj)
            and not obj.payments.exists()
            and super().has_delete_permission(request, obj)
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Order]:
        return with_pricing(super().get_queryset(request))

    @admin.display(description="Order", ordering="public_id")
    def short_id(self, order: Order) -> str:
        return str(order.public_id)[:8]

    @admin.display(description="Currency", ordering="currency")
    def currency_code(self, order: Order) -> str:
        return order.currency.upper()

    @admin.display(description="Total")
    def total_display(self, order: Order) -> str:
        if not order.pk:
            return "-"
        priced = price_order(order)
        return priced.display(priced.total)

    def get_urls(self) -> list[URLPattern]:
        refund = self.admin_site.admin_view(functools.partial(refund_view, self))
        return [
            path("<path:object_id>/refund/", refund, name="payments_order_refund"),
            *super().get_urls(),
        ]

    @admin.display(description="Refund")
    def refund_page(self, order: Order) -> str:
        if not order.pk or not states.is_paid(order):
            return "Only paid orders can be refunded."
        url = reverse("admin:payments_order_refund", args=[order.pk])
        return format_html('<a class="button" href="{}" id="refund-page">Refund an amount or lines…</a>', url)

    @admin.display(description="Refunded")
    def refunded(self, order: Order) -> str:
        return (
            format_money(order.amount_refunded, order.currency, minor=True) if order.amount_refunded else "-"
        )

    @admin.action(description="Refund selected paid orders in full (through each order's Stripe account)")
    def refund_in_full(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        for order in queryset:
            try:
                refund = refunds.refund_order(order)
            except ShopError as exc:
                self.message_user(
                    request,
                    f"{order}: {exc.message} A refund already recorded is sent again by the next reconciliation.",
                    messages.ERROR,
                )
                continue
            self.message_user(
                request,
                f"{order}: refund {refund.stripe_id} of {format_money(refund.amount, order.currency, minor=True)} "
                "asked; the order changes when Stripe confirms it.",
                messages.SUCCESS,
            )

    @admin.action(description="Cancel the open payment of selected orders (they become carts again)")
    def cancel_open_payment(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        for order in queryset:
            try:
                orders.change_order(order, may_change=True)
            except ShopError as exc:
                self.message_user(request, f"{order}: {exc.message}", messages.ERROR)
                continue
            self.message_user(request, f"{order}: open payments closed at Stripe; it is a cart again.")

    @admin.action(description="Clear the \u201cneeds attention\u201d flag of selected orders")
    def clear_flag(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        for order in queryset.filter(needs_attention=True):
            with states.locked(order.pk) as locked:
                locked.needs_attention = False
                locked.note(f"Flag cleared by {request.user.get_username()}.")
                locked.save(update_fields=["needs_attention", "attention_note", "updated_at"])
            self.message_user(request, f"{order}: flag cleared.")


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = ("stripe_id", "kind", "account", "amount_display", "status", "stripe_status", "created_at")
    list_filter = ("kind", "status", "account", "livemode")
    search_fields = ("stripe_id", "payment_intent_id", "order__public_id")
    readonly_fields = [f.name for f in Payment._meta.fields] + ["dashboard_link"]

    @admin.display(description="Amount")
    def amount_display(self, payment: Payment) -> str:
        return format_money(payment.amount, payment.currency, minor=True)

    @admin.display(description="Stripe dashboard")
    def dashboard_link(self, payment: Payment) -> str:
        return format_html(
            '<a href="{}" target="_blank" rel="noopener">{}</a>', payment.dashboard_url, payment.stripe_id
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(StripeEvent)
class StripeEventAdmin(admin.ModelAdmin):
    list_display = ("event_id", "account", "type", "status", "attempts", "received_at")
    list_filter = ("status", "account", "type")
    search_fields = ("event_id", "object_id")
    readonly_fields = [f.name for f in StripeEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(StripeObject)
class StripeObjectAdmin(admin.ModelAdmin):
    list_display = ("kind", "local_id", "account", "stripe_id", "created_at")
    list_filter = ("kind", "account")
    readonly_fields = [f.name for f in StripeObject._meta.fields]
