"""Site-wide views: the health check for load balancers and error pages that never touch the database."""

from __future__ import annotations

import logging
import sys

from django.conf import settings
from django.db import Error as DatabaseLibraryError
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext
from django.views.decorators.cache import never_cache

from core.errors import error_answer, error_json, plain_page
from core.middleware import is_outage, unavailable_response

logger = logging.getLogger("core")


@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """200 only when the database answers; 503 `database: down` otherwise (no traceback: it repeats every probe)."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseLibraryError as exc:  # OperationalError, InterfaceError (an unusable connection), ...
        logger.warning("health check: database unavailable: %s", str(exc).strip() or type(exc).__name__)
        response = JsonResponse({"status": "unavailable", "database": "down"}, status=503)
        response["Retry-After"] = str(settings.DATABASE_OUTAGE_RETRY_AFTER)
        return response
    return JsonResponse({"status": "ok", "database": "ok"})


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_answer(
        request, code="not_found", message=gettext("Not found."), status=404, template_name="404.html"
    )


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500. Called while the exception is being handled: a lost database (raised where the outage
    middleware cannot see it, e.g. while the session middleware saves) is a 503, never a 500."""
    exc = sys.exc_info()[1]
    if exc is not None and is_outage(exc):
        return unavailable_response(request, exc)
    return error_answer(
        request,
        code="server_error",
        message=gettext("Something went wrong on our side."),
        status=500,
        template_name="500.html",
    )


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return error_json("bad_request", gettext("Bad request."), 400)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A POST without a valid CSRF token: JSON for the payment endpoints' scripts, a page for forms."""
    message = gettext("Your session has expired or the form is stale. Reload the page and try again.")
    scripted = request.path.startswith(("/item/", "/order/intent/"))  # called by the page's script
    if scripted or "application/json" in request.headers.get("Accept", ""):
        return error_json("csrf_failed", message, 403)
    return plain_page("403_csrf.html", 403, {"message": message}, request=request)
