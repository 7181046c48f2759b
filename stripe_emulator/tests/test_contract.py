"""Contract test: every answer the emulator gives is shaped like Stripe's ``2026-10-28.endive`` objects.

The flows below drive the emulator the way the shop and Stripe's test cards do (PaymentIntents created,
confirmed, declined, authenticated or not, canceled; Checkout Sessions with coupons and tax rates created,
expanded, paid, expired; refunds that succeed, stay pending or fail; disputes opened, answered, won and
lost; events listed and retrieved) and record every answer. Each answer, each object inside a list, and the
object inside each event is then checked against the typed resource class that ships with ``stripe``
(``contract.problems``): non-Optional attributes present, values of the annotated types, enum values this
API version lists, no attribute Stripe does not have. Top-level objects must also carry every attribute
Stripe sends (``null`` when empty), except the few Stripe only sends when expanded.
"""

from __future__ import annotations

import copy
import json
import typing
from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from stripe_emulator import Emulator, EmulatorAccount, EmulatorHTTPClient
from stripe_emulator.tests.contract import declared, missing_nullable, problems

USD = EmulatorAccount("usd", "sk_test_usd_contract_01", "pk_test_usd_contract_01", "whsec_usd_contract")
JPY = EmulatorAccount("jpy", "sk_test_jpy_contract_01", "pk_test_jpy_contract_01", "whsec_jpy_contract")
KWD = EmulatorAccount("kwd", "sk_test_kwd_contract_01", "pk_test_kwd_contract_01", "whsec_kwd_contract")

CLASSES: dict[str, type] = {
    "balance_transaction": stripe.BalanceTransaction,
    "charge": stripe.Charge,
    "checkout.session": stripe.checkout.Session,
    "coupon": stripe.Coupon,
    "discount": stripe.Discount,
    "dispute": stripe.Dispute,
    "event": stripe.Event,
    "item": stripe.LineItem,
    "payment_intent": stripe.PaymentIntent,
    "payment_method": stripe.PaymentMethod,
    "refund": stripe.Refund,
    "tax_rate": stripe.TaxRate,
}

_PM_TYPES = set(typing.get_args(typing.get_args(declared(stripe.PaymentMethod)["type"])[0]))

#: Top-level attributes Stripe leaves out of an object unless they are expanded or apply to it (a charge's
#: ``level3`` only exists for Level 3 card data; a PaymentMethod carries only the hash of its own type).
ABSENT_UNLESS_EXPANDED: dict[str, set[str]] = {
    "checkout.session": {"line_items"},
    "charge": {"refunds", "level3"},
    "coupon": {"applies_to", "currency_options", "deleted"},
    "discount": {"deleted"},
    "item": {"taxes", "discounts"},
    "payment_method": (_PM_TYPES & set(declared(stripe.PaymentMethod))) - {"card"},
}


#: Top-level fields endive declares optional and not nullable (``field?: T`` in ``stripe@23.1.0``'s types for
#: API version 2026-10-28.endive), written out here from those types: Stripe leaves them out rather than send
#: ``null``.
OPTIONAL_NOT_NULLABLE: dict[str, set[str]] = {
    "payment_intent": {"amount_details", "hooks", "payment_details", "presentment_details"},
    "checkout.session": {
        "branding_settings", "excluded_payment_method_types", "line_items", "name_collection",
        "phone_number_collection", "presentment_details", "redirect_on_completion", "return_url",
        "tax_id_collection",
    },
    "charge": {"authorization_code", "level3", "presentment_details", "radar_options", "transfer"},
    "refund": {
        "description", "destination_details", "failure_balance_transaction", "failure_reason",
        "instructions_email", "next_action", "pending_reason", "presentment_details",
    },
    "event": {"account", "context"},
}  # fmt: skip


def nulls_of_optional_fields(answer: Any, path: str = "") -> list[str]:
    """Every optional non-nullable field sent as ``null``, anywhere in the answer."""
    found: list[str] = []
    if isinstance(answer, list):
        for i, item in enumerate(answer):
            found += nulls_of_optional_fields(item, f"{path}[{i}]")
    elif isinstance(answer, dict):
        for key in OPTIONAL_NOT_NULLABLE.get(str(answer.get("object")), set()):
            if key in answer and answer[key] is None:
                found.append(f"{path}.{key}: null (Stripe leaves it out)")
        for key, value in answer.items():
            found += nulls_of_optional_fields(value, f"{path}.{key}")
    return found


