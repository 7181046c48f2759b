"""Error answers that never touch the database: JSON for scripts, a plain page for browsers.

Error pages (404, 500, 503, 429, the CSRF failure) are rendered with `render_to_string` and no request, so no
context processor runs: nothing reads the session (a database row) or the user. They extend
`templates/errors/layout.html`, a standalone layout that needs nothing but the template engine.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.utils.cache import add_never_cache_headers


class ServiceUnavailable(Exception):
    """A dependency of ours (the database) is down: answered 503 with Retry-After, never 500."""


def wants_json(request: HttpRequest) -> bool:
    """JSON for scripts (the pages' fetch calls, Stripe, curl posting), a page for a browser.

    JSON when the client asks for it (`Accept` or a JSON body) or posts without accepting HTML; a page for
    GET and HEAD requests and for anything whose `Accept` lists `text/html` first-class (a browser's form).
    """
    accept = request.headers.get("Accept", "")
    if "application/json" in accept or request.content_type == "application/json":
        return True
    if "text/html" in accept:
        return False
    return request.method not in ("GET", "HEAD")


def error_json(code: str, message: str, status: int, *, retry_after: int | None = None) -> JsonResponse:
    response = JsonResponse({"error": {"code": code, "message": message}}, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
        add_never_cache_headers(response)
    return response


def _stylesheet() -> str:
    """The shop's stylesheet URL, or nothing when the static files manifest lacks it (a page must still render)."""
    try:
        return static("css/shop.css")
    except ValueError:
        return ""


def plain_page(
    template_name: str, status: int, context: dict[str, Any] | None = None, *, retry_after: int | None = None
) -> HttpResponse:
    """An error page rendered without the request: no context processors, no session, no database."""
    html = render_to_string(template_name, {"stylesheet": _stylesheet(), **(context or {})})
    response = HttpResponse(html, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
        add_never_cache_headers(response)
    return response


def error_answer(
    request: HttpRequest,
    *,
    code: str,
    message: str,
    status: int,
    template_name: str,
    retry_after: int | None = None,
    json: bool | None = None,
) -> HttpResponse:
    """The same error as JSON `{"error": {"code", "message"}}` or as a plain page, as the client wants."""
    if json if json is not None else wants_json(request):
        return error_json(code, message, status, retry_after=retry_after)
    return plain_page(template_name, status, {"message": message}, retry_after=retry_after)
