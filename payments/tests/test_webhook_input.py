"""Signed webhook deliveries whose content is not a well-formed Stripe event: each is answered 400 (Stripe would
retry a 5xx for three days, and the same bytes would fail the same way), processes nothing and is recorded: a
`StripeEvent` with status `invalid` (under its id when usable, else a digest of the body) and a log line. Only a
fault of ours answers 5xx: the database down (503, Stripe retries) or a handler bug (500)."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from core.tests.dbdown import database_down
from payments import webhooks
from payments.models import StripeEvent

pytestmark = pytest.mark.django_db


def sign(payload: bytes, currency: str = "usd") -> str:
    """A `Stripe-Signature` header exactly as Stripe computes it (t=..., v1=HMAC-SHA256 of "t.payload")."""
    secret = settings.STRIPE_ACCOUNTS[currency]["webhook_secret"]
    t = int(time.time())
    digest = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


def post_raw(client: Client, payload: bytes, *, signed: bool = True) -> Any:
    headers = {"HTTP_STRIPE_SIGNATURE": sign(payload)} if signed else {}
    return client.post("/webhooks/stripe/usd/", data=payload, content_type="application/json", **headers)


def event(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"evt_input_{uuid.uuid4().hex[:16]}",
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "livemode": False,
        "type": "customer.created",
        "data": {"object": {"id": "cus_input", "object": "customer"}},
    }
    body.update(overrides)
    return body


def as_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "payments.webhooks" and "refused a signed event" in r.getMessage()
    ]


# Each case: (name, the signed body). Stripe never sends any of them.
MALFORMED: list[tuple[str, bytes]] = [
    ("created huge", as_bytes(event(created=10**20))),
    ("created past year 9999", as_bytes(event(created=253402300800))),
    ("created negative", as_bytes(event(created=-1))),
    ("created a float", as_bytes(event(created=1700000000.5))),
    ("created a string", as_bytes(event(created="1700000000"))),
    ("created true", as_bytes(event(created=True))),
    ("created null", as_bytes(event(created=None))),
    ("created NaN", as_bytes(event()).replace(b'"created": ', b'"created": NaN, "x": ', 1)),
    ("created Infinity", as_bytes(event(created=0)).replace(b'"created": 0', b'"created": Infinity')),
    ("-Infinity in the object", as_bytes(event()).replace(b'"object": "customer"', b'"amount": -Infinity')),
    ("NaN deep in the object", as_bytes(event()).replace(b'"object": "customer"', b'"m": {"a": [1, NaN]}')),
    (
        "nesting past the recursion limit",
        as_bytes(event()).replace(b'"object": "customer"', f'"x": {nested(100_000)}'.encode()),
    ),
    (
        "nesting far past any Stripe object",
        as_bytes(event()).replace(b'"object": "customer"', f'"x": {nested(200)}'.encode()),
    ),
    ("data.object a list", as_bytes(event(data={"object": [1, 2]}))),
    ("data.object a string", as_bytes(event(data={"object": "cus_1"}))),
    ("data.object null", as_bytes(event(data={"object": None}))),
    ("data missing", as_bytes({k: v for k, v in event().items() if k != "data"})),
    ("data a list", as_bytes(event(data=[{"object": {}}]))),
    ("id a number", as_bytes(event(id=12345))),
    ("id null", as_bytes(event(id=None))),
    ("id a list", as_bytes(event(id=["evt_1"]))),
    ("id empty", as_bytes(event(id=""))),
    ("id missing", as_bytes({k: v for k, v in event().items() if k != "id"})),
    ("type a number", as_bytes(event(type=7))),
    ("type an object", as_bytes(event(type={"name": "payment_intent.succeeded"}))),
    ("type empty", as_bytes(event(type=""))),
    ("type longer than any Stripe type", as_bytes(event(type="payment_intent." + "x" * 200))),
    ("livemode a string", as_bytes(event(livemode="false"))),
    ("livemode a number", as_bytes(event(livemode=0))),
    ("object id a number", as_bytes(event(data={"object": {"id": 42, "object": "customer"}}))),
    ("a list, not an object", b"[1, 2, 3]"),
    ("not JSON", b"{'id': 'evt_1'}"),
]


@pytest.mark.parametrize("body", [b for _, b in MALFORMED], ids=[n for n, _ in MALFORMED])
def test_signed_malformed_event_is_400_recorded_and_processes_nothing(
    client: Client, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="payments.webhooks")

    response = post_raw(client, body)

    assert response.status_code == 400, response.content[:300]
    assert response.json()["error"]["code"] == "invalid_event"
    assert response.json()["error"]["message"]
    [row] = StripeEvent.objects.all()
    assert (row.status, row.attempts, row.processed_at) == (StripeEvent.Status.INVALID, 1, None)
    assert row.last_error == response.json()["error"]["message"]
    assert set(row.payload) == {"unparsed"}
    [record] = refusals(caplog)
    assert "usd" in record.getMessage()
    assert hashlib.sha256(body).hexdigest() in record.getMessage()  # which delivery it was


def test_the_refusal_names_a_usable_event_id_and_type(
    client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="payments.webhooks")
    body = event(id="evt_bad_created", type="payment_intent.succeeded", created=-5)

    assert post_raw(client, as_bytes(body)).status_code == 400

    [record] = refusals(caplog)
    message = record.getMessage()
    assert "id=evt_bad_created" in message and "type=payment_intent.succeeded" in message
    assert "created" in message  # the reason
    row = StripeEvent.objects.get(event_id="evt_bad_created")
    assert (row.type, row.status) == ("payment_intent.succeeded", StripeEvent.Status.INVALID)


@pytest.mark.parametrize("with_id", [True, False])
def test_the_same_malformed_event_delivered_again_is_refused_again_on_one_row(
    client: Client, with_id: bool
) -> None:
    body = as_bytes(event(id="evt_again", created=10**20)) if with_id else b"[1, 2, 3]"
    assert [post_raw(client, body).status_code for _ in range(3)] == [400, 400, 400]
    [row] = StripeEvent.objects.all()
    assert row.status == StripeEvent.Status.INVALID and row.attempts == 3
    assert row.event_id == ("evt_again" if with_id else f"invalid:{hashlib.sha256(body).hexdigest()[:32]}")


@pytest.mark.parametrize("body", [b for _, b in MALFORMED[:12]], ids=[n for n, _ in MALFORMED[:12]])
def test_unsigned_malformed_body_is_400_and_not_taken_for_stripes(
    client: Client, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="payments.webhooks")
    response = post_raw(client, body, signed=False)
    assert response.status_code == 400
    assert not refusals(caplog)  # only what Stripe signed is worth recording
    assert not StripeEvent.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        event(),
        event(created=0),  # the epoch is a timestamp
        event(created=253402300799),  # the last second a datetime holds
        {k: v for k, v in event().items() if k != "created"},  # created is optional
        {k: v for k, v in event().items() if k != "livemode"},
        event(livemode=True),
        event(data={"object": {"object": "balance"}}),  # some objects have no id
        event(data={"object": {"id": "cus_1", "nested": {"a": [{"b": {"c": [1.5, -2, 1e300]}}]}}}),
    ],
    ids=[
        "plain",
        "created 0",
        "created max",
        "no created",
        "no livemode",
        "livemode",
        "no object id",
        "nested",
    ],
)
def test_well_formed_events_are_still_stored(client: Client, body: dict[str, Any]) -> None:
    response = post_raw(client, as_bytes(body))
    assert response.status_code == 200, response.content
    row = StripeEvent.objects.get(event_id=body["id"])
    assert row.status == StripeEvent.Status.IGNORED  # nothing to do for these types
    if "created" in body:
        assert row.stripe_created is not None and int(row.stripe_created.timestamp()) == body["created"]
    else:
        assert row.stripe_created is None


@pytest.mark.parametrize("created", [None, True, 1.5, "1", -1, 10**20, 253402300800, float("nan")], ids=repr)
def test_created_never_raises(created: Any) -> None:
    assert webhooks._created({"created": created}) is None


def test_a_handler_bug_is_500_and_recorded_for_the_retry(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(acct: Any, ev: Any) -> bool:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(webhooks, "dispatch", broken)
    body = event(id="evt_handler_bug", type="payment_intent.succeeded")

    response = post_raw(client, as_bytes(body))

    assert response.status_code == 500
    row = StripeEvent.objects.get(event_id="evt_handler_bug")
    assert row.status == StripeEvent.Status.FAILED and "RuntimeError" in row.last_error


@pytest.mark.django_db(transaction=True)
def test_database_down_is_503_with_retry_after_then_the_redelivery_is_stored() -> None:
    client = Client(raise_request_exception=False)
    body = as_bytes(event(id="evt_db_down"))

    with database_down():
        response = post_raw(client, body)

    assert response.status_code == 503, response.content
    assert response.json()["error"]["code"] == "unavailable"
    assert int(response["Retry-After"]) > 0
    assert not StripeEvent.objects.filter(event_id="evt_db_down").exists()

    again = post_raw(client, body)  # Stripe delivers it again once the database is back
    assert again.status_code == 200 and again.json()["status"] == "ignored"
    assert StripeEvent.objects.filter(event_id="evt_db_down").count() == 1
