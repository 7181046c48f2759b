"""Bring the shop's books in line with Stripe's, from both sides (`payments.sweep` says how).

Every step runs every time, and each order is handled in its own transaction and its own try: a failure is
recorded on that order (staff see it in the admin), counted, and the run goes on. The exit status is 1 when
anything failed, and the last line says how many. Safe to run at any time and repeatedly (cron, the systemd
timer): everything goes through the same lifecycle functions as the webhooks, which never move a payment or an
order backwards.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from payments import sweep


class Command(BaseCommand):
    help = (
        "Apply Stripe's state to the shop's open payments, match each account's recent PaymentIntents and "
        "Checkout Sessions to orders, replay failed and pending events; close, refund and confirm what follows."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than", type=int, default=10, help="Minutes since the payment last changed (default 10)."
        )
        parser.add_argument("--limit", type=int, default=500, help="At most this many payments per run.")
        parser.add_argument(
            "--events-days",
            type=int,
            default=3,
            help="Days of failed webhook deliveries to ask for (default 3).",
        )
        parser.add_argument(
            "--overlap-minutes",
            type=int,
            default=60,
            help="Stripe's objects are listed from this long before the last sweep's mark (default 60).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        report = sweep.run(
            older_than=timedelta(minutes=options["older_than"]),
            limit=options["limit"],
            events_days=options["events_days"],
            overlap=timedelta(minutes=options["overlap_minutes"]),
            grace=timedelta(minutes=options["older_than"]),
        )
        for failure in report.failures:
            self.stderr.write(failure)
        for line in report.lines():
            self.stdout.write(line)
        if report.failures:
            raise SystemExit(1)
