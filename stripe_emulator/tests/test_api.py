"""The emulator as an API: parameter validation, authentication, account scoping, idempotency keys, failure
injection, the call statistics, and what the package imports.

Plain pytest: no database and no Django settings needed."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from typing import Any

import pytest
import stripe

from stripe_emulator import Emulator, EmulatorHTTPClient
from stripe_emulator.server import start_in_thread
from stripe_emulator.tests.helpers import (
    EUR,
    REPO,
    USD,
    client_for,
    http_get,
    raw,
)


def test_module_is_documented_as_an_emulator_and_imports_no_django() -> None:
    import stripe_emulator as pkg

    assert "not a payment processor" in (pkg.__doc__ or "")
    code = "import sys, stripe_emulator.server; print(any(m.split('.')[0] == 'django' for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_parameter_is_rejected(sc: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd", "colour": "red"})  # type: ignore[typeddict-unknown-key]
    assert exc.value.http_status == 400
    assert exc.value.param == "colour"
    assert exc.value.user_message == "Received unknown parameter: colour"
    assert exc.value.error is not None and exc.value.error.type == "invalid_request_error"


def test_payment_method_types_is_rejected(sc: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.payment_intents.create(
            params={"amount": 1000, "currency": "usd", "payment_method_types": ["card"]}  # type: ignore[typeddict-unknown-key]
        )
    assert exc.value.param == "payment_method_types"
    assert (exc.value.user_message or "").startswith("Received unknown parameter: payment_method_types")


def test_ill_typed_and_nested_unknown_parameters(emu: Emulator) -> None:
    status, _, body = raw(emu, "POST", "/v1/payment_intents", {"amount": "ten", "currency": "usd"})
    assert status == 400
    assert body["error"]["param"] == "amount"
    assert "Invalid integer" in body["error"]["message"]
    status, _, body = raw(
        emu,
        "POST",
        "/v1/checkout/sessions",
        {"mode": "payment", "success_url": "http://x", "line_items": [{"price_data": {"bogus": 1}}]},
    )
    assert status == 400
    assert body["error"]["message"] == "Received unknown parameter: line_items[0][price_data][bogus]"
    status, _, body = raw(emu, "POST", "/v1/payment_intents", {"currency": "usd"})
    assert (status, body["error"]["param"]) == (400, "amount")


@pytest.mark.parametrize(
    ("amount", "code"),
    [(49, "amount_too_small"), (100_000_000, "amount_too_large")],
)
def test_amount_limits(sc: stripe.StripeClient, amount: int, code: str) -> None:
    with pytest.raises(stripe.InvalidRequestError) as exc:
        sc.v1.payment_intents.create(params={"amount": amount, "currency": "eur"})
    assert exc.value.code == code
    assert exc.value.param == "amount"


def test_authentication_errors(emu: Emulator) -> None:
    status, _, body = raw(emu, "GET", "/v1/events", key="sk_test_nope_000000000")
    assert status == 401
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["message"].startswith("Invalid API Key provided")
    status, _, body = raw(emu, "GET", "/v1/events", key="")
    assert status == 401
    assert "did not provide an API key" in body["error"]["message"]
    # publishable keys can't use secret-key endpoints
    status, _, _ = raw(
        emu, "POST", "/v1/payment_intents", {"amount": 100, "currency": "usd"}, key=USD.publishable_key
    )
    assert status == 401


def test_authentication_error_through_sdk(http: EmulatorHTTPClient) -> None:
    bad = stripe.StripeClient("sk_test_wrong", http_client=http, base_addresses={"api": "http://emulator"})
    with pytest.raises(stripe.AuthenticationError):
        bad.v1.events.list()


def test_response_headers(emu: Emulator) -> None:
    status, headers, _ = raw(emu, "POST", "/v1/payment_intents", {"amount": 500, "currency": "usd"})
    assert status == 200
    assert headers["Stripe-Version"] == "2026-10-28.endive"
    assert headers["Request-Id"].startswith("req_")


def test_account_scoping(sc: stripe.StripeClient, http: EmulatorHTTPClient) -> None:
    pi = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    eur = client_for(http, EUR)
    with pytest.raises(stripe.InvalidRequestError) as exc:
        eur.v1.payment_intents.retrieve(pi.id)
    assert exc.value.http_status == 404
    assert exc.value.code == "resource_missing"
    assert sc.v1.payment_intents.retrieve(pi.id).id == pi.id
    assert eur.v1.events.list().data == []


def test_idempotent_replay_and_conflict(emu: Emulator) -> None:
    params = {"amount": 1500, "currency": "usd", "metadata": {"order": "42"}}
    key = {"Idempotency-Key": "order-42-attempt-1"}
    s1, h1, b1 = raw(emu, "POST", "/v1/payment_intents", params, headers=key)
    s2, h2, b2 = raw(emu, "POST", "/v1/payment_intents", params, headers=key)
    assert (s1, s2) == (200, 200)
    assert b1 == b2
    assert "Idempotent-Replayed" not in h1
    assert h2["Idempotent-Replayed"] == "true"
    assert [o for o in emu.objects.values() if o["object"] == "payment_intent"] == [emu.get(b1["id"])]
    assert len(emu.events["usd"]) == 1

    s3, _, b3 = raw(emu, "POST", "/v1/payment_intents", {**params, "amount": 1600}, headers=key)
    assert s3 == 400
    assert b3["error"]["type"] == "idempotency_error"
    assert b3["error"]["message"].startswith(
        "Keys for idempotent requests can only be used with the same parameters"
    )

    # the same key under another account is a different key
    s4, _, b4 = raw(
        emu, "POST", "/v1/payment_intents", {**params, "currency": "eur"}, key=EUR.secret_key, headers=key
    )
    assert s4 == 200 and b4["id"] != b1["id"]


def test_validation_errors_are_not_saved(emu: Emulator) -> None:
    """Stripe saves no result for a request refused by validation: the same key may be sent again, and a
    corrected request under it then runs (https://docs.stripe.com/api/idempotent_requests)."""
    key = {"Idempotency-Key": "bad-1"}
    for params in (
        {"amount": 10, "currency": "usd"},
        {"currency": "usd"},
        {"amount": 1000, "currency": "usd", "x": 1},
    ):
        s1, h1, b1 = raw(emu, "POST", "/v1/payment_intents", params, headers=key)
        assert s1 == 400 and "Idempotent-Replayed" not in h1, b1
    s2, h2, b2 = raw(emu, "POST", "/v1/payment_intents", {"amount": 1000, "currency": "usd"}, headers=key)
    assert s2 == 200 and "Idempotent-Replayed" not in h2 and b2["id"].startswith("pi_")


def test_a_decline_is_saved_and_replayed(emu: Emulator) -> None:
    key = {"Idempotency-Key": "declined-1"}
    params = {"amount": 1000, "currency": "usd", "confirm": True, "payment_method": "pm_card_chargeDeclined"}
    s1, _, b1 = raw(emu, "POST", "/v1/payment_intents", params, headers=key)
    s2, h2, b2 = raw(emu, "POST", "/v1/payment_intents", params, headers=key)
    assert s1 == s2 == 402 and b1 == b2 and h2["Idempotent-Replayed"] == "true"
    assert len([o for o in emu.objects.values() if o["object"] == "payment_intent"]) == 1


@pytest.mark.parametrize(("kind", "objects"), [("500", 0), ("500_after", 1)])
def test_a_500_is_saved_and_replayed_for_its_key(emu: Emulator, kind: str, objects: int) -> None:
    """Stripe replays a saved 500 for the same key (for 24 hours): only a new key is a new attempt."""
    key = {"Idempotency-Key": "pi-1"}
    params = {"amount": 1000, "currency": "usd"}
    s1, _, b1 = raw(emu, "POST", "/v1/payment_intents", params, headers=key, inject=kind)
    assert s1 == 500 and b1["error"]["type"] == "api_error"
    made = [o["id"] for o in emu.objects.values() if o["object"] == "payment_intent"]
    assert len(made) == objects  # "500_after": it exists although the answer says it failed
    s2, h2, b2 = raw(emu, "POST", "/v1/payment_intents", params, headers=key)
    assert (s2, b2, h2["Idempotent-Replayed"]) == (500, b1, "true")
    s3, _, b3 = raw(emu, "POST", "/v1/payment_intents", params, headers={"Idempotency-Key": "pi-2"})
    assert s3 == 200 and b3["id"] not in made


@pytest.mark.parametrize("kind", ["connection", "timeout"])
def test_fail_next_connection_kinds(
    emu: Emulator, http: EmulatorHTTPClient, sc: stripe.StripeClient, kind: str
) -> None:
    http.fail_next(kind)
    with pytest.raises(stripe.APIConnectionError) as exc:
        sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    assert exc.value.should_retry is True
    assert not emu.events["usd"]
    assert len(http.requests) == 1
    sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    assert len(emu.events["usd"]) == 1


def test_fail_next_http_kinds(emu: Emulator, http: EmulatorHTTPClient, sc: stripe.StripeClient) -> None:
    http.fail_next("500")
    with pytest.raises(stripe.APIError) as exc500:
        sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    assert exc500.value.http_status == 500
    http.fail_next("429")
    with pytest.raises(stripe.RateLimitError) as exc429:
        sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    assert exc429.value.http_status == 429
    assert not emu.events["usd"]
    assert [r.path for r in http.requests] == ["/v1/payment_intents"] * 2
    assert http.requests[0].api_key == USD.secret_key
    assert http.requests[0].params == {"amount": "1000", "currency": "usd"}
    with pytest.raises(ValueError, match="unknown failure kind"):
        http.fail_next("gremlins")


def test_fail_next_500_after_then_the_same_key_gets_the_500_again(
    emu: Emulator, http: EmulatorHTTPClient, sc: stripe.StripeClient
) -> None:
    http.fail_next("500_after")
    opts: Any = {"idempotency_key": "order-77"}
    with pytest.raises(stripe.APIError):
        sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"}, options=opts)
    created = [o for o in emu.objects.values() if o["object"] == "payment_intent"]
    assert len(created) == 1  # processed although the answer was a 500
    with pytest.raises(stripe.APIError) as again:
        sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"}, options=opts)
    assert again.value.http_status == 500  # the saved answer, replayed
    assert [r.idempotency_key for r in http.requests] == ["order-77", "order-77"]


def test_fail_next_lost_then_the_same_key_gets_the_saved_answer(
    emu: Emulator, http: EmulatorHTTPClient, sc: stripe.StripeClient
) -> None:
    http.fail_next("lost")
    opts: Any = {"idempotency_key": "order-78"}
    with pytest.raises(stripe.APIConnectionError):
        sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"}, options=opts)
    [created] = [o for o in emu.objects.values() if o["object"] == "payment_intent"]
    pi = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"}, options=opts)
    assert pi.id == created["id"]
    assert pi.last_response is not None and pi.last_response.headers["Idempotent-Replayed"] == "true"


def test_sdk_retries_recover_from_lost_response(
    emu: Emulator, http: EmulatorHTTPClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(stripe.HTTPClient, "_sleep_time_seconds", lambda self, n: 0.0)
    sc = client_for(http, retries=2)
    http.fail_next("lost")
    http.fail_next("connection")
    pi = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    assert len(http.requests) == 3
    assert len({r.idempotency_key for r in http.requests}) == 1  # SDK reused its generated key
    assert [o["id"] for o in emu.objects.values() if o["object"] == "payment_intent"] == [pi.id]


def test_concurrent_idempotent_requests_create_one_object(emu: Emulator) -> None:
    results: list[str] = []

    def worker() -> None:
        _, _, body = raw(
            emu,
            "POST",
            "/v1/payment_intents",
            {"amount": 700, "currency": "usd"},
            headers={"Idempotency-Key": "k"},
        )
        results.append(body["id"])

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 16
    assert sum(1 for o in emu.objects.values() if o["object"] == "payment_intent") == 1


def test_stats_count_objects_by_kind_and_calls_by_route(emu: Emulator, sc: stripe.StripeClient) -> None:
    """What a load test reads to tell how many Stripe objects a scenario made (bench.run's abandonment row)."""
    assert emu.stats() == {"objects": {}, "calls": {}}
    first = sc.v1.payment_intents.create(params={"amount": 1000, "currency": "usd"})
    sc.v1.payment_intents.create(params={"amount": 500, "currency": "usd"})
    sc.v1.payment_intents.retrieve(first.id)
    stats = emu.stats()
    assert stats["objects"] == {"payment_intent": 2, "event": 2}  # and their payment_intent.created
    assert stats["calls"] == {"POST /v1/payment_intents": 2, "GET /v1/payment_intents/{id}": 1}
    srv = start_in_thread(emu)
    try:
        status, _, body = http_get(f"{emu.base_url}/_emulator/stats")
        assert status == 200 and json.loads(body) == stats
    finally:
        srv.shutdown()
        srv.server_close()


def test_the_emulator_imports_only_the_standard_library_and_stripe() -> None:
    """Nothing of the shop (``core``, ``catalog``, ``payments``): see also ``test_independence.py``."""
    import ast

    allowed_third_party = {"stripe", "typing_extensions"}
    for path in (REPO / "stripe_emulator").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                ok = top in sys.stdlib_module_names or top in allowed_third_party or top == "stripe_emulator"
                assert ok, f"{path.name} imports {name}"


def test_the_product_never_imports_the_emulator() -> None:
    for app in ("core", "catalog", "payments"):
        for path in (REPO / app).rglob("*.py"):
            if "tests" in path.parts:
                continue
            text = path.read_text()
            assert "import stripe_emulator" not in text and "from stripe_emulator" not in text, path
