"""What makes SITE_URL usable: an absolute http(s) base URL. Plain Python, no Django: the settings module checks
it at import (production refuses to start without it), and the system check shop.E010 (core/checks.py) again."""

from __future__ import annotations

from urllib.parse import urlsplit

SITE_URL_HINT = (
    "Set SITE_URL to the shop's public base URL, e.g. SITE_URL=https://shop.example.com: the links handed to "
    "Stripe (return, success and cancel URLs) are built from it, never from the request's Host header."
)


def site_url_problem(url: str) -> str:
    if not url:
        return "SITE_URL is not set."
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"SITE_URL is not an absolute http(s) URL: {url!r}."
    if parts.query or parts.fragment or parts.username or parts.password:
        return f"SITE_URL must be a plain base URL (no query, fragment or credentials): {url!r}."
    try:
        parts.port  # noqa: B018  (raises on a port that is not a number)
    except ValueError:
        return f"SITE_URL has an invalid port: {url!r}."
    return ""
