"""Ask Stripe for the state of payments still open after a while, for webhooks that never arrived, and close
the ones an order no longer needs because it was paid another way.

Safe to run at any time and repeatedly (cron, systemd timer): it applies what Stripe says through the same
lifecycle functions as the webhooks, which never move a payment or an order backwards.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from payments import checkout, intents
from payments.errors import ShopError
from payments.lifecycle import PAID_STATES
from payments.models import Payment, PaymentKind, PaymentStatus


class Command(BaseCommand):
    help = "Apply Stripe's current state to payments still open after --older-than minutes (default 10)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than", type=int, default=10, help="Minutes since the payment last changed."
        )
        parser.add_argument("--limit", type=int, default=500, help="At most this many payments per run.")

    def handle(self, *args: Any, **options: Any) -> None:
        cutoff = timezone.now() - timedelta(minutes=options["older_than"])
        open_payments = (
            Payment.objects.select_related("order")
            .filter(status__in=[PaymentStatus.OPEN, PaymentStatus.PROCESSING], updated_at__lt=cutoff)
            .order_by("updated_at")[: options["limit"]]
        )
        checked = changed = failed = 0
        for payment in open_payments:
            checked += 1
            before = payment.status
            try:
                if payment.kind == PaymentKind.PAYMENT_INTENT:
                    after = intents.refresh(payment)
                else:
                    after = checkout.refresh(payment)
            except ShopError as exc:
                failed += 1
                self.stderr.write(f"{payment.stripe_id} ({payment.account}): {exc.message}")
                continue
            if after.status == PaymentStatus.OPEN and payment.order.status in PAID_STATES:
                # The order was paid another way: close this one so that it cannot be paid a second time.
                try:
                    after = (
                        intents.cancel(after)
                        if payment.kind == PaymentKind.PAYMENT_INTENT
                        else checkout.expire(after)
                    )
                except ShopError as exc:
                    failed += 1
                    self.stderr.write(f"{payment.stripe_id} ({payment.account}): {exc.message}")
                    continue
            if after.status != before:
                changed += 1
                self.stdout.write(f"{payment.stripe_id} ({payment.account}): {before} -> {after.status}")
            else:  # still open: touch it so the next run looks at the others first
                Payment.objects.filter(pk=payment.pk).update(updated_at=timezone.now())
        self.stdout.write(
            f"Reconciled {checked} open payments: {changed} changed, {failed} could not be checked."
        )
        if failed:
            raise SystemExit(1)
