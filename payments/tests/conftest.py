"""Fixtures of the payments tests (the shared ones are in the repository's conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

from payments.accounts import AccountRegistry, install_registry
from payments.tests.stripe_fake import FakeStripe


@pytest.fixture
def more_currencies(settings: Any, stripe_fake: FakeStripe) -> FakeStripe:
    """Stripe accounts for JPY and KWD as well as USD and EUR; the emulator behind all four."""
    settings.STRIPE_ACCOUNTS = {
        **settings.STRIPE_ACCOUNTS,
        "jpy": {
            "secret_key": "sk_test_jpy_2222222222222222",
            "publishable_key": "pk_test_jpy_2222222222222222",
            "webhook_secret": "whsec_test_jpy_222222222222",
        },
        "kwd": {
            "secret_key": "sk_test_kwd_3333333333333333",
            "publishable_key": "pk_test_kwd_3333333333333333",
            "webhook_secret": "whsec_test_kwd_333333333333",
        },
    }
    fake = FakeStripe()
    install_registry(AccountRegistry.from_settings(http_client=fake.client))
    return fake
