"""Ask Stripe for the state of payments still open after a while, for webhooks that never arrived, then do what
follows: close the objects an order no longer needs (it was paid or is processing), send refunds it owes, look
up refunds Stripe reported that the shop could not explain, send order confirmations not sent yet, and give
back promotion code uses held by orders frozen too long ago (`promotions.release_stale_holds`).

Safe to run at any time and repeatedly (cron, systemd timer): it applies what Stripe says through the same
lifecycle functions as the webhooks, which never move a payment or an order backwards.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from payments import promotions, states, sync
from payments.errors import ShopError
from payments.models import Order, Payment, Refund

# A confirmation that could not be sent is tried again for this long after the order was paid.
CONFIRMATION_DAYS = 3


class Command(BaseCommand):
    help = "Apply Stripe's current state to payments still open after --older-than minutes (default 10)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than", type=int, default=10, help="Minutes since the payment last changed."
        )
        parser.add_argument("--limit", type=int, default=500, help="At most this many payments per run.")

    def handle(self, *args: Any, **options: Any) -> None:
        cutoff = timezone.now() - timedelta(minutes=options["older_than"])
        open_payments = Payment.objects.filter(
            status__in=states.LIVE_PAYMENTS, updated_at__lt=cutoff
        ).order_by("updated_at")[: options["limit"]]
        checked = changed = failed = 0
        orders: set[int] = set()
        for payment in open_payments:
            checked += 1
            before = payment.status
            try:
                after = sync.refresh(payment)
            except ShopError as exc:
                failed += 1
                self.stderr.write(f"{payment.stripe_id} ({payment.account}): {exc.message}")
                continue
            orders.add(payment.order_id)
            if after.status != before:
                changed += 1
                self.stdout.write(f"{payment.stripe_id} ({payment.account}): {before} -> {after.status}")
            else:  # still open: touch it so the next run looks at the others first
                Payment.objects.filter(pk=payment.pk).update(updated_at=timezone.now())
        # Orders paid or processing that still have open objects, and refunds not yet sent.
        orders.update(
            Order.objects.exclude(status__in=[*states.PAYABLE])
            .filter(payments__status__in=states.OPEN_PAYMENTS)
            .values_list("pk", flat=True)
        )
        orders.update(Refund.objects.filter(status=Refund.Status.PENDING).values_list("order_id", flat=True))
        # Refunds Stripe reported that the shop could not look up yet, and confirmations not sent yet.
        orders.update(Payment.objects.filter(refunds_to_check=True).values_list("order_id", flat=True))
        orders.update(
            Order.objects.filter(
                status__in=states.PAID_STATES,
                confirmation_sent_at__isnull=True,
                paid_at__gt=timezone.now() - timedelta(days=CONFIRMATION_DAYS),
            )
            .exclude(email="")
            .values_list("pk", flat=True)
        )
        for order_id in sorted(orders):
            sync.tidy_up(order_id)
        released = promotions.release_stale_holds()
        if released:
            self.stdout.write(f"Released the promotion code uses held by {released} abandoned orders.")
        self.stdout.write(
            f"Reconciled {checked} open payments: {changed} changed, {failed} could not be checked."
        )
        if failed:
            raise SystemExit(1)
