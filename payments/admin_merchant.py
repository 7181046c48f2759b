"""Staff views for what happens after the sale: an order's refund page, the disputes list, revenue per currency.

`payments/admin.py` links them into the order's admin; they are registered here.
"""

from __future__ import annotations

import re
import uuid
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from core.money import (
    AmountError,
    format_money,
    from_minor_units,
    minor_unit_exponent,
    minor_unit_step,
    to_minor_units,
)
from payments import disputes, orders, refunds, revenue
from payments.admin_display import link, when
from payments.bulkhead import STAFF, STAFF_BUSY, compartment
from payments.errors import ShopError
from payments.models import Dispute, Order, Refund, Revenue
from payments.pricing import PricedOrder, price_order

# ------------------------------------------------------------------------------------------------ refunds


GROUPING = re.compile(r"\d{1,3}(?:[,.]\d{3})+")
SPACES = re.compile(r"[\s\u00a0\u202f\u2009']")


def read_decimal(text: str, currency: str) -> Decimal:
    """What staff typed, as a Decimal: a decimal point or a decimal comma (`12.50`, `12,50`), with or without
    thousands grouping (`1,250.00`, `1.250,00`, `1 250,00`). Refused when it could be read two ways: `1,250`
    or `1.250` in a currency with two decimals (1250, or 1.25?), `1,250` in a three-decimal one; in a currency
    without decimals a single separator before three digits is grouping (`1,250` JPY is 1250)."""
    raw = SPACES.sub("", text.strip())
    if raw.startswith("-") or raw.lower().lstrip("+") in ("nan", "snan", "inf", "infinity"):
        raise forms.ValidationError("Enter an amount above zero.")
    if not raw or not re.fullmatch(r"[0-9.,]+", raw):
        raise forms.ValidationError("Enter an amount, e.g. 12.50.")
    exponent = minor_unit_exponent(currency)
    separators = [c for c in raw if c in ".,"]
    if not separators:
        number = raw
    elif len(set(separators)) == 2:  # both: the last one is the decimal separator, the other groups
        decimal_sep = raw[max(raw.rfind("."), raw.rfind(","))]
        whole, _, fraction = raw.rpartition(decimal_sep)
        if not GROUPING.fullmatch(whole) or not fraction.isdigit():
            raise forms.ValidationError(f"“{text.strip()}” is not an amount; type e.g. 1250.00.")
        number = f"{whole.replace(',', '').replace('.', '')}.{fraction}"
    elif len(separators) > 1:  # the same separator several times: thousands grouping
        if not GROUPING.fullmatch(raw):
            raise forms.ValidationError(f"“{text.strip()}” is not an amount; type e.g. 1250.00.")
        number = raw.replace(",", "").replace(".", "")
    else:
        sep = separators[0]
        whole, _, fraction = raw.partition(sep)
        if not whole or not fraction:
            raise forms.ValidationError(f"“{text.strip()}” is not an amount; type e.g. 12.50.")
        if len(fraction) == 3 and exponent == 0:
            number = whole + fraction  # no decimals in the currency: 1,250 JPY is 1250
        elif len(fraction) == 3 and (exponent != 3 or sep == ",") and whole.lstrip("0"):
            grouped, decimal = int(whole + fraction), f"{int(whole)}.{fraction}"
            raise forms.ValidationError(
                f"“{text.strip()}” could mean {grouped} or {decimal} {currency.upper()}: type {grouped} or "
                f"{decimal} (without a thousands separator)."
            )
        else:
            number = f"{whole}.{fraction}"
    try:
        return Decimal(number)
    except InvalidOperation as exc:
        raise forms.ValidationError("Enter an amount, e.g. 12.50.") from exc


def parse_amount(text: str, currency: str) -> int:
    """An amount typed in the currency (`12.50` or `12,50` USD, `1500` JPY, `1.250` KWD) as Stripe's minor
    units; refused when it is ambiguous (`read_decimal`), has more decimals than the currency, or is not in
    the steps Stripe refunds it in."""
    value = read_decimal(text, currency)
    if not value.is_finite() or value <= 0:
        raise forms.ValidationError("Enter an amount above zero.")
    try:
        minor = to_minor_units(value, currency)
    except AmountError as exc:
        raise forms.ValidationError(exc.shopper_message) from exc
    if from_minor_units(minor, currency) != value:
        if minor_unit_exponent(currency) == 0:
            raise forms.ValidationError(f"Amounts in {currency.upper()} have no decimals.")
        step = format_money(minor_unit_step(currency), currency, minor=True)
        raise forms.ValidationError(f"Amounts in {currency.upper()} are refunded in steps of {step}.")
    return minor


