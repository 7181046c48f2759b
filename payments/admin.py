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
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from core.money import format_money, minor_unit_exponent
from core.redact import redact_json
from payments import disputes, orders, promotions, refunds, states
from payments.admin_display import currency_code, id_label, link, when, with_note
from payments.admin_merchant import DisputeInline, object_pk, refund_view
from payments.admin_promotions import PromotionRefusalInline
from payments.bulkhead import staff_waits_on_stripe
from payments.errors import ShopError
from payments.models import (
    Discount,
    FollowUp,
    Order,
    OrderLine,
    OrderStatus,
    Payment,
    Refund,
    StaffAction,
    StrayPayment,
    StripeEvent,
    StripeObject,
    Tax,
    dashboard_url,
)
from payments.orders import with_pricing
from payments.pricing import PricedOrder, price_order


class ReadOnlyAdmin(admin.ModelAdmin):
    """A record nobody edits or deletes in the admin, superusers included: what Stripe reported, the ledger of
    payments, refunds, disputes and events. Staff act through the order's actions instead."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
        paid = Q(orders__status__in=promotions.USED)
        held = Q(orders__status=OrderStatus.PROCESSING) | Q(  # as promotions.holders counts them
            orders__status=OrderStatus.AWAITING_PAYMENT, orders__payments__status__in=promotions.LIVE
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


class PaymentInline(ReadOnlyInline):
    model = Payment
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


class RefundInline(ReadOnlyInline):
    model = Refund
    fields = ("refund", "amount_display", "why", "status", "asked", "error")
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

    @admin.display(description="Why")
    def why(self, refund: Refund) -> SafeString:
        return with_note(refund.get_reason_display(), refund.note)

    @admin.display(description="Last error")
    def error(self, refund: Refund) -> str:
        return refund.last_error


class StaffActionInline(ReadOnlyInline):
    """What staff did to the order, with who and when."""

    model = StaffAction
    fields = ("at", "who", "kind", "note")
    readonly_fields = fields
    verbose_name = "staff action"


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
        "attention_note",
        "sweep_problem",
        "currency_shown",
    )
    filter_horizontal = ("taxes",)
    inlines = (OrderLineInline, PaymentInline, RefundInline, DisputeInline, StaffActionInline)
    actions = ("refund_in_full", "cancel_open_payment", "mark_reviewed")
    date_hierarchy = "created_at"

    # What staff may change, and only on a cart (`states.EDITABLE`): the rest is the shop's to write.
    EDITABLE_FIELDS = ("currency", "email", "discount")

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> Any:
        pricing = ("Discount and taxes", {"fields": ["discount", "taxes"]})
        if obj is None or not obj.pk:
            return [(None, {"fields": ["currency", "email"]}), pricing]
        top = ["customer_link", "public_id", "status", "currency_shown", "amounts"]
        if obj.needs_attention:
            top.insert(0, "attention_banner")
        if obj.sweep_failed_at:
            top.insert(0, "sweep_problem")
        if obj.dispute_status:
            top.insert(top.index("status") + 1, "dispute_status")
        if states.is_paid(obj):
            top.append("refund_page")
        fieldsets: list[Any] = [
            (None, {"fields": top}),
            pricing,
            ("Customer", {"fields": ["email", "confirmation_sent_at", "browser", "buy_now_item"]}),
        ]
        if obj.attention_note and not obj.needs_attention:
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
            (StaffActionInline, "staff_actions"),
        ):
            if not saved or not getattr(obj, related).exists():
                shown.remove(inline)
        return shown

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Carts only: an order being paid or paid is changed through the actions."""
        return _is_draft(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """A cart that never had a payment object: anything else is part of the books."""
        return (
            obj is not None
            and _is_draft(obj)
            and not obj.payments.exists()
            and super().has_delete_permission(request, obj)
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Order]:
        return with_pricing(super().get_queryset(request))

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        """A save or a delete reads the order under its row lock (the admin's view runs in a transaction),
        so the permission check and the save see the same order: one frozen for payment meanwhile is no
        longer a cart, and nothing is saved."""
        if request.method != "POST":
            return super().get_object(request, object_id, from_field)
        try:
            pk = object_pk(str(object_id))
        except Http404:
            return None
        with states.busy_as_error():
            return Order.objects.select_for_update(of=("self",)).filter(pk=pk).first()

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> Any:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except PermissionDenied:
            try:
                order = Order.objects.filter(pk=object_pk(str(object_id or ""))).first()
            except Http404:
                order = None
            if request.method != "POST" or order is None or states.is_editable(order):
                raise
            self.message_user(
                request,
                f"Nothing was saved: this order is {order.get_status_display().lower()} now (the customer "
                "started paying it while you edited). Use the actions to change it.",
                messages.ERROR,
            )
            return HttpResponseRedirect(reverse("admin:payments_order_change", args=[order.pk]))
        except ShopError as exc:  # the order stayed locked by a payment for longer than we wait
            self.message_user(request, f"Nothing was saved: {exc.message}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def save_model(self, request: HttpRequest, obj: Order, form: Any, change: bool) -> None:
        """A new order is a cart staff make for a customer; an existing cart saves only the fields staff may
        change (under the lock `get_object` took), never its state, snapshot or version."""
        if not change:
            super().save_model(request, obj, form, change)
            return
        changed = [name for name in self.EDITABLE_FIELDS if name in form.changed_data]
        obj.save(update_fields=[*changed, "updated_at"])

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        changed = [*form.changed_data, *(f.prefix for f in formsets if f.has_changed())]
        if change and changed:
            StaffAction.objects.create(
                order=form.instance,
                kind=StaffAction.Kind.SAVED,
                who=request.user.get_username(),
                note=f"Changed: {', '.join(changed)}.",
            )

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

    @admin.display(description="Currency")
    def currency_shown(self, order: Order) -> str:
        return currency_code(order.currency)

    def formfield_for_dbfield(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        """A new order's currency: one the shop has a Stripe account for, written as staff read it (USD)."""
        if db_field.name == "currency":
            choices = [(code.lower(), code) for code in settings.CURRENCIES]
            return forms.ChoiceField(choices=choices, label="Currency", help_text="Every line is in it.")
        return super().formfield_for_dbfield(db_field, request, **kwargs)

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

    @admin.action(description="Refund selected paid orders in full (through each order's Stripe account)…")
    @staff_waits_on_stripe
    def refund_in_full(self, request: HttpRequest, queryset: QuerySet[Order]) -> TemplateResponse | None:
        """First a page that lists what would be refunded (each order, the amount per currency, the totals)
        and asks why; the refunds are made only once that page is confirmed."""
        form = BulkRefundForm(request.POST if "confirm" in request.POST else None)
        rows = bulk_refund_rows(queryset)
        if form.is_bound and form.is_valid():
            who = request.user.get_username()
            for order, left, why in rows:
                if not left:
                    self.message_user(request, f"{order}: {why}", messages.ERROR)
                    continue
                try:
                    refund = refunds.refund_order(
                        order,
                        left,
                        requested_by=who,
                        reason=form.cleaned_data["reason"],
                        note=form.cleaned_data["note"],
                    )
                except ShopError as exc:
                    self.message_user(request, f"{order}: {exc.message}", messages.ERROR)
                    continue
                self.message_user(
                    request,
                    f"{order}: refund {refund.stripe_id} of {format_money(refund.amount, order.currency, minor=True)} "
                    "asked; the order changes when Stripe confirms it.",
                    messages.SUCCESS,
                )
            return None
        totals: dict[str, int] = {}
        for order, left, _ in rows:
            if left:
                totals[order.currency] = totals.get(order.currency, 0) + left
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Refund the selected orders in full?",
            "rows": rows,
            "totals": sorted(totals.items()),
            "form": form,
            "selected": queryset.values_list("pk", flat=True),
            "action": "refund_in_full",
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/payments/order/bulk_refund.html", context)

    @admin.action(description="Cancel the open payment of selected orders (they become carts again)")
    @staff_waits_on_stripe
    def cancel_open_payment(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        for order in queryset:
            try:
                orders.change_order(order, may_change=True)
            except ShopError as exc:
                self.message_user(request, f"{order}: {exc.message}", messages.ERROR)
                continue
            StaffAction.objects.create(
                order=order, kind=StaffAction.Kind.CLOSE, who=request.user.get_username()
            )
            self.message_user(request, f"{order}: open payments closed at Stripe; it is a cart again.")

    @admin.action(description="Mark selected flagged orders reviewed (with a note)…")
    def mark_reviewed(self, request: HttpRequest, queryset: QuerySet[Order]) -> TemplateResponse | None:
        """Clear the "needs attention" flag, with a note saying what was done, recorded with who and when."""
        flagged = list(queryset.filter(needs_attention=True))
        form = ReviewForm(request.POST if "confirm" in request.POST else None)
        if form.is_bound and form.is_valid():
            for order in flagged:
                states.mark_reviewed(order.pk, request.user.get_username(), form.cleaned_data["note"])
                self.message_user(request, f"{order}: marked reviewed.")
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Mark the selected orders reviewed",
            "orders": flagged,
            "form": form,
            "selected": queryset.values_list("pk", flat=True),
            "action": "mark_reviewed",
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/payments/order/mark_reviewed.html", context)

    @admin.display(description="Reconciliation")
    def sweep_problem(self, order: Order) -> SafeString | str:
        if not order.sweep_failed_at:
            return "-"
        return format_html(
            '<div class="shop-attention" id="sweep-problem"><strong class="shop-flag">Reconciliation failed on '
            'this order ({})</strong><div class="shop-note-text">{}</div>'
            '<p class="shop-help">The next run tries again; the order stays as it was.</p></div>',
            when(order.sweep_failed_at),
            order.sweep_error,
        )


class BulkRefundForm(forms.Form):
    reason = forms.ChoiceField(label="Why", choices=[(r.value, r.label) for r in refunds.STAFF_REASONS])
    note = forms.CharField(label="Note", required=False, max_length=500)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("reason") == Refund.Reason.REQUESTED_BY_STAFF and not (data.get("note") or "").strip():
            self.add_error("note", "Say why the money is given back.")
        return data


class ReviewForm(forms.Form):
    note = forms.CharField(
        label="What was done", max_length=2000, widget=forms.Textarea(attrs={"rows": 3, "cols": 80})
    )


def bulk_refund_rows(queryset: QuerySet[Order]) -> list[tuple[Order, int, str]]:
    """Each selected order with what is left to refund on it (0, and why, when it cannot be refunded)."""
    rows = []
    for order in queryset.order_by("currency", "created_at"):
        try:
            payment = refunds.refundable_payment(order)
            disputes.check_refundable(payment)
            left = refunds.left_to_refund(payment)
            rows.append((order, left, "" if left else "Nothing left to refund on this order."))
        except ShopError as exc:
            rows.append((order, 0, exc.message))
    return rows


# ------------------------------------------------------------------------------------------------ payments


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    list_display = ("payment_id", "order_link", "amount_display", "status_display", "created")
    list_filter = ("kind", "status", "account", "livemode")
    search_fields = ("stripe_id", "payment_intent_id", "order__public_id")
    list_select_related = ("order",)
    fieldsets = (
        (
            None,
            {
                "fields": [
                    "dashboard_link",
                    "kind",
                    "order_page",
                    "account_shown",
                    "livemode",
                    "status_display",
                ]
            },
        ),
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
        "account_shown",
    ]

    @admin.display(description="Account")
    def account_shown(self, payment: Payment) -> str:
        return currency_code(payment.account)

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


@admin.register(Refund)
class RefundAdmin(ReadOnlyAdmin):
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


# ------------------------------------------------------------------------------------------------ Stripe's records


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
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
            '<pre class="shop-payload">{}</pre>',
            json.dumps(redact_json(event.payload), indent=2, sort_keys=True),
        )

    @admin.display(description="Mode")
    def mode(self, event: StripeEvent) -> str:
        return "Live" if event.livemode else "Test"


@admin.register(StripeObject)
class StripeObjectAdmin(ReadOnlyAdmin):
    """The coupons and tax rates the shop created at Stripe (made by Checkout, never by hand)."""

    list_display = ("kind", "local_id", "account_shown", "stripe_id", "created")
    list_filter = ("kind", "account")
    readonly_fields = [f.name for f in StripeObject._meta.fields]

    @admin.display(description="Account", ordering="account")
    def account_shown(self, obj: StripeObject) -> str:
        return currency_code(obj.account)

    @admin.display(description="Created", ordering="created_at")
    def created(self, obj: StripeObject) -> SafeString | str:
        return when(obj.created_at)


@admin.register(StrayPayment)
class StrayPaymentAdmin(ReadOnlyAdmin):
    """Payments Stripe took in one of the shop's accounts that name no order of the shop (found by
    reconciliation): look at each in Stripe's dashboard, refund or explain it there, then mark it reviewed."""

    list_display = ("payment_id", "account_code", "amount_display", "stripe_status", "found", "reviewed")
    list_filter = ("account", "kind", ("reviewed_at", admin.EmptyFieldListFilter))
    search_fields = ("stripe_id",)
    actions = ("mark_reviewed",)
    readonly_fields = [f.name for f in StrayPayment._meta.fields] + ["dashboard_link", "amount_display"]

    @admin.display(description="Payment", ordering="stripe_id")
    def payment_id(self, stray: StrayPayment) -> SafeString:
        return with_note(id_label(stray.stripe_id), stray.get_kind_display())

    @admin.display(description="Account", ordering="account")
    def account_code(self, stray: StrayPayment) -> str:
        return stray.account.upper()

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, stray: StrayPayment) -> str:
        return format_money(stray.amount, stray.currency, minor=True)

    @admin.display(description="Found", ordering="found_at")
    def found(self, stray: StrayPayment) -> SafeString | str:
        return when(stray.found_at)

    @admin.display(description="Reviewed", ordering="reviewed_at")
    def reviewed(self, stray: StrayPayment) -> SafeString | str:
        if not stray.reviewed_at:
            return "-"
        return with_note(f"by {stray.reviewed_by}", stray.review_note)

    @admin.display(description="Stripe id (dashboard)")
    def dashboard_link(self, stray: StrayPayment) -> SafeString:
        return link(stray.dashboard_url, stray.stripe_id, external=True, shown=stray.stripe_id)

    @admin.action(description="Mark selected stray payments reviewed (with a note)…")
    def mark_reviewed(
        self, request: HttpRequest, queryset: QuerySet[StrayPayment]
    ) -> TemplateResponse | None:
        form = ReviewForm(request.POST if "confirm" in request.POST else None)
        if form.is_bound and form.is_valid():
            count = queryset.filter(reviewed_at__isnull=True).update(
                reviewed_by=request.user.get_username(),
                reviewed_at=timezone.now(),
                review_note=form.cleaned_data["note"],
            )
            self.message_user(request, f"{count} stray payments marked reviewed.")
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Mark the selected stray payments reviewed",
            "orders": list(queryset),
            "form": form,
            "selected": queryset.values_list("pk", flat=True),
            "action": "mark_reviewed",
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/payments/order/mark_reviewed.html", context)


@admin.register(FollowUp)
class FollowUpAdmin(ReadOnlyAdmin):
    """The work after a payment's news, done by the task workers: what is queued, running, done or failing,
    with its attempts, last error and result (e.g. the mail relay's answer)."""

    list_display = ("kind", "order_ref", "status", "attempts", "error", "next_run", "finished")
    list_filter = ("status", "kind")
    search_fields = ("key", "order__public_id")
    list_select_related = ("order",)
    readonly_fields = [f.name for f in FollowUp._meta.fields]

    @admin.display(description="Order")
    def order_ref(self, row: FollowUp) -> SafeString | str:
        return order_link(row.order) if row.order is not None else "-"

    @admin.display(description="Last error")
    def error(self, row: FollowUp) -> str:
        return row.last_error[:120]

    @admin.display(description="Runs after", ordering="run_after")
    def next_run(self, row: FollowUp) -> SafeString | str:
        return when(row.run_after) if row.status == FollowUp.Status.QUEUED else "-"

    @admin.display(description="Done", ordering="done_at")
    def finished(self, row: FollowUp) -> SafeString | str:
        return with_note(when(row.done_at), row.result[:80]) if row.done_at else "-"
