"""HTTP endpoints of the payments app. Views stay thin: they read the request, call the plain functions in
`orders`, `intents`, `checkout`, `sync` and `webhooks`, and turn a `ShopError` into a clear JSON or page answer.

Pages answer HEAD like GET (`require_safe`; the server drops the body). `/buy/<id>` and `/order/buy/<id>` are
not pages but requests that open a Checkout Session: GET only, so that a link checker's HEAD creates nothing."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Concatenate, ParamSpec
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.db import DatabaseError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.urls import resolve, reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST, require_safe

from catalog.models import Item
from core.browser import browser_id
from core.errors import asks_for_json, browser_navigation, error_json
from core.ratelimit import address_bucket, client_address
from payments import (
    checkout,
    followups,
    freezing,
    gateway,
    intents,
    orders,
    promotions,
    states,
    sync,
    webhooks,
)
from payments.accounts import AccountNotConfigured, account_for
from payments.bulkhead import compartment, waits_on_stripe
from payments.errors import CurrencyMismatch, OrderNotEditable, PaymentProviderError, ShopError
from payments.forms import ItemForm, ItemQuantityForm, NewOrderForm, PayForm, PromoForm, PutForm, submitted
from payments.models import FollowUp, Order, Payment, PaymentKind
from payments.pricing import price_order

logger = logging.getLogger("payments.views")
P = ParamSpec("P")
View = Callable[Concatenate[HttpRequest, P], HttpResponse]


def refused(request: HttpRequest, exc: ShopError, *, json: bool | None = None) -> HttpResponse:
    """The one answer to a `ShopError` (nothing was changed by it): JSON `{"error": {"code", "message", ...}}`
    for scripts (always, with `json=True`). A browser's form goes back to the page it was sent from with the
    message shown there; a form from a cached page (the catalog, an item page, which show no messages) gets a
    page saying why, with a way back (or the error's own page, e.g. the offer of a new order in another
    currency)."""
    if json if json is not None else asks_for_json(request):
        return keep_session(request, JsonResponse(exc.as_json(), status=exc.status))
    back = back_url(request)
    if exc.template == ShopError.template and not shows_no_messages(back):
        messages.error(request, exc.message)
        return HttpResponseRedirect(back)
    context = {**exc.details, **exc.page, "message": exc.message, "back": back, "page_path": back}
    return keep_session(request, render(request, exc.template, context, status=exc.status))


def shows_no_messages(url: str) -> bool:
    """The cached pages (served the same to everyone) show no messages."""
    try:
        match = resolve(urlsplit(url).path)
    except Http404:
        return True
    return match.namespace == "catalog"


def shop_errors(view: View[P]) -> View[P]:
    """Answer a `ShopError` raised by a cart endpoint with `refused`: a page for a form, JSON for a script."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: P.args, **kwargs: P.kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except ShopError as exc:
            return refused(request, exc)

    return wrapper


def json_errors(view: View[P]) -> View[P]:
    """Answer a `ShopError` raised by a JSON endpoint (`/buy`, the Pay requests) with `refused`: as JSON for
    scripts (whatever their Accept says), as a page for a browser that loaded it (`/buy` without JavaScript)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: P.args, **kwargs: P.kwargs) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except ShopError as exc:
            return refused(request, exc, json=not browser_navigation(request))

    return wrapper


def keep_session(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """Send the session cookie with an error answer too (Django sends none with a 5xx), so that the shopper's
    retry after a Stripe outage finds the same order, and Stripe replays the same object for its key."""
    if response.status_code < 500 or not request.session.modified:
        return response
    request.session.save()
    key = request.session.session_key
    if key:
        response.set_cookie(
            settings.SESSION_COOKIE_NAME,
            key,
            max_age=settings.SESSION_COOKIE_AGE,
            domain=settings.SESSION_COOKIE_DOMAIN,
            path=settings.SESSION_COOKIE_PATH,
            secure=settings.SESSION_COOKIE_SECURE,
            httponly=settings.SESSION_COOKIE_HTTPONLY,
            samesite=settings.SESSION_COOKIE_SAMESITE,
        )
    return response


def absolute(path: str) -> str:
    """A link handed to Stripe: built from SITE_URL only, never from the request's Host header."""
    return f"{settings.SITE_URL}{path}"


def get_item(item_id: int) -> Item:
    return get_object_or_404(Item.objects.active(), pk=item_id)


def cart_order(request: HttpRequest, order_id: str) -> Order:
    """The order a cart endpoint changes; one waiting for payment is made a cart again first (`orders.reopen`:
    its payment objects closed at Stripe, 409 when Stripe says a payment is processing or went through)."""
    return orders.reopen(request, get_order(request, order_id))


