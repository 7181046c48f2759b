"""What Stripe reported and the work it started, read-only: webhook events, the coupons and tax rates the shop
created at Stripe, payments Stripe took that name no order (stray payments), and the follow-ups."""

from __future__ import annotations

import json

from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from core.admin_display import currency_code, id_label, link, when, with_note
from core.money import format_money
from core.redact import redact_json
from payments.admin.base import ReadOnlyAdmin, ReviewForm, order_link
from payments.models import FollowUp, StrayPayment, StripeEvent, StripeObject


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
