"""The event types the shop handles (`payments.events`), one per line (or `--comma` separated): what each account's webhook endpoint
should listen to in Stripe's dashboard, or `stripe listen --events "$(python manage.py webhook_events --comma)"`.
Other types (`payment_intent.created`, ...) would only be stored and ignored.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from payments.events import HANDLED


class Command(BaseCommand):
    help = "Print the Stripe event types the shop's webhook endpoint handles."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--comma", action="store_true", help="one line, comma-separated")

    def handle(self, *args: Any, comma: bool = False, **options: Any) -> None:
        events = sorted(HANDLED)
        self.stdout.write(",".join(events) if comma else "\n".join(events))
