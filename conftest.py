"""Fixtures shared by every app's tests: the in-memory Stripe emulator behind both test accounts, items in
USD and EUR, and helpers that drive payments the way a shopper's browser and Stripe's webhooks would."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import Client
from hypothesis import settings as hypothesis_settings

from core.tests.postgres_only import summary_line
from payments.accounts import AccountRegistry, install_registry
from payments.tests.stripe_fake import FakeStripe, signed_event

# CI runs the property tests derandomized (the same examples every run, so a landing never hangs on luck);
# `make test` on a workstation keeps exploring new examples.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


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
def task_worker(request: pytest.FixtureRequest, _fresh_cache: None) -> Iterator[Any]:
    """Every test with a database has a task worker that runs what was queued as soon as the code that queued it
    left its transactions, as an idle `db_worker` would (`payments/tests/worker.py`); `held_queue` holds it."""
    uses_db = request.node.get_closest_marker("django_db") is not None or bool(
        {"db", "transactional_db"} & set(request.fixturenames)
    )
    if not uses_db:
        yield None
        return
    from django.db import connection

    from payments.tests.worker import inline_worker

    with inline_worker(base_depth=len(connection.atomic_blocks)) as worker:
        yield worker


@pytest.fixture(autouse=True)
def _lock_order_checked() -> Iterator[None]:
    """Every path a test drives takes its row locks in the order `payments.locks` writes: a lock taken against
    it raises where it is taken and fails the test here even if the code caught the error, and so does an event
    row written while an order's lock is held (`payments/tests/lockorder.py`)."""
    from payments.tests.lockorder import lock_order_checked

    with lock_order_checked() as violations:
        yield
    assert violations == [], "row locks taken against the lock order of payments/locks.py"


@pytest.fixture
def held_queue(task_worker: Any) -> Any:
    """The queue as production has it between a request and a worker: tasks wait until the test runs them
    (`payments.tests.worker.run_tasks`)."""
    task_worker.eager = False
    return task_worker


@pytest.fixture(autouse=True)
def stripe_fake() -> Iterator[FakeStripe]:
    """Every test runs against a fresh emulator: no test can reach the real Stripe."""
    fake = FakeStripe()
    install_registry(AccountRegistry.from_settings(http_client=fake.client))
    yield fake
    install_registry(None)


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
    from catalog.tests.factories import make_item

    return make_item("Espresso beans", "24.50", description="1 kg, roasted for espresso.")


@pytest.fixture
def usd_item_2(db: None) -> Any:
    from catalog.tests.factories import make_item

    return make_item("Ceramic dripper", "18.00", description="Porcelain.")


@pytest.fixture
def eur_item(db: None) -> Any:
    from catalog.tests.factories import make_item

    return make_item("Hand grinder", "89.90", "EUR", description="Steel burrs.")


@pytest.fixture(autouse=True)
def _site_url_of_the_live_server(request: pytest.FixtureRequest) -> None:
    """SITE_URL is the test client's `http://testserver` (core/test_settings.py); a test that serves the shop
    on a real port (`live_server`, the browser tests) hands Stripe links to that port instead."""
    if "live_server" in request.fixturenames:
        live_server = request.getfixturevalue("live_server")
        request.getfixturevalue("settings").SITE_URL = live_server.url


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: Any) -> Iterator[None]:
    """A run on SQLite ends (after the short summary, before the counts) with one line saying how many
    PostgreSQL-only tests it skipped and how to run them."""
    yield
    line = summary_line(terminalreporter.stats.get("skipped", []))
    if line is not None:
        terminalreporter.write_line(line, yellow=True, bold=True)
