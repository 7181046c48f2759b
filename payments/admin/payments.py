"""Payments and refunds: the ledger of what Stripe was asked for and reported, read-only, shown on the order's
page (inlines) and in lists of their own."""

from __future__ import annotations

import functools

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from core.admin_display import currency_code, id_label, link, when, with_note
from core.money import format_money
from payments.admin.base import ReadOnlyAdmin, ReadOnlyInline, order_link
from payments.models import Payment, Refund, dashboard_url


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


def refund_label(refund: Refund) -> SafeString:
    """The refund's Stripe id, shortened, linked to its page in the admin ("not sent yet" before Stripe has it)."""
    url = reverse("admin:payments_refund_change", args=[refund.pk])
    if not refund.stripe_id:
        return format_html('<a href="{}">not sent yet</a>', url)
    return link(url, refund.stripe_id)


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
