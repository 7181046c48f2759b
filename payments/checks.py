"""System checks for the Stripe configuration (run by `manage.py check`, `runserver` and `migrate`)."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import DatabaseError

from payments.accounts import AccountRegistry, key_mode
from payments.models import Discount, Tax

# A placeholder rather than a key: .env.example's (`sk_test_paste_your_usd_secret_key_here`), `sk_test_...`,
# `<your key>`. Stripe's keys are one run of letters and digits after their prefix, so whole words are looked
# for, never letters inside a key.
PLACEHOLDER_WORDS = frozenset({"paste", "replace", "your", "here", "example", "changeme", "placeholder"})


def is_placeholder(key: str) -> bool:
    return "..." in key or "<" in key or bool(PLACEHOLDER_WORDS & set(re.split(r"[_\-\s]+", key.lower())))


# Where each key of an account comes from: its variable's suffix, Stripe's prefix and where to find it.
KEYS = (
    ("secret_key", "SECRET_KEY", "sk_test_", "its secret key (Dashboard > Developers > API keys)"),
    ("publishable_key", "PUBLISHABLE_KEY", "pk_test_", "its publishable key (the same page)"),
    (
        "webhook_secret",
        "WEBHOOK_SECRET",
        "whsec_",
        "the signing secret that `stripe listen --api-key <its secret key>` prints, or its webhook endpoint's "
        "(Dashboard > Developers > Webhooks)",
    ),
)


def placeholders(account: Any) -> list[CheckMessage]:
    """A key still holding a placeholder (.env.example's, copied as it is): say what to paste where."""
    cur = account.currency.upper()
    found = [spec for spec in KEYS if is_placeholder(getattr(account, spec[0]) or "")]
    if not found:
        return []
    names = ", ".join(f"STRIPE_{cur}_{suffix}" for _, suffix, _, _ in found)
    where = "; ".join(f"STRIPE_{cur}_{suffix}: {what} ({prefix}...)" for _, suffix, prefix, what in found)
    return [
        Error(
            f"{names} still hold{'s' if len(found) == 1 else ''} a placeholder, not a key of your {cur} Stripe "
            "account.",
            hint=f"Paste into .env, from the Stripe account that takes {cur}: {where}. Or delete the Stripe "
            'lines from .env to run the demo with the local emulator (README, "From the demo to your Stripe '
            'test account").',
            id="payments.E006",
        )
    ]


@register(Tags.compatibility, "stripe")
def check_stripe_accounts(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    accounts = AccountRegistry.from_settings().all()
    # In development (DEBUG) no keys means the demo: `make run` brings its own, and commands run by hand
    # beside it need none.
    if not accounts and not settings.DEBUG:
        messages.append(
            Warning(
                "No Stripe account is configured: items can be browsed but not paid.",
                hint="Set STRIPE_CURRENCIES and STRIPE_<CUR>_SECRET_KEY/_PUBLISHABLE_KEY/_WEBHOOK_SECRET "
                "(or STRIPE_SECRET_KEY/STRIPE_PUBLISHABLE_KEY for one currency).",
                id="payments.W001",
            )
        )
    modes: set[str] = set()
    owners: dict[str, list[str]] = defaultdict(list)
    for account in accounts:
        cur = account.currency.upper()
        messages += placeholders(account)
        missing = [
            name
            for name, value in (
                ("secret key", account.secret_key),
                ("publishable key", account.publishable_key),
                ("webhook secret", account.webhook_secret),
            )
            if not value
        ]
        if missing:
            messages.append(
                Error(
                    f"The Stripe account for {cur} is incomplete: missing {', '.join(missing)}.",
                    hint=f"Set STRIPE_{cur}_SECRET_KEY, STRIPE_{cur}_PUBLISHABLE_KEY and STRIPE_{cur}_WEBHOOK_SECRET.",
                    id="payments.E001",
                )
            )
        if account.secret_key and not account.secret_key.startswith(("sk_", "rk_")):
            messages.append(
                Error(
                    f"STRIPE_{cur}_SECRET_KEY does not look like a Stripe secret key (sk_...).",
                    id="payments.E002",
                )
            )
        if account.publishable_key and not account.publishable_key.startswith("pk_"):
            messages.append(
                Error(
                    f"STRIPE_{cur}_PUBLISHABLE_KEY does not look like a Stripe publishable key (pk_...).",
                    id="payments.E002",
                )
            )
        if account.webhook_secret and not account.webhook_secret.startswith("whsec_"):
            messages.append(
                Error(
                    f"STRIPE_{cur}_WEBHOOK_SECRET does not look like a webhook secret (whsec_...).",
                    id="payments.E002",
                )
            )
        for key in (account.secret_key, account.publishable_key):
            mode = key_mode(key)
            if mode:
                modes.add(mode)
        for key in (account.secret_key, account.publishable_key, account.webhook_secret):
            if key:
                owners[key].append(cur)
    if len(modes) > 1:
        messages.append(
            Error(
                "Stripe test keys and live keys are mixed.",
                hint="Use test keys (sk_test_/pk_test_) for every currency, or live keys for every currency.",
                id="payments.E003",
            )
        )
    for currencies in owners.values():
        if len(currencies) > 1:
            messages.append(
                Error(
                    f"One Stripe key is used for several currencies: {', '.join(currencies)}.",
                    hint="Each currency has its own Stripe account and so its own keys.",
                    id="payments.E004",
                )
            )
    if settings.STRIPE_API_BASE and any(a.livemode for a in accounts):
        messages.append(Error("STRIPE_API_BASE points live keys away from Stripe.", id="payments.E005"))
    return messages


@register(Tags.database, "stripe")
def check_currencies_of_rows(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Taxes and discounts in a currency no Stripe account is configured for apply to no order (a typo such
    as `uds`, or an account removed since): reported so that staff correct them. A database check: `migrate`
    (so every `make run`) and `manage.py check --database default` run it."""
    if not kwargs.get("databases"):
        return []
    known = set(settings.STRIPE_ACCOUNTS)
    messages: list[CheckMessage] = []
    try:
        rows = [
            *(
                ("Tax", t.pk, t.name, t.currency)
                for t in Tax.objects.exclude(currency="").only("name", "currency")
            ),
            *(
                ("Discount", d.pk, d.name, d.currency)
                for d in Discount.objects.exclude(currency="").only("name", "currency")
            ),
        ]
    except DatabaseError:
        return []
    for model, pk, name, currency in rows:
        if currency.lower() not in known:
            messages.append(
                Warning(
                    f"{model} {pk} ({name}) is in {currency.upper()!r}, which no Stripe account is configured for: "
                    "it applies to no order.",
                    hint=f"Correct its currency in the admin, or configure an account for {currency.upper()}.",
                    id="payments.W010",
                )
            )
    return messages
