"""An order's refund page (`/admin/payments/order/<id>/refund/`): an amount or chosen lines, for a reason,
confirmed before it is made; `OrderAdmin.get_urls` links it into the order's admin."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse

from core.money import (
    AmountError,
    format_money,
    from_minor_units,
    minor_unit_exponent,
    minor_unit_step,
    to_minor_units,
)
from payments import orders, refunds
from payments.admin.base import object_pk
from payments.bulkhead import STAFF, STAFF_BUSY, compartment
from payments.errors import ShopError
from payments.models import Order, Refund
from payments.pricing import PricedOrder, price_order

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


def ask_for_note(form: forms.Form, data: dict[str, Any]) -> None:
    """A refund "for another reason" says why in its note (`refunds.staff_refund` refuses one without)."""
    if data.get("reason") == Refund.Reason.REQUESTED_BY_STAFF and not (data.get("note") or "").strip():
        form.add_error("note", "Say why the money is given back.")


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
        ask_for_note(self, data)
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


def refund_view(model_admin: admin.ModelAdmin, request: HttpRequest, object_id: str) -> HttpResponse:
    """The refund page of one order (`/admin/payments/order/<id>/refund/`): the form, then its confirmation,
    then the refund."""
    order = get_object_or_404(orders.with_pricing(), pk=object_pk(object_id))
    change_url = reverse("admin:payments_order_change", args=[order.pk])
    if not request.user.has_perm("payments.change_order"):
        messages.error(request, "You may not refund orders.")
        return HttpResponseRedirect(change_url)
    form = RefundForm(
        request.POST or None, order=order, priced=price_order(order), initial={"token": uuid.uuid4().hex}
    )
    confirming = False
    if request.method == "POST" and form.is_valid():
        confirming = not form.cleaned_data["confirmed"]  # shown back with the amount as read, to be confirmed
        if not confirming:
            with compartment(STAFF).slot() as entered:  # payments/bulkhead.py: staff's own Stripe slots
                done = _refund(request, order, form, change_url) if entered else None
            if not entered:
                form.add_error(None, STAFF_BUSY)
            elif done is not None:
                return done
    return _page(model_admin, request, form, confirming=confirming, change_url=change_url)


def refund_left(order: Order) -> tuple[int, str]:
    """What is left to refund on the order (minor units) and, when it cannot be refunded at all, why
    (`refunds.refundable`: not paid, disputed)."""
    try:
        _, left = refunds.refundable(order)
    except ShopError as exc:
        return 0, exc.message
    return left, ""


def _page(
    model_admin: admin.ModelAdmin,
    request: HttpRequest,
    form: RefundForm,
    *,
    confirming: bool,
    change_url: str,
) -> TemplateResponse:
    order = form.order
    left, blocked = refund_left(order)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Order._meta,
        "title": f"Refund {order}",
        "order": order,
        "priced": form.priced,
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
