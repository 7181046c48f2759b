"""Disputes, read-only: on the order's page and in a list whose first column opens the dispute in Stripe's
dashboard, where staff answer it."""

from __future__ import annotations

from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html

from core.admin_display import link, when
from core.money import format_money
from payments import states
from payments.admin.base import ReadOnlyAdmin, ReadOnlyInline, order_link
from payments.models import Dispute


class DisputeInline(ReadOnlyInline):
    model = Dispute
    fields = ("dashboard", "amount_display", "reason", "status", "due", "funds")
    readonly_fields = fields

    @admin.display(description="Dispute")
    def dashboard(self, dispute: Dispute) -> str:
        return dashboard_link(dispute)

    @admin.display(description="Amount")
    def amount_display(self, dispute: Dispute) -> str:
        return format_money(dispute.amount, dispute.currency, minor=True)

    @admin.display(description="Evidence due by")
    def due(self, dispute: Dispute) -> str:
        return due_display(dispute)

    @admin.display(description="Funds out / back")
    def funds(self, dispute: Dispute) -> str:
        return funds_display(dispute)


def dashboard_link(dispute: Dispute) -> str:
    """The dispute's page in Stripe's dashboard (where staff answer it), its id shortened."""
    return link(dispute.dashboard_url, dispute.stripe_id, external=True)


def due_display(dispute: Dispute) -> str:
    """When the evidence is due, while the dispute is open; past due in red."""
    if dispute.evidence_due_by is None or dispute.status in states.DISPUTE_FINAL:
        return "-"
    shown = when(dispute.evidence_due_by)
    if dispute.status in states.DISPUTE_OPEN and dispute.evidence_due_by < timezone.now():
        return format_html('<strong class="errornote">{} (past due)</strong>', shown)
    return shown


def funds_display(dispute: Dispute) -> str:
    out = format_money(dispute.funds_withdrawn, dispute.currency, minor=True)
    back = format_money(dispute.funds_reinstated, dispute.currency, minor=True)
    return f"{out} / {back}"


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdmin):
    list_display = (
        "stripe_link",
        "order_link",
        "amount_display",
        "reason",
        "status",
        "due",
        "funds",
    )
    list_filter = ("status", "reason", "account")
    search_fields = ("stripe_id", "charge_id", "order__public_id", "payment__payment_intent_id")
    readonly_fields = [f.name for f in Dispute._meta.fields] + ["stripe_link"]
    list_select_related = ("order",)
    list_display_links = None  # the first column links to Stripe's dashboard, where disputes are answered
    date_hierarchy = "created_at"

    @admin.display(description="Dispute (Stripe)", ordering="stripe_id")
    def stripe_link(self, dispute: Dispute) -> str:
        return dashboard_link(dispute)

    @admin.display(description="Order", ordering="order__created_at")
    def order_link(self, dispute: Dispute) -> str:
        return order_link(dispute.order)

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, dispute: Dispute) -> str:
        return format_money(dispute.amount, dispute.currency, minor=True)

    @admin.display(description="Funds out / back")
    def funds(self, dispute: Dispute) -> str:
        return funds_display(dispute)

    @admin.display(description="Evidence due", ordering="evidence_due_by")
    def due(self, dispute: Dispute) -> str:
        return due_display(dispute)
