"""System checks of the site's own settings (run by `manage.py check`, `check --deploy`, `migrate`, ...)."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from core.ratelimit import parse_rates
from core.siteurl import SITE_URL_HINT, site_url_problem


@register(Tags.security)
def check_site_url(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """With DEBUG off, SITE_URL is required: an absolute http(s) base URL."""
    if settings.DEBUG:
        return []
    problem = site_url_problem(settings.SITE_URL)
    if problem:
        return [Error(f"{problem} It is required when DEBUG is off.", hint=SITE_URL_HINT, id="shop.E010")]
    return []


@register(Tags.security, deploy=True)
def check_site_url_https(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """`check --deploy`: the links handed to Stripe should be https in production."""
    if settings.DEBUG or site_url_problem(settings.SITE_URL):
        return []
    if urlsplit(settings.SITE_URL).scheme != "https":
        return [
            Warning(
                "SITE_URL is not https: shoppers would come back from Stripe over plain http.",
                hint="Use the https:// URL of the shop, as served by the TLS proxy in front of it.",
                id="shop.W011",
            )
        ]
    return []


@register(Tags.security)
def check_rate_limits(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The budgets of RATELIMITS (RATELIMIT_*_PER_SESSION/_PER_ADDRESS) and TRUSTED_PROXIES must parse: a
    typo would otherwise fail every limited request."""
    messages: list[CheckMessage] = []
    for group, spec in settings.RATELIMITS.items():
        for scope in ("session", "address", "username"):
            try:
                parse_rates(str(spec.get(scope) or ""))
            except ValueError as exc:
                messages.append(
                    Error(
                        f"The {scope} budget of the rate limit group {group!r} is not a rate: {exc}.",
                        hint=f"Set RATELIMIT_{group.upper()}_PER_{scope.upper()} to N/period, e.g. 12/m, or 0.",
                        id="shop.E011",
                    )
                )
    for entry in settings.TRUSTED_PROXIES:
        if entry.strip() == "*":
            continue
        try:
            ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            messages.append(
                Error(
                    f"TRUSTED_PROXIES has an entry that is not an address or network: {entry!r}.",
                    hint="List addresses or CIDRs (127.0.0.1,10.0.0.0/8), or * to trust every peer.",
                    id="shop.E012",
                )
            )
    return messages