class RecordingClient(EmulatorHTTPClient):
    """The in-process client, keeping every answer (status, decoded body, request key kind)."""

    def __init__(self, emulator: Emulator) -> None:
        super().__init__(emulator)
        self.answers: list[tuple[str, str, int, Any]] = []

    def request(
        self, method: str, url: str, headers: Any, post_data: Any = None, *, _usage: Any = None
    ) -> Any:
        body, status, out_headers = super().request(method, url, headers, post_data)
        self.answers.append((method.upper(), url, status, json.loads(body)))
        return body, status, out_headers


def client(http: RecordingClient, account: EmulatorAccount = USD) -> stripe.StripeClient:
    return stripe.StripeClient(
        account.secret_key, http_client=http, base_addresses={"api": "http://emulator"}, max_network_retries=0
    )


def check(answer: Any, path: str = "") -> list[str]:
    """All problems of one answer: the object (or list) itself, what it contains, events' objects."""
    if not isinstance(answer, dict):
        return [f"{path}: not an object"]
    if answer.get("object") == "list":
        found = []
        for i, item in enumerate(answer.get("data", [])):
            found += check(item, f"{path}.data[{i}]")
        item_cls: Any = CLASSES.get(answer["data"][0]["object"]) if answer.get("data") else None
        list_type: Any = stripe.ListObject[item_cls] if item_cls else stripe.ListObject
        found += problems(answer, list_type, path or "list")
        return found
    kind = answer.get("object")
    cls = CLASSES.get(str(kind))
    if cls is None:
        return [f"{path}: unknown object kind {kind!r}"]
    found = problems(answer, cls, path or cls.__qualname__)
    absent = ABSENT_UNLESS_EXPANDED.get(str(kind), set()) | OPTIONAL_NOT_NULLABLE.get(str(kind), set())
    found += missing_nullable(answer, cls, absent)
    found += nulls_of_optional_fields(answer, path or cls.__qualname__)
    if kind == "event":
        found += check(answer["data"]["object"], f"{path or 'Event'}.data.object")
    return found


def all_problems(http: RecordingClient, emu: Emulator) -> dict[str, list[str]]:
    """Problems of every successful answer recorded, and of every event the emulator stored."""
    found: dict[str, list[str]] = {}
    for method, url, status, body in http.answers:
        if status != 200:
            # Error answers carry a PaymentIntent for some errors: it must be a PaymentIntent too.
            intent = body.get("error", {}).get("payment_intent")
            if intent is not None:
                found.setdefault(f"{method} {url} (error)", []).extend(check(intent))
            continue
        found.setdefault(f"{method} {url}", []).extend(check(body))
    for events in emu.events.values():
        for event in events:
            found.setdefault(f"event {event['type']}", []).extend(check(event))
    return {k: v for k, v in found.items() if v}


@pytest.fixture
def emu() -> Iterator[Emulator]:
    emulator = Emulator([USD, JPY, KWD], base_url="http://127.0.0.1:12111", enabled_events=["*"])
    emulator.deliver = lambda account, payload, signature: 200
    yield emulator
    emulator.close()


@pytest.fixture
def http(emu: Emulator) -> RecordingClient:
    return RecordingClient(emu)


def drive_payment_intents(emu: Emulator, http: RecordingClient) -> None:
    sc = client(http)
    ok = sc.v1.payment_intents.create(
        params={"amount": 2000, "currency": "usd", "description": "Order 1", "receipt_email": "a@example.com"}
    )
    sc.v1.payment_intents.update(ok.id, params={"amount": 2100, "metadata": {"order": "1"}})
    sc.v1.payment_intents.confirm(
        ok.id, params={"payment_method": "pm_card_visa", "return_url": "http://x/r"}
    )
    sc.v1.payment_intents.retrieve(ok.id, params={"expand": ["latest_charge", "payment_method"]})
    paid = sc.v1.payment_intents.retrieve(ok.id, params={"expand": ["latest_charge.balance_transaction"]})
    assert isinstance(paid.payment_method, str)
    sc.v1.payment_methods.retrieve(paid.payment_method)

    declined = sc.v1.payment_intents.create(params={"amount": 2000, "currency": "usd"})
    with pytest.raises(stripe.CardError):
        sc.v1.payment_intents.confirm(
            declined.id, params={"payment_method": "pm_card_visa_chargeDeclinedInsufficientFunds"}
        )
    sc.v1.payment_intents.retrieve(declined.id)
    with pytest.raises(stripe.CardError):
        sc.v1.payment_intents.confirm(declined.id, params={"payment_method": "pm_card_chargeDeclined"})

    for success in (True, False):
        three_ds = sc.v1.payment_intents.create(params={"amount": 3000, "currency": "usd"})
        sc.v1.payment_intents.confirm(
            three_ds.id, params={"payment_method": "pm_card_authenticationRequired"}
        )
        sc.v1.payment_intents.retrieve(three_ds.id)
        emu.complete_authentication(three_ds.id, success)
        sc.v1.payment_intents.retrieve(three_ds.id, params={"expand": ["latest_charge"]})

    canceled = sc.v1.payment_intents.create(params={"amount": 900, "currency": "usd"})
    sc.v1.payment_intents.cancel(canceled.id, params={"cancellation_reason": "abandoned"})
    with pytest.raises(stripe.InvalidRequestError):
        sc.v1.payment_intents.cancel(canceled.id)

    jpy = client(http, JPY).v1.payment_intents.create(params={"amount": 5000, "currency": "jpy"})
    emu.confirm_payment_intent(jpy.id)


