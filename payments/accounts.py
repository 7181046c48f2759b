"""One Stripe account per currency: currency -> keys -> one `StripeClient`, built once per process.

The global `stripe.api_key` is never set: it is shared by every thread, and the shop talks to several
accounts at once. Each account gets its own `StripeClient` with a timeout and network retries.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property

import stripe
from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from stripe._base_address import BaseAddresses


class AccountNotConfigured(LookupError):
    """No Stripe account is configured for a currency."""

    def __init__(self, currency: str) -> None:
        self.currency = currency.lower()
        super().__init__(f"Payments in {self.currency.upper()} are not set up.")


def key_mode(key: str) -> str | None:
    """A Stripe API key's mode, `live` or `test` (a secret `sk_`, restricted `rk_` or publishable `pk_` key);
    None for anything else. The one place that tells live keys from test keys."""
    for prefix in ("sk_", "rk_", "pk_"):
        if key.startswith(prefix):
            rest = key[len(prefix) :]
            if rest.startswith("live_"):
                return "live"
            if rest.startswith("test_"):
                return "test"
    return None


# Seconds a page that asks Stripe (the return page) waits for it: then it says "processing" rather than wait.
QUICK_TIMEOUT = 2.0


@dataclass(frozen=True)
class StripeAccount:
    currency: str  # lower-case ISO code, as Stripe writes it
    secret_key: str
    publishable_key: str
    webhook_secret: str
    api_base: str = ""
    timeout: float = 10.0
    max_network_retries: int = 2
    http_client: stripe.HTTPClient | None = field(default=None, compare=False, repr=False)

    @property
    def livemode(self) -> bool:
        return key_mode(self.secret_key) == "live"

    @cached_property
    def client(self) -> stripe.StripeClient:
        return self._client(self.timeout, self.max_network_retries)

    @cached_property
    def quick_client(self) -> stripe.StripeClient:
        """For a shopper's page that may ask Stripe once, within a short budget (one attempt, QUICK_TIMEOUT)."""
        return self._client(min(self.timeout, QUICK_TIMEOUT), 0)

    def _client(self, timeout: float, retries: int) -> stripe.StripeClient:
        http_client = self.http_client or stripe.RequestsClient(timeout=timeout)
        base_addresses: BaseAddresses = {"api": self.api_base} if self.api_base else {}
        return stripe.StripeClient(
            self.secret_key,
            http_client=http_client,
            base_addresses=base_addresses,
            max_network_retries=retries,
        )


class AccountRegistry:
    """The configured accounts, keyed by lower-case currency."""

    def __init__(self, accounts: dict[str, StripeAccount]) -> None:
        self._accounts = accounts

    @classmethod
    def from_settings(cls, http_client: stripe.HTTPClient | None = None) -> AccountRegistry:
        accounts = {
            currency.lower(): StripeAccount(
                currency=currency.lower(),
                secret_key=keys.get("secret_key", ""),
                publishable_key=keys.get("publishable_key", ""),
                webhook_secret=keys.get("webhook_secret", ""),
                api_base=settings.STRIPE_API_BASE,
                timeout=settings.STRIPE_TIMEOUT,
                max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
                http_client=http_client,
            )
            for currency, keys in settings.STRIPE_ACCOUNTS.items()
        }
        return cls(accounts)

    def get(self, currency: str) -> StripeAccount:
        account = self._accounts.get(currency.lower())
        if account is None or not account.secret_key:
            raise AccountNotConfigured(currency)
        return account

    def all(self) -> list[StripeAccount]:
        return list(self._accounts.values())


_lock = threading.Lock()
_registry: AccountRegistry | None = None


def registry() -> AccountRegistry:
    global _registry
    if _registry is None:
        with _lock:
            if _registry is None:
                _registry = AccountRegistry.from_settings()
    return _registry


def install_registry(new: AccountRegistry | None) -> None:
    """Replace the process-wide registry (tests use it to put a fake Stripe behind every account)."""
    global _registry
    with _lock:
        _registry = new


def account_for(currency: str) -> StripeAccount:
    """The Stripe account that takes payments in `currency`."""
    return registry().get(currency)


def publishable_key_for(currency: str) -> str:
    """The publishable key pages in `currency` carry, or "" when payments in it are not set up."""
    try:
        return account_for(currency).publishable_key
    except AccountNotConfigured:
        return ""


# The settings `AccountRegistry.from_settings` reads: a change to one of them (tests) builds the accounts anew.
ACCOUNT_SETTINGS = frozenset(
    {"STRIPE_ACCOUNTS", "STRIPE_API_BASE", "STRIPE_TIMEOUT", "STRIPE_MAX_NETWORK_RETRIES"}
)


@receiver(setting_changed)
def _reset_on_settings_change(setting: str, **kwargs: object) -> None:
    if setting in ACCOUNT_SETTINGS:
        install_registry(None)
