"""Bad input on every endpoint: ids huge, negative, non-numeric or unknown; malformed UUIDs; wrong methods;
oversized and malformed bodies; quantities out of range; wrong content types; a missing CSRF token. Each is a 4xx
with a clear message and changes nothing; none is a 500. A hypothesis test drives the JSON endpoints with
arbitrary input and checks the invariants."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from payments.models import MAX_QUANTITY, Order, OrderLine, Payment, StripeEvent
from payments.tests.stripe_fake import signed_event
from stripe_emulator import sign_payload

pytestmark = pytest.mark.django_db

HUGE = str(10**30)
JSON = {"HTTP_ACCEPT": "application/json"}


def counts() -> dict[str, int]:
    return {
        "orders": Order.objects.count(),
        "lines": OrderLine.objects.count(),
        "payments": Payment.objects.count(),
        # A signed event refused for its content is recorded (status invalid): kept, never processed.
        "events": StripeEvent.objects.exclude(status=StripeEvent.Status.INVALID).count(),
        "quantity": sum(OrderLine.objects.values_list("quantity", flat=True)),
    }


@pytest.fixture
def shop(client: Client, usd_item: Any, eur_item: Any, stripe_fake: Any) -> Iterator[dict[str, Any]]:
    """A shopper with a cart (one line of `usd_item`); every test checks nothing changed afterwards."""
    client.get(usd_item.get_absolute_url())
    created = client.post("/order/new/", {"item_id": usd_item.pk, "quantity": 2}, **JSON)
    assert created.status_code == 201
    stripe_fake.requests.clear()
    before = counts()
    yield {"client": client, "order": created.json()["id"], "usd": usd_item, "eur": eur_item}
    assert counts() == before, "bad input changed the database"
    assert [r for r in stripe_fake.requests if r.method == "POST"] == [], "bad input reached Stripe"


def assert_clear_error(response: Any, status: int | tuple[int, ...], json_body: bool = True) -> None:
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, (response.status_code, response.content[:300])
    if json_body:
        error = response.json()["error"]
        assert error["code"] and error["message"], error
    else:
        assert response.content.strip(), "an empty error page"


BAD_ITEM_IDS = [HUGE, str(2**63), str(2**63 - 1), "0", "-1", "abc", "1.5", "1e3", "%20", "\uff11"]
BAD_ORDER_IDS = [
    HUGE,
    "-1",
    "abc",
    str(uuid.uuid4()),
    "not-a-uuid",
    "1234",
    "x" * 300,
    "%00",
    str(uuid.uuid4())[:-1],
]


@pytest.mark.parametrize("item_id", BAD_ITEM_IDS)
def test_bad_item_ids(shop: dict[str, Any], item_id: str) -> None:
    client = shop["client"]
    assert client.get(f"/item/{item_id}").status_code == 404
    assert_clear_error(client.get(f"/buy/{item_id}", **JSON), 404)
    assert_clear_error(client.post(f"/item/{item_id}/intent", **JSON), 404)


@pytest.mark.parametrize("order_id", BAD_ORDER_IDS)
def test_bad_order_ids(shop: dict[str, Any], order_id: str) -> None:
    client, item = shop["client"], shop["usd"]
    form = {"item_id": item.pk, "quantity": 1}
    for method, path in [
        ("post", f"/order/put/{order_id}"),
        ("post", f"/order/remove/{order_id}"),
        ("get", f"/order/buy/{order_id}"),
        ("post", f"/order/intent/{order_id}"),
    ]:
        response = getattr(client, method)(path, form if method == "post" else None, **JSON)
        assert_clear_error(response, 404)
    for path in [f"/order/{order_id}", f"/order/{order_id}/return", f"/order/{order_id}/success"]:
        assert client.get(path).status_code == 404
    assert client.get(f"/order/{order_id}/canceled").status_code == 404


@pytest.mark.parametrize("item_id", ["", HUGE, str(2**63), "-5", "0", "abc", "1.0", "999999", "\x00"])
def test_bad_item_id_in_forms(shop: dict[str, Any], item_id: str) -> None:
    client, order = shop["client"], shop["order"]
    assert_clear_error(
        client.post(f"/order/put/{order}", {"item_id": item_id, "quantity": 1}, **JSON), (400, 404)
    )
    removed = client.post(f"/order/remove/{order}", {"item_id": item_id}, **JSON)
    if item_id == "999999":  # a well-formed id of no line: removing it is a no-op, answered with the cart
        assert removed.status_code == 200 and len(removed.json()["lines"]) == 1
    else:
        assert_clear_error(removed, (400, 404))
    if item_id:  # no item_id at all is a valid request for an empty cart
        assert_clear_error(client.post("/order/new/", {"item_id": item_id}, **JSON), (400, 404))


@pytest.mark.parametrize(
    "quantity", ["0", "-1", str(MAX_QUANTITY + 1), HUGE, "abc", "1.5", "1e2", "-0x1", "\x00"]
)
def test_quantities_out_of_range(shop: dict[str, Any], quantity: str) -> None:
    client, order, item = shop["client"], shop["order"], shop["usd"]
    for mode in ("add", "set"):
        response = client.post(
            f"/order/put/{order}", {"item_id": item.pk, "quantity": quantity, "mode": mode}, **JSON
        )
        assert_clear_error(response, 400)
        assert (
            "1 to 99" in response.json()["error"]["message"]
            or "whole number" in response.json()["error"]["message"]
        )
    assert_clear_error(client.post("/order/new/", {"item_id": item.pk, "quantity": quantity}, **JSON), 400)


def test_adding_past_the_maximum_is_refused(shop: dict[str, Any]) -> None:
    client, order, item = shop["client"], shop["order"], shop["usd"]
    response = client.post(
        f"/order/put/{order}", {"item_id": item.pk, "quantity": MAX_QUANTITY, "mode": "add"}, **JSON
    )
    assert_clear_error(response, 400)


def test_item_of_another_currency_and_unknown_currency(shop: dict[str, Any]) -> None:
    client, order = shop["client"], shop["order"]
    assert_clear_error(client.post(f"/order/put/{order}", {"item_id": shop["eur"].pk}, **JSON), 409)
    for currency in ("xyz", "0", "", "x" * 5000, "usd\x00"):
        response = client.post("/order/new/", {"currency": currency}, **JSON)
        assert_clear_error(response, 400)
        assert response.json()["error"]["code"] == "invalid_currency"


def test_another_browsers_order(shop: dict[str, Any], usd_item: Any) -> None:
    other = Client()
    order = shop["order"]
    assert_clear_error(other.post(f"/order/put/{order}", {"item_id": usd_item.pk}, **JSON), 404)
    assert_clear_error(other.post(f"/order/remove/{order}", {"item_id": usd_item.pk}, **JSON), 404)
    assert_clear_error(other.post(f"/order/intent/{order}", **JSON), 404)
    assert_clear_error(other.get(f"/order/buy/{order}", **JSON), 404)


WRONG_METHODS = [
    ("/", ["post", "put", "delete", "patch"]),
    ("/item/{item}", ["post", "put", "delete"]),
    ("/buy/{item}", ["post", "put", "delete"]),
    ("/item/{item}/intent", ["get", "put", "delete", "patch"]),
    ("/order/new/", ["get", "put", "delete"]),
    ("/order/put/{order}", ["get", "put", "delete"]),
    ("/order/remove/{order}", ["get", "put", "delete"]),
    ("/order/{order}", ["post", "put", "delete"]),
    ("/order/buy/{order}", ["post", "put", "delete"]),
    ("/order/intent/{order}", ["get", "put", "delete"]),
    ("/order/{order}/return", ["post", "delete"]),
    ("/order/{order}/success", ["post", "delete"]),
    ("/order/{order}/canceled", ["post", "delete"]),
    ("/webhooks/stripe/usd/", ["get", "put", "delete"]),
]


@pytest.mark.parametrize(("template", "methods"), WRONG_METHODS, ids=[t for t, _ in WRONG_METHODS])
def test_wrong_methods_are_405(shop: dict[str, Any], template: str, methods: list[str]) -> None:
    client = shop["client"]
    path = template.format(item=shop["usd"].pk, order=shop["order"])
    for method in methods:
        response = getattr(client, method)(path)
        assert response.status_code == 405, (method, path, response.status_code)
        assert response.has_header("Allow")


@pytest.mark.parametrize(
    "template",
    ["/", "/item/{item}", "/orders/", "/order/{order}", "/order/{order}/canceled"],
)
def test_head_on_every_page_is_answered_like_get_without_a_body(shop: dict[str, Any], template: str) -> None:
    """Uptime monitors and link checkers use HEAD: the same status and headers as GET, no body."""
    client = shop["client"]
    path = template.format(item=shop["usd"].pk, order=shop["order"])
    got, head = client.get(path), client.head(path)
    assert (got.status_code, head.status_code) == (200, 200), path
    assert head.content == b""
    assert head["Content-Type"] == got["Content-Type"]
    assert head.get("ETag") == got.get("ETag")


def test_head_on_a_return_page_is_answered_like_get(shop: dict[str, Any]) -> None:
    client, order = shop["client"], shop["order"]
    assert client.head(f"/order/{order}/return", {"payment_intent": "pi_unknown"}).status_code == 404
    assert client.head(f"/order/{order}/success", {"session_id": "cs_unknown"}).status_code == 404


def test_head_never_opens_a_checkout_session(shop: dict[str, Any]) -> None:
    """`/buy` is not a page but the request that opens a Checkout Session: GET only (the shop fixture checks
    nothing reached Stripe)."""
    client = shop["client"]
    for path in (f"/buy/{shop['usd'].pk}", f"/order/buy/{shop['order']}"):
        response = client.head(path)
        assert response.status_code == 405 and response.has_header("Allow")


def test_missing_csrf_token_is_403(shop: dict[str, Any], usd_item: Any) -> None:
    browser = Client(enforce_csrf_checks=True)
    browser.cookies = shop["client"].cookies  # the same shopper, from a page that forgot the token
    order = shop["order"]
    for path, data in [
        (f"/item/{usd_item.pk}/intent", {}),
        ("/order/new/", {"item_id": usd_item.pk}),
        (f"/order/put/{order}", {"item_id": usd_item.pk}),
        (f"/order/remove/{order}", {"item_id": usd_item.pk}),
        (f"/order/intent/{order}", {}),
    ]:
        response = browser.post(path, data, **JSON)
        assert response.status_code == 403, path
        assert response.json()["error"]["code"] == "csrf_failed"
        forged = browser.post(path, data, HTTP_X_CSRFTOKEN="forged-token-" + "a" * 20, **JSON)
        assert forged.status_code == 403, path


def test_oversized_bodies_are_400(shop: dict[str, Any], usd_item: Any) -> None:
    client, order = shop["client"], shop["order"]
    big = settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1
    payload = json.dumps({"id": "evt_big", "type": "x", "data": {"object": {"id": "a" * big}}}).encode()
    hook = client.post(
        "/webhooks/stripe/usd/",
        data=payload,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=sign_payload(payload, settings.STRIPE_ACCOUNTS["usd"]["webhook_secret"]),
    )
    assert_clear_error(hook, 400)
    form = {"item_id": usd_item.pk, "quantity": "1", "padding": "x" * big}
    for path in ["/order/new/", f"/order/put/{order}", f"/order/remove/{order}"]:
        assert_clear_error(client.post(path, form, **JSON), 400)
    # The intent endpoints read no body; in a browser the CSRF check reads it and refuses it first.
    browser = Client(enforce_csrf_checks=True)
    browser.cookies = client.cookies
    html = browser.get(usd_item.get_absolute_url()).content.decode()
    token = html.split('name="csrfmiddlewaretoken" value="')[1].split('"')[0]
    for path in [f"/item/{usd_item.pk}/intent", f"/order/intent/{order}"]:
        assert_clear_error(browser.post(path, form, HTTP_X_CSRFTOKEN=token, **JSON), 400)


@pytest.mark.parametrize(
    "body",
    [b"[" * 200_000, b"[" * 5_000, b"{" * 5_000, b'{"item_id": ' + b"[" * 60 + b"1" + b"]" * 60 + b"}"],
    ids=["200k brackets", "5k brackets", "5k braces", "60 levels"],
)
def test_deep_json_bodies_are_400_on_every_endpoint(shop: dict[str, Any], usd_item: Any, body: bytes) -> None:
    """The json module gives up on a deep nest with a RecursionError: the one JSON reader answers 400."""
    client, order = shop["client"], shop["order"]
    for path in (
        "/order/new/",
        f"/order/put/{order}",
        f"/order/remove/{order}",
        f"/item/{usd_item.pk}/intent",
        f"/order/intent/{order}",
        f"/order/{order}/promo",
    ):
        response = client.post(path, data=body, content_type="application/json", **JSON)
        assert_clear_error(response, 400)
        assert response.json()["error"]["code"] == "invalid_json", path


def test_json_bodies_over_the_readers_limit_are_400(shop: dict[str, Any], usd_item: Any) -> None:
    from core import jsonbody

    client, order = shop["client"], shop["order"]
    body = json.dumps({"item_id": usd_item.pk, "padding": "x" * jsonbody.FORM_MAX_BYTES}).encode()
    response = client.post(f"/order/put/{order}", data=body, content_type="application/json", **JSON)
    assert_clear_error(response, 400)
    assert "too large" in response.json()["error"]["message"]


BAD_WEBHOOK_BODIES = [
    b"",
    b"not json",
    b"\x00\xff\xfe garbage \x81",
    b"[]",
    b"123",
    b'"event"',
    b"null",
    b'{"id": "evt_1"}',
    b'{"id": 5, "type": "payment_intent.succeeded", "data": {"object": {}}}',
    b'{"id": "evt_1", "type": "payment_intent.succeeded", "data": []}',
    b'{"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": "pi_1"}}',
    b'{"id": "evt_1", "type": ["x"], "data": {"object": {}}}',
    b"{" * 5000,
]


@pytest.mark.parametrize("body", BAD_WEBHOOK_BODIES, ids=range(len(BAD_WEBHOOK_BODIES)))
def test_malformed_webhook_bodies_are_400(shop: dict[str, Any], body: bytes) -> None:
    client = shop["client"]
    secret = settings.STRIPE_ACCOUNTS["usd"]["webhook_secret"]
    for content_type in ("application/json", "text/plain", "application/octet-stream"):
        signed = client.post(
            "/webhooks/stripe/usd/",
            data=body,
            content_type=content_type,
            HTTP_STRIPE_SIGNATURE=sign_payload(body, secret),
        )
        assert_clear_error(signed, 400)
    unsigned = client.post("/webhooks/stripe/usd/", data=body, content_type="application/json")
    assert_clear_error(unsigned, 400)


def test_webhook_signature_and_account_errors(shop: dict[str, Any]) -> None:
    client = shop["client"]
    event = {"id": "evt_x", "type": "payment_intent.succeeded", "data": {"object": {"id": "pi_x"}}}
    payload, signature = signed_event("usd", event)
    cases = [
        ("/webhooks/stripe/usd/", "t=1,v1=" + "0" * 64),
        ("/webhooks/stripe/usd/", "garbage"),
        ("/webhooks/stripe/usd/", signed_event("eur", event)[1]),  # the other account's secret
        ("/webhooks/stripe/eur/", signature),
        ("/webhooks/stripe/xyz/", signature),
        ("/webhooks/stripe/" + "u" * 300 + "/", signature),
        ("/webhooks/stripe/usd/", signature.replace("t=", "t=9")),  # timestamp outside the tolerance
    ]
    for path, sig in cases:
        assert_clear_error(
            client.post(path, data=payload, content_type="application/json", HTTP_STRIPE_SIGNATURE=sig), 400
        )


def test_wrong_content_types_on_form_endpoints(shop: dict[str, Any], usd_item: Any) -> None:
    client, order = shop["client"], shop["order"]
    body = json.dumps({"item_id": usd_item.pk, "quantity": 1})
    for content_type in (  # a JSON body is read as such (application/json); other types are not forms
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=",
    ):
        put = client.post(f"/order/put/{order}", data=body, content_type=content_type, **JSON)
        assert_clear_error(put, 400)
        remove = client.post(f"/order/remove/{order}", data=body, content_type=content_type, **JSON)
        assert_clear_error(remove, 400)
    garbage = client.post(
        f"/order/put/{order}",
        data=b"\xff\x00" * 100,
        content_type="application/x-www-form-urlencoded",
        **JSON,
    )
    assert_clear_error(garbage, 400)
    for bad_json in (b"{", b"[1]", b'"x"', b'{"item_id": "1.0"}', b'{"item_id": true}', b'{"item_id": 1.5}'):
        put = client.post(f"/order/put/{order}", data=bad_json, content_type="application/json", **JSON)
        assert_clear_error(put, 400)


def test_return_pages_with_bad_query(shop: dict[str, Any]) -> None:
    client, order = shop["client"], shop["order"]
    for query in (
        {"payment_intent": "pi_unknown"},
        {"payment_intent": "x" * 5000},
        {"payment_intent": "\x00"},
        {},
    ):
        assert client.get(f"/order/{order}/return", query).status_code == 404
    for query in ({"session_id": "cs_unknown"}, {"session_id": "\x00"}, {}):
        assert client.get(f"/order/{order}/success", query).status_code == 404


# ------------------------------------------------------------------------------------------------ property test

ids = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.text(max_size=20),
    st.uuids().map(str),
    st.sampled_from(["ITEM", "ITEM2", "EUR"]),
)
order_ids = st.one_of(st.uuids().map(str), st.text(max_size=40), st.just("CART"))
form_values = st.one_of(
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.text(max_size=30),
    st.sampled_from(["1", "2", "99", "100", "0", "add", "set", "usd", "eur"]),
)
forms = st.dictionaries(
    st.sampled_from(["item_id", "quantity", "mode", "currency", "amount", "junk"]), form_values, max_size=5
)
# Any text, NUL included: a signed event that PostgreSQL could not store is refused with a 400, not a 500.
any_char = st.characters()
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**40), max_value=2**40)
    | st.text(alphabet=any_char, max_size=20),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet=any_char, max_size=10), children, max_size=3)
    ),
    max_leaves=10,
)
events = st.fixed_dictionaries(
    {
        "id": st.text(alphabet=any_char, min_size=1, max_size=40),
        "type": st.sampled_from(
            ["payment_intent.succeeded", "checkout.session.completed", "charge.refunded", "x"]
        ),
        "data": st.fixed_dictionaries(
            {"object": st.dictionaries(st.text(alphabet=any_char, max_size=10), json_values, max_size=4)}
        ),
    }
)
actions = st.one_of(
    st.tuples(st.just("new"), forms),
    st.tuples(st.just("put"), order_ids, forms),
    st.tuples(st.just("remove"), order_ids, forms),
    st.tuples(st.just("intent"), ids),
    st.tuples(st.just("buy"), ids),
    st.tuples(st.just("order_intent"), order_ids),
    st.tuples(
        st.just("webhook"), st.sampled_from(["usd", "eur", "xyz"]), st.binary(max_size=200), st.booleans()
    ),
    st.tuples(st.just("event"), st.sampled_from(["usd", "eur"]), st.one_of(events, json_values)),
)


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(actions, min_size=1, max_size=6))
def test_json_endpoints_never_fail_and_keep_the_invariants(
    client: Client, usd_item: Any, usd_item_2: Any, eur_item: Any, stripe_fake: Any, steps: list[Any]
) -> None:
    names = {"ITEM": str(usd_item.pk), "ITEM2": str(usd_item_2.pk), "EUR": str(eur_item.pk)}
    cart = client.post("/order/new/", {"item_id": usd_item.pk}, **JSON)
    assert cart.status_code == 201
    cart_id = cart.json()["id"]

    def resolve(value: str) -> str:
        return cart_id if value == "CART" else names.get(value, value)

    def safe(path_part: str) -> str:
        return path_part.replace("/", "").replace("?", "").replace("#", "").replace("%", "") or "x"

    for step in steps:
        kind = step[0]
        if kind == "new":
            response = client.post("/order/new/", {k: resolve(v) for k, v in step[1].items()}, **JSON)
        elif kind in ("put", "remove"):
            data = {k: resolve(v) for k, v in step[2].items()}
            response = client.post(f"/order/{kind}/{safe(resolve(step[1]))}", data, **JSON)
        elif kind == "intent":
            response = client.post(f"/item/{safe(resolve(step[1]))}/intent", **JSON)
        elif kind == "buy":
            response = client.get(f"/buy/{safe(resolve(step[1]))}", **JSON)
        elif kind == "order_intent":
            response = client.post(f"/order/intent/{safe(resolve(step[1]))}", **JSON)
        elif kind == "webhook":
            _, currency, body, sign = step
            secret = settings.STRIPE_ACCOUNTS.get(currency, {}).get("webhook_secret", "whsec_x")
            extra = {"HTTP_STRIPE_SIGNATURE": sign_payload(body, secret)} if sign else {}
            response = client.post(
                f"/webhooks/stripe/{currency}/", data=body, content_type="application/json", **extra
            )
        else:
            _, currency, event = step
            payload = json.dumps(event).encode()
            response = client.post(
                f"/webhooks/stripe/{currency}/",
                data=payload,
                content_type="application/json",
                HTTP_STRIPE_SIGNATURE=sign_payload(
                    payload, settings.STRIPE_ACCOUNTS[currency]["webhook_secret"]
                ),
            )
        assert response.status_code < 500, (step, response.status_code, response.content[:300])
        if response.status_code >= 400 and response.get("Content-Type", "").startswith("application/json"):
            error = response.json()["error"]
            assert error["code"] and error["message"]

    assert not OrderLine.objects.exclude(quantity__gte=1, quantity__lte=MAX_QUANTITY).exists()
    for stripe_id in Payment.objects.values_list("stripe_id", flat=True):
        assert stripe_id in stripe_fake.emulator.objects, f"Payment {stripe_id} has no object at Stripe"