def drive_checkout(emu: Emulator, http: RecordingClient) -> None:
    for account, unit in ((USD, 2450), (JPY, 2450), (KWD, 2450)):
        sc = client(http, account)
        cur = account.currency
        percent = sc.v1.coupons.create(params={"percent_off": 12.5, "duration": "once", "name": "Welcome"})
        fixed = sc.v1.coupons.create(params={"amount_off": 300, "currency": cur, "duration": "once"})
        vat = sc.v1.tax_rates.create(params={"display_name": "VAT", "percentage": 20, "inclusive": True})
        city = sc.v1.tax_rates.create(params={"display_name": "City", "percentage": 2.5, "inclusive": True})
        levy = sc.v1.tax_rates.create(
            params={"display_name": "Levy", "percentage": 8.875, "inclusive": False}
        )
        sc.v1.coupons.retrieve(percent.id)
        sc.v1.tax_rates.retrieve(levy.id)
        for coupon in (percent, fixed):
            session = sc.v1.checkout.sessions.create(
                params={
                    "mode": "payment",
                    "ui_mode": "hosted_page",
                    "line_items": [
                        {
                            "price_data": {
                                "currency": cur,
                                "unit_amount": unit,
                                "product_data": {"name": "Beans", "description": "1 kg"},
                            },
                            "quantity": 2,
                            "tax_rates": [vat.id, city.id, levy.id],
                        },
                        {
                            "price_data": {
                                "currency": cur,
                                "unit_amount": 1800,
                                "product_data": {"name": "Dripper"},
                            },
                            "quantity": 1,
                        },
                    ],
                    "discounts": [{"coupon": coupon.id}],
                    "success_url": "http://shop/ok?cs={CHECKOUT_SESSION_ID}",
                    "cancel_url": "http://shop/cancel",
                    "customer_email": "shopper@example.com",
                    "metadata": {"order": "9"},
                    "payment_intent_data": {"metadata": {"order": "9"}, "description": "Order 9"},
                }
            )
            sc.v1.checkout.sessions.retrieve(
                session.id, params={"expand": ["line_items", "total_details.breakdown"]}
            )
            sc.v1.checkout.sessions.line_items.list(
                session.id, params={"expand": ["data.taxes", "data.discounts"]}
            )
            sc.v1.checkout.sessions.retrieve(session.id, params={"expand": ["line_items.data.taxes"]})
            if coupon is percent:
                emu.pay_checkout_session(session.id, email="shopper@example.com")
                sc.v1.checkout.sessions.retrieve(
                    session.id, params={"expand": ["payment_intent.latest_charge"]}
                )
            else:
                with pytest.raises(Exception, match="declined"):
                    emu.pay_checkout_session(session.id, card="4000000000000002")
                sc.v1.checkout.sessions.expire(session.id)
                sc.v1.checkout.sessions.retrieve(session.id)


