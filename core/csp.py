"""The Content Security Policy of the shop's pages (served by django-csp's middleware; the admin is left out).

Stripe's published list for Stripe.js, the Payment Element and Checkout (docs.stripe.com/security/guide, section
"Content Security Policy"): scripts from https://js.stripe.com and https://*.js.stripe.com; frames from those
and https://hooks.stripe.com (3-D Secure); connections to https://api.stripe.com; images from
https://*.stripe.com; and Checkout reached by a redirect, also after a form is sent (the no-JavaScript
"Pay on Stripe Checkout"), so https://checkout.stripe.com in form-action. With a local stand-in for Stripe
(STRIPE_API_BASE, STRIPE_JS_URL: the emulator in demo mode and tests), its origin is allowed instead.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

SELF = "'self'"
STRIPE_JS = ["https://js.stripe.com", "https://*.js.stripe.com"]


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def policy(stripe_js_url: str, api_base: str) -> dict[str, Any]:
    """django-csp's CONTENT_SECURITY_POLICY for these Stripe.js and API addresses."""
    stand_in = sorted(o for o in {_origin(stripe_js_url), _origin(api_base)} if o and "stripe.com" not in o)
    scripts = [SELF, *STRIPE_JS, *stand_in]
    return {
        "EXCLUDE_URL_PREFIXES": ["/admin/"],
        "DIRECTIVES": {
            "default-src": [SELF],
            "script-src": scripts,
            "frame-src": [SELF, *STRIPE_JS, "https://hooks.stripe.com", *stand_in],
            "connect-src": [SELF, "https://api.stripe.com", *stand_in],
            "img-src": [SELF, "data:", "https://*.stripe.com"],
            "style-src": [
                SELF,
                "'unsafe-inline'",
            ],  # the Payment Element sets styles on its own frames' hosts
            "font-src": [SELF],
            "base-uri": [SELF],
            "form-action": [SELF, "https://checkout.stripe.com", *stand_in],
            "frame-ancestors": ["'none'"],
            "object-src": ["'none'"],
        },
    }
