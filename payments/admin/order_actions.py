"""What staff do to orders from their list: refund in full (after a confirmation page), cancel the open payment
(the order becomes a cart again), mark flagged orders reviewed; and the record of what staff did."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse

from core.money import format_money
from payments import orders, refunds, states
from payments.admin.base import ReadOnlyInline, ReviewForm
from payments.admin.refund_page import ask_for_note, refund_left
from payments.bulkhead import staff_waits_on_stripe
from payments.errors import ShopError
from payments.models import Order, StaffAction


class StaffActionInline(ReadOnlyInline):
    """What staff did to the order, with who and when."""

    model = StaffAction
    fields = ("at", "who", "kind", "note")
    readonly_fields = fields
    verbose_name = "staff action"


class OrderActions(admin.ModelAdmin):
    """The order admin's actions (`OrderAdmin.actions` names them)."""

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


class BulkRefundForm(forms.Form):
    reason = forms.ChoiceField(label="Why", choices=[(r.value, r.label) for r in refunds.STAFF_REASONS])
    note = forms.CharField(label="Note", required=False, max_length=500)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        ask_for_note(self, data)
        return data


def bulk_refund_rows(queryset: QuerySet[Order]) -> list[tuple[Order, int, str]]:
    """Each selected order with what is left to refund on it (0, and why, when it cannot be refunded)."""
    rows = []
    for order in queryset.order_by("currency", "created_at"):
        left, blocked = refund_left(order)
        rows.append((order, left, blocked or ("" if left else refunds.NOTHING_LEFT)))
    return rows
