"""A bulkhead for Stripe waits: per process, at most `STRIPE_CONCURRENCY` requests wait on Stripe at once.

A request that calls Stripe while the client waits (Pay, `/buy`, "Change order") holds a gunicorn thread and,
inside its transaction, a database connection for as long as Stripe takes (up to STRIPE_TIMEOUT x attempts).
The per-address rate limits bound one client, not all of them together: 200 shoppers pressing Pay while Stripe
hangs would take every thread of every worker, and the catalog, item pages, /healthz, the admin and Stripe's
webhooks would queue behind them. So these views take a slot first, without waiting: past the bound they answer
503 with Retry-After at once, before any database write, and the threads and connections left over keep serving
everything else (README "Configuration" and "Connections" give the sizing and the measurement).

Staff refunds have a compartment of their own (`STRIPE_STAFF_CONCURRENCY`): shoppers filling theirs never
refuse a refund, and a stuck refund page never takes the shoppers' slots.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils.translation import gettext

from core.errors import browser_navigation, error_answer

if TYPE_CHECKING:
    from django.contrib.admin import ModelAdmin

logger = logging.getLogger("payments.bulkhead")
P = ParamSpec("P")
View = Callable[Concatenate[HttpRequest, P], HttpResponse]

SHOPPERS = "STRIPE_CONCURRENCY"
STAFF = "STRIPE_STAFF_CONCURRENCY"
STAFF_BUSY = "Stripe is busy with other refunds: nothing was sent. Try again in a few seconds."


class Compartment:
    """`size` slots taken without waiting; `size` 0 means no bound."""

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.size = size
        self._slots = threading.BoundedSemaphore(size) if size > 0 else None

    def try_enter(self) -> bool:
        return self._slots is None or self._slots.acquire(blocking=False)

    def leave(self) -> None:
        if self._slots is not None:
            self._slots.release()

    @contextmanager
    def slot(self) -> Iterator[bool]:
        """True inside when a slot was taken (it is given back however the block ends), False when all are
        taken (the caller does without Stripe, or refuses)."""
        entered = self.try_enter()
        try:
            yield entered
        finally:
            if entered:
                self.leave()


_compartments: dict[str, Compartment] = {}
_lock = threading.Lock()


def compartment(setting: str = SHOPPERS) -> Compartment:
    """The process's compartment named by a setting, made again only if the setting changed (tests)."""
    size = int(getattr(settings, setting))
    found = _compartments.get(setting)
    if found is None or found.size != size:
        with _lock:
            found = _compartments.get(setting)
            if found is None or found.size != size:
                found = _compartments[setting] = Compartment(setting, size)
    return found


def busy_answer(request: HttpRequest) -> HttpResponse:
    """503 with Retry-After: JSON `{"error": {...}}` for scripts (the Pay button), a page for a browser."""
    return error_answer(
        request,
        code="stripe_busy",
        message=gettext(
            "Many shoppers are paying right now. Nothing was charged and your order is kept: please try again "
            "in a few seconds."
        ),
        status=503,
        template_name="503.html",
        retry_after=settings.STRIPE_BUSY_RETRY_AFTER,
        json=not browser_navigation(request),
    )


def waits_on_stripe(view: View[P]) -> View[P]:
    """The view runs only with a shoppers' slot (held until it returns or raises); past the bound, 503."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: P.args, **kwargs: P.kwargs) -> HttpResponse:
        with compartment(SHOPPERS).slot() as entered:
            if not entered:
                return refuse(request)
            return view(request, *args, **kwargs)

    wrapper.waits_on_stripe = True  # type: ignore[attr-defined]  # read by BulkheadMiddleware
    return wrapper


def refuse(request: HttpRequest) -> HttpResponse:
    logger.warning("stripe bulkhead full: %s %s refused with 503", request.method, request.path)
    return busy_answer(request)


class BulkheadMiddleware:
    """The same refusal, made before the rate limits, CSRF and the session are looked at: a crowd pressing Pay
    while Stripe hangs then costs the process about a millisecond of CPU per click (measured with the test
    client on PostgreSQL: 1.0-1.6 ms, against 4.5 ms when refused in the view, after the rate limits' counters in
    the database), so that the pages do not queue behind the refusals. Only a peek: the view's decorator takes the slot (and refuses if it is gone
    meanwhile)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # The slots are peeked first: while they are not all taken (nearly always) no URL is resolved here.
        if request.method in ("GET", "POST") and full(compartment(SHOPPERS)) and guarded(request.path_info):
            return refuse(request)
        return self.get_response(request)


def guarded(path: str) -> bool:
    try:
        match = resolve(path)
    except Resolver404:
        return False
    return bool(getattr(match.func, "waits_on_stripe", False))


def full(slots: Compartment) -> bool:
    if not slots.try_enter():
        return True
    slots.leave()
    return False


A = TypeVar("A", bound="ModelAdmin[Any]")
Action = Callable[[A, HttpRequest, Any], Any]


def staff_waits_on_stripe(action: Action[A]) -> Action[A]:
    """An admin action that calls Stripe runs with a staff slot; when all are taken it says so and does nothing."""

    @functools.wraps(action)
    def wrapper(model_admin: A, request: HttpRequest, queryset: Any) -> Any:
        with compartment(STAFF).slot() as entered:
            if not entered:
                model_admin.message_user(request, STAFF_BUSY, messages.ERROR)
                return None
            return action(model_admin, request, queryset)

    return wrapper
