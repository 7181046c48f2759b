"""Fixtures shared by every app's tests: the in-memory Stripe emulator behind both test accounts, items in
USD and EUR, and helpers that drive payments the way a shopper's browser and Stripe's webhooks would."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from djmoney.money import Money
from hypothesis import settings as hypothesis_settings

from payments.accounts import AccountRegistry, install_registry
from stripe_emulator import Emulator, EmulatorAccount, EmulatorHTTPClient, sign_payload

# CI runs the property tests derandomized (the same examples every run, so a landing never hangs on luck);
# `make test` on a workstation keeps exploring new examples.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


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
        self.emulator = Emulator(list(self.accounts.values()), base_url="http://stripe-emulator.test")
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


@pytest.fixture(autouse=True)
def _fresh_cache(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test with a database starts with an empty cache (cached pages, rate-limit counters): the cache
    lives in the test database, and ids are reused after a rollback."""
    from django.core.cache import cache

    uses_db = request.node.get_closest_marker("django_db") is not None or bool(
        {"db", "transactional_db"} & set(request.fixturenames)
    )
    if uses_db:
        request.getfixturevalue("transactional_db" if "transactional_db" in request.fixturenames else "db")
        cache.clear()
    yield


@pytest.fixture(autouse=True)
def stripe_fake() -> Iterator[FakeStripe]:
    """Every test runs against a fresh emulator: no test can reach the real Stripe."""
    fake = FakeStripe()
    install_registry(AccountRegistry.from_settings(http_client=fake.client))
    yield fake
    install_registry(None)


def signed_event(currency: str, event: dict[str, Any], secret: str | None = None) -> tuple[bytes, str]:
    payload = json.dumps(event).encode()
    secret = secret or settings.STRIPE_ACCOUNTS[currency]["webhook_secret"]
    return payload, sign_payload(payload, secret)


@pytest.fixture
def post_event(client: Client) -> Any:
    """Post an event to the shop's webhook for `currency`, signed with that account's secret."""

    def post(currency: str, event: dict[str, Any], secret: str | None = None) -> Any:
        payload, signature = signed_event(currency, event, secret)
        return client.post(
            f"/webhooks/stripe/{currency}/",
            data=payload,
            content_type="application/json",
            HTTP_STRIPE_SIGNATURE=signature,
        )

    return post


@pytest.fixture
def usd_item(db: None) -> Any:
    from catalog.models import Item

    return Item.objects.create(
        name="Espresso beans", description="1 kg, roasted for espresso.", price=Money(Decimal("24.50"), "USD")
    )


@pytest.fixture
def usd_item_2(db: None) -> Any:
    from catalog.models import Item

    return Item.objects.create(
        name="Ceramic dripper", description="Porcelain.", price=Money(Decimal("18.00"), "USD")
    )


@pytest.fixture
def eur_item(db: None) -> Any:
    from catalog.models import Item

    return Item.objects.create(
        name="Hand grinder", description="Steel burrs.", price=Money(Decimal("89.90"), "EUR")
    )


@pytest.fixture(autouse=True)
def _site_url_of_the_live_server(request: pytest.FixtureRequest) -> None:
    """SITE_URL is the test client's `http://testserver` (core/test_settings.py); a test that serves the shop
    on a real port (`live_server`, the browser tests) hands Stripe links to that port instead."""
    if "live_server" in request.fixturenames:
        live_server = request.getfixturevalue("live_server")
        request.getfixturevalue("settings").SITE_URL = live_server.url
