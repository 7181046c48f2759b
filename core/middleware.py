"""Content Security Policy: the shop's own origin, plus Stripe.js and what Stripe.js needs, nothing else."""

from __future__ import annotations

import functools
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def build_policy() -> str:
    return _policy(settings.STRIPE_JS_URL, settings.STRIPE_API_BASE)


@functools.lru_cache(maxsize=8)
def _policy(stripe_js_url: str, api_base: str) -> str:
    stripe_js = _origin(stripe_js_url)
    api = _origin(api_base) if api_base else "https://api.stripe.com"
    scripts = " ".join(filter(None, ["'self'", stripe_js]))
    frames = " ".join(filter(None, ["'self'", stripe_js, "" if api_base else "https://hooks.stripe.com"]))
    connect = " ".join(filter(None, ["'self'", api, stripe_js]))
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {scripts}",
            f"frame-src {frames}",
            f"connect-src {connect}",
            "img-src 'self' data: https://*.stripe.com",
            "style-src 'self' 'unsafe-inline'",
            "base-uri 'self'",
            "form-action 'self' https://checkout.stripe.com" + (f" {api}" if api_base else ""),
            "frame-ancestors 'none'",
            "object-src 'none'",
        ]
    )


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if not request.path.startswith("/admin/"):
            response.headers.setdefault("Content-Security-Policy", build_policy())
        return response
