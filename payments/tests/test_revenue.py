"""Revenue per currency in the admin: net sales per day (payments - refunds - lost disputes), a table and a
server-rendered SVG chart per currency, for a chosen period."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from payments import refunds, revenue
from payments.models import Dispute, Payment, Refund
from payments.tests.support import CARD_DISPUTED, CARD_REFUND_FAILS, pay_item, stripe_client

pytestmark = pytest.mark.django_db


def on(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


@pytest.fixture
def history(usd_item, eur_item, stripe_fake) -> dict[str, date]:
    """Three days of a shop's life in USD and EUR (the shop's TIME_ZONE is UTC in tests)."""
    today = timezone.localdate()
    d1, d2, d3 = today - timedelta(days=2), today - timedelta(days=1), today
    # Day 1: two USD payments, one EUR payment.
    a, pa = pay_item(Client(), stripe_fake, usd_item)
    b, _ = pay_item(Client(), stripe_fake, usd_item, card=CARD_REFUND_FAILS)
    pay_item(Client(), stripe_fake, eur_item, card=CARD_DISPUTED)
    Payment.objects.update(succeeded_at=on(d1))
    # Day 2: a staff refund of $10, a dashboard refund of $4.50, and a refund that failed (not counted).
    refunds.refund_order(a, amount=1000)
    stripe_client("usd").v1.refunds.create(params={"payment_intent": pa.stripe_id, "amount": 450})
    failed = refunds.refund_order(b, amount=500)
    stripe_fake.emulator.fail_refund(failed.stripe_id)
    stripe_fake.deliver_webhooks()
    Refund.objects.update(stripe_created=on(d2))
    # Day 3: the EUR dispute is lost.
    stripe_fake.emulator.close_dispute(Dispute.objects.get().stripe_id, won=False)
    stripe_fake.deliver_webhooks()
    Dispute.objects.update(closed_at=on(d3))
    return {"d1": d1, "d2": d2, "d3": d3}


def test_net_sales_per_day_and_currency(history) -> None:
    d1, d2, d3 = history["d1"], history["d2"], history["d3"]
    eur, usd = revenue.report(d1, d3)
    assert (usd.currency, eur.currency) == ("usd", "eur")
    assert [(d.day, d.payments, d.refunds, d.disputes_lost, d.net) for d in usd.days] == [
        (d1, 4900, 0, 0, 4900),
        (d2, 0, 1450, 0, -1450),
        (d3, 0, 0, 0, 0),
    ]
    assert [(d.day, d.payments, d.disputes_lost, d.net) for d in eur.days] == [
        (d1, 8990, 0, 8990),
        (d2, 0, 0, 0),
        (d3, 0, 8990, -8990),
    ]
    assert (usd.payments, usd.refunds, usd.net, eur.net) == (4900, 1450, 3450, 0)
    assert [d.day for d in usd.active_days] == [d1, d2]


def test_a_period_leaves_out_what_is_outside_it(history) -> None:
    [eur, usd] = revenue.report(history["d2"], history["d3"])
    assert (usd.payments, usd.refunds, eur.payments, eur.disputes_lost) == (0, 1450, 0, 8990)
    assert revenue.report(history["d1"] - timedelta(days=10), history["d1"] - timedelta(days=5)) == []


def test_the_chart_is_an_svg_with_a_bar_per_day_of_activity(history) -> None:
    _, usd = revenue.report(history["d1"], history["d3"])
    svg = str(usd.chart)
    assert (
        svg.startswith("<svg")
        and "<script" not in svg
        and "http" not in svg.replace("http://www.w3.org/2000/svg", "")
    )
    assert svg.count("<rect") == 2 and 'class="bar-neg"' in svg
    assert "net $49.00" in svg and "net -$14.50" in svg


def test_the_admin_shows_a_chart_and_a_table_for_a_chosen_period(admin_client, history) -> None:
    d1, d3 = history["d1"], history["d3"]
    html = admin_client.get(
        "/admin/payments/revenue/", {"start": d1.isoformat(), "end": d3.isoformat()}
    ).content.decode()
    assert 'id="revenue-usd"' in html and 'id="revenue-eur"' in html
    assert "USD: net $34.50" in html and "EUR: net €0.00" in html
    assert html.count('<svg class="revenue-chart"') == 2
    assert "-$14.50" in html and "-€89.90" in html and '<script src="http' not in html
    default = admin_client.get("/admin/payments/revenue/").content.decode()  # the last 30 days
    assert "USD: net $34.50" in default
    index = admin_client.get("/admin/").content.decode()
    assert "/admin/payments/revenue/" in index and "Revenue per currency" in index


def test_a_wrong_period_says_why(admin_client) -> None:
    html = admin_client.get(
        "/admin/payments/revenue/", {"start": "2026-05-10", "end": "2026-05-01"}
    ).content.decode()
    assert "The period ends before it starts." in html
    html = admin_client.get(
        "/admin/payments/revenue/", {"start": "2024-01-01", "end": "2026-01-01"}
    ).content.decode()
    assert "Choose at most 366 days." in html


def test_staff_without_permission_do_not_see_revenue(db) -> None:
    from django.contrib.auth.models import User

    User.objects.create_user("clerk", password="pw-12345-long", is_staff=True)
    web = Client()
    web.login(username="clerk", password="pw-12345-long")
    assert web.get("/admin/payments/revenue/").status_code in (302, 403)
