"""Site-wide views: the health check for load balancers and friendly error pages."""

from __future__ import annotations

import logging

from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

logger = logging.getLogger("core")


@never_cache
def healthz(request: HttpRequest) -> HttpResponse:
    """200 only when the database answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        logger.exception("health check: database unavailable")
        return JsonResponse({"status": "unavailable", "database": "down"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "") or request.method not in ("GET", "HEAD")


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"error": {"code": "not_found", "message": "Not found."}}, status=404)
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(
            {"error": {"code": "server_error", "message": "Something went wrong on our side."}}, status=500
        )
    return render(request, "500.html", status=500)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return JsonResponse({"error": {"code": "bad_request", "message": "Bad request."}}, status=400)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """A POST without a valid CSRF token: JSON for the payment endpoints' scripts, a page for forms."""
    message = "Your session has expired or the form is stale. Reload the page and try again."
    scripted = request.path.startswith(("/item/", "/order/intent/"))  # called by the page's script
    if scripted or "application/json" in request.headers.get("Accept", ""):
        return JsonResponse({"error": {"code": "csrf_failed", "message": message}}, status=403)
    return render(request, "403_csrf.html", {"message": message}, status=403)
