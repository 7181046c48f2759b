"""Revenue per currency: net sales per day, for the admin's report (a table and a server-rendered SVG chart).

Net sales of a day, in one currency = payments that succeeded that day (what Stripe received) - refunds made
that day (the shop's and those made in Stripe's dashboard; failed and canceled refunds excluded; a refund still
pending at Stripe counts) - disputes lost that day (the disputed amount the card network returned to the
cardholder). Stripe's fees are not known to the shop and are left out. Days are calendar days in the shop's
TIME_ZONE. Amounts in different currencies are never added up: each currency has its own table and chart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db.models import Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from core.money import format_money
from payments import states
from payments.models import Dispute, Payment, PaymentStatus, Refund

MAX_DAYS = 366


@dataclass
class Day:
    day: date
    payments: int = 0
    refunds: int = 0
    disputes_lost: int = 0

    @property
    def net(self) -> int:
        return self.payments - self.refunds - self.disputes_lost

    @property
    def quiet(self) -> bool:
        return not (self.payments or self.refunds or self.disputes_lost)


@dataclass
class CurrencyRevenue:
    currency: str
    days: list[Day] = field(default_factory=list)

    def total(self, name: str) -> int:
        return sum(getattr(d, name) for d in self.days)

    @property
    def payments(self) -> int:
        return self.total("payments")

    @property
    def refunds(self) -> int:
        return self.total("refunds")

    @property
    def disputes_lost(self) -> int:
        return self.total("disputes_lost")

    @property
    def net(self) -> int:
        return self.total("net")

    @property
    def active_days(self) -> list[Day]:
        return [d for d in self.days if not d.quiet]

    def money(self, amount: int) -> str:
        return format_money(amount, self.currency, minor=True)

    @property
    def chart(self) -> SafeString:
        return chart_svg(self)


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    tz = timezone.get_current_timezone()
    return (
        timezone.make_aware(datetime.combine(start, time.min), tz),
        timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min), tz),
    )


def _by_day(rows: Any, amount: str) -> dict[tuple[str, date], int]:
    return {(r["currency"].lower(), r["day"]): r[amount] or 0 for r in rows}


def report(start: date, end: date) -> list[CurrencyRevenue]:
    """Every currency with activity between `start` and `end` (inclusive), every day of the period in each."""
    if end < start:
        start, end = end, start
    end = min(end, start + timedelta(days=MAX_DAYS - 1))
    low, high = _bounds(start, end)
    payments = _by_day(
        Payment.objects.filter(status=PaymentStatus.SUCCEEDED, succeeded_at__gte=low, succeeded_at__lt=high)
        .annotate(day=TruncDate("succeeded_at"))
        .values("currency", "day")
        .annotate(total=Sum("amount_received")),
        "total",
    )
    refunds = _by_day(
        Refund.objects.filter(status__in=states.MADE_REFUNDS)
        .exclude(stripe_id="")
        .annotate(when=Coalesce("stripe_created", "created_at"))
        .filter(when__gte=low, when__lt=high)
        .annotate(day=TruncDate("when"))
        .values("currency", "day")
        .annotate(total=Sum("amount")),
        "total",
    )
    lost = _by_day(
        Dispute.objects.filter(status=Dispute.Status.LOST, closed_at__gte=low, closed_at__lt=high)
        .annotate(day=TruncDate("closed_at"))
        .values("currency", "day")
        .annotate(total=Sum("amount")),
        "total",
    )
    result = []
    for currency in sorted({cur for cur, _ in (*payments, *refunds, *lost)}):
        revenue = CurrencyRevenue(currency)
        day = start
        while day <= end:
            key = (currency, day)
            revenue.days.append(Day(day, payments.get(key, 0), refunds.get(key, 0), lost.get(key, 0)))
            day += timedelta(days=1)
        result.append(revenue)
    return result


# ------------------------------------------------------------------------------------------------ chart

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 84, 12, 14, 30


def chart_svg(revenue: CurrencyRevenue) -> SafeString:
    """Net sales per day as bars (below the axis when refunds and lost disputes outweigh payments), drawn on
    the server: no script, no outside resource. Each bar has a tooltip with its day and amounts."""
    days = revenue.days
    top = max([d.net for d in days] + [0])
    bottom = min([d.net for d in days] + [0])
    span = (top - bottom) or 1
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.7, 1)

    def y(value: int) -> float:
        return TOP + (top - value) * plot_h / span

    zero = y(0)
    bars = []
    for i, d in enumerate(days):
        if d.net == 0:
            continue
        x = LEFT + i * slot + (slot - bar_w) / 2
        y0, y1 = sorted((y(d.net), zero))
        tip = (
            f"{formats.date_format(d.day)}: net {revenue.money(d.net)} (payments {revenue.money(d.payments)}, refunds "
            f"{revenue.money(d.refunds)}, disputes lost {revenue.money(d.disputes_lost)})"
        )
        bars.append(
            (
                f"{x:.1f}",
                f"{y0:.1f}",
                f"{bar_w:.1f}",
                f"{max(y1 - y0, 1):.1f}",
                "bar-neg" if d.net < 0 else "bar",
                "#df1b41" if d.net < 0 else "#635bff",
                tip,
            )
        )
    rects = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" class="{}" fill="{}"><title>{}</title></rect>',
        bars,
    )
    labels = [(top, y(top)), (0, zero)] + ([(bottom, y(bottom))] if bottom < 0 else [])
    ticks = format_html_join(
        "",
        '<text x="{}" y="{}" text-anchor="end" font-size="11" fill="#697386">{}</text>'
        '<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#e3e8ee"/>',
        (
            (
                LEFT - 6,
                f"{pos + 4:.1f}",
                revenue.money(value),
                LEFT,
                WIDTH - RIGHT,
                f"{pos:.1f}",
                f"{pos:.1f}",
            )
            for value, pos in labels
        ),
    )
    first, last = days[0].day, days[-1].day
    dates = format_html(
        '<text x="{}" y="{}" font-size="11" fill="#697386">{}</text>'
        '<text x="{}" y="{}" text-anchor="end" font-size="11" fill="#697386">{}</text>',
        LEFT,
        HEIGHT - 8,
        formats.date_format(first),
        WIDTH - RIGHT,
        HEIGHT - 8,
        formats.date_format(last),
    )
    title = (
        f"Net sales per day in {revenue.currency.upper()}, {formats.date_format(first)} to "
        f"{formats.date_format(last)}"
    )
    return format_html(
        '<svg class="revenue-chart" role="img" aria-label="{}" viewBox="0 0 {} {}" width="{}" height="{}" '
        'xmlns="http://www.w3.org/2000/svg">{}{}<line x1="{}" x2="{}" y1="{}" y2="{}" stroke="#1a1f36"/>{}</svg>',
        title,
        WIDTH,
        HEIGHT,
        WIDTH,
        HEIGHT,
        ticks,
        rects,
        LEFT,
        WIDTH - RIGHT,
        f"{zero:.1f}",
        f"{zero:.1f}",
        dates,
    )
