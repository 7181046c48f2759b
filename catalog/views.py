"""The shop's pages: the catalog by currency and an item page with both ways to pay."""

from __future__ import annotations

from itertools import groupby

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from catalog.models import Item
from payments.accounts import publishable_key_for
from payments.orders import session_key


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    items = list(Item.objects.active())
    by_currency = [
        (currency.upper(), list(group)) for currency, group in groupby(items, key=lambda i: i.currency)
    ]
    return render(request, "catalog/index.html", {"by_currency": by_currency})


@require_GET
def item_page(request: HttpRequest, item_id: int) -> HttpResponse:
    item = get_object_or_404(Item.objects.active(), pk=item_id)
    # The shopper's orders are bound to the browser session: create it with the page, so that the card form's
    # request and a quick click on Checkout, racing each other, find the same order.
    session_key(request)
    return render(
        request,
        "catalog/item.html",
        {
            "item": item,
            "publishable_key": publishable_key_for(item.currency),
            "stripe_js_url": settings.STRIPE_JS_URL,
        },
    )
