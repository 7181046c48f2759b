"""Site-wide middleware: a lost database answers 503 (never 500). (The Content Security Policy is django-csp's
middleware, configured in core/csp.py.)"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.utils.translation import gettext, gettext_noop

from core.errors import ServiceUnavailable, error_answer

logger = logging.getLogger("core.outage")

OUTAGE_MESSAGE = gettext_noop("The shop is briefly unavailable. Please try again in a minute.")


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot be reached (a fault of the platform, answered 503), rather than
    a bug of ours (an IntegrityError, a ProgrammingError, ...: still a 500).

    OperationalError: connection refused or lost, server shutting down, a timeout, SQLite's "database is
    locked"; InterfaceError: a connection that is already closed; a bare DatabaseError: what the driver raises
    when it cannot tell more.
    """
    if isinstance(exc, ServiceUnavailable | OperationalError | InterfaceError):
        return True
    return type(exc) is DatabaseError


def unavailable_response(request: HttpRequest, exc: BaseException | None = None) -> HttpResponse:
    """503 with Retry-After: JSON for scripts (and Stripe's webhooks), a plain page for browsers. Rendered with
    no session, no context processor and no query, since the database is what is missing."""
    if exc is not None:
        logger.warning(
            "database unavailable: %s %s -> 503 (%s: %s)",
            request.method,
            request.path,
            type(exc).__name__,
            str(exc).strip().splitlines()[0] if str(exc).strip() else "",
        )
    # In the shopper's language even when the outage came before LocaleMiddleware ran (the session's save).
    with translation.override(translation.get_language_from_request(request)):
        return error_answer(
            request,
            code="unavailable",
            message=gettext(OUTAGE_MESSAGE),
            status=503,
            template_name="503.html",
            retry_after=settings.DATABASE_OUTAGE_RETRY_AFTER,
        )


class DatabaseOutageMiddleware:
    """Early in MIDDLEWARE: a database outage raised by a view (or by a template it renders) is answered 503
    here. One raised by another middleware (the session being saved) reaches `core.views.server_error`, which
    answers the same 503; either way gunicorn's bare "Internal Server Error" never shows."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            return self.get_response(request)
        except Exception as exc:  # only with DEBUG_PROPAGATE_EXCEPTIONS: Django converts the others itself
            if is_outage(exc):
                return unavailable_response(request, exc)
            raise

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if is_outage(exception):
            return unavailable_response(request, exception)
        return None


class AdminLanguageMiddleware:
    """Right after LocaleMiddleware: the admin stays in the shop's default language (English). Its own labels,
    actions and pages are written in English only; Django's Russian around them would mix two languages on one
    screen. Shoppers' pages keep the language LocaleMiddleware chose."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith("/admin/"):
            translation.activate(settings.LANGUAGE_CODE)
            request.LANGUAGE_CODE = settings.LANGUAGE_CODE
        return self.get_response(request)