def get_order(request: HttpRequest, order_id: str, *, pricing: bool = False) -> Order:
    public_id = orders.parse_order_id(order_id)
    if public_id is None:
        raise Http404("No such order.")
    qs = orders.with_pricing() if pricing else Order.objects.all()
    order = qs.filter(public_id=public_id).first()
    if order is None or not orders.can_view(request, order):
        raise Http404("No such order.")
    return order


def order_urls(order: Order | freezing.NewOrder) -> dict[str, str]:
    oid = order.public_id
    return {
        "return_url": absolute(reverse("payments:intent_return", args=[oid])),
        "success_url": absolute(reverse("payments:checkout_success", args=[oid]))
        + "?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": absolute(reverse("payments:checkout_cancel", args=[oid])),
    }


def item_order(request: HttpRequest, item_id: int) -> Order | freezing.NewOrder:
    """The shopper's one-item order for buying `item_id` now, at the price the item has now (or the one to
    make, with its payment object)."""
    item = get_item(item_id)
    gateway.account(item.currency)
    order = orders.buy_now_order(request, item, page_loaded_at=pay_fields(request)["page_loaded_at"])
    return order if isinstance(order, freezing.NewOrder) else orders.follow_price(order, item)


def pay_fields(request: HttpRequest) -> dict[str, Any]:
    """What the Pay and Checkout buttons send: `expected_amount`, when the page was loaded (or None) and the
    address for the receipt ("" when none)."""
    data = PayForm(submitted(request)).checked()
    age = data["page_age_ms"]
    loaded_at = timezone.now() - timedelta(milliseconds=age) if age is not None else None
    return {
        "expected_total": data["expected_amount"],
        "page_loaded_at": loaded_at,
        "email": data["receipt_email"],
    }


# ------------------------------------------------------------------------------------------------ Checkout


def checkout_answer(request: HttpRequest, order: Order | freezing.NewOrder) -> HttpResponse:
    """The session's id and hosted page as JSON (the task's contract, for scripts and API clients), or, for a
    browser that sent "Pay on Stripe Checkout" as a plain form (no JavaScript), a 303 to the hosted page."""
    urls = order_urls(order)
    opened = checkout.create_session(
        order,
        success_url=urls["success_url"],
        cancel_url=urls["cancel_url"],
        owner=browser_id(request),
    )
    if browser_navigation(request) and opened.url:
        redirect = HttpResponseRedirect(opened.url)
        redirect.status_code = 303
        return redirect
    return JsonResponse({"id": opened.payment.stripe_id, "url": opened.url, "order_id": str(order.public_id)})


@require_GET
@waits_on_stripe
@json_errors
def buy_item(request: HttpRequest, item_id: int) -> HttpResponse:
    """`GET /buy/<id>`: a Checkout Session for one item; answers its id and hosted page URL (JSON), or sends a
    browser there (303)."""
    return checkout_answer(request, item_order(request, item_id))


@require_GET
@waits_on_stripe
@json_errors
def buy_order(request: HttpRequest, order_id: str) -> HttpResponse:
    """`GET /order/buy/<order_id>`: a Checkout Session for the whole order."""
    return checkout_answer(request, get_order(request, order_id))


# ------------------------------------------------------------------------------------------------ PaymentIntents


def intent_answer(request: HttpRequest, order: Order | freezing.NewOrder) -> JsonResponse:
    opened = intents.open_intent(
        order,
        owner=browser_id(request),
        expected_total=pay_fields(request)["expected_total"],
        email=pay_fields(request)["email"],
    )
    return JsonResponse(
        {
            "client_secret": opened.client_secret,
            "publishable_key": opened.publishable_key,
            "amount": opened.amount,
            "currency": opened.currency,
            "order_id": str(order.public_id),
            "return_url": order_urls(order)["return_url"],
        }
    )


@require_POST
@waits_on_stripe
@json_errors
def item_intent(request: HttpRequest, item_id: int) -> HttpResponse:
    """`POST /item/<id>/intent`: the PaymentIntent of the shopper's one-item order for this item."""
    return intent_answer(request, item_order(request, item_id))


@require_POST
@waits_on_stripe
@json_errors
def order_intent(request: HttpRequest, order_id: str) -> HttpResponse:
    """`POST /order/intent/<order_id>`: the PaymentIntent for the whole order."""
    return intent_answer(request, get_order(request, order_id))


# ------------------------------------------------------------------------------------------------ cart


def cart_answer(request: HttpRequest, order: Order, status: int = 200) -> HttpResponse:
    if asks_for_json(request):
        priced = price_order(orders.with_pricing().get(pk=order.pk))
        return JsonResponse(
            {
                "id": str(order.public_id),
                "url": order.get_absolute_url(),
                "currency": order.currency,
                "status": order.status,
                "lines": [{"item_id": line.item_id, "quantity": line.quantity} for line in priced.lines],
                "total": priced.total,
            },
            status=status,
        )
    return HttpResponseRedirect(order.get_absolute_url())


