from django.apps import AppConfig


class PaymentsConfig(AppConfig):
    name = "payments"
    verbose_name = "Payments"

    def ready(self) -> None:
        from payments import checks, signals  # noqa: F401  (the Stripe system checks, the page cache's invalidation)
