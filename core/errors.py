"""Error answers that never touch the database: JSON for scripts, a plain page for browsers.

Error pages (404, 500, 503, 429, the CSRF failure) are rendered with `render_to_string` and no request, so no
context processor runs: nothing reads the session (a database row) or the user. They extend
`templates/errors/layout.html`, a standalone layout that needs nothing but the template engine. They speak the
shopper's language (LocaleMiddleware chose it from the language cookie or Accept-Language, without the database)
and carry the language switch, with the visitor's CSRF token (a cookie, never the database).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.utils.cache import add_never_cache_headers


class ServiceUnavailable(Exception):
    """A dependency of ours (the database) is down: answered 503 with Retry-After, never 500."""


def browser_navigation(request: HttpRequest) -> bool:
    """A browser loading a page (a link, a form sent without JavaScript): it accepts HTML and did not ask for
    JSON. Scripts ask for JSON (`Accept: application/json`) or say nothing (`*/*`, no Accept at all)."""
    accept = request.headers.get("Accept", "")
    return "text/html" in accept and "application/json" not in accept


def asks_for_json(request: HttpRequest) -> bool:
    """The client asked for JSON: `Accept: application/json` or a JSON body (the pages' fetch calls). The
    cart endpoints answer JSON exactly then; a form posted by a browser gets pages."""
    return (
        "application/json" in request.headers.get("Accept", "") or request.content_type == "application/json"
    )


def wants_json(request: HttpRequest) -> bool:
    """The error answers: JSON for scripts (the pages' fetch calls, Stripe, curl posting), a page for a browser.

    JSON when the client asks for it (`asks_for_json`) or posts without accepting HTML; a page for GET and
    HEAD requests and for anything whose `Accept` lists `text/html` (a browser's form).
    """
    if asks_for_json(request):
        return True
    if "text/html" in request.headers.get("Accept", ""):
        return False
    return request.method not in ("GET", "HEAD")


def error_json(code: str, message: str, status: int, *, retry_after: int | None = None) -> JsonResponse:
    response = JsonResponse({"error": {"code": code, "message": message}}, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
        add_never_cache_headers(response)
    return response


def _static(path: str) -> str:
    """A static file's URL, or nothing when the static files manifest lacks it (a page must still render)."""
    try:
        return static(path)
    except ValueError:
        return ""


def plain_page(
    template_name: str,
    status: int,
    context: dict[str, Any] | None = None,
    *,
    retry_after: int | None = None,
    request: HttpRequest | None = None,
) -> HttpResponse:
    """An error page rendered without the request: no context processors, no session, no database. With the
    request, its language switch gets the visitor's CSRF token and comes back to the same address."""
    visitor: dict[str, Any] = {}
    if request is not None:
        visitor["csrf_token"] = get_token(request)
        # The switch comes back to this address; an answer to a form cannot be loaded again: the catalog then.
        visitor["page_path"] = request.get_full_path() if request.method in ("GET", "HEAD") else "/"
    html = render_to_string(
        template_name,
        {
            "stylesheet": _static("css/shop.css"),
            "favicon": _static("favicon.svg"),
            **visitor,
            **(context or {}),
        },
    )
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
    return plain_page(template_name, status, {"message": message}, retry_after=retry_after, request=request)
