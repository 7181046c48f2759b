"""Rate limits on what creates Stripe objects or orders: per browser session and per client address.

`RateLimitMiddleware` matches a request by its resolved URL name (`request.resolver_match.view_name`, e.g.
`payments:buy`) against `settings.RATELIMITS`, so no view knows about it. Each group of URL names has budgets
per session and per client address (and, for the admin login, per username posted, from whatever address),
each one rate or several that all apply (`10/m,60/h`), counted in fixed windows (e.g. `12/m`: 12 requests in
each calendar minute) in Django's cache (`settings.RATELIMIT_CACHE`: the database cache by default, Redis with
`REDIS_URL`; see core/cache.py). A request over either budget is refused before the view runs (so it creates
nothing) with 429, `Retry-After` (seconds to the end of the window) and
`{"error": {"code": "rate_limited", "message": ...}}`, or a plain page for a browser.

The client address is `REMOTE_ADDR`, unless the peer is a trusted proxy (`settings.TRUSTED_PROXIES`, by
default gunicorn's own FORWARDED_ALLOW_IPS: the nginx in front): then it is the last address in
`X-Forwarded-For` that is not itself a trusted proxy, i.e. the address the first trusted proxy saw. A header
sent by anyone else is ignored. IPv6 clients are counted per /64 (one customer's network).

The same address function feeds django-axes (admin login lockout), and `admin_lockout_response` gives its
lockout the same 429 shape.

If the cache fails (Redis down), the request is let through and the failure logged: the limits protect the
shop, an outage of the counters must not take the shop down with it.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import math
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django.http import HttpRequest, HttpResponse
from django.utils.translation import ngettext

from core.browser import known_browser
from core.errors import browser_navigation, error_answer

logger = logging.getLogger("core.ratelimit")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_PERIODS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")


@dataclass(frozen=True)
class Rate:
    limit: int
    period: int  # seconds

    def __str__(self) -> str:
        return f"{self.limit}/{self.period}s"


@functools.lru_cache(maxsize=64)
def parse_rate(text: str) -> Rate | None:
    """`"12/m"`, `"30/min"`, `"100/h"`, `"5/10s"` -> Rate; `""`, `"0"` or `"off"` -> None (no limit)."""
    text = (text or "").strip().lower()
    if text in ("", "0", "off", "none"):
        return None
    match = _RATE.match(text)
    if not match or match.group(3) not in _PERIODS:
        raise ValueError(f"a rate is N/period, e.g. 12/m, 100/h or 5/10s; got {text!r}")
    limit, multiple, unit = int(match.group(1)), int(match.group(2) or 1), _PERIODS[match.group(3)]
    if limit < 1 or multiple < 1:
        return None
    return Rate(limit, multiple * unit)


def parse_rates(text: str) -> tuple[Rate, ...]:
    """One budget or several, all of which apply: `"10/m,60/h"` (ten a minute and sixty an hour); `""`, `"0"` or
    `"off"`: none."""
    return tuple(rate for part in (text or "").split(",") if (rate := parse_rate(part)) is not None)


@dataclass(frozen=True)
class Rule:
    group: str
    session: tuple[Rate, ...]
    address: tuple[Rate, ...]
    username: tuple[Rate, ...]  # per username posted (the admin login), whatever the address
    json: bool  # the group's endpoints are called by scripts: always answer JSON
    methods: frozenset[str]  # the methods counted (empty: all)


@functools.lru_cache(maxsize=8)
def _rules(
    config: tuple[tuple[str, tuple[str, ...], str, str, str, bool, tuple[str, ...]], ...],
) -> dict[str, Rule]:
    by_name: dict[str, Rule] = {}
    for group, names, session, address, username, json, methods in config:
        rule = Rule(
            group,
            parse_rates(session),
            parse_rates(address),
            parse_rates(username),
            json,
            frozenset(m.upper() for m in methods),
        )
        for name in names:
            by_name[name] = rule
    return by_name


def rules() -> dict[str, Rule]:
    """URL name -> its rule, from `settings.RATELIMITS` (read at each call, so that tests can override it)."""
    config = tuple(
        (
            group,
            tuple(str(name) for name in spec["urls"]),
            str(spec.get("session") or ""),
            str(spec.get("address") or ""),
            str(spec.get("username") or ""),
            bool(spec.get("json", False)),
            tuple(str(method) for method in spec.get("methods", ())),
        )
        for group, spec in settings.RATELIMITS.items()
    )
    return _rules(config)


# ------------------------------------------------------------------------------------------------ addresses


@functools.lru_cache(maxsize=8)
def _trusted(proxies: tuple[str, ...]) -> tuple[bool, tuple[IPNetwork, ...]]:
    """(trust every peer, trusted networks) from TRUSTED_PROXIES entries (addresses, CIDRs or `*`)."""
    networks = []
    for entry in proxies:
        entry = entry.strip()
        if entry == "*":
            return True, ()
        if entry:
            networks.append(ipaddress.ip_network(entry, strict=False))
    return False, tuple(networks)


def _parse_ip(text: str) -> IPAddress | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _is_trusted(address: IPAddress, proxies: Iterable[str]) -> bool:
    everyone, networks = _trusted(tuple(proxies))
    return everyone or any(address in network for network in networks)


def client_address(request: HttpRequest) -> str:
    """The shopper's address: REMOTE_ADDR, or behind trusted proxies the address the first of them saw."""
    remote = _parse_ip(str(request.META.get("REMOTE_ADDR", "")))
    if remote is None:
        return str(request.META.get("REMOTE_ADDR", "")) or "unknown"
    proxies = settings.TRUSTED_PROXIES
    if not _is_trusted(remote, proxies):
        return str(remote)
    hops = [hop for hop in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",") if hop.strip()]
    client = remote
    for hop in reversed(hops):  # nearest first: each trusted proxy appended the address it saw
        address = _parse_ip(hop)
        if address is None:
            break  # a malformed hop: trust nothing beyond it
        client = address
        if not _is_trusted(address, proxies):
            break
    return str(client)