class RefundForm(forms.Form):
    """Refund an amount, or chosen units of the order's lines, for a reason. `token` is this form's one-time
    key: sending it again makes no second refund. A valid form is first shown back for confirmation (the
    amount as read, in its currency); only the confirmed form refunds."""

    token = forms.CharField(widget=forms.HiddenInput)
    confirmed = forms.BooleanField(required=False, widget=forms.HiddenInput)
    amount = forms.CharField(
        required=False,
        label="Amount",
        help_text="In the order's currency, with a decimal point or comma (12.50 or 12,50; 1500 for JPY; "
        "1.250 for KWD).",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    reason = forms.ChoiceField(
        label="Why",
        choices=[(r.value, r.label) for r in refunds.STAFF_REASONS],
        help_text="Sent to Stripe (requested by the customer, duplicate, fraudulent) and shown on the order.",
    )
    note = forms.CharField(
        required=False,
        max_length=500,
        label="Note",
        help_text="Required for “Other”; kept on the refund and in its metadata at Stripe.",
        widget=forms.TextInput(attrs={"size": 60}),
    )

    def __init__(self, *args: Any, order: Order, priced: PricedOrder, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.order = order
        self.priced = priced
        self.already = refunds.refunded_units(order)
        for line in priced.lines:
            left = line.quantity - self.already.get(line.item_id, 0)
            self.fields[f"line_{line.item_id}"] = forms.IntegerField(
                required=False,
                min_value=0,
                max_value=left,
                label=line.name,
                help_text=f"{left} of {line.quantity} left to refund",
                widget=forms.NumberInput(attrs={"min": 0, "max": left, "class": "vIntegerField"}),
            )

    def line_fields(self) -> list[Any]:
        return [self[f"line_{line.item_id}"] for line in self.priced.lines]

    def clean_token(self) -> str:
        token = self.cleaned_data["token"]
        try:
            return uuid.UUID(token).hex
        except ValueError as exc:
            raise forms.ValidationError("This form is not valid any more; reload the page.") from exc

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        quantities = {line.item_id: data.get(f"line_{line.item_id}") or 0 for line in self.priced.lines}
        quantities = {k: v for k, v in quantities.items() if v}
        text = (data.get("amount") or "").strip()
        if text and quantities:
            raise forms.ValidationError("Refund either an amount or lines, not both.")
        if not text and not quantities:
            raise forms.ValidationError("Enter an amount, or how many of which lines to refund.")
        if data.get("reason") == Refund.Reason.REQUESTED_BY_STAFF and not (data.get("note") or "").strip():
            self.add_error("note", "Say why the money is given back.")
        data["lines"] = quantities
        if text:
            try:
                data["minor"] = parse_amount(text, self.order.currency)
            except forms.ValidationError as exc:
                self.add_error("amount", exc)
                return data
            data["description"] = ""  # the amount says it all (shown beside it, it would say it twice)
        else:
            try:  # shown now; priced again under the order's lock when the refund is made
                data["minor"] = refunds.amount_for_lines(self.priced, quantities, self.already)
            except ShopError as exc:
                raise forms.ValidationError(exc.message) from exc
            names = {line.item_id: line.name for line in self.priced.lines}
            data["description"] = ", ".join(f"{units} x {names[item]}" for item, units in quantities.items())
        return data

    def as_hidden_fields(self) -> list[Any]:
        """Every field as a hidden input, with what was typed: the confirmation sends the same form again."""
        return [field.as_hidden() for field in self if field.name not in ("confirmed",)]


# The largest primary key (a BigAutoField).
MAX_PK = 2**63 - 1


def object_pk(object_id: str) -> int:
    """A primary key from an admin URL, or 404 for anything that is not one (`abc`, `1058%00`, `10**30`), rather
    than the database's error on a value its column cannot hold."""
    if not (object_id.isascii() and object_id.isdigit()) or not 0 < int(object_id) <= MAX_PK:
        raise Http404("No such order.")
    return int(object_id)


def refund_view(model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """The refund page of one order (`/admin/payments/order/<id>/refund/`): the form, then its confirmation."""
    order = get_object_or_404(orders.with_pricing(), pk=object_pk(object_id))
    change_url = reverse("admin:payments_order_change", args=[order.pk])
    if not request.user.has_perm("payments.change_order"):
        messages.error(request, "You may not refund orders.")
        return HttpResponseRedirect(change_url)
    priced = price_order(order)
    form = RefundForm(request.POST or None, order=order, priced=priced, initial={"token": uuid.uuid4().hex})
    confirming = False
    if request.method == "POST" and form.is_valid():
        if not form.cleaned_data["confirmed"]:
            confirming = True  # shown back with the amount as read, to be confirmed
        else:
            with compartment(STAFF).slot() as entered:  # payments/bulkhead.py: staff's own Stripe slots
                response = _refund(request, order, form, change_url) if entered else None
                if not entered:
                    form.add_error(None, STAFF_BUSY)
            if response is not None:
                return response
    try:
        payment = refunds.refundable_payment(order)
        disputes.check_refundable(payment)
        blocked, left = "", refunds.left_to_refund(payment)
    except ShopError as exc:
        blocked, left = exc.message, 0
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Order._meta,
        "title": f"Refund {order}",
        "order": order,
        "priced": priced,
        "form": form,
        "confirming": confirming,
        "left": format_money(left, order.currency, minor=True),
        "left_minor": left,
        "blocked": blocked,
        "refunds": order.refunds.order_by("id"),
        "change_url": change_url,
    }
    return TemplateResponse(request, "admin/payments/order/refund.html", context)


def _refund(request: HttpRequest, order: Order, form: RefundForm, change_url: str) -> HttpResponse | None:
    """Make the confirmed refund; None (the form shows the error) when it was refused."""
    data = form.cleaned_data
    try:
        done = refunds.staff_refund(
            order,
            data["minor"],
            request_key=data["token"],
            requested_by=request.user.get_username(),
            description=data["description"],
            lines=data["lines"],
            reason=data["reason"],
            note=data["note"],
        )
    except ShopError as exc:
        form.add_error(None, exc.message)
        return None
    refund = done.refund
    amount = format_money(refund.amount, refund.currency, minor=True)
    if done.repeated and refund.status == Refund.Status.FAILED:
        form.add_error(
            None, f"This form's refund of {amount} was refused: {refund.last_error} Reload the page."
        )
        return None
    if done.repeated:
        messages.warning(
            request,
            f"This refund form was already sent: refund {refund.stripe_id or refund.pk} of {amount} stands, and "
            "no second refund was made.",
        )
    else:
        messages.success(
            request,
            f"Refund {refund.stripe_id} of {amount} asked ({refund.get_status_display().lower()}); the order "
            "changes when Stripe confirms it.",
        )
    return HttpResponseRedirect(change_url)


# ------------------------------------------------------------------------------------------------ disputes


class DisputeInline(admin.TabularInline):
    model = Dispute
    extra = 0
    can_delete = False
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

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def dashboard_link(dispute: Dispute) -> str:
    """The dispute's page in Stripe's dashboard (where staff answer it), its id shortened."""
    return link(dispute.dashboard_url, dispute.stripe_id, external=True)


def due_display(dispute: Dispute) -> str:
    """When the evidence is due, while the dispute is open; past due in red."""
    if dispute.evidence_due_by is None or dispute.status in disputes.FINAL:
        return "-"
    shown = when(dispute.evidence_due_by)
    if dispute.status in disputes.OPEN and dispute.evidence_due_by < timezone.now():
        return format_html('<strong class="errornote">{} (past due)</strong>', shown)
    return shown


def funds_display(dispute: Dispute) -> str:
    out = format_money(dispute.funds_withdrawn, dispute.currency, minor=True)
    back = format_money(dispute.funds_reinstated, dispute.currency, minor=True)
    return f"{out} / {back}"


@admin.register(Dispute)
class DisputeAdmin(admin.ModelAdmin):
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
        url = reverse("admin:payments_order_change", args=[dispute.order_id])
        return link(url, str(dispute.order.public_id), shown=str(dispute.order.public_id)[:8])

    @admin.display(description="Amount", ordering="amount")
    def amount_display(self, dispute: Dispute) -> str:
        return format_money(dispute.amount, dispute.currency, minor=True)

    @admin.display(description="Funds out / back")
    def funds(self, dispute: Dispute) -> str:
        return funds_display(dispute)

    @admin.display(description="Evidence due", ordering="evidence_due_by")
    def due(self, dispute: Dispute) -> str:
        return due_display(dispute)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# ------------------------------------------------------------------------------------------------ revenue


class PeriodForm(forms.Form):
    start = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start and end:
            if end < start:
                raise forms.ValidationError("The period ends before it starts.")
            if (end - start).days >= revenue.MAX_DAYS:
                raise forms.ValidationError(f"Choose at most {revenue.MAX_DAYS} days.")
        return data


@admin.register(Revenue)
class RevenueAdmin(admin.ModelAdmin):
    """Net sales per day and currency, for a chosen period (`payments.revenue`)."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.has_perm("payments.view_payment") or super().has_view_permission(request, obj)

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            messages.error(request, "You may not see revenue.")
            return HttpResponseRedirect(reverse("admin:index"))
        today = timezone.localdate()
        default = {"start": today - timedelta(days=29), "end": today}
        form = PeriodForm(request.GET or None, initial=default)
        start: date = default["start"]
        end: date = default["end"]
        if form.is_bound and form.is_valid():
            start, end = form.cleaned_data["start"], form.cleaned_data["end"]
        elif not form.is_bound:
            form = PeriodForm(default)
            form.is_valid()
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Revenue per currency",
            "form": form,
            "start": start,
            "end": end,
            "currencies": revenue.report(start, end),
            "time_zone": timezone.get_current_timezone_name(),
        }
        return TemplateResponse(request, "admin/payments/revenue.html", context)