def back_url(request: HttpRequest) -> str:
    """The page the form was on, if it is one of ours; the catalog otherwise."""
    referer = request.headers.get("Referer", "")
    if url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return referer
    return reverse("catalog:index")


@require_POST
@shop_errors
def order_new(request: HttpRequest) -> HttpResponse:
    """`POST /order/new/`: a new cart bound to this browser; with `item_id`, the item goes in. The previous
    cart stays reachable from "Your orders"."""
    data = NewOrderForm(submitted(request)).checked()
    item = get_item(data["item_id"]) if data["item_id"] else None
    currency = item.currency if item else data["currency"]
    gateway.account(currency)
    order = orders.new_cart(request, currency)
    if item is not None:
        orders.put_item(request, order, item, data["quantity"])
    return cart_answer(request, order, status=201)


@require_POST
@shop_errors
def cart_add(request: HttpRequest) -> HttpResponse:
    """`POST /cart/add`: "Add to order" from an item page, into this browser's cart. A cart that was paid
    (or is being paid) is done with: a new cart starts. A cart waiting for payment is made a cart again (its
    payment objects closed at Stripe), or, if Stripe says it is being paid after all, a new cart starts. An
    item in another currency than the cart's: 409 offering a new cart in that currency."""
    data = ItemQuantityForm(submitted(request)).checked()
    item = get_item(data["item_id"])
    gateway.account(item.currency)
    cart = orders.current_cart(request)
    if cart is not None and states.is_payable(cart):
        try:
            cart = orders.reopen(request, cart)
        except OrderNotEditable:  # Stripe says a payment for it is processing or went through
            cart = None
    if cart is not None and not states.is_payable(cart):  # paid, processing or held: a new cart
        cart = None
    if cart is not None and cart.currency != item.currency and cart.lines.exists():
        raise other_currency(cart, item, data["quantity"])
    created = cart is None
    if cart is None:
        cart = orders.new_cart(request, item.currency)
    orders.put_item(request, cart, item, data["quantity"], add=True)
    return cart_answer(request, cart, status=201 if created else 200)


def other_currency(cart: Order, item: Item, quantity: int) -> CurrencyMismatch:
    """The refusal of an item in another currency than the cart's, offering a new order in that currency."""
    refusal = CurrencyMismatch(
        gettext(
            "%(item)s is priced in %(item_currency)s, and your order is in %(order_currency)s. An order is paid "
            "in one currency: start a new %(item_currency)s order for it? Your current order stays in "
            "“Your orders”."
        )
        % {
            "item": item.name,
            "item_currency": item.currency.upper(),
            "order_currency": cart.currency.upper(),
        },
        new_order={"url": reverse("payments:order_new"), "item_id": item.pk, "quantity": quantity},
    )
    refusal.template = "payments/other_currency.html"
    refusal.page = {"cart": cart, "item": item, "quantity": quantity}
    return refusal


@require_POST
@shop_errors
def order_put(request: HttpRequest, order_id: str) -> HttpResponse:
    """`POST /order/put/<order_id>`: add an item (`mode=add`, the default) or set its quantity (`mode=set`)."""
    data = PutForm(submitted(request)).checked()
    item = get_item(data["item_id"])
    order = cart_order(request, order_id)
    orders.put_item(request, order, item, data["quantity"], add=data["mode"] != "set")
    return cart_answer(request, order)


@require_POST
@shop_errors
def order_remove(request: HttpRequest, order_id: str) -> HttpResponse:
    """`POST /order/remove/<order_id>`: take an item's line out of the order."""
    item_id = ItemForm(submitted(request)).checked()["item_id"]
    order = cart_order(request, order_id)
    orders.remove_item(request, order, item_id)
    return cart_answer(request, order)


@require_POST
@waits_on_stripe
@shop_errors
def order_change(request: HttpRequest, order_id: str) -> HttpResponse:
    """`POST /order/<order_id>/change`: "Change order". Closes the order's payment objects at Stripe and makes
    it a cart again, unless Stripe says a payment went through or is processing (409)."""
    order = get_order(request, order_id)
    order = orders.change_order(order, may_change=orders.can_change(request, order))
    if not asks_for_json(request):
        messages.info(request, gettext("Your order can be changed again. Paying will use the new total."))
    return cart_answer(request, order)


# ------------------------------------------------------------------------------------------------ pages


@require_safe
def order_page(request: HttpRequest, order_id: str) -> HttpResponse:
    order = get_order(request, order_id, pricing=True)
    return render(
        request,
        "payments/order.html",
        {
            "order": order,
            "priced": price_order(order),
            "can_edit": orders.can_edit(request, order),
            "payable": states.is_payable(order),
        },
    )


