"""What webhooks would have told the shop, asked of Stripe instead, then what follows.

1. Open payments are checked oldest-checked first (`Payment.checked_at`), `--limit` per run, so that every
   open payment is reached across runs however many were abandoned: a payment whose webhook was lost waits at
   most a few runs, never behind the same abandoned ones each time.
2. Each account is asked for the events whose webhook delivery failed (`GET /v1/events` with
   `delivery_success=false`, the last `--events-days` days); each is stored and processed exactly as if it had
   been delivered (an event already processed is a duplicate and changes nothing).
3. Then what follows (`sync.tidy_up`): orders paid or processing that still have an open object get it closed
   at Stripe, refunds not yet sent are sent, refunds Stripe reported that the shop could not explain are looked
   up, order confirmations and refund notices not sent yet are sent; and promotion code uses held by orders frozen too long ago
   are given back (`promotions.release_stale_holds`).

Safe to run at any time and repeatedly (cron, systemd timer): everything goes through the same lifecycle
functions as the webhooks, which never move a payment or an order backwards.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db.models import F
from django.utils import timezone
from stripe.params import EventListParams

from payments import gateway, promotions, states, sync, webhooks
from payments.accounts import registry
from payments.errors import ShopError
from payments.models import Order, Payment, Refund

# A confirmation that could not be sent is tried again for this long after the order was paid.
CONFIRMATION_DAYS = 3


class Command(BaseCommand):
    help = "Apply Stripe's state to open payments and to events whose webhook failed; close and refund what follows."

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

    def handle(self, *args: Any, **options: Any) -> None:
        orders: set[int] = set()
        checked, changed, failed = self.check_open_payments(options["older_than"], options["limit"], orders)
        events, unasked = self.replay_failed_deliveries(options["events_days"], orders)
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
        orders.update(  # refund notices not sent yet (receipts.send_refund_notice)
            Refund.objects.filter(
                status=Refund.Status.SUCCEEDED,
                notice_sent_at__isnull=True,
                updated_at__gt=timezone.now() - timedelta(days=CONFIRMATION_DAYS),
            )
            .exclude(order__email="")
            .values_list("order_id", flat=True)
        )
        for order_id in sorted(orders):
            sync.tidy_up(order_id)
        released = promotions.release_stale_holds()
        if released:
            self.stdout.write(f"Released the promotion code uses held by {released} abandoned orders.")
        self.stdout.write(
            f"Reconciled {checked} open payments: {changed} changed, {failed} could not be checked. "
            f"Replayed {events} events whose delivery failed"
            + (f" ({unasked} accounts could not be asked)." if unasked else ".")
        )
        if failed or unasked:
            raise SystemExit(1)

    def check_open_payments(self, older_than: int, limit: int, orders: set[int]) -> tuple[int, int, int]:
        cutoff = timezone.now() - timedelta(minutes=older_than)
        due = Payment.objects.filter(status__in=states.LIVE_PAYMENTS, updated_at__lt=cutoff).order_by(
            F("checked_at").asc(nulls_first=True), "id"
        )[:limit]
        checked = changed = failed = 0
        for payment in due:
            checked += 1
            before = payment.status
            Payment.objects.filter(pk=payment.pk).update(checked_at=timezone.now())
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
        return checked, changed, failed

    def replay_failed_deliveries(self, days: int, orders: set[int]) -> tuple[int, int]:
        since = int((timezone.now() - timedelta(days=days)).timestamp())
        replayed = failed = 0
        for acct in registry().all():
            if not acct.secret_key:
                continue
            params: EventListParams = {"delivery_success": False, "created": {"gte": since}, "limit": 100}
            try:
                with gateway.stripe_call("event.list", acct):
                    page = acct.client.v1.events.list(params=params)
                    events = list(page.auto_paging_iter())
            except ShopError as exc:
                failed += 1
                self.stderr.write(f"events ({acct.currency}): {exc.message}")
                continue
            for event in reversed(events):  # oldest first, as Stripe would have delivered them
                receipt = webhooks.record_and_process(acct, event.to_dict())
                if receipt.status not in ("duplicate",):
                    replayed += 1
                    self.stdout.write(f"event {receipt.event_id} ({acct.currency}): {receipt.status}")
                if receipt.order_id is not None:
                    orders.add(receipt.order_id)
        return replayed, failed
