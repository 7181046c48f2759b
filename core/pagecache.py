"""Pages every shopper sees the same (the catalog, an item page), rendered once and served from Django's cache
to every worker process: the database cache or Redis (settings.CACHES), so one render serves all of them.

What differs per visitor is kept out of the cached body: the page is rendered without a request (no session,
no context processors), with a placeholder where the visitor's CSRF token goes, and the token is put in when
the page is served (Django's CSRF token lives in a cookie, so this reads no database either). A cache hit
therefore costs one cache read and writes nothing. Responses carry an ETag (a digest of the render), so a
returning browser's revalidation is answered 304 without a body; they are `private` (each carries its visitor's
token). They carry no Last-Modified: a page shows more than its item (the taxes every order carries, the
translations, the catalog around it), and no one date covers all of that, whereas the ETag changes with
anything that changes the render; a client revalidating with If-Modified-Since alone gets the page again.

Keys hold the page and the language (each language has its own render: the shopper's, chosen by
LocaleMiddleware from the language switch's cookie or Accept-Language, so the switch works with caching). Each
entry carries a fingerprint of what the render depends on besides its data (Stripe's settings, the static
files' hashed names, the compiled translations), checked when the page is served: a deploy or an account
change never serves an old render. A change of the data itself deletes the keys (`forget`, every language),
which needs no fingerprint, so saving an item works before `collectstatic` (no static file is looked up); every
entry expires after `TTL` anyway.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.core.signals import setting_changed
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.utils.cache import get_conditional_response, patch_cache_control
from django.utils.translation import get_language

TTL = 600
CSRF_PLACEHOLDER = "csrf-token-of-this-visitor-7f3a9c"


@functools.lru_cache(maxsize=4)
def _fingerprint(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


@functools.lru_cache(maxsize=1)
def _translations() -> str:
    """The compiled translations this process serves (read once: a deploy restarts the processes), so that new
    words are never hidden behind an old render."""
    digest = hashlib.sha256()
    for folder in settings.LOCALE_PATHS:
        for mo in sorted(Path(folder).glob("*/LC_MESSAGES/*.mo")):
            digest.update(mo.read_bytes())
    return digest.hexdigest()[:12]


@functools.lru_cache(maxsize=1)
def _static_names() -> tuple[str, ...]:
    """The hashed names of the static files the pages link (looked up once per process: a deploy restarts it)."""
    return (static("css/shop.css"), static("js/pay.js"), static("favicon.svg"))


@receiver(setting_changed)
def _static_settings_changed(setting: str, **kwargs: Any) -> None:
    if setting in ("STATIC_URL", "STATIC_ROOT", "STORAGES"):
        _static_names.cache_clear()


def fingerprint() -> str:
    """What a cached render depends on besides its data and language."""
    keys = sorted(f"{c}:{k.get('publishable_key', '')}" for c, k in settings.STRIPE_ACCOUNTS.items())
    return _fingerprint(
        settings.STRIPE_JS_URL, str(settings.STRIPE_DEMO_MODE), *_static_names(), _translations(), *keys
    )


def key(name: str, language: str | None = None) -> str:
    return f"page:{language or get_language() or settings.LANGUAGE_CODE}:{name}"


def render(template: str, context: dict[str, Any]) -> str:
    """A page rendered without a request: nothing of the visitor is in it but the CSRF placeholder."""
    return render_to_string(
        template, {"csrf_token": CSRF_PLACEHOLDER, "STRIPE_DEMO_MODE": settings.STRIPE_DEMO_MODE, **context}
    )


def serve(request: HttpRequest, name: str, build: Callable[[], str]) -> HttpResponse:
    """The cached page `name` for this visitor (GET, and HEAD: the same answer, whose body the server drops);
    `build()` renders it on a miss and may raise Http404 (nothing is cached then)."""
    current = fingerprint()
    entry = cache.get(key(name))
    if entry is None or entry.get("fingerprint") != current:
        body = build()
        entry = {
            "body": body,
            "etag": f'"{hashlib.sha256(body.encode()).hexdigest()[:20]}"',
            "fingerprint": current,
        }
        cache.set(key(name), entry, TTL)
    etag = entry["etag"]
    response = get_conditional_response(request, etag=etag)
    if response is None:
        body = entry["body"]
        if CSRF_PLACEHOLDER in body:
            body = body.replace(CSRF_PLACEHOLDER, get_token(request))
        response = HttpResponse(body)
    response["ETag"] = etag
    patch_cache_control(response, private=True, no_cache=True)
    return response


def forget(*names: str) -> None:
    """Drop the cached renders of these pages, in every language: now, and again when the transaction that
    changed the data commits (a page rendered meanwhile by another request still saw the old data)."""
    languages = {code for code, _ in getattr(settings, "LANGUAGES", [])} | {settings.LANGUAGE_CODE}
    keys = [key(name, language) for name in names for language in languages]
    cache.delete_many(keys)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: cache.delete_many(keys))
