"""The shop's pages: the catalog by currency and an item page with both ways to pay.

Both are the same for every shopper of a language, so they are served from the shared page cache
(`core.pagecache`, one render per language): a view costs one cache read, writes nothing and calls nobody (the Payment Element is mounted in deferred mode:
nothing exists at Stripe until the shopper clicks Pay). Saving or deleting an item drops its renders
(`catalog.signals`). HEAD is answered like GET (uptime monitors, link checkers), without the body.
"""

from __future__ import annotations

from itertools import groupby

from django.http import Http404, HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_safe

from catalog.models import Item
from catalog.pages import CATALOG_PAGE, item_page_name
from core import pagecache
from core.browser import browser_id


@require_safe
def index(request: HttpRequest) -> HttpResponse:
    def build() -> str:
        items = list(Item.objects.active())
        by_currency = [
            (currency.upper(), list(group)) for currency, group in groupby(items, key=lambda i: i.currency)
        ]
        context = {"by_currency": by_currency, "page_path": reverse("catalog:index")}
        return pagecache.render("catalog/index.html", context)

    return pagecache.serve(request, CATALOG_PAGE, build)


@require_safe
def item_page(request: HttpRequest, item_id: int) -> HttpResponse:
    def build() -> str:
        item = Item.objects.active().filter(pk=item_id).first()
        if item is None:
            raise Http404("No such item.")
        context = {"item": item, "page_path": item.get_absolute_url()}
        return pagecache.render("catalog/item.html", context)

    response = pagecache.serve(request, item_page_name(item_id), build)
    # The browser gets its id with the page (a signed cookie, nothing stored), so that its Pay and Checkout
    # clicks, even two at once from two tabs, find the same one-item order.
    browser_id(request)
    return response
