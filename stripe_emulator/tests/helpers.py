"""What the emulator's tests share: two accounts, an SDK client on the in-process emulator, raw API calls,
HTTP calls to the emulator's server, a webhook recorder, a Checkout Session's parameters."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import stripe

from stripe_emulator import Emulator, EmulatorAccount, EmulatorHTTPClient
from stripe_emulator.params import encode_form

USD = EmulatorAccount("usd", "sk_test_usd_emulator_0001", "pk_test_usd_emulator_0001", "whsec_usd_emulator")


EUR = EmulatorAccount("eur", "sk_test_eur_emulator_0001", "pk_test_eur_emulator_0001", "whsec_eur_emulator")


REPO = Path(__file__).resolve().parents[2]
# The endpoint most tests here listen with: the payment lifecycle and disputes (refunds and charges' own news
# are recorded and listed, not sent).
LIFECYCLE_EVENTS = ("payment_intent.*", "checkout.session.*", "charge.refunded", "charge.dispute.*")


def client_for(
    http: EmulatorHTTPClient, account: EmulatorAccount = USD, retries: int = 0
) -> stripe.StripeClient:
    return stripe.StripeClient(
        account.secret_key,
        http_client=http,
        base_addresses={"api": "http://emulator"},
        max_network_retries=retries,
    )


def raw(
    emu: Emulator,
    method: str,
    path: str,
    params: dict[str, Any] | None = None,
    key: str = USD.secret_key,
    headers: dict[str, str] | None = None,
    inject: str | None = None,
) -> tuple[int, dict[str, str], dict[str, Any]]:
    body = encode_form(params or {}).encode()
    if method == "GET" and params:
        path, body = f"{path}?{body.decode()}", b""
    status, out_headers, out = emu.handle(
        method, path, {"Authorization": f"Bearer {key}", **(headers or {})}, body, inject=inject
    )
    return status, out_headers, json.loads(out)


def http_get(url: str) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, dict(resp.headers.items()), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read().decode()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def post_form(url: str, data: dict[str, str]) -> tuple[int, dict[str, str], str]:
    opener = urllib.request.build_opener(NoRedirect)
    req = urllib.request.Request(url, data=encode_form(data).encode(), method="POST")
    try:
        with opener.open(req, timeout=10) as resp:
            return resp.status, dict(resp.headers.items()), resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read().decode()


def recorder(sent: list[str]) -> Any:
    """A webhook endpoint that keeps the type of every event it receives and answers 200."""

    def deliver(account: EmulatorAccount, payload: bytes, signature: str) -> int:
        sent.append(json.loads(payload)["type"])
        return 200

    return deliver


def session_params(**extra: Any) -> Any:
    return {
        "mode": "payment",
        "line_items": [
            {
                "price_data": {"currency": "usd", "unit_amount": 2450, "product_data": {"name": "Beans"}},
                "quantity": 2,
            }
        ],
        "success_url": "http://shop.test/ok",
        **extra,
    }


def paid_intent(emu: Emulator, sc: stripe.StripeClient, amount: int = 5000) -> str:
    pi = sc.v1.payment_intents.create(params={"amount": amount, "currency": "usd"})
    emu.confirm_payment_intent(pi.id)
    return pi.id
