"""The catalog and item pages cost nothing per view: served from the shared page cache, they write nothing,
call nobody, read at most the cache, answer 304 to a returning browser, and are never another shopper's."""

from __future__ import annotations

import re
import time
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from djmoney.money import Money

from catalog.models import Item
from payments.models import Order, Payment
from payments.tests.support import Shopper

pytestmark = pytest.mark.django_db

WRITES = ("INSERT", "UPDATE", "DELETE")


def token_of(html: str) -> str:
    found = re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', html)
    assert found and len(set(found)) == 1
    return found[0]


def view(web: Client, url: str) -> tuple[Any, list[str]]:
    with CaptureQueriesContext(connection) as ctx:
        response = web.get(url)
    return response, [q["sql"] for q in ctx.captured_queries]


@pytest.mark.parametrize("page", ["item", "catalog"])
def test_a_view_writes_nothing_and_calls_nobody_for_a_new_or_a_returning_browser(
    usd_item: Item, stripe_fake: Any, page: str
) -> None:
    url = f"/item/{usd_item.pk}" if page == "item" else "/"
    returning = Shopper()
    returning.add(usd_item)  # has a cart, a browser id, cookies
    stripe_fake.requests.clear()
    # The first view after a change renders the page into the shared cache (with the database cache, a write
    # to its table, none to the shop's); every view after that, by any browser, writes nothing at all.
    response, queries = view(Client(), url)
    assert response.status_code == 200
    assert not [q for q in queries if q.lstrip().upper().startswith(WRITES) and '"shop_cache"' not in q], (
        queries
    )
    for web in (Client(), returning.web, Client()):
        for _ in range(3):
            response, queries = view(web, url)
            assert response.status_code == 200
            assert not [q for q in queries if q.lstrip().upper().startswith(WRITES)], queries
    assert stripe_fake.requests == []
    assert Payment.objects.count() == 0 and Order.objects.count() == 1  # the returning shopper's cart only


def test_a_cache_hit_costs_at_most_one_query(usd_item: Item, django_assert_max_num_queries: Any) -> None:
    Client().get(f"/item/{usd_item.pk}")  # the first view renders it
    for web in (Client(), Client()):
        with django_assert_max_num_queries(1):  # the shared cache itself (the database cache), or none
            assert web.get(f"/item/{usd_item.pk}").status_code == 200


def test_each_visitor_gets_the_same_page_with_its_own_csrf_token(usd_item: Item) -> None:
    first, second = Client(), Client()
    page_1 = first.get(f"/item/{usd_item.pk}").content.decode()
    page_2 = second.get(f"/item/{usd_item.pk}").content.decode()
    token_1, token_2 = token_of(page_1), token_of(page_2)
    assert page_1.replace(token_1, "T") == page_2.replace(token_2, "T")
    assert first.cookies["csrftoken"].value != second.cookies["csrftoken"].value
    # Each token works for its own browser: the Add to order form posts.
    response = Client(enforce_csrf_checks=True)
    response.cookies = first.cookies
    assert (
        response.post("/cart/add", {"item_id": usd_item.pk, "csrfmiddlewaretoken": token_1}).status_code
        == 302
    )
    assert "csrf-token-of-this-visitor" not in page_1


def test_a_returning_browser_revalidates_with_its_etag(usd_item: Item) -> None:
    web = Client()
    first = web.get(f"/item/{usd_item.pk}")
    assert first["Cache-Control"] == "private, no-cache" or set(first["Cache-Control"].split(", ")) == {
        "private",
        "no-cache",
    }
    again = web.get(f"/item/{usd_item.pk}", HTTP_IF_NONE_MATCH=first["ETag"])
    assert again.status_code == 304 and again.content == b""
    head = web.head(f"/item/{usd_item.pk}", HTTP_IF_NONE_MATCH=first["ETag"])
    assert head.status_code == 304


def test_a_default_tax_added_is_never_hidden_by_a_revalidation(usd_item: Item) -> None:
    """The item page shows the taxes every order carries: a browser revalidating with If-Modified-Since alone
    (the date its copy came with, or now) or with its ETag gets the new total, never a 304 for the old one."""
    from django.utils.http import http_date

    from payments.models import Tax

    url = f"/item/{usd_item.pk}"
    web = Client()
    first = web.get(url)
    assert "$24.50" in first.content.decode()
    Tax.objects.create(
        name="Sales tax", percentage=Decimal("10"), applies_to_every_order=True, currency="usd"
    )
    since = first.get("Last-Modified") or http_date(time.time() + 60)
    for headers in ({"HTTP_IF_MODIFIED_SINCE": since}, {"HTTP_IF_NONE_MATCH": first["ETag"]}):
        again = web.get(url, **headers)
        assert again.status_code == 200, headers
        assert again["ETag"] != first["ETag"] and "$26.95" in again.content.decode()


