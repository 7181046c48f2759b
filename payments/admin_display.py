"""How the admin shows what its tables hold: Stripe ids shortened (the full id in a tooltip and on the record's
page), moments in one compact format, a line of small print under a value. Used by `payments/admin.py`,
`payments/admin_merchant.py` and `catalog/admin.py`; the look is `static/shop_admin/admin.css`."""

from __future__ import annotations

from datetime import datetime

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
    """A value with small print under it (empty notes are left out)."""
    small = mark_safe("".join(format_html('<span class="shop-note">{}</span>', n) for n in notes if n))  # noqa: S308
    return format_html("{}{}", value, small)