@require_safe
def order_list(request: HttpRequest) -> HttpResponse:
    """`GET /orders/`: this browser's orders, newest first."""
    listed = [(order, price_order(order)) for order in orders.browser_orders(request)]
    return render(request, "payments/orders.html", {"orders": listed})


def result_page(
    request: HttpRequest, order: Order, payment: Payment | None, *, stripe_error: str = ""
) -> HttpResponse:
    """What was bought (the order's lines and totals, from its snapshot) and what was charged (this payment's
    amount, currency and state)."""
    order.refresh_from_db()
    context = {"order": order, "priced": price_order(order), "payment": payment, "stripe_error": stripe_error}
    return render(request, "payments/result.html", context)


def refreshed(payment: Payment) -> tuple[Payment, str]:
    """The payment as the webhook left it; if it is still open, ask Stripe once, within a short budget (never
    the URL), and queue what follows from the answer (close the order's other objects once it is paid)."""
    if payment.status not in states.LIVE_PAYMENTS:
        return payment, ""
    before = payment.status
    with compartment().slot() as entered:  # Stripe busy with other shoppers: the page shows what is known
        if not entered:
            return payment, ""
        try:
            payment = sync.refresh(payment, quick=True)
        except PaymentProviderError as exc:
            return payment, exc.message
    if payment.status != before:  # what follows is a worker's (the webhook queues it too, once)
        followups.enqueue(FollowUp.Kind.TIDY_ORDER, order_id=payment.order_id)
    return payment, ""


def payment_result(request: HttpRequest, order_id: str, kind: str, stripe_id: str) -> HttpResponse:
    """The result page of one of the order's payments, with its state from the server (never the URL)."""
    order = get_order(request, order_id)
    payment = order.payments.filter(kind=kind, stripe_id=stripe_id).first()
    if payment is None:
        raise Http404("No such payment for this order.")
    payment, error = refreshed(payment)
    return result_page(request, order, payment, stripe_error=error)


@require_safe
def intent_return(request: HttpRequest, order_id: str) -> HttpResponse:
    """Where Stripe.js sends the shopper after `confirmPayment`."""
    stripe_id = request.GET.get("payment_intent", "").replace("\x00", "")  # PostgreSQL refuses NUL
    return payment_result(request, order_id, PaymentKind.PAYMENT_INTENT, stripe_id)


@require_safe
def checkout_success(request: HttpRequest, order_id: str) -> HttpResponse:
    """Where Checkout sends the shopper after paying."""
    stripe_id = request.GET.get("session_id", "").replace("\x00", "")  # PostgreSQL refuses NUL
    return payment_result(request, order_id, PaymentKind.CHECKOUT_SESSION, stripe_id)


@require_safe
def checkout_cancel(request: HttpRequest, order_id: str) -> HttpResponse:
    order = get_order(request, order_id)
    return render(request, "payments/canceled.html", {"order": order, "paid": states.is_paid(order)})


# ------------------------------------------------------------------------------------------------ merchant
# Promotion codes on a cart's page (see `promotions`).


@require_POST
@shop_errors
def order_promo(request: HttpRequest, order_id: str) -> HttpResponse:
    """`POST /order/<order_id>/promo`: apply the promotion code `code` to this cart (the page then says so
    beside the code, once)."""
    code = PromoForm(submitted(request)).checked()["code"]
    order = cart_order(request, order_id)
    promotions.apply_code(
        order,
        code,
        may_change=orders.can_change(request, order),
        address=address_bucket(client_address(request)),
    )
    return cart_answer(request, order)


@require_POST
@shop_errors
def order_promo_remove(request: HttpRequest, order_id: str) -> HttpResponse:
    """`POST /order/<order_id>/promo/remove`: take the promotion code off this cart."""
    order = cart_order(request, order_id)
    promotions.remove_code(order, may_change=orders.can_change(request, order))
    return cart_answer(request, order)


# ------------------------------------------------------------------------------------------------ webhooks


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest, currency: str) -> HttpResponse:
    """`POST /webhooks/stripe/<currency>/`: one endpoint per Stripe account."""
    try:
        acct = account_for(currency)
    except AccountNotConfigured:
        return error_json("unknown_account", f"No Stripe account for {currency.upper()[:3]}.", 400)
    try:
        receipt = webhooks.receive(acct, request.body, request.headers.get("Stripe-Signature"))
    except webhooks.InvalidEvent as exc:
        logger.warning("webhook %s refused: %s", acct.currency, exc)
        return error_json("invalid_event", str(exc), 400)
    except DatabaseError:
        logger.exception("webhook %s: database unavailable", acct.currency)
        return error_json("unavailable", "The shop could not store the event; Stripe will retry.", 500)
    body: dict[str, Any] = {"received": True, "id": receipt.event_id, "status": receipt.status}
    return JsonResponse(body, status=receipt.http_status)
