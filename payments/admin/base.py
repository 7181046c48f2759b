"""What the payments admins share: read-only records, the order's primary key from a URL, a link to an
order, a percentage as staff write it, the note staff leave when they mark something reviewed."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import Http404, HttpRequest
from django.urls import reverse
from django.utils.safestring import SafeString

from core.admin_display import link
from payments.models import Order


class ReadOnly:
    """A record nobody adds, changes or deletes in the admin, superusers included: what Stripe reported, the
    ledger of payments, refunds, disputes and events, what the shop counted. Staff act through the order's
    actions instead. Mixed into `ReadOnlyAdmin` and `ReadOnlyInline`; the permissions are written only here."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnly, admin.ModelAdmin):
    """A list and pages of records staff only read."""


class ReadOnlyInline(ReadOnly, admin.TabularInline):
    """Rows staff only read, on another record's page (no empty row to add one, no delete box)."""

    extra = 0
    can_delete = False


# The largest primary key (a BigAutoField).
MAX_PK = 2**63 - 1


def object_pk(object_id: str) -> int:
    """A primary key from an admin URL, or 404 for anything that is not one (`abc`, `1058%00`, `10**30`), rather
    than the database's error on a value its column cannot hold."""
    if not (object_id.isascii() and object_id.isdigit()) or not 0 < int(object_id) <= MAX_PK:
        raise Http404("No such order.")
    return int(object_id)


def order_link(order: Order) -> SafeString:
    url = reverse("admin:payments_order_change", args=[order.pk])
    return link(url, str(order.public_id), shown=str(order.public_id)[:8])


class ReviewForm(forms.Form):
    note = forms.CharField(
        label="What was done", max_length=2000, widget=forms.Textarea(attrs={"rows": 3, "cols": 80})
    )
