"""Revenue per currency: net sales per day and currency for a chosen period (`payments.revenue`)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone

from payments import revenue
from payments.admin.base import ReadOnlyAdmin
from payments.models import Revenue


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
class RevenueAdmin(ReadOnlyAdmin):
    """Net sales per day and currency, for a chosen period (`payments.revenue`)."""

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
