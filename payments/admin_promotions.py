"""What staff see of promotion codes that shoppers do not: why tries of a code were refused, and how often.

Shoppers read the same "not valid" for every refusal (`payments.promotions`), so the reason is kept for staff
only: a `PromotionRefusal` per code and reason, shown on the discount's admin page.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.safestring import SafeString

from core.admin_display import when
from payments.models import PromotionRefusal


class PromotionRefusalInline(admin.TabularInline):
    model = PromotionRefusal
    extra = 0
    can_delete = False
    verbose_name = "refused try"
    verbose_name_plural = "Refused tries (shoppers read “The code … is not valid.” whatever the reason)"
    fields = ("reason", "count", "first", "last")
    readonly_fields = fields
    ordering = ("-last_at",)

    @admin.display(description="First")
    def first(self, refusal: PromotionRefusal) -> SafeString | str:
        return when(refusal.first_at)

    @admin.display(description="Last")
    def last(self, refusal: PromotionRefusal) -> SafeString | str:
        return when(refusal.last_at)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