def drive_refunds_and_disputes(emu: Emulator, http: RecordingClient) -> None:
    sc = client(http)
    for pm, amount in (("pm_card_visa", 1000), ("pm_card_refundFail", 1200)):
        pi = sc.v1.payment_intents.create(params={"amount": 5000, "currency": "usd"})
        sc.v1.payment_intents.confirm(pi.id, params={"payment_method": pm})
        refund = sc.v1.refunds.create(
            params={"payment_intent": pi.id, "amount": amount, "reason": "duplicate"}
        )
        sc.v1.refunds.retrieve(refund.id, params={"expand": ["charge", "balance_transaction"]})
        if pm == "pm_card_refundFail":
            emu.fail_refund(refund.id)
            sc.v1.refunds.retrieve(refund.id)
        charge_id = sc.v1.payment_intents.retrieve(pi.id).latest_charge
        assert isinstance(charge_id, str)
        sc.v1.charges.retrieve(charge_id, params={"expand": ["refunds"]})

    pending_pi = sc.v1.payment_intents.create(params={"amount": 5000, "currency": "usd"})
    emu.confirm_payment_intent(pending_pi.id, card="4000000000007726")
    pending = sc.v1.refunds.create(params={"payment_intent": pending_pi.id})
    emu.settle_refund(pending.id)
    sc.v1.refunds.list(params={"payment_intent": pending_pi.id})
    sc.v1.refunds.list(params={"limit": 2, "created": {"gte": 0}})

    disputed = sc.v1.payment_intents.create(params={"amount": 7000, "currency": "usd"})
    sc.v1.payment_intents.confirm(disputed.id, params={"payment_method": "pm_card_createDispute"})
    first = next(e for e in emu.events["usd"] if e["type"] == "charge.dispute.created")["data"]["object"]
    sc.v1.disputes.update(
        first["id"], params={"evidence": {"uncategorized_text": "Delivered."}, "metadata": {"case": "1"}}
    )
    sc.v1.disputes.retrieve(first["id"], params={"expand": ["charge", "payment_intent"]})
    emu.close_dispute(first["id"], won=True)

    other = sc.v1.payment_intents.create(params={"amount": 4000, "currency": "usd"})
    emu.confirm_payment_intent(other.id)
    second = emu.open_dispute(other.id, reason="product_not_received")
    sc.v1.disputes.close(second["id"])
    sc.v1.disputes.retrieve(second["id"])
    sc.v1.balance_transactions.retrieve(second["balance_transactions"][0]["id"])


def drive_events(emu: Emulator, http: RecordingClient) -> None:
    sc = client(http)
    listed = sc.v1.events.list(params={"limit": 100})
    for event in listed.data[:5]:
        sc.v1.events.retrieve(event.id)
    sc.v1.events.list(params={"type": "charge.dispute.*", "delivery_success": True})
    sc.v1.events.list(params={"created": {"gte": 0}, "types": ["refund.created", "refund.failed"]})


def test_every_answer_and_event_is_shaped_like_endive(emu: Emulator, http: RecordingClient) -> None:
    drive_payment_intents(emu, http)
    drive_checkout(emu, http)
    drive_refunds_and_disputes(emu, http)
    drive_events(emu, http)

    seen = {body.get("object") for _, _, status, body in http.answers if status == 200}
    seen |= {e["data"]["object"]["object"] for events in emu.events.values() for e in events}
    for answer in (body for _, _, status, body in http.answers if status == 200):
        for item in answer.get("data", []) if answer.get("object") == "list" else []:
            seen.add(item.get("object"))
    # Every object kind the emulator answers with is covered (discounts ride inside sessions and items).
    assert seen >= set(CLASSES) - {"discount"}, set(CLASSES) - seen
    assert all_problems(http, emu) == {}

    types = {e["type"] for events in emu.events.values() for e in events}
    assert types >= {
        "payment_intent.created",
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "payment_intent.requires_action",
        "payment_intent.canceled",
        "checkout.session.completed",
        "checkout.session.expired",
        "charge.refunded",
        "refund.created",
        "refund.updated",
        "refund.failed",
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "charge.dispute.funds_reinstated",
    }


def test_discounts_inside_sessions_are_endive_discount_objects(emu: Emulator, http: RecordingClient) -> None:
    drive_checkout(emu, http)
    breakdowns = [
        body["total_details"]["breakdown"]
        for method, url, status, body in http.answers
        if status == 200 and body.get("object") == "checkout.session" and "breakdown" in body["total_details"]
    ]
    discounts = [d["discount"] for b in breakdowns for d in b["discounts"]]
    assert discounts
    for discount in discounts:
        assert problems(discount, stripe.Discount) == []
        assert "coupon" not in discount
        assert discount["source"]["type"] == "coupon" and isinstance(discount["source"]["coupon"], str)