def test_a_new_price_or_a_hidden_item_is_shown_at_once(usd_item: Item) -> None:
    web = Client()
    first = web.get(f"/item/{usd_item.pk}")
    assert "$24.50" in first.content.decode() and "$24.50" in web.get("/").content.decode()
    usd_item.price = Money(Decimal("30.00"), "USD")  # type: ignore[assignment]
    usd_item.save()
    changed = web.get(f"/item/{usd_item.pk}", HTTP_IF_NONE_MATCH=first["ETag"])
    assert changed.status_code == 200 and "$30.00" in changed.content.decode()
    assert "$30.00" in web.get("/").content.decode()
    usd_item.is_active = False
    usd_item.save()
    assert web.get(f"/item/{usd_item.pk}").status_code == 404
    assert "Espresso beans" not in web.get("/").content.decode()


def test_a_page_rendered_while_the_change_commits_is_dropped_at_commit(
    usd_item: Item, django_capture_on_commit_callbacks: Any
) -> None:
    """An admin save runs in a transaction: a shopper's request in between still reads the old price and caches
    that render; the commit drops it again, so the new price is not hidden for the cache's lifetime."""
    from core import pagecache

    name = f"item:{usd_item.pk}"
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        usd_item.price = Money(Decimal("30.00"), "USD")  # type: ignore[assignment]
        usd_item.save()
        pagecache.cache.set(pagecache.key(name, "en"), {"body": "old render", "etag": '"x"'}, 60)
    assert pagecache.cache.get(pagecache.key(name, "en")) is None
    assert "$30.00" in Client().get(f"/item/{usd_item.pk}").content.decode()


def test_another_accounts_key_is_a_new_render(usd_item: Item, settings: Any) -> None:
    Client().get(f"/item/{usd_item.pk}")
    accounts = {
        **settings.STRIPE_ACCOUNTS,
        "usd": {**settings.STRIPE_ACCOUNTS["usd"], "publishable_key": "pk_test_new_usd_1"},
    }
    settings.STRIPE_ACCOUNTS = accounts
    assert 'data-publishable-key="pk_test_new_usd_1"' in Client().get(f"/item/{usd_item.pk}").content.decode()


def test_an_unknown_item_is_a_404_and_nothing_is_cached(client: Client) -> None:
    assert client.get("/item/999999").status_code == 404
    assert client.get("/item/999999").status_code == 404


def test_100_views_and_10_pay_clicks_make_exactly_10_payment_intents(
    usd_item: Item, stripe_fake: Any
) -> None:
    shoppers = [Shopper() for _ in range(100)]
    for shopper in shoppers:
        assert shopper.web.get(f"/item/{usd_item.pk}").status_code == 200
    assert stripe_fake.requests == [] and Order.objects.count() == 0
    for shopper in shoppers[:10]:
        assert shopper.intent(usd_item).status_code == 200
    creates = [r for r in stripe_fake.requests if r.method == "POST" and r.path == "/v1/payment_intents"]
    assert len(creates) == 10
    assert len(stripe_fake.requests) == 10
    assert Order.objects.count() == Payment.objects.count() == 10


def test_an_item_is_saved_and_deleted_before_collectstatic(settings: Any, tmp_path: Any) -> None:
    """Production settings keep static files in a manifest that `collectstatic` writes: creating an item from
    `manage.py shell` before that must work (saving forgets the cached pages without looking up a static
    file; the fingerprint of a render is read when a page is served)."""
    from catalog.tests.factories import make_item
    from core import pagecache

    settings.STATIC_ROOT = str(tmp_path)  # empty: no staticfiles.json
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
    }
    with pytest.raises(ValueError, match="Missing staticfiles manifest entry"):
        pagecache.fingerprint()  # what a page view needs is missing indeed
    with transaction.atomic():
        item = make_item("Moka pot", "35.00")
    item.price = Money(Decimal("36.00"), "USD")  # type: ignore[assignment]
    item.save()
    item.delete()
    assert not Item.objects.filter(name="Moka pot").exists()
