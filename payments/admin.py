"""Staff views of orders, payments, refunds and webhook events.

Only carts (drafts) can be edited. An order that is being paid, processing, paid or refunded is shown read-only:
its snapshot is what Stripe charges. Staff change such orders only through the actions: refund, cancel its open
payment (which makes it a cart again, as the shopper's "Change order" does), clear the flag.

Every amount is shown in its currency as Stripe shows it (`$24.50`, `€89.90`, `¥1,500`, `12.500 KWD`), long
Stripe ids are shortened with the whole id in a tooltip and on the record's page, and the tables fit a 1280 px
window (`payments/admin_display.py`, `static/shop_admin/admin.css`).
"""

from __future__ import annotations

import functools
import json
from decimal import Decimal
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from core.money import format_money, minor_unit_exponent
from payments import orders, promotions, refunds, states
from payments.admin_display import id_label, link, when, with_note
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
    dashboard_url,
)
from payments.orders import with_pricing
from payments.pricing import PricedOrder, price_order


@admin.register(Discount)
class DiscountAdmin(admin.ModelAdmin):
    list_display = ("name", "off", "code", "until", "uses", "is_active", "updated")
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
    list_display = ("name", "rate", "default_for", "is_active", "updated")
    list_filter = ("inclusive", "is_active", "applies_to_every_order", "currency")
    search_fields = ("name",)

    @admin.display(description="Rate", ordering="percentage")
    def rate(self, tax: Tax) -> str:
        return f"{_percent(tax.percentage)}% ({'included in prices' if tax.inclusive else 'added'})"

    @admin.display(description="Updated", ordering="updated_at")
    def updated(self, tax: Tax) -> SafeString | str:
        return when(tax.updated_at)

    @admin.display(description="Every order in", ordering="currency")
    def default_for(self, tax: Tax) -> str:
        return tax.currency.upper() if tax.applies_to_every_order else "-"


# ------------------------------------------------------------------------------------------------ orders


def _is_draft(obj: Any) -> bool:
    return obj is None or not obj.pk or states.is_editable(obj)


def _priced(order: Order) -> PricedOrder:
    """The order's pricing (its snapshot once frozen), computed once per order shown."""
    cached = order.__dict__.get("_admin_priced")
    if cached is None:
        cached = order.__dict__["_admin_priced"] = price_order(order)
    return cached


def _quantized(amount: Decimal, currency: str) -> Decimal:
    """`24.500` -> `24.50` for USD, `1500.000` -> `1500` for JPY: the decimals the currency has, when exact."""
    shown = amount.quantize(Decimal(1).scaleb(-minor_unit_exponent(currency)))
    return shown if shown == amount else amount


def _percent(value: Decimal) -> str:
    return format(Decimal(value).normalize(), "f")