#: Stripe.js's ``PaymentIntent`` type (``@stripe/stripe-js`` 10.2.1, ``dist/api/payment-intents.d.ts``), and its
#: ``StripeError`` (``dist/stripe-js/stripe.d.ts``): all a publishable-key caller is shown.
STRIPE_JS_PAYMENT_INTENT = {
    "id", "object", "amount", "canceled_at", "cancellation_reason", "capture_method", "client_secret",
    "confirmation_method", "created", "currency", "description", "last_payment_error", "livemode", "next_action",
    "payment_method", "payment_method_types", "receipt_email", "setup_future_usage", "shipping", "status",
}  # fmt: skip
STRIPE_JS_ERROR = {
    "type", "charge", "code", "decline_code", "doc_url", "message", "param", "request_log_url", "payment_intent",
    "payment_method", "setup_intent", "source",
}  # fmt: skip


def test_publishable_key_answers_are_the_client_side_subset(emu: Emulator, http: RecordingClient) -> None:
    pi = client(http).v1.payment_intents.create(
        params={"amount": 1000, "currency": "usd", "metadata": {"order_id": "secret-ish"}}
    )
    headers = {"Authorization": f"Bearer {USD.publishable_key}"}
    status, _, body = emu.handle(
        "GET", f"/v1/payment_intents/{pi.id}?client_secret={pi.client_secret}", headers
    )
    answer = json.loads(body)
    assert status == 200
    assert set(answer) <= STRIPE_JS_PAYMENT_INTENT and "metadata" not in answer
    assert {"id", "amount", "currency", "status", "client_secret"} <= set(answer)

    # A decline answered to Stripe.js: the error and its PaymentIntent, no metadata, no charge object.
    form = f"client_secret={pi.client_secret}&payment_method=pm_card_chargeDeclined".encode()
    status, _, body = emu.handle("POST", f"/v1/payment_intents/{pi.id}/confirm", headers, form)
    error = json.loads(body)["error"]
    assert status == 402 and error["decline_code"] == "generic_decline"
    assert set(error) <= STRIPE_JS_ERROR
    assert (
        set(error["payment_intent"]) <= STRIPE_JS_PAYMENT_INTENT and "metadata" not in error["payment_intent"]
    )
    assert set(error["payment_intent"]["last_payment_error"]) <= STRIPE_JS_ERROR


# --------------------------------------------------------------------------------- the checker itself


def test_the_checker_reports_a_removed_required_field(emu: Emulator, http: RecordingClient) -> None:
    drive_payment_intents(emu, http)
    drive_checkout(emu, http)
    intent = next(b for _, _, s, b in http.answers if s == 200 and b.get("object") == "payment_intent")
    session = next(b for _, _, s, b in http.answers if s == 200 and b.get("object") == "checkout.session")
    assert check(intent) == [] and check(session) == []

    broken = copy.deepcopy(intent)
    del broken["amount"]
    del broken["payment_method_types"]
    assert problems(broken, stripe.PaymentIntent) == [
        "PaymentIntent.amount: missing (PaymentIntent always has it)",
        "PaymentIntent.payment_method_types: missing (PaymentIntent always has it)",
    ]
    nullable_gone = copy.deepcopy(intent)
    del nullable_gone["latest_charge"]
    assert check(nullable_gone) == ["PaymentIntent.latest_charge: missing (Stripe sends it, null when empty)"]


def test_the_checker_reports_wrong_types_enums_and_unknown_attributes(
    emu: Emulator, http: RecordingClient
) -> None:
    drive_checkout(emu, http)
    session = next(
        b
        for _, _, s, b in http.answers
        if s == 200 and b.get("object") == "checkout.session" and "line_items" in b
    )
    broken = copy.deepcopy(session)
    broken["ui_mode"] = "hosted"  # the old emulator's value: not one endive knows
    broken["amount_total"] = "6700"
    broken["line_items"]["data"][0]["price"]["_product_name"] = "Beans"  # a private helper key leaking
    broken["total_details"]["breakdown"]["discounts"][0]["discount"]["coupon"] = "old-style"
    found = problems(broken, stripe.checkout.Session)
    assert (
        "Session.ui_mode: 'hosted' is not one of ['elements', 'embedded_page', 'form', 'hosted_page']"
        in found
    )
    assert "Session.amount_total: expected an integer, got '6700'" in found
    assert "Session.line_items.data[0].price._product_name: Price has no such attribute" in found
    assert (
        "Session.total_details.breakdown.discounts[0].discount.coupon: Discount has no such attribute"
        in found
    )
    assert len(found) == 4
