"""How the admin shows what its tables hold: Stripe ids shortened (the full id in a tooltip and on the record's
page), moments in one compact format, a line of small print under a value, currencies as people write them
(USD, in every filter too). Used by every module of `payments/admin/` and by `catalog/admin.py`;
the look is `static/shop_admin/admin.css`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.contrib import admin
from django.db import models
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe

# Stripe's prefixes kept whole when an id is shortened ("cs_test_" before a session's 58 random characters).
_PREFIXES = ("cs_test_", "cs_live_")


def short_id(stripe_id: str) -> str:
    """`pi_3MtwBwLkdIwHu7ix28a3tqPa` -> `pi_3Mtw…tqPa`: the prefix, then the first and last four characters."""
    if not stripe_id:
        return ""
    prefix = next((p for p in _PREFIXES if stripe_id.startswith(p)), "")
    if not prefix and "_" in stripe_id[:8]:
        prefix = stripe_id[: stripe_id.index("_") + 1]
    body = stripe_id[len(prefix) :]
    if len(body) <= 10:
        return stripe_id
    return f"{prefix}{body[:4]}…{body[-4:]}"


def id_label(full: str, shown: str | None = None) -> SafeString:
    """A shortened id with the whole one as its tooltip (and for screen readers and search in the page)."""
    return format_html(
        '<span class="shop-id" title="{}">{}</span>', full, short_id(full) if shown is None else shown
    )


def link(url: str, full: str, *, external: bool = False, shown: str | None = None) -> SafeString:
    """A link whose text is a shortened id; `external` opens it in a new tab (Stripe's dashboard)."""
    label = short_id(full) if shown is None else shown
    if external:
        return format_html(
            '<a class="shop-id" href="{}" title="{}" target="_blank" rel="noopener">{}</a>', url, full, label
        )
    return format_html('<a class="shop-id" href="{}" title="{}">{}</a>', url, full, label)


def when(moment: datetime | None) -> SafeString | str:
    """`25 Nov 2026 22:17` in the shop's time zone (the date as everywhere else, core/formats; the time on a
    line of its own in tables), with the exact moment as the tooltip."""
    if moment is None:
        return ""
    local = timezone.localtime(moment)
    return format_html(
        '<time datetime="{}" title="{}">{} <span class="shop-time">{}</span></time>',
        local.isoformat(),
        f"{local:%Y-%m-%d %H:%M:%S %Z}",
        formats.date_format(local, "DATE_FORMAT"),
        formats.time_format(local, "H:i"),
    )


def with_note(value: object, *notes: str) -> SafeString:
    """A value with small print under it (empty notes, and notes that only repeat the value, are left out)."""
    small = mark_safe(  # noqa: S308
        "".join(format_html('<span class="shop-note">{}</span>', n) for n in notes if n and n != str(value))
    )
    return format_html("{}{}", value, small)


# ------------------------------------------------------------------------------------------------ currencies


def currency_code(value: str) -> str:
    """`usd` (as stored and sent to Stripe) -> `USD` (as staff read it)."""
    return (value or "").upper()


class CurrencyFilter(admin.AllValuesFieldListFilter):
    """A list filter of currencies (or of Stripe accounts, each named by its currency): USD, not usd."""

    def choices(self, changelist: Any) -> Iterator[Any]:
        values = {str(value) for value in self.lookup_choices}
        for choice in super().choices(changelist):
            if str(choice["display"]) in values:
                choice["display"] = currency_code(str(choice["display"]))
            yield choice


def _is_currency(field: models.Field[Any, Any]) -> bool:
    return (
        isinstance(field, models.CharField)
        and field.name in {"currency", "account"}
        and field.max_length == 3
    )


# Every admin list filtered by a currency or an account (`list_filter = ("currency",)`) uses it.
admin.FieldListFilter.register(_is_currency, CurrencyFilter, take_priority=True)