def order_link(order: Order) -> SafeString:
    url = reverse("admin:payments_order_change", args=[order.pk])
    return link(url, str(order.public_id), shown=str(order.public_id)[:8])


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
        if _is_draft(obj):
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
        return _is_draft(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_draft(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _is_draft(obj) and super().has_delete_permission(request, obj)

    def get_formset(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        formset = super().get_formset(request, obj, **kwargs)
        if "unit_price" in formset.form.base_fields:
            currency = (obj.currency if obj is not None and obj.currency else "").upper()
            where = f"In the order's currency ({currency})" if currency else "In the order's currency"
            field = formset.form.base_fields["unit_price"]
            field.required = False
            field.help_text = f"{where}, as a decimal: 24.50, or 1500 for JPY, 12.500 for KWD. Empty: the item's current price."
        return formset


class PaymentInline(admin.TabularInline):
    model = Payment
    extra = 0
    can_delete = False
    fields = ("payment", "kind", "amount_display", "status_display", "created", "error")
    readonly_fields = fields

    @admin.display(description="Payment")
    def payment(self, payment: Payment) -> SafeString:
        return link(reverse("admin:payments_payment_change", args=[payment.pk]), payment.stripe_id)

    @admin.display(description="Amount")
    def amount_display(self, payment: Payment) -> SafeString:
        return payment_amount(payment)

    @admin.display(description="Status")
    def status_display(self, payment: Payment) -> SafeString:
        return payment_status(payment)

    @admin.display(description="Created")
    def created(self, payment: Payment) -> SafeString | str:
        return when(payment.created_at)

    @admin.display(description="Last error")
    def error(self, payment: Payment) -> str:
        return payment.last_error

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def payment_amount(payment: Payment) -> SafeString:
    """What the shop asked for, with what Stripe reported when it differs and what was refunded."""
    money = functools.partial(format_money, currency=payment.currency, minor=True)
    notes = []
    if payment.stripe_amount_total is not None and payment.stripe_amount_total != payment.amount:
        notes.append(f"Stripe's total {money(payment.stripe_amount_total)}")
    if payment.amount_received and payment.amount_received != payment.amount:
        notes.append(f"received {money(payment.amount_received)}")
    if payment.amount_refunded:
        notes.append(f"refunded {money(payment.amount_refunded)}")
    return with_note(money(payment.amount), *notes)


def payment_status(payment: Payment) -> SafeString:
    """The shop's status, and Stripe's own when it says more (`complete/paid`, `requires_payment_method`)."""
    stripe = payment.stripe_status if payment.stripe_status not in ("", payment.status) else ""
    return with_note(payment.get_status_display(), f"Stripe: {stripe}" if stripe else "")


class RefundInline(admin.TabularInline):
    model = Refund
    extra = 0
    can_delete = False
    fields = ("refund", "amount_display", "reason", "status", "asked", "error")
    readonly_fields = fields

    @admin.display(description="Refund")
    def refund(self, refund: Refund) -> SafeString:
        return refund_label(refund)

    @admin.display(description="Amount")
    def amount_display(self, refund: Refund) -> SafeString:
        return with_note(format_money(refund.amount, refund.currency, minor=True), refund.description)

    @admin.display(description="Asked")
    def asked(self, refund: Refund) -> SafeString:
        return with_note(when(refund.created_at), f"by {refund.requested_by}" if refund.requested_by else "")

    @admin.display(description="Last error")
    def error(self, refund: Refund) -> str:
        return refund.last_error

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def refund_label(refund: Refund) -> SafeString:
    """The refund's Stripe id, shortened, linked to its page in the admin ("not sent yet" before Stripe has it)."""
    url = reverse("admin:payments_refund_change", args=[refund.pk])
    if not refund.stripe_id:
        return format_html('<a href="{}">not sent yet</a>', url)
    return link(url, refund.stripe_id)


class AttentionFilter(admin.SimpleListFilter):
    """Orders flagged for staff (a payment that did not match, a second payment refunded, a held order)."""

    title = "needs attention"
    parameter_name = "attention"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("flagged", "Needs attention"), ("none", "Not flagged")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "flagged":
            return queryset.filter(needs_attention=True)
        if self.value() == "none":
            return queryset.filter(needs_attention=False)
        return queryset


FLAG = "\u26a0 Needs attention"
COPY_SCRIPT = (
    "var i=document.getElementById('customer-link');i.select();"
    "if(navigator.clipboard){navigator.clipboard.writeText(i.value)}else{document.execCommand('copy')}"
    "this.textContent='Copied';"
)


class OrderAdminForm(forms.ModelForm):
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        currency = cleaned.get("currency") or self.instance.currency
        if "taxes" in cleaned and currency:
            probe = Order(currency=currency)
            try:
                probe.clean_taxes(cleaned["taxes"])
            except ValidationError as exc:
                self.add_error(None, exc.message_dict["taxes"])
        return cleaned


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    form = OrderAdminForm
    list_display = ("order_id", "status_display", "lines_summary", "total_display", "attention", "created")
    list_filter = (AttentionFilter, "status", "currency", "dispute_status")
    search_fields = ("public_id", "payments__stripe_id", "lines__item__name")
    readonly_fields = (
        "attention_banner",
        "customer_link",
        "public_id",
        "status",
        "dispute_status",
        "amounts",
        "refund_page",
        "buy_now_item",
        "browser",
        "confirmation_sent_at",
        "version",
        "created_at",
        "paid_at",
    )
    filter_horizontal = ("taxes",)
    inlines = (OrderLineInline, PaymentInline, RefundInline, DisputeInline)
    actions = ("refund_in_full", "cancel_open_payment", "clear_flag")
    date_hierarchy = "created_at"

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        pricing = ("Discount and taxes", {"fields": ["discount", "taxes"]})
        if obj is None or not obj.pk:
            return [(None, {"fields": ["currency", "email"]}), pricing]
        top = ["customer_link", "public_id", "status", "currency", "amounts"]
        if obj.needs_attention:
            top.insert(0, "attention_banner")
        if obj.dispute_status:
            top.insert(top.index("status") + 1, "dispute_status")
        if states.is_paid(obj):
            top.append("refund_page")
        fieldsets: list[Any] = [
            (None, {"fields": top}),
            pricing,
            ("Customer", {"fields": ["email", "confirmation_sent_at", "browser", "buy_now_item"]}),
        ]
        if _is_draft(obj):
            fieldsets.append(("Needs attention", {"fields": ["needs_attention", "attention_note"]}))
        elif obj.attention_note and not obj.needs_attention:
            fieldsets.append(("Notes", {"fields": ["attention_note"]}))
        fieldsets.append(
            ("History", {"fields": ["created_at", "paid_at", "version"], "classes": ["collapse"]})
        )
        return fieldsets

    def get_inlines(self, request: HttpRequest, obj: Any) -> list[Any]:
        """Payments, refunds and disputes only where there are some (a new order has none of them)."""
        shown = list(super().get_inlines(request, obj))
        saved = obj is not None and obj.pk
        for inline, related in (
            (PaymentInline, "payments"),
            (RefundInline, "refunds"),
            (DisputeInline, "disputes"),
        ):
            if not saved or not getattr(obj, related).exists():
                shown.remove(inline)
        return shown

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

    def view_on_site(self, obj: Order) -> str:
        """ "View on site" opens the order's page in the shop itself (not the admin's redirect)."""
        return obj.shop_url

    # ------------------------------------------------------------------------------------ the list

    @admin.display(description="Order", ordering="public_id")
    def order_id(self, order: Order) -> SafeString:
        return id_label(str(order.public_id), str(order.public_id)[:8])

    @admin.display(description="Status", ordering="status")
    def status_display(self, order: Order) -> SafeString:
        return with_note(
            order.get_status_display(), order.get_dispute_status_display() if order.dispute_status else ""
        )

    @admin.display(description="Items")
    def lines_summary(self, order: Order) -> SafeString | str:
        names = ", ".join(f"{line.quantity} \u00d7 {line.name}" for line in _priced(order).lines)
        if len(names) <= 60:
            return names
        return format_html('<span title="{}">{}…</span>', names, names[:58].rstrip(" ,"))

    @admin.display(description="Total")
    def total_display(self, order: Order) -> SafeString | str:
        if not order.pk:
            return "-"
        priced = _priced(order)
        refunded = f"refunded {priced.display(order.amount_refunded)}" if order.amount_refunded else ""
        return with_note(priced.display(priced.total), refunded)

    @admin.display(description="Attention", ordering="-needs_attention", empty_value="")
    def attention(self, order: Order) -> SafeString | str:
        """A word for flagged orders only (their latest note as its tooltip); nothing for the others."""
        if not order.needs_attention:
            return ""
        latest = order.attention_note.strip().splitlines()[-1] if order.attention_note.strip() else ""
        return format_html('<span class="shop-flag" title="{}">{}</span>', latest, FLAG)

    @admin.display(description="Created", ordering="created_at")
    def created(self, order: Order) -> SafeString | str:
        return when(order.created_at)

    # ------------------------------------------------------------------------------------ the order's page

    @admin.display(description="Needs attention")
    def attention_banner(self, order: Order) -> SafeString:
        return format_html(
            '<div class="shop-attention" id="attention-note"><strong class="shop-flag">{}</strong>'
            '<div class="shop-note-text">{}</div>'
            '<p class="shop-help">Once handled, clear the flag with the action "Clear the \u201cneeds attention\u201d '
            'flag" in the list of orders.</p></div>',
            FLAG,
            order.attention_note or "No note.",
        )

    @admin.display(description="Customer link")
    def customer_link(self, order: Order) -> SafeString | str:
        if not order.pk:
            return "-"
        url = order.shop_url
        if order.browser:
            who = (
                "The order's page in the shop. It opens in the browser of the shopper who made the order "
                "(and for staff), not in others."
            )
        else:
            who = (
                "Send this link to the customer: anyone who has it can see and pay the order, and whoever pays "
                "it first owns it."
            )
        return format_html(
            '<div class="shop-copy"><input type="text" readonly id="customer-link" value="{}" '
            'aria-label="Customer link" onfocus="this.select()">'
            '<button type="button" class="button" id="copy-customer-link" onclick="{}">Copy</button>'
            '<a href="{}" target="_blank" rel="noopener">Open</a></div><p class="shop-help">{}</p>',
            url,
            COPY_SCRIPT,
            url,
            who,
        )

    @admin.display(description="Amounts")
    def amounts(self, order: Order) -> SafeString | str:
        """Subtotal, discount, each tax and the total (the frozen snapshot once paying started), and refunds."""
        if not order.pk:
            return "-"
        priced = _priced(order)
        rows: list[tuple[str, str, str]] = [("", "Subtotal", priced.display(priced.subtotal))]
        if priced.discount is not None:
            code = f" (code {priced.discount.code})" if priced.discount.code else ""
            rows.append(
                (
                    "",
                    f"Discount: {priced.discount.name}{code}",
                    f"\u2212{priced.display(priced.discount_total)}",
                )
            )
        for tax in priced.taxes:
            kind = "included" if tax.tax.inclusive else "added"
            rows.append(
                ("", f"{tax.tax.name} {_percent(tax.tax.percentage)}% ({kind})", priced.display(tax.amount))
            )
        rows.append(("total", "Total", priced.display(priced.total)))
        if order.amount_refunded:
            rows.append(("", "Refunded", f"\u2212{priced.display(order.amount_refunded)}"))
        body = format_html_join(
            "",
            '<tr class="{}"><th scope="row">{}</th><td>{}</td></tr>',
            ((c, label, v) for c, label, v in rows),
        )
        return format_html('<table class="shop-amounts" id="order-amounts"><tbody>{}</tbody></table>', body)

    @admin.display(description="Refund")
    def refund_page(self, order: Order) -> str:
        if not order.pk or not states.is_paid(order):
            return "Only paid orders can be refunded."
        url = reverse("admin:payments_order_refund", args=[order.pk])
        return format_html('<a class="button" href="{}" id="refund-page">Refund an amount or lines…</a>', url)

    def get_urls(self) -> list[URLPattern]:
        refund = self.admin_site.admin_view(functools.partial(refund_view, self))
        return [
            path("<path:object_id>/refund/", refund, name="payments_order_refund"),
            *super().get_urls(),
        ]

    # ------------------------------------------------------------------------------------ actions

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


# ------------------------------------------------------------------------------------------------ payments


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = ("payment_id", "order_link", "amount_display", "status_display", "created")
    list_filter = ("kind", "status", "account", "livemode")
    search_fields = ("stripe_id", "payment_intent_id", "order__public_id")
    list_select_related = ("order",)
    fieldsets = (
        (None, {"fields": ["dashboard_link", "kind", "order_page", "account", "livemode", "status_display"]}),
        ("Amounts", {"fields": ["amount_display", "stripe_total", "received", "refunded"]}),
        (
            "At Stripe",
            {
                "fields": [
                    "payment_intent_id",
                    "order_version",
                    "url",
                    "idempotency_key",
                    "last_error",
                    "refunds_to_check",
                ]
            },
        ),
        ("Dates", {"fields": ["created_at", "updated_at", "succeeded_at", "expires_at", "checked_at"]}),
    )
    readonly_fields = [f.name for f in Payment._meta.fields] + [
        "dashboard_link",
        "order_page",
        "status_display",
        "amount_display",
        "stripe_total",
        "received",
        "refunded",
        "mode",
        "to_check",
    ]

    def _money(self, payment: Payment, amount: int | None) -> str:
        return "-" if amount is None else format_money(amount, payment.currency, minor=True)

    @admin.display(description="Payment", ordering="stripe_id")
    def payment_id(self, payment: Payment) -> SafeString:
        return with_note(id_label(payment.stripe_id), payment.get_kind_display())

    @admin.display(description="Order", ordering="order__created_at")
    def order_link(self, payment: Payment) -> SafeString:
        return order_link(payment.order)

    @admin.display(description="Order")
    def order_page(self, payment: Payment) -> SafeString:
        return format_html("{} ({})", order_link(payment.order), payment.order.get_status_display())

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, payment: Payment) -> SafeString:
        return payment_amount(payment)

    @admin.display(description="Status", ordering="status")
    def status_display(self, payment: Payment) -> SafeString:
        return payment_status(payment)

    @admin.display(description="Stripe's total (Checkout)")
    def stripe_total(self, payment: Payment) -> str:
        return self._money(payment, payment.stripe_amount_total)

    @admin.display(description="Received")
    def received(self, payment: Payment) -> str:
        return self._money(payment, payment.amount_received)

    @admin.display(description="Refunded")
    def refunded(self, payment: Payment) -> str:
        return self._money(payment, payment.amount_refunded)

    @admin.display(description="Created", ordering="created_at")
    def created(self, payment: Payment) -> SafeString | str:
        return when(payment.created_at)

    @admin.display(description="Stripe id (dashboard)")
    def dashboard_link(self, payment: Payment) -> SafeString:
        return link(payment.dashboard_url, payment.stripe_id, external=True, shown=payment.stripe_id)

    @admin.display(description="Mode")
    def mode(self, payment: Payment) -> str:
        return "Live" if payment.livemode else "Test"

    @admin.display(description="Refunds to look up at Stripe")
    def to_check(self, payment: Payment) -> str:
        if not payment.refunds_to_check:
            return "No"
        return "Yes: Stripe reported a refunded amount the shop's refunds do not explain; they are looked up."

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a record of Stripe's object: nothing to edit


@admin.register(Refund)
class RefundAdmin(admin.ModelAdmin):
    """Every refund, the shop's and those made in Stripe's dashboard: a record, changed only by Stripe's news."""

    list_display = ("refund_id", "order_link", "amount_display", "reason", "status", "asked")
    list_filter = ("status", "reason", "currency")
    search_fields = ("stripe_id", "order__public_id", "payment__stripe_id", "payment__payment_intent_id")
    list_select_related = ("order", "payment")
    date_hierarchy = "created_at"
    fieldsets = (
        (
            None,
            {
                "fields": [
                    "dashboard_link",
                    "order_page",
                    "payment_page",
                    "amount_display",
                    "reason",
                    "status",
                ]
            },
        ),
        ("What and who", {"fields": ["description", "lines", "requested_by", "last_error"]}),
        ("At Stripe", {"fields": ["idempotency_key", "stripe_created", "created_at", "updated_at"]}),
    )
    readonly_fields = [f.name for f in Refund._meta.fields] + [
        "dashboard_link",
        "order_page",
        "payment_page",
        "amount_display",
    ]

    @admin.display(description="Refund", ordering="stripe_id")
    def refund_id(self, refund: Refund) -> SafeString | str:
        return id_label(refund.stripe_id) if refund.stripe_id else "not sent yet"

    @admin.display(description="Order", ordering="order__created_at")
    def order_link(self, refund: Refund) -> SafeString:
        return order_link(refund.order)

    @admin.display(description="Order")
    def order_page(self, refund: Refund) -> SafeString:
        return format_html("{} ({})", order_link(refund.order), refund.order.get_status_display())

    @admin.display(description="Payment")
    def payment_page(self, refund: Refund) -> SafeString:
        url = reverse("admin:payments_payment_change", args=[refund.payment_id])
        return link(url, refund.payment.stripe_id, shown=refund.payment.stripe_id)

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, refund: Refund) -> SafeString:
        return with_note(format_money(refund.amount, refund.currency, minor=True), refund.description)

    @admin.display(description="Asked", ordering="created_at")
    def asked(self, refund: Refund) -> SafeString:
        return with_note(when(refund.created_at), f"by {refund.requested_by}" if refund.requested_by else "")

    @admin.display(description="Stripe id (dashboard)")
    def dashboard_link(self, refund: Refund) -> SafeString | str:
        if not refund.stripe_id:
            return "Not sent to Stripe yet (reconciliation sends it)."
        url = dashboard_url(refund.payment.livemode, f"refunds/{refund.stripe_id}")
        return link(url, refund.stripe_id, external=True, shown=refund.stripe_id)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# ------------------------------------------------------------------------------------------------ Stripe's records


@admin.register(StripeEvent)
class StripeEventAdmin(admin.ModelAdmin):
    list_display = ("event", "type_display", "account_code", "status_display", "received")
    list_filter = ("status", "account", "type")
    search_fields = ("event_id", "object_id")
    fieldsets = (
        (
            None,
            {"fields": ["dashboard_link", "type", "account", "mode", "object_id", "status", "attempts"]},
        ),
        ("Processing", {"fields": ["last_error", "stripe_created", "received_at", "processed_at"]}),
        ("Payload", {"fields": ["payload_display"]}),
    )
    readonly_fields = [f.name for f in StripeEvent._meta.fields] + [
        "dashboard_link",
        "payload_display",
        "mode",
    ]

    @admin.display(description="Event", ordering="event_id")
    def event(self, event: StripeEvent) -> SafeString:
        return id_label(event.event_id)

    @admin.display(description="Type", ordering="type")
    def type_display(self, event: StripeEvent) -> SafeString:
        """`charge.dispute.funds_withdrawn` may break after each dot on a narrow window."""
        return format_html_join(mark_safe(".<wbr>"), "{}", ((part,) for part in event.type.split(".")))

    @admin.display(description="Account", ordering="account")
    def account_code(self, event: StripeEvent) -> str:
        return event.account.upper()

    @admin.display(description="Status", ordering="status")
    def status_display(self, event: StripeEvent) -> SafeString:
        return with_note(
            event.get_status_display(), f"{event.attempts} attempts" if event.attempts > 1 else ""
        )

    @admin.display(description="Received", ordering="received_at")
    def received(self, event: StripeEvent) -> SafeString | str:
        return when(event.received_at)

    @admin.display(description="Event id (dashboard)")
    def dashboard_link(self, event: StripeEvent) -> SafeString:
        return link(event.dashboard_url, event.event_id, external=True, shown=event.event_id)

    @admin.display(description="Payload")
    def payload_display(self, event: StripeEvent) -> SafeString:
        return format_html(
            '<pre class="shop-payload">{}</pre>', json.dumps(event.payload, indent=2, sort_keys=True)
        )

    @admin.display(description="Mode")
    def mode(self, event: StripeEvent) -> str:
        return "Live" if event.livemode else "Test"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a record of what Stripe sent: nothing to edit


@admin.register(StripeObject)
class StripeObjectAdmin(admin.ModelAdmin):
    """The coupons and tax rates the shop created at Stripe (made by Checkout, never by hand)."""

    list_display = ("kind", "local_id", "account", "stripe_id", "created")
    list_filter = ("kind", "account")
    readonly_fields = [f.name for f in StripeObject._meta.fields]

    @admin.display(description="Created", ordering="created_at")
    def created(self, obj: StripeObject) -> SafeString | str:
        return when(obj.created_at)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