def address_bucket(address: str) -> str:
    """The unit counted per address: the address itself, or its /64 for IPv6."""
    parsed = _parse_ip(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed) if parsed is not None else address


# ------------------------------------------------------------------------------------------------ counting


@dataclass(frozen=True)
class Refusal:
    scope: str  # "session", "address" or "username"
    rate: Rate
    retry_after: int


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _count(key: str, rate: Rate, now: float) -> tuple[int, int]:
    """Count one request in the current window of `rate`; (the window's count, seconds to its end)."""
    window = int(now // rate.period)
    retry_after = max(1, math.ceil((window + 1) * rate.period - now))
    cache = caches[settings.RATELIMIT_CACHE]
    key = f"rl:{key}:{rate.period}:{window}"
    ttl = retry_after + 5  # outlives the window a little; the key changes with the next window anyway
    incr_or_add: Callable[..., int] | None = getattr(cache, "incr_or_add", None)
    if incr_or_add is not None:  # core.cache.DatabaseCache: one locked row
        return incr_or_add(key, ttl), retry_after
    cache.add(key, 0, ttl)  # Redis (SET NX) and local memory: atomic add, then atomic INCR
    try:
        return int(cache.incr(key)), retry_after
    except ValueError:  # expired between the two calls
        cache.set(key, 1, ttl)
        return 1, retry_after


def clock() -> float:
    """Seconds since the epoch (a function of its own, so that tests can move time)."""
    return time.time()


def posted_username(request: HttpRequest) -> str:
    """The username a login form posted, as the login compares it (case aside), or ""."""
    if request.method != "POST":
        return ""
    return str(request.POST.get("username", "")).strip().casefold()[:150]


def check(request: HttpRequest, rule: Rule, now: float | None = None) -> Refusal | None:
    """Count this request against its rule's budgets; the refusal if one of them is spent."""
    now = clock() if now is None else now
    scopes = [("address", rule.address, address_bucket(client_address(request)) if rule.address else "")]
    # No browser id yet: a first visit, counted by address only. No username: nothing to count it against.
    scopes.append(("session", rule.session, known_browser(request) if rule.session else ""))
    scopes.append(("username", rule.username, posted_username(request) if rule.username else ""))
    for scope, rates, who in scopes:
        if not who:
            continue
        for rate in rates:
            count, retry_after = _count(f"{rule.group}:{scope[0]}:{_digest(who)}", rate, now)
            if count > rate.limit:
                return Refusal(scope, rate, retry_after)
    return None


def too_many_requests(request: HttpRequest, retry_after: int, *, json: bool | None = None) -> HttpResponse:
    """429 with Retry-After. The payment endpoints' rule says JSON (their scripts send no Accept); a browser
    loading one of them as a page (Pay on Stripe Checkout without JavaScript) gets the page."""
    message = ngettext(
        "Too many requests. Please wait %(seconds)d second and try again.",
        "Too many requests. Please wait %(seconds)d seconds and try again.",
        retry_after,
    ) % {"seconds": retry_after}
    return error_answer(
        request,
        code="rate_limited",
        message=message,
        status=429,
        template_name="429.html",
        retry_after=retry_after,
        json=(json and not browser_navigation(request)) or None,
    )


class RateLimitMiddleware:
    """After SessionMiddleware (it reads the browser id from the signed session cookie) and before CSRF, so that
    a flood of forged requests is counted too. Refuses in `process_view`, before the view runs."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        if not settings.RATELIMIT_ENABLED or request.resolver_match is None:
            return None
        rule = rules().get(request.resolver_match.view_name)
        if rule is None or (rule.methods and request.method not in rule.methods):
            return None
        try:
            refusal = check(request, rule)
        except Exception:  # the counters' store is down: serve rather than fail (see the module docstring)
            logger.exception("rate limit %s: counters unavailable, request let through", rule.group)
            return None
        if refusal is None:
            return None
        logger.warning(
            "rate limited %s %s: %s over %s (%s), retry in %ss",
            request.method,
            request.path,
            refusal.scope,
            refusal.rate,
            rule.group,
            refusal.retry_after,
        )
        return too_many_requests(request, refusal.retry_after, json=rule.json)


# ------------------------------------------------------------------------------------------------ django-axes


def axes_client_address(request: HttpRequest) -> str:
    """AXES_CLIENT_IP_CALLABLE: the admin login lockout sees the same client address as the rate limits (the
    address itself: axes stores it in an IP address column, so not the IPv6 /64)."""
    return client_address(request)


def admin_lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: Any = None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the lockout as a 429 with Retry-After (the whole cool-off) and the configured
    message, as a page (the admin login is a form) or JSON for a script."""
    cool_off = settings.AXES_COOLOFF_TIME
    seconds = int(cool_off.total_seconds()) if isinstance(cool_off, timedelta) else 3600
    return error_answer(
        request,
        code="login_locked",
        message=str(settings.AXES_COOLOFF_MESSAGE),
        status=429,
        template_name="429.html",
        retry_after=max(1, seconds),
    )
