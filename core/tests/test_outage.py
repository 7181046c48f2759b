"""A lost database answers 503 with Retry-After (a plain page, or JSON for scripts and Stripe), never 500 and never
gunicorn's bare "Internal Server Error"; error pages never touch the database; recovery needs no restart.

The outage is real: the connection is pointed at a closed port (PostgreSQL) or an unopenable file (SQLite)."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
)
from django.test import Client
from django.test.utils import CaptureQueriesContext

from core.middleware import OUTAGE_MESSAGE, is_outage
from core.tests.dbdown import database_down

JSON = {"HTTP_ACCEPT": "application/json"}
HTML = {"HTTP_ACCEPT": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def browser() -> Client:
    # A failure raised outside a view reaches handler500, whose exception the test client would re-raise.
    return Client(raise_request_exception=False)


def assert_plain_503_page(response: Any) -> None:
    assert response.status_code == 503, response.content[:300]
    assert response["Content-Type"].startswith("text/html")
    assert int(response["Retry-After"]) > 0
    assert "no-store" in response["Cache-Control"] or "no-cache" in response["Cache-Control"]
    html = response.content.decode()
    assert "Back in a moment" in html and OUTAGE_MESSAGE in html
    assert "Internal Server Error" not in html


def assert_503_json(response: Any) -> None:
    assert response.status_code == 503, response.content[:300]
    assert response.json() == {"error": {"code": "unavailable", "message": OUTAGE_MESSAGE}}
    assert int(response["Retry-After"]) > 0


@pytest.fixture
def shop(transactional_db: None, usd_item: Any) -> dict[str, Any]:
    """A returning shopper: a session (a signed cookie) and a cart, made while the database was up."""
    client = browser()
    assert client.get(usd_item.get_absolute_url()).status_code == 200
    created = client.post("/order/new/", {"item_id": usd_item.pk, "quantity": 1}, **JSON)
    assert created.status_code == 201, created.content
    return {"client": client, "item": usd_item, "order": created.json()["id"]}


@pytest.mark.parametrize("path", ["/", "/item/{item}", "/order/{order}", "/admin/", "/admin/login/"])
def test_pages_answer_a_plain_503_page(shop: dict[str, Any], path: str, admin_user: Any) -> None:
    client = shop["client"]
    if path.startswith("/admin/"):
        client.force_login(admin_user)  # staff: the admin reads the user (and its data) from the database
    url = path.format(item=shop["item"].pk, order=shop["order"])
    with database_down():
        response = client.get(url, **HTML)
    assert_plain_503_page(response)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/buy/{item}"),
        ("post", "/item/{item}/intent"),
        ("post", "/order/new/"),
        ("post", "/order/put/{order}"),
        ("post", "/order/remove/{order}"),
        ("get", "/order/buy/{order}"),
        ("post", "/order/intent/{order}"),
    ],
)
def test_endpoints_answer_503_json(shop: dict[str, Any], stripe_fake: Any, method: str, path: str) -> None:
    client = shop["client"]
    url = path.format(item=shop["item"].pk, order=shop["order"])
    data = {"item_id": shop["item"].pk, "quantity": 1} if method == "post" else None
    with database_down():
        response = getattr(client, method)(url, data, **JSON)
    assert_503_json(response)
    assert stripe_fake.requests == []  # refused before anything reached Stripe


def test_a_posted_form_gets_the_page_and_a_script_without_accept_gets_json(shop: dict[str, Any]) -> None:
    client, item = shop["client"], shop["item"]
    with database_down():
        form = client.post("/order/new/", {"item_id": item.pk}, **HTML)
        script = client.post("/order/new/", {"item_id": item.pk})
    assert_plain_503_page(form)
    assert_503_json(script)


def test_webhook_answers_503_so_that_stripe_retries(shop: dict[str, Any], post_event: Any) -> None:
    event = {
        "id": "evt_outage",
        "object": "event",
        "type": "customer.created",
        "created": 1700000000,
        "data": {"object": {"id": "cus_1", "object": "customer"}},
    }
    with database_down():
        response = post_event("usd", event)
    assert_503_json(response)


def test_healthz_says_database_down_and_recovers_without_a_restart(shop: dict[str, Any]) -> None:
    client = shop["client"]
    with database_down():
        down = client.get("/healthz")
    assert down.status_code == 503
    assert down.json() == {"status": "unavailable", "database": "down"}
    assert int(down["Retry-After"]) > 0
    # The database is back: the very next requests work (CONN_HEALTH_CHECKS replaces the dead connection).
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}
    assert client.get(shop["item"].get_absolute_url()).status_code == 200
    assert client.get(f"/order/{shop['order']}").status_code == 200


def test_an_outage_outside_a_view_is_a_503_too(shop: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A database error raised by a middleware after the view (where the outage middleware cannot see it) is
    answered 503 by handler500 (the view's work was done; the shopper retries)."""
    from django.contrib.messages.storage.fallback import FallbackStorage

    def lost(self: Any, response: Any) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(FallbackStorage, "update", lost)
    client = browser()
    page = client.get(shop["item"].get_absolute_url(), **HTML)
    script = client.post("/order/new/", {"item_id": shop["item"].pk}, **JSON)
    assert_plain_503_page(page)
    assert_503_json(script)


def test_a_bug_is_still_a_500(shop: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from django.contrib.messages.storage.fallback import FallbackStorage

    def bug(self: Any, response: Any) -> None:
        raise IntegrityError("duplicate key value violates unique constraint")

    monkeypatch.setattr(FallbackStorage, "update", bug)
    client = browser()
    response = client.get(shop["item"].get_absolute_url(), **HTML)
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()


def test_error_pages_make_no_query(shop: dict[str, Any], django_db_blocker: Any) -> None:
    from django.db import connection

    client = shop["client"]  # has a session and a cart: base.html would read both
    with CaptureQueriesContext(connection) as queries:
        not_found = client.get("/no/such/page", **HTML)
        forged = Client(enforce_csrf_checks=True, raise_request_exception=False)
        forged.cookies = client.cookies
        csrf = forged.post("/order/new/", {"item_id": 1}, **HTML)
    assert not_found.status_code == 404 and "Not found" in not_found.content.decode()
    assert csrf.status_code == 403 and "Please reload" in csrf.content.decode()
    assert [q["sql"] for q in queries.captured_queries] == []


def test_404_and_csrf_pages_render_while_the_database_is_down(shop: dict[str, Any]) -> None:
    client = shop["client"]
    with database_down():
        not_found = client.get("/no/such/page", **HTML)
        forged = Client(enforce_csrf_checks=True, raise_request_exception=False)
        forged.cookies = client.cookies
        csrf = forged.post("/order/new/", {"item_id": 1}, **HTML)
    assert not_found.status_code == 404 and "Not found" in not_found.content.decode()
    assert csrf.status_code == 403 and "Please reload" in csrf.content.decode()


@pytest.mark.parametrize(
    ("exc", "outage"),
    [
        (OperationalError("connection refused"), True),
        (InterfaceError("connection already closed"), True),
        (DatabaseError("server closed the connection"), True),
        (IntegrityError("duplicate key"), False),
        (ProgrammingError("syntax error"), False),
        (DataError("value too long"), False),
        (ValueError("not a database error"), False),
    ],
    ids=repr,
)
def test_what_counts_as_an_outage(exc: Exception, outage: bool) -> None:
    assert is_outage(exc) is outage
