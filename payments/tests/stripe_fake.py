"""Stripe as the tests see it: the emulator plugged into the SDK at its HTTP boundary (no model imports here, so
conftest.py can load it before Django is set up)."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.test import Client

from payments import events
from stripe_emulator import Emulator, EmulatorAccount, EmulatorHTTPClient, sign_payload


class FakeStripe:
    """The emulator as tests see it: every call the app makes is recorded by `client.requests`; webhooks wait
    in `outbox` until `deliver_webhooks()` posts them, signed, to the shop's real webhook view."""

    def __init__(self) -> None:
        self.accounts = {
            currency: EmulatorAccount(
                currency=currency,
                secret_key=keys["secret_key"],
                publishable_key=keys["publishable_key"],
                webhook_secret=keys["webhook_secret"],
            )
            for currency, keys in settings.STRIPE_ACCOUNTS.items()
        }
        # Its endpoint listens to exactly what the shop's endpoints do (`payments.events`).
        self.emulator = Emulator(
            list(self.accounts.values()),
            base_url="http://stripe-emulator.test",
            enabled_events=events.HANDLED,
        )
        self.client = EmulatorHTTPClient(self.emulator)
        self.outbox: list[tuple[str, bytes, str]] = []
        self.emulator.deliver = self._queue

    #: While set, webhook deliveries fail (the shop was unreachable): Stripe records them as not delivered.
    failing_deliveries = False

    def _queue(self, account: EmulatorAccount, payload: bytes, signature: str) -> int:
        if self.failing_deliveries:
            return 503
        self.outbox.append((account.currency, payload, signature))
        return 200

    @property
    def requests(self) -> list[Any]:
        return self.client.requests

    def calls(self, method: str, path_prefix: str) -> list[Any]:
        return [
            r
            for r in self.client.requests
            if r.method.upper() == method.upper() and r.path.startswith(path_prefix)
        ]

    def recover(self) -> None:
        """Stripe is reachable again: drop the failures still queued by `client.fail_next`."""
        self.client.clear_failures()

    def deliver_webhooks(self, web: Client | None = None) -> list[int]:
        web = web or Client()
        statuses = []
        while self.outbox:
            currency, payload, signature = self.outbox.pop(0)
            response = web.post(
                f"/webhooks/stripe/{currency}/",
                data=payload,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=signature,
            )
            statuses.append(response.status_code)
        return statuses

    def pay_intent(self, intent_id: str, card: str = "4242424242424242") -> dict[str, Any]:
        intent = self.emulator.confirm_payment_intent(intent_id, card=card)
        self.deliver_webhooks()
        return intent

    def pay_session(self, session_id: str, card: str = "4242424242424242") -> dict[str, Any]:
        session = self.emulator.pay_checkout_session(session_id, card=card)
        self.deliver_webhooks()
        return session


def signed_event(currency: str, event: dict[str, Any], secret: str | None = None) -> tuple[bytes, str]:
    payload = json.dumps(event).encode()
    secret = secret or settings.STRIPE_ACCOUNTS[currency]["webhook_secret"]
    return payload, sign_payload(payload, secret)
