from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Payments"

    def ready(self) -> None:
        # The Stripe system checks, the page cache's invalidation, and the modules whose work follow-ups run
        # (they register it with `followups.handles`; a task worker imports nothing else).
        from payments import checks, receipts, signals, sync, webhooks  # noqa: F401
