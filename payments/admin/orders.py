"""Orders in the admin.

Only carts (drafts) can be edited. An order that is being paid, processing, paid or refunded is shown read-only:
its snapshot is what Stripe charges. Staff change such orders only through the actions: refund, cancel its open
payment (which makes it a cart again, as the shopper's "Change order" does), clear the flag.

Every amount is shown in its currency as Stripe shows it (`$24.50`, `€89.90`, `¥1,500`, `12.500 KWD`), long
Stripe ids are shortened with the whole id in a tooltip and on the record's page, and the tables fit a 1280 px
window (`core/admin_display.py`, `static/shop_admin/admin.css`).
"""

from __future__ import annotations

import functools
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from core.admin_display import currency_code, id_label, when, with_note
from core.money import plain_percent
from payments import locks, refunds, states
from payments.admin.base import object_pk
from payments.admin.disputes import DisputeInline
from payments.admin.order_actions import OrderActions, StaffActionInline
from payments.admin.order_lines import OrderLineInline, is_draft
from payments.admin.payments import PaymentInline, RefundInline
from payments.admin.refund_page import refund_view
from payments.errors import ShopError
from payments.models import Order, StaffAction
from payments.orders import with_pricing
from payments.pricing import PricedOrder, price_order


def _priced(order: Order) -> PricedOrder:
    """The order's pricing (its snapshot once frozen), computed once per order shown."""
    cached = order.__dict__.get("_admin_priced")
    if cached is None:
        cached = order.__dict__["_admin_priced"] = price_order(order)
    return cached


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
class OrderAdmin(OrderActions):
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
        return is_draft(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """A cart that never had a payment object: anything else is part of the books."""
        return (
            obj is not None
            and is_draft(obj)
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
        return locks.lock_order(pk)

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
                (
                    "",
                    f"{tax.tax.name} {plain_percent(tax.tax.percentage)}% ({kind})",
                    priced.display(tax.amount),
                )
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
            return refunds.NOT_PAID
        url = reverse("admin:payments_order_refund", args=[order.pk])
        return format_html('<a class="button" href="{}" id="refund-page">Refund an amount or lines…</a>', url)

    def get_urls(self) -> list[URLPattern]:
        refund = self.admin_site.admin_view(functools.partial(refund_view, self))
        return [
            path("<path:object_id>/refund/", refund, name="payments_order_refund"),
            *super().get_urls(),
        ]

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
