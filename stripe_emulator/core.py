"""The in-memory Stripe API emulator (development/test-only code, not a payment processor).

:class:`Emulator` answers Stripe v1 API calls from memory: ``handle(method, path, headers,
body)`` takes the raw request the SDK would send and returns ``(status, headers, body)``.
State lives in plain dicts guarded by one re-entrant lock. Events are signed like Stripe's
webhooks and either handed to ``emulator.deliver`` synchronously or POSTed by a background
worker when ``emulator.webhook_base`` is set.

Only the standard library and ``stripe`` are imported here.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import queue
import re
import secrets
import string
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import stripe
from stripe.params import (
    CouponCreateParams,
    EventListParams,
    PaymentIntentCancelParams,
    PaymentIntentConfirmParams,
    PaymentIntentCreateParams,
    PaymentIntentUpdateParams,
    RefundCreateParams,
    TaxRateCreateParams,
)
from stripe.params.checkout import SessionCreateParams, SessionExpireParams

from stripe_emulator import money
from stripe_emulator.params import check_params, decode_form

__all__ = [
    "API_VERSION",
    "CARD_OUTCOMES",
    "Emulator",
    "EmulatorAccount",
    "EmulatorError",
    "Headers",
    "sign_payload",
]

API_VERSION: str = stripe.api_version
JSONDict = dict[str, Any]
Deliver = Callable[["EmulatorAccount", bytes, str], int]

_ID_ALPHABET = string.ascii_letters + string.digits
_AUTH_FAILURE_MESSAGE = (
    "We are unable to authenticate your payment method. "
    "Please choose a different payment method and try again."
)


@dataclass(frozen=True)
class CardOutcome:
    """What confirming with a test card does."""

    result: str  # "succeeded" | "declined" | "requires_action"
    brand: str = "visa"
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None


_GENERIC_DECLINE = CardOutcome(
    "declined", "visa", "card_declined", "generic_decline", "Your card was declined."
)

#: Stripe's documented test cards the emulator understands; anything else is a generic decline.
CARD_OUTCOMES: dict[str, CardOutcome] = {
    "4242424242424242": CardOutcome("succeeded", "visa"),
    "5555555555554444": CardOutcome("succeeded", "mastercard"),
    "4000000000009995": CardOutcome(
        "declined", "visa", "card_declined", "insufficient_funds", "Your card has insufficient funds."
    ),
    "4000000000000002": _GENERIC_DECLINE,
    "4000002500003155": CardOutcome("requires_action", "visa"),
}

#: Stripe's test PaymentMethod ids, mapped to the card number they stand for.
TEST_PAYMENT_METHODS: dict[str, str] = {
    "pm_card_visa": "4242424242424242",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_visa_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_visa_chargeDeclined": "4000000000000002",
    "pm_card_authenticationRequired": "4000002500003155",
    "pm_card_authenticationRequiredOnSetup": "4000002500003155",
}

_PI_MUTABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
_PI_CANCELABLE = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
)


def sign_payload(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """Return a ``Stripe-Signature`` header value: ``t=<ts>,v1=<hmac-sha256 of "<ts>.<payload>">``."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    signed = f"{ts}.".encode() + payload
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={ts},v1={digest}"


@dataclass(frozen=True)
class EmulatorAccount:
    """One emulated Stripe account (the shop has one per settlement currency)."""

    currency: str
    secret_key: str
    publishable_key: str
    webhook_secret: str


class EmulatorError(Exception):
    """A Stripe-shaped API error: ``status`` plus the ``error`` object of the JSON body."""

    def __init__(self, status: int, error: JSONDict) -> None:
        super().__init__(error.get("message", ""))
        self.status = status
        self.error = error

    @property
    def message(self) -> str:
        return str(self.error.get("message", ""))


class Headers(MutableMapping[str, str]):
    """A small case-insensitive header mapping (the SDK reads both ``Request-Id`` and ``request-id``)."""

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        self._store: dict[str, tuple[str, str]] = {}
        for key, value in (data or {}).items():
            self[key] = value

    def __getitem__(self, key: str) -> str:
        return self._store[key.lower()][1]

    def __setitem__(self, key: str, value: str) -> None:
        self._store[key.lower()] = (key, value)

    def __delitem__(self, key: str) -> None:
        del self._store[key.lower()]

    def __iter__(self) -> Iterator[str]:
        return (original for original, _ in self._store.values())

    def __len__(self) -> int:
        return len(self._store)

    def __repr__(self) -> str:
        return f"Headers({dict(self.items())!r})"


def _invalid(
    message: str, param: str | None = None, code: str | None = None, status: int = 400
) -> EmulatorError:
    error: JSONDict = {"type": "invalid_request_error", "message": message}
    if param is not None:
        error["param"] = param
    if code is not None:
        error["code"] = code
        error["doc_url"] = f"https://docs.stripe.com/error-codes/{code.replace('_', '-')}"
    return EmulatorError(status, error)


def _missing(kind: str, object_id: str, param: str = "id") -> EmulatorError:
    return _invalid(f"No such {kind}: '{object_id}'", param, "resource_missing", 404)


def _new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def _mask(key: str) -> str:
    return f"{key[:8]}{'*' * max(len(key) - 12, 4)}{key[-4:]}" if len(key) > 12 else "****"


def _merge_metadata(current: JSONDict, update: Any) -> JSONDict:
    """Stripe metadata semantics: ``""`` clears all, a key set to ``""`` is deleted."""
    if update in ("", None):
        return {}
    merged = dict(current)
    for key, value in dict(update).items():
        if value in ("", None):
            merged.pop(key, None)
        else:
            merged[key] = str(value)
    return merged


@dataclass
class _Ctx:
    account: EmulatorAccount
    publishable: bool
    request_id: str | None
    idempotency_key: str | None


@dataclass
class _IdempotentEntry:
    fingerprint: str
    status: int
    body: bytes
    request_id: str


class Emulator:
    """In-memory Stripe API for the given accounts (one per currency). Thread-safe (one lock)."""

    def __init__(
        self,
        accounts: Sequence[EmulatorAccount],
        base_url: str = "http://127.0.0.1:12111",
        *,
        webhook_base: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not accounts:
            raise ValueError("the emulator needs at least one account")
        self.accounts: dict[str, EmulatorAccount] = {a.currency.lower(): a for a in accounts}
        self.base_url = base_url.rstrip("/")
        self.webhook_base: str | None = webhook_base
        self.deliver: Deliver | None = None
        self.clock = clock
        self.objects: dict[str, JSONDict] = {}
        self.events: dict[str, list[JSONDict]] = {c: [] for c in self.accounts}
        #: ``(event_id, status)`` for every delivery attempt (0 = connection error).
        self.deliveries: list[tuple[str, int]] = []
        self._owner: dict[str, str] = {}
        self._lines: dict[str, list[JSONDict]] = {}
        self._session_params: dict[str, JSONDict] = {}
        self._card_of_pm: dict[str, str] = {}
        self._idempotency: dict[tuple[str, str], _IdempotentEntry] = {}
        self._lock = threading.RLock()
        self._outbox: list[tuple[EmulatorAccount, JSONDict]] = []
        self._queue: queue.Queue[tuple[EmulatorAccount, JSONDict] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._by_secret = {a.secret_key: a for a in accounts}
        self._by_publishable = {a.publishable_key: a for a in accounts}

    # ------------------------------------------------------------------ small helpers

    def now(self) -> int:
        return int(self.clock())

    def get(self, object_id: str) -> JSONDict:
        """A copy of any stored object (raises ``KeyError`` if unknown)."""
        with self._lock:
            return copy.deepcopy(self.objects[object_id])

    def account_for(self, currency: str) -> EmulatorAccount:
        return self.accounts[currency.lower()]

    def owner_of(self, object_id: str) -> EmulatorAccount:
        with self._lock:
            return self.accounts[self._owner[object_id]]

    def _store(self, account: EmulatorAccount, obj: JSONDict) -> JSONDict:
        self.objects[obj["id"]] = obj
        self._owner[obj["id"]] = account.currency.lower()
        return obj

    def _find(self, account: EmulatorAccount, kind: str, object_id: str, param: str = "id") -> JSONDict:
        obj = self.objects.get(object_id)
        if obj is None or self._owner.get(object_id) != account.currency.lower() or obj.get("object") != kind:
            raise _missing(kind, object_id, param)
        return obj

    def _locked(self, fn: Callable[[], Any]) -> Any:
        with self._lock:
            try:
                result = fn()
            finally:
                outbox, self._outbox = self._outbox, []
        self._dispatch(outbox)
        return result

    # ------------------------------------------------------------------ events & webhooks

    def _emit(self, account: EmulatorAccount, event_type: str, obj: JSONDict, ctx: _Ctx | None) -> JSONDict:
        event: JSONDict = {
            "id": _new_id("evt_"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now(),
            "data": {"object": copy.deepcopy(obj)},
            "livemode": False,
            "pending_webhooks": 1 if (self.deliver is not None or self.webhook_base) else 0,
            "request": {
                "id": ctx.request_id if ctx else None,
                "idempotency_key": ctx.idempotency_key if ctx else None,
            },
            "type": event_type,
        }
        self._store(account, event)
        self.events[account.currency.lower()].append(event)
        self._outbox.append((account, event))
        return event

    def _dispatch(self, outbox: list[tuple[EmulatorAccount, JSONDict]]) -> None:
        for account, event in outbox:
            if self.deliver is not None:
                payload = json.dumps(event, indent=2).encode("utf-8")
                status = self.deliver(account, payload, sign_payload(payload, account.webhook_secret))
                with self._lock:
                    self.deliveries.append((event["id"], status))
                    if 200 <= status < 300:
                        event["pending_webhooks"] = 0
            elif self.webhook_base:
                self._ensure_worker()
                self._queue.put((account, event))

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._webhook_worker, name="emulator-webhooks", daemon=True
                )
                self._worker.start()

    def _webhook_worker(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._post_webhook(*item)
            finally:
                self._queue.task_done()

    def _post_webhook(self, account: EmulatorAccount, event: JSONDict, retries: int = 3) -> None:
        url = f"{self.webhook_base}/webhooks/stripe/{account.currency.lower()}/"
        payload = json.dumps(event, indent=2).encode("utf-8")
        delay = 0.5
        for attempt in range(retries + 1):
            status = 0
            request = urllib.request.Request(  # noqa: S310 - http(s) URL given by the developer
                url,
                data=payload,
                method="POST",
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "Stripe-Signature": sign_payload(payload, account.webhook_secret),
                    "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks) emulator",
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except (urllib.error.URLError, OSError):
                status = 0
            with self._lock:
                self.deliveries.append((event["id"], status))
                if 200 <= status < 300:
                    event["pending_webhooks"] = 0
            if 200 <= status < 300 or attempt == retries:
                return
            time.sleep(delay)
            delay *= 2

    def flush_webhooks(self, timeout: float = 10.0) -> bool:
        """Wait until background webhook deliveries are done; ``False`` on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        """Stop the background webhook worker (if any)."""
        if self._worker is not None and self._worker.is_alive():
            self._queue.put(None)
            self._worker.join(timeout=5)

    # ------------------------------------------------------------------ HTTP entry point

    def handle(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | str | None = b""
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer one API request: ``(status, headers, json body bytes)``."""
        hdrs = Headers(headers)
        request_id = _new_id("req_", 14)
        idem_key = hdrs.get("Idempotency-Key")
        out_headers: dict[str, str] = {
            "Content-Type": "application/json",
            "Request-Id": request_id,
            "Stripe-Version": API_VERSION,
            "Access-Control-Allow-Origin": "*",
        }
        method = method.upper()
        if idem_key and method == "POST":
            out_headers["Idempotency-Key"] = idem_key

        def error_response(exc: EmulatorError) -> tuple[int, dict[str, str], bytes]:
            error = dict(exc.error)
            error.setdefault("request_log_url", f"{self.base_url}/logs/{request_id}")
            return exc.status, out_headers, json.dumps({"error": error}, indent=2).encode("utf-8")

        parts = urlsplit(path)
        route_path = parts.path.rstrip("/") or "/"
        try:
            raw_body = body.encode("utf-8") if isinstance(body, str) else (body or b"")
            params = decode_form(parts.query if method in ("GET", "DELETE") else raw_body)
        except (UnicodeDecodeError, ValueError):
            return error_response(
                _invalid("Invalid request body: expected application/x-www-form-urlencoded.")
            )
        try:
            account, publishable = self._authenticate(hdrs)
        except EmulatorError as exc:
            return error_response(exc)
        ctx = _Ctx(account, publishable, request_id, idem_key if method == "POST" else None)

        def process() -> tuple[int, dict[str, str], bytes]:
            fingerprint = json.dumps([method, route_path, params], sort_keys=True, default=str)
            if ctx.idempotency_key:
                entry = self._idempotency.get((account.currency.lower(), ctx.idempotency_key))
                if entry is not None:
                    if entry.fingerprint != fingerprint:
                        return error_response(
                            EmulatorError(
                                400,
                                {
                                    "type": "idempotency_error",
                                    "message": (
                                        "Keys for idempotent requests can only be used with the same "
                                        "parameters "
                                        "they were first used with. Try using a key other than "
                                        f"'{ctx.idempotency_key}' if you meant to execute a different "
                                        "request."
                                    ),
                                },
                            )
                        )
                    replay_headers = dict(
                        out_headers, **{"Idempotent-Replayed": "true", "Original-Request": entry.request_id}
                    )
                    return entry.status, replay_headers, entry.body
            try:
                status, result = self._route(method, route_path, params, ctx)
                response = (status, out_headers, json.dumps(result, indent=2).encode("utf-8"))
            except EmulatorError as exc:
                response = error_response(exc)
            if ctx.idempotency_key and response[0] < 500:
                self._idempotency[(account.currency.lower(), ctx.idempotency_key)] = _IdempotentEntry(
                    fingerprint, response[0], response[2], request_id
                )
            return response

        result: tuple[int, dict[str, str], bytes] = self._locked(process)
        return result

    def _authenticate(self, headers: Headers) -> tuple[EmulatorAccount, bool]:
        auth = headers.get("Authorization", "").strip()
        key = ""
        if auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        elif auth.lower().startswith("basic "):
            try:
                key = base64.b64decode(auth[6:].strip()).decode("utf-8").split(":", 1)[0]
            except (ValueError, UnicodeDecodeError):
                key = ""
        if not key:
            raise _invalid(
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, "
                "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). "
                "See https://stripe.com/docs/api#authentication for details, or we can help at "
                "https://support.stripe.com/.",
                status=401,
            )
        if key in self._by_secret:
            return self._by_secret[key], False
        if key in self._by_publishable:
            return self._by_publishable[key], True
        raise _invalid(f"Invalid API Key provided: {_mask(key)}", code="api_key_invalid", status=401)

    # ------------------------------------------------------------------ routing

    _PI_RE = re.compile(r"^/v1/payment_intents/([^/]+)(?:/(confirm|cancel|emulator_authenticate))?$")
    _CS_RE = re.compile(r"^/v1/checkout/sessions/([^/]+)(?:/(expire|line_items))?$")
    _SIMPLE_RE = re.compile(r"^/v1/(coupons|tax_rates|refunds|charges|events|payment_methods)/([^/]+)$")

    def _route(self, method: str, path: str, params: JSONDict, ctx: _Ctx) -> tuple[int, JSONDict]:
        if ctx.publishable:
            return 200, self._route_publishable(method, path, params, ctx)
        acct = ctx.account
        if method == "POST":
            if path == "/v1/payment_intents":
                return 200, self._create_payment_intent(params, ctx)
            if path == "/v1/checkout/sessions":
                return 200, self._create_checkout_session(params, ctx)
            if path == "/v1/coupons":
                return 200, self._create_coupon(params, ctx)
            if path == "/v1/tax_rates":
                return 200, self._create_tax_rate(params, ctx)
            if path == "/v1/refunds":
                return 200, self._create_refund(params, ctx)
            m = self._PI_RE.match(path)
            if m:
                pi = self._find(acct, "payment_intent", m.group(1))
                action = m.group(2)
                if action is None:
                    return 200, self._update_payment_intent(pi, params, ctx)
                if action == "confirm":
                    return 200, self._confirm_api(pi, params, ctx)
                if action == "cancel":
                    return 200, self._cancel_payment_intent(pi, params, ctx)
                return 200, self._authenticate_api(pi, params, ctx)
            m = self._CS_RE.match(path)
            if m and m.group(2) == "expire":
                session = self._find(acct, "checkout.session", m.group(1))
                self._validate(params, SessionExpireParams)
                return 200, self._expire_session(session, ctx)
        elif method == "GET":
            if path == "/v1/events":
                return 200, self._list_events(params, ctx)
            m = self._PI_RE.match(path)
            if m and m.group(2) is None:
                expand = self._only_expand(params)
                return 200, self._expanded(acct, self._find(acct, "payment_intent", m.group(1)), expand)
            m = self._CS_RE.match(path)
            if m:
                session = self._find(acct, "checkout.session", m.group(1))
                self._maybe_expire(session)
                if m.group(2) == "line_items":
                    return 200, self._line_items_list(session)
                expand = self._only_expand(params)
                result = self._expanded(acct, session, [e for e in expand if e != "line_items"])
                if "line_items" in expand:
                    result["line_items"] = self._line_items_list(session)
                return 200, result
            m = self._SIMPLE_RE.match(path)
            if m:
                expand = self._only_expand(params)
                kind = {
                    "coupons": "coupon",
                    "tax_rates": "tax_rate",
                    "refunds": "refund",
                    "charges": "charge",
                    "events": "event",
                    "payment_methods": "payment_method",
                }[m.group(1)]
                return 200, self._expanded(acct, self._find(acct, kind, m.group(2)), expand)
        raise _invalid(
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/.",
            status=404,
        )

    def _route_publishable(self, method: str, path: str, params: JSONDict, ctx: _Ctx) -> JSONDict:
        """The few calls Stripe.js may make with a publishable key plus the PaymentIntent's client_secret."""
        m = self._PI_RE.match(path)
        if m is None or (method == "GET" and m.group(2)) or (method == "POST" and m.group(2) is None):
            raise _invalid(
                "This API call cannot be made with a publishable API key. "
                "Please use a secret API key. You can find a list of your API keys at "
                "https://dashboard.stripe.com/account/apikeys.",
                status=401,
            )
        params = dict(params)
        secret = params.pop("client_secret", None)
        pi_id = m.group(1)
        pi = self._find(ctx.account, "payment_intent", pi_id, "intent")
        if not secret:
            raise _invalid("Missing required param: client_secret.", "client_secret", "parameter_missing")
        if secret != pi["client_secret"]:
            raise _invalid(
                "The client_secret provided does not match the client_secret associated "
                "with the PaymentIntent.",
                "client_secret",
                "payment_intent_invalid_parameter",
            )
        if method == "GET":
            self._only_expand(params)
            return self._public_pi(pi)
        if m.group(2) == "confirm":
            return self._public_pi(self._confirm_api(pi, params, ctx))
        if m.group(2) == "emulator_authenticate":
            return self._public_pi(self._authenticate_api(pi, params, ctx))
        raise _invalid("This API call cannot be made with a publishable API key.", status=401)

    @staticmethod
    def _public_pi(pi: JSONDict) -> JSONDict:
        """The subset of a PaymentIntent Stripe returns to publishable-key callers."""
        hidden = {"metadata", "customer", "transfer_data", "application_fee_amount"}
        return {k: copy.deepcopy(v) for k, v in pi.items() if k not in hidden}

    @staticmethod
    def _validate(params: Mapping[str, Any], typed_dict: type) -> JSONDict:
        if "payment_method_types" in params:
            raise _invalid(
                "Received unknown parameter: payment_method_types. `payment_method_types` is not supported "
                f"in API version {API_VERSION}; use automatic_payment_methods or omit it.",
                "payment_method_types",
            )
        coerced, errors = check_params(params, typed_dict)
        if errors:
            first = errors[0]
            code = "parameter_missing" if first.message.startswith("Missing required param") else None
            if first.message.startswith("Received unknown parameter"):
                code = "parameter_unknown"
            elif code is None:
                code = "parameter_invalid"
            raise _invalid(first.message, first.param, code)
        return coerced

    @staticmethod
    def _only_expand(params: Mapping[str, Any]) -> list[str]:
        for key in params:
            if key != "expand":
                raise _invalid(f"Received unknown parameter: {key}", key, "parameter_unknown")
        expand = params.get("expand", [])
        return [str(e) for e in (expand if isinstance(expand, list) else [expand])]

    def _expanded(self, account: EmulatorAccount, obj: JSONDict, expand: Sequence[str]) -> JSONDict:
        """A copy of ``obj`` with the id fields named in ``expand`` replaced by the objects (one level)."""
        result = copy.deepcopy(obj)
        for field in expand:
            value = result.get(field)
            if isinstance(value, str) and self._owner.get(value) == account.currency.lower():
                result[field] = copy.deepcopy(self.objects[value])
            elif field not in result:
                raise _invalid(f"This property cannot be expanded ({field}).", "expand")
        return result

    def _check_amount(self, amount: Any, currency: str, param: str = "amount") -> int:
        if not isinstance(amount, int) or isinstance(amount, bool):
            raise _invalid(f"Invalid integer: {amount}", param, "parameter_invalid")
        minimum = money.minimum_amount(currency)
        if amount < minimum:
            raise _invalid(
                f"Amount must be at least {money.format_amount(minimum, currency)} {currency.lower()}",
                param,
                "amount_too_small",
            )
        if amount > money.MAXIMUM_AMOUNT:
            raise _invalid(
                f"Amount must be no more than {money.format_amount(money.MAXIMUM_AMOUNT, currency)}",
                param,
                "amount_too_large",
            )
        return amount

    @staticmethod
    def _check_currency(currency: Any, param: str = "currency") -> str:
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Za-z]{3}", currency):
            raise _invalid(f"Invalid currency: {currency}.", param, "parameter_invalid")
        return currency.lower()

    # ------------------------------------------------------------------ payment intents

    def _create_payment_intent(self, raw: JSONDict, ctx: _Ctx) -> JSONDict:
        params = self._validate(raw, PaymentIntentCreateParams)
        currency = self._check_currency(params["currency"])
        amount = self._check_amount(params["amount"], currency)
        pi_id = _new_id("pi_")
        pi: JSONDict = {
            "id": pi_id,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_received": 0,
            "automatic_payment_methods": params.get("automatic_payment_methods")
            or {"allow_redirects": "always", "enabled": True},
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": params.get("capture_method", "automatic"),
            "client_secret": f"{pi_id}_secret_{_new_id('', 25)}",
            "confirmation_method": params.get("confirmation_method", "automatic"),
            "created": self.now(),
            "currency": currency,
            "customer": params.get("customer"),
            "description": params.get("description"),
            "last_payment_error": None,
            "latest_charge": None,
            "livemode": False,
            "metadata": _merge_metadata({}, params.get("metadata", {})),
            "next_action": None,
            "payment_method": None,
            "receipt_email": params.get("receipt_email"),
            "setup_future_usage": params.get("setup_future_usage"),
            "statement_descriptor": params.get("statement_descriptor"),
            "status": "requires_payment_method",
        }
        self._store(ctx.account, pi)
        self._emit(ctx.account, "payment_intent.created", pi, ctx)
        if params.get("confirm"):
            card = self._card_from_params(params, required=True)
            assert card is not None
            self._apply_card(ctx.account, pi, card, ctx, raise_on_decline=True)
        elif params.get("payment_method"):
            self._card_from_params(params, required=False)
            pi["payment_method"] = params["payment_method"]
            pi["status"] = "requires_confirmation"
        return copy.deepcopy(pi)

    def _unexpected_state(self, pi: JSONDict, action: str, allowed: Sequence[str]) -> EmulatorError:
        exc = _invalid(
            f"You cannot {action} this PaymentIntent because it has a status of {pi['status']}. "
            f"Only a PaymentIntent with one of the following statuses may be {action}ed: "
            f"{', '.join(allowed)}.",
            code="payment_intent_unexpected_state",
        )
        exc.error["payment_intent"] = copy.deepcopy(pi)
        return exc

    def _update_payment_intent(self, pi: JSONDict, raw: JSONDict, ctx: _Ctx) -> JSONDict:
        params = self._validate(raw, PaymentIntentUpdateParams)
        if pi["status"] not in _PI_MUTABLE:
            raise self._unexpected_state(pi, "update", _PI_MUTABLE)
        currency = self._check_currency(params["currency"]) if "currency" in params else pi["currency"]
        if "amount" in params:
            pi["amount"] = self._check_amount(params["amount"], currency)
        pi["currency"] = currency
        if "metadata" in params:
            pi["metadata"] = _merge_metadata(pi["metadata"], params["metadata"])
        for key in ("description", "receipt_email", "statement_descriptor", "setup_future_usage"):
            if key in params:
                pi[key] = params[key] or None
        if "payment_method" in params:
            self._card_from_params(params, required=False)
            pi["payment_method"] = params["payment_method"] or None
        return copy.deepcopy(pi)

    def _card_from_params(self, params: Mapping[str, Any], *, required: bool) -> str | None:
        """The test card number a confirm request pays with (raw number or test PaymentMethod id)."""
        pmd = params.get("payment_method_data")
        if isinstance(pmd, dict) and isinstance(pmd.get("card"), dict) and pmd["card"].get("number"):
            return re.sub(r"[\s-]", "", str(pmd["card"]["number"]))
        pm = params.get("payment_method")
        if pm:
            pm = str(pm)
            if pm in TEST_PAYMENT_METHODS:
                return TEST_PAYMENT_METHODS[pm]
            if pm in self._card_of_pm:
                return self._card_of_pm[pm]
            raise _missing("payment_method", pm, "payment_method")
        if required:
            raise _invalid(
                "You cannot confirm this PaymentIntent because it's missing a payment method. To confirm the "
                "PaymentIntent, either provide a payment_method or payment_method_data "
                "(payment_method_data[card][number] in the emulator).",
                "payment_method",
                "payment_intent_unexpected_state",
            )
        return None

    def _confirm_api(self, pi: JSONDict, raw: JSONDict, ctx: _Ctx) -> JSONDict:
        raw = dict(raw)
        card_number: str | None = None
        pmd = raw.get("payment_method_data")
        if isinstance(pmd, dict) and "card" in pmd:
            # Raw card numbers are a test-mode/Stripe.js affair the SDK types don't model.
            pmd = dict(pmd)
            card = pmd.pop("card")
            if not isinstance(card, dict) or not card.get("number"):
                raise _invalid(
                    "Missing required param: payment_method_data[card][number].",
                    "payment_method_data[card][number]",
                    "parameter_missing",
                )
            card_number = re.sub(r"[\s-]", "", str(card["number"]))
            if pmd.get("type", "card") != "card":
                raise _invalid(
                    "payment_method_data[type] must be card when passing card details.",
                    "payment_method_data[type]",
                )
            # billing_details & co. of a raw-card payment_method_data are accepted and ignored.
            raw.pop("payment_method_data")
        params = self._validate(raw, PaymentIntentConfirmParams)
        if pi["status"] not in _PI_MUTABLE:
            raise self._unexpected_state(pi, "confirm", _PI_MUTABLE)
        if card_number is None:
            card_number = self._card_from_params(params, required=False)
        if card_number is None and pi.get("payment_method"):
            card_number = self._card_from_params({"payment_method": pi["payment_method"]}, required=True)
        if card_number is None:
            self._card_from_params({}, required=True)
        assert card_number is not None
        if "receipt_email" in params:
            pi["receipt_email"] = params["receipt_email"]
        self._apply_card(ctx.account, pi, card_number, ctx, raise_on_decline=True)
        return copy.deepcopy(pi)

    def _make_payment_method(
        self, account: EmulatorAccount, card_number: str, outcome: CardOutcome
    ) -> JSONDict:
        pm: JSONDict = {
            "id": _new_id("pm_"),
            "object": "payment_method",
            "billing_details": {"address": None, "email": None, "name": None, "phone": None},
            "card": {
                "brand": outcome.brand,
                "country": "US",
                "exp_month": 12,
                "exp_year": time.gmtime(self.now()).tm_year + 3,
                "funding": "credit",
                "last4": card_number[-4:],
            },
            "created": self.now(),
            "customer": None,
            "livemode": False,
            "metadata": {},
            "type": "card",
        }
        self._card_of_pm[pm["id"]] = card_number
        return self._store(account, pm)

    def _make_charge(self, account: EmulatorAccount, pi: JSONDict, failure: CardOutcome | None) -> JSONDict:
        charge: JSONDict = {
            "id": _new_id("ch_"),
            "object": "charge",
            "amount": pi["amount"],
            "amount_captured": 0 if failure else pi["amount"],
            "amount_refunded": 0,
            "captured": failure is None,
            "created": self.now(),
            "currency": pi["currency"],
            "description": pi.get("description"),
            "failure_code": failure.code if failure else None,
            "failure_message": failure.message if failure else None,
            "livemode": False,
            "metadata": dict(pi.get("metadata") or {}),
            "outcome": {
                "network_status": "declined_by_network" if failure else "approved_by_network",
                "reason": failure.decline_code if failure else None,
                "type": "issuer_declined" if failure else "authorized",
            },
            "paid": failure is None,
            "payment_intent": pi["id"],
            "payment_method": pi.get("payment_method"),
            "refunded": False,
            "status": "failed" if failure else "succeeded",
        }
        return self._store(account, charge)

    def _apply_card(
        self,
        account: EmulatorAccount,
        pi: JSONDict,
        card_number: str,
        ctx: _Ctx | None,
        *,
        raise_on_decline: bool,
    ) -> None:
        outcome = CARD_OUTCOMES.get(card_number, _GENERIC_DECLINE)
        pm = self._make_payment_method(account, card_number, outcome)
        pi["payment_method"] = pm["id"]
        pi["last_payment_error"] = None
        pi["next_action"] = None
        if outcome.result == "succeeded":
            self._succeed(account, pi, ctx)
        elif outcome.result == "requires_action":
            pi["status"] = "requires_action"
            pi["next_action"] = {
                "type": "use_stripe_sdk",
                "use_stripe_sdk": {
                    "type": "three_d_secure_redirect",
                    "stripe_js": f"{self.base_url}/3ds/{pi['id']}",
                    "source": pm["id"],
                },
            }
            self._emit(account, "payment_intent.requires_action", pi, ctx)
        else:
            charge = self._make_charge(account, pi, outcome)
            pi["latest_charge"] = charge["id"]
            pi["status"] = "requires_payment_method"
            error: JSONDict = {
                "charge": charge["id"],
                "code": outcome.code,
                "decline_code": outcome.decline_code,
                "doc_url": "https://docs.stripe.com/error-codes/card-declined",
                "message": outcome.message,
                "payment_method": copy.deepcopy(pm),
                "type": "card_error",
            }
            pi["last_payment_error"] = error
            self._emit(account, "payment_intent.payment_failed", pi, ctx)
            if raise_on_decline:
                api_error = dict(copy.deepcopy(error))
                api_error["payment_intent"] = copy.deepcopy(pi)
                raise EmulatorError(402, api_error)

    def _succeed(self, account: EmulatorAccount, pi: JSONDict, ctx: _Ctx | None) -> None:
        charge = self._make_charge(account, pi, None)
        pi.update(
            status="succeeded",
            amount_received=pi["amount"],
            latest_charge=charge["id"],
            last_payment_error=None,
            next_action=None,
        )
        self._emit(account, "payment_intent.succeeded", pi, ctx)

    def _authenticate_pi(
        self, account: EmulatorAccount, pi: JSONDict, success: bool, ctx: _Ctx | None
    ) -> None:
        if pi["status"] != "requires_action":
            raise self._unexpected_state(pi, "authenticate", ("requires_action",))
        pi["next_action"] = None
        if success:
            self._succeed(account, pi, ctx)
            return
        pi["status"] = "requires_payment_method"
        pi["last_payment_error"] = {
            "code": "payment_intent_authentication_failure",
            "decline_code": None,
            "doc_url": "https://docs.stripe.com/error-codes/payment-intent-authentication-failure",
            "message": _AUTH_FAILURE_MESSAGE,
            "payment_method": copy.deepcopy(self.objects.get(pi.get("payment_method") or "")),
            "type": "card_error",
        }
        self._emit(account, "payment_intent.payment_failed", pi, ctx)

    def _authenticate_api(self, pi: JSONDict, raw: JSONDict, ctx: _Ctx) -> JSONDict:
        unknown = [k for k in raw if k != "success"]
        if unknown:
            raise _invalid(f"Received unknown parameter: {unknown[0]}", unknown[0], "parameter_unknown")
        success = str(raw.get("success", "true")).lower() not in ("false", "0", "")
        self._authenticate_pi(ctx.account, pi, success, ctx)
        return copy.deepcopy(pi)

    def _cancel_payment_intent(self, pi: JSONDict, raw: JSONDict, ctx: _Ctx) -> JSONDict:
        params = self._validate(raw, PaymentIntentCancelParams)
        if pi["status"] not in _PI_CANCELABLE:
            raise self._unexpected_state(pi, "cancel", _PI_CANCELABLE)
        pi.update(
            status="canceled",
            canceled_at=self.now(),
            cancellation_reason=params.get("cancellation_reason", "requested_by_customer"),
            next_action=None,
        )
        self._emit(ctx.account, "payment_intent.canceled", pi, ctx)
        return copy.deepcopy(pi)

    # ------------------------------------------------------------------ coupons, tax rates

    def _create_coupon(self, raw: JSONDict, ctx: _Ctx) -> JSONDict:
        params = self._validate(raw, CouponCreateParams)
        percent = params.get("percent_off")
        amount_off = params.get("amount_off")
        if (percent is None) == (amount_off is None):
            raise _invalid("Exactly one of percent_off or amount_off must be set.", "percent_off")
        if percent is not None and not (Decimal(0) < Decimal(percent) <= Decimal(100)):
            raise _invalid("percent_off must be greater than 0 and at most 100.", "percent_off")
        if amount_off is not None:
            if "currency" not in params:
                raise _invalid(
                    "You must pass currency when passing amount_off.", "currency", "parameter_missing"
                )
            if amount_off <= 0:
                raise _invalid("amount_off must be a positive integer.", "amount_off")
        coupon_id = params.get("id") or "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))
        if coupon_id in self.objects:
            raise _invalid("Coupon already exists.", "id", "resource_already_exists")
        coupon: JSONDict = {
            "id": coupon_id,
            "object": "coupon",
            "amount_off": amount_off,
            "created": self.now(),
            "currency": params["currency"].lower() if amount_off is not None else None,
            "duration": params.get("duration", "once"),
            "duration_in_months": params.get("duration_in_months"),
            "livemode": False,
            "max_redemptions": params.get("max_redemptions"),
            "metadata": _merge_metadata({}, params.get("metadata", {})),
            "name": params.get("name"),
            "percent_off": float(percent) if percent is not None else None,
            "redeem_by": params.get("redeem_by"),
            "times_redeemed": 0,
            "valid": True,
        }
        return copy.deepcopy(self._store(ctx.account, coupon))

    def _create_tax_rate(self, raw: JSONDict, ctx: _Ctx) -> JSONDict:
        params = self._validate(raw, TaxRateCreateParams)
        percentage = Decimal(params["percentage"])
        if not (Decimal(0) <= percentage <= Decimal(100)):
            raise _invalid("percentage must be between 0 and 100.", "percentage")
        rate: JSONDict = {
            "id": _new_id("txr_"),
            "object": "tax_rate",
            "active": params.get("active", True),
            "country": params.get("country"),
            "created": self.now(),
            "description": params.get("description"),
            "display_name": params["display_name"],
            "effective_percentage": float(percentage),
            "inclusive": params["inclusive"],
            "jurisdiction": params.get("jurisdiction"),
            "livemode": False,
            "metadata": _merge_metadata({}, params.get("metadata", {})),
            "percentage": float(percentage),
            "state": params.get("state"),
            "tax_type": params.get("tax_type"),
        }
        return copy.deepcopy(self._store(ctx.account, rate))

    # ------------------------------------------------------------------ checkout sessions

    def _create_checkout_session(self, raw: JSONDict, ctx: _Ctx) -> JSONDict:
        params = self._validate(raw, SessionCreateParams)
        acct = ctx.account
        mode = params.get("mode", "payment")
        if mode != "payment":
            raise _invalid("The emulator only supports Checkout Sessions with mode=payment.", "mode")
        if params.get("ui_mode", "hosted") != "hosted":
            raise _invalid("The emulator only supports ui_mode=hosted.", "ui_mode")
        if not params.get("success_url"):
            raise _invalid("Missing required param: success_url.", "success_url", "parameter_missing")
        items = params.get("line_items") or []
        if not items:
            raise _invalid("Missing required param: line_items.", "line_items", "parameter_missing")
        currency: str | None = None
        lines: list[JSONDict] = []
        for i, item in enumerate(items):
            param = f"line_items[{i}]"
            if "price" in item:
                raise _missing("price", str(item["price"]), f"{param}[price]")
            pdata = item.get("price_data")
            if not pdata:
                raise _invalid(
                    f"Missing required param: {param}[price_data].",
                    f"{param}[price_data]",
                    "parameter_missing",
                )
            line_currency = self._check_currency(pdata["currency"], f"{param}[price_data][currency]")
            if currency is None:
                currency = line_currency
            elif line_currency != currency:
                raise _invalid("All line items must use the same currency.", f"{param}[price_data][currency]")
            if "unit_amount" not in pdata:
                raise _invalid(
                    f"Missing required param: {param}[price_data][unit_amount].",
                    f"{param}[price_data][unit_amount]",
                    "parameter_missing",
                )
            unit_amount = int(pdata["unit_amount"])
            if unit_amount < 0:
                raise _invalid("unit_amount must be >= 0.", f"{param}[price_data][unit_amount]")
            if "product_data" not in pdata:
                raise _invalid(
                    f"Missing required param: {param}[price_data][product_data].",
                    f"{param}[price_data][product_data]",
                    "parameter_missing",
                )
            quantity = item.get("quantity")
            if quantity is None:
                raise _invalid(
                    f"Missing required param: {param}[quantity].", f"{param}[quantity]", "parameter_missing"
                )
            if quantity < 1:
                raise _invalid("Quantity must be at least 1.", f"{param}[quantity]")
            rates = [
                copy.deepcopy(self._find(acct, "tax_rate", rid, f"{param}[tax_rates][{j}]"))
                for j, rid in enumerate(item.get("tax_rates") or [])
            ]
            product = pdata["product_data"]
            lines.append(
                {
                    "unit_amount": unit_amount,
                    "quantity": quantity,
                    "name": product["name"],
                    "product_description": product.get("description"),
                    "rates": rates,
                    "price_metadata": product.get("metadata") or {},
                }
            )
        assert currency is not None
        coupon: JSONDict | None = None
        discounts = params.get("discounts") or []
        if len(discounts) > 1:
            raise _invalid("You may only specify one discount.", "discounts")
        if discounts:
            entry = discounts[0]
            if "coupon" not in entry:
                raise _invalid("The emulator only supports discounts[0][coupon].", "discounts[0]")
            coupon = copy.deepcopy(self._find(acct, "coupon", entry["coupon"], "discounts[0][coupon]"))
            if coupon["amount_off"] is not None and coupon["currency"] != currency:
                raise _invalid(
                    f"The coupon currency ({coupon['currency']}) must match the currency "
                    f"of the session ({currency}).",
                    "discounts[0][coupon]",
                )
        if params.get("allow_promotion_codes") and coupon:
            raise _invalid(
                "You may only specify one of these parameters: allow_promotion_codes, discounts.", "discounts"
            )
        now = self.now()
        expires_at = params.get("expires_at", now + 24 * 3600)
        if not (now + 30 * 60 - 5 <= expires_at <= now + 24 * 3600 + 5):
            raise _invalid(
                "The `expires_at` timestamp must be between 30 minutes and 24 hours "
                "from Checkout Session creation.",
                "expires_at",
            )
        cs_id = _new_id("cs_test_", 58)
        line_items, totals = self._price_lines(currency, lines, coupon)
        if 0 < totals["amount_total"] < money.minimum_amount(currency):
            raise _invalid(
                "The Checkout Session's total amount due must add up to at least "
                f"{money.format_amount(money.minimum_amount(currency), currency)} {currency}",
                "line_items",
                "amount_too_small",
            )
        if totals["amount_total"] > money.MAXIMUM_AMOUNT:
            raise _invalid(
                "The Checkout Session's total amount due is too large.", "line_items", "amount_too_large"
            )
        session: JSONDict = {
            "id": cs_id,
            "object": "checkout.session",
            "allow_promotion_codes": params.get("allow_promotion_codes"),
            "amount_subtotal": totals["amount_subtotal"],
            "amount_total": totals["amount_total"],
            "automatic_tax": {"enabled": False, "liability": None, "status": None},
            "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id"),
            "client_secret": None,
            "created": now,
            "currency": currency,
            "customer": None,
            "customer_details": None,
            "customer_email": params.get("customer_email"),
            "discounts": [{"coupon": coupon["id"], "promotion_code": None}] if coupon else [],
            "expires_at": expires_at,
            "livemode": False,
            "locale": params.get("locale"),
            "metadata": _merge_metadata({}, params.get("metadata", {})),
            "mode": mode,
            "payment_intent": None,
            "payment_status": "unpaid",
            "status": "open",
            "success_url": params["success_url"],
            "total_details": totals["total_details"],
            "ui_mode": "hosted",
            "url": f"{self.base_url}/checkout/{cs_id}",
        }
        self._store(acct, session)
        self._lines[cs_id] = line_items
        self._session_params[cs_id] = params
        return copy.deepcopy(session)

    @staticmethod
    def _price_lines(
        currency: str, lines: list[JSONDict], coupon: JSONDict | None
    ) -> tuple[list[JSONDict], JSONDict]:
        """Stripe's arithmetic: discount spread proportionally, tax per line on the discounted amount."""
        subtotals = [line["unit_amount"] * line["quantity"] for line in lines]
        subtotal = sum(subtotals)
        discount_total = 0
        if coupon is not None:
            if coupon["percent_off"] is not None:
                pct = Decimal(str(coupon["percent_off"]))
                discount_total = money.round_half_up(Decimal(subtotal) * pct / Decimal(100))
            else:
                discount_total = int(coupon["amount_off"])
            discount_total = min(discount_total, subtotal)
        line_discounts = money.allocate(discount_total, subtotals)
        tax_breakdown: dict[str, JSONDict] = {}
        items: list[JSONDict] = []
        for line, line_subtotal, line_discount in zip(lines, subtotals, line_discounts, strict=True):
            taxable = line_subtotal - line_discount
            exclusive_tax = 0
            line_tax = 0
            taxes: list[JSONDict] = []
            for rate in line["rates"]:
                pct = Decimal(str(rate["percentage"]))
                if rate["inclusive"]:
                    amount = money.round_half_up(Decimal(taxable) * pct / (Decimal(100) + pct))
                    base = taxable - amount
                else:
                    amount = money.round_half_up(Decimal(taxable) * pct / Decimal(100))
                    base = taxable
                    exclusive_tax += amount
                line_tax += amount
                tax = {"amount": amount, "rate": rate, "taxability_reason": None, "taxable_amount": base}
                taxes.append(tax)
                agg = tax_breakdown.setdefault(
                    rate["id"], {"amount": 0, "rate": rate, "taxability_reason": None, "taxable_amount": 0}
                )
                agg["amount"] += amount
                agg["taxable_amount"] += base
            items.append(
                {
                    "id": _new_id("li_"),
                    "object": "item",
                    "amount_discount": line_discount,
                    "amount_subtotal": line_subtotal,
                    "amount_tax": line_tax,
                    "amount_total": taxable + exclusive_tax,
                    "currency": currency,
                    "description": line["name"],
                    "discounts": (
                        [{"amount": line_discount, "discount": {"coupon": coupon, "object": "discount"}}]
                        if coupon is not None and line_discount
                        else []
                    ),
                    "price": {
                        "id": _new_id("price_"),
                        "object": "price",
                        "active": False,
                        "currency": currency,
                        "livemode": False,
                        "metadata": {},
                        "product": _new_id("prod_"),
                        "type": "one_time",
                        "unit_amount": line["unit_amount"],
                        "_product_name": line["name"],
                        "_product_description": line["product_description"],
                    },
                    "quantity": line["quantity"],
                    "taxes": taxes,
                }
            )
        amount_tax = sum(i["amount_tax"] for i in items)
        amount_total = sum(i["amount_total"] for i in items)
        totals: JSONDict = {
            "amount_subtotal": subtotal,
            "amount_total": amount_total,
            "total_details": {
                "amount_discount": discount_total,
                "amount_shipping": 0,
                "amount_tax": amount_tax,
                "breakdown": {
                    "discounts": (
                        [{"amount": discount_total, "discount": {"coupon": coupon, "object": "discount"}}]
                        if coupon is not None
                        else []
                    ),
                    "taxes": list(tax_breakdown.values()),
                },
            },
        }
        return items, totals

    def _line_items_list(self, session: JSONDict) -> JSONDict:
        data = []
        for item in self._lines[session["id"]]:
            clean = copy.deepcopy(item)
            clean["price"] = {k: v for k, v in clean["price"].items() if not k.startswith("_")}
            data.append(clean)
        return {
            "object": "list",
            "data": data,
            "has_more": False,
            "url": f"/v1/checkout/sessions/{session['id']}/line_items",
        }

    def _maybe_expire(self, session: JSONDict) -> None:
        if session["status"] == "open" and session["expires_at"] <= self.now():
            self._expire(session, None)

    def _expire(self, session: JSONDict, ctx: _Ctx | None) -> None:
        session["status"] = "expired"
        session["url"] = None
        pi_id = session.get("payment_intent")
        account = self.accounts[self._owner[session["id"]]]
        if pi_id and self.objects[pi_id]["status"] in _PI_CANCELABLE:
            pi = self.objects[pi_id]
            pi.update(status="canceled", canceled_at=self.now(), cancellation_reason="abandoned")
            self._emit(account, "payment_intent.canceled", pi, ctx)
        self._emit(account, "checkout.session.expired", session, ctx)

    def _expire_session(self, session: JSONDict, ctx: _Ctx) -> JSONDict:
        self._maybe_expire(session)
        if session["status"] != "open":
            raise _invalid(
                'Only Checkout Sessions with a status in ["open"] can be expired. '
                f"This session has a status of "
                f"{session['status']}.",
            )
        self._expire(session, ctx)
        return copy.deepcopy(session)

    def _pay_session(self, session: JSONDict, card_number: str) -> str | None:
        """Pay an open session with a test card; returns the decline message, or ``None`` on success."""
        self._maybe_expire(session)
        if session["status"] != "open":
            raise _invalid(
                f"This Checkout Session is {session['status']}.", code="checkout_session_unexpected_state"
            )
        account = self.accounts[self._owner[session["id"]]]
        card_number = re.sub(r"[\s-]", "", card_number)
        if session["amount_total"] == 0:
            session.update(status="complete", payment_status="no_payment_required")
            self._emit(account, "checkout.session.completed", session, None)
            return None
        params = self._session_params[session["id"]]
        pi_id = session.get("payment_intent")
        if pi_id is None:
            pid = params.get("payment_intent_data") or {}
            pi = self._create_payment_intent(
                {
                    "amount": session["amount_total"],
                    "currency": session["currency"],
                    "metadata": pid.get("metadata") or {},
                    **({"description": pid["description"]} if pid.get("description") else {}),
                    **({"receipt_email": session["customer_email"]} if session.get("customer_email") else {}),
                },
                _Ctx(account, False, None, None),
            )
            session["payment_intent"] = pi["id"]
            pi_id = pi["id"]
        pi = self.objects[pi_id]
        self._apply_card(account, pi, card_number, None, raise_on_decline=False)
        if pi["status"] == "requires_action":
            # The hosted page has no 3DS step: the challenge is treated as passed.
            self._authenticate_pi(account, pi, True, None)
        if pi["status"] != "succeeded":
            return str((pi.get("last_payment_error") or {}).get("message") or "Your card was declined.")
        email = session.get("customer_email")
        session.update(
            status="complete",
            payment_status="paid",
            customer_details={
                "email": email,
                "name": None,
                "address": None,
                "phone": None,
                "tax_exempt": "none",
            },
        )
        self._emit(account, "checkout.session.completed", session, None)
        return None

    # ------------------------------------------------------------------ refunds

    def _create_refund(self, raw: JSONDict, ctx: _Ctx) -> JSONDict:
        params = self._validate(raw, RefundCreateParams)
        acct = ctx.account
        if "payment_intent" in params:
            pi = self._find(acct, "payment_intent", params["payment_intent"], "payment_intent")
            if pi["status"] != "succeeded" or not pi.get("latest_charge"):
                raise _invalid(
                    f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.",
                    "payment_intent",
                )
            charge = self.objects[pi["latest_charge"]]
        elif "charge" in params:
            charge = self._find(acct, "charge", params["charge"], "charge")
            if charge["status"] != "succeeded":
                raise _invalid("This charge cannot be refunded because it failed.", "charge")
        else:
            raise _invalid(
                "One of the following params should be provided for this request: payment_intent or charge."
            )
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0:
            raise _invalid(
                f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded"
            )
        amount = params.get("amount", remaining)
        if amount <= 0:
            raise _invalid("Invalid positive integer", "amount", "parameter_invalid")
        if amount > remaining:
            raise _invalid(
                f"Refund amount ({money.format_amount(amount, charge['currency'])}) is greater "
                "than unrefunded "
                f"amount on charge ({money.format_amount(remaining, charge['currency'])})",
                "amount",
                "amount_too_large",
            )
        refund: JSONDict = {
            "id": _new_id("re_"),
            "object": "refund",
            "amount": amount,
            "charge": charge["id"],
            "created": self.now(),
            "currency": charge["currency"],
            "metadata": _merge_metadata({}, params.get("metadata", {})),
            "payment_intent": charge["payment_intent"],
            "reason": params.get("reason"),
            "status": "succeeded",
        }
        self._store(acct, refund)
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        self._emit(acct, "charge.refunded", charge, ctx)
        return copy.deepcopy(refund)

    # ------------------------------------------------------------------ events

    def _list_events(self, raw: JSONDict, ctx: _Ctx) -> JSONDict:
        params = self._validate(raw, EventListParams)
        events = list(reversed(self.events[ctx.account.currency.lower()]))
        if "type" in params:
            pattern = re.escape(params["type"]).replace(r"\*", ".*")
            events = [e for e in events if re.fullmatch(pattern, e["type"])]
        if "types" in params:
            events = [e for e in events if e["type"] in params["types"]]
        if "starting_after" in params:
            ids = [e["id"] for e in events]
            if params["starting_after"] not in ids:
                raise _missing("event", params["starting_after"], "starting_after")
            events = events[ids.index(params["starting_after"]) + 1 :]
        limit = params.get("limit", 10)
        if not 1 <= limit <= 100:
            raise _invalid("limit must be between 1 and 100.", "limit")
        return {
            "object": "list",
            "data": copy.deepcopy(events[:limit]),
            "has_more": len(events) > limit,
            "url": "/v1/events",
        }

    # ------------------------------------------------------------------ test-driving helpers

    def confirm_payment_intent(self, pi_id: str, card: str = "4242424242424242") -> JSONDict:
        """Confirm like the shopper's browser would; declines are recorded on the PI, not raised."""

        def run() -> JSONDict:
            pi = self.objects[pi_id]
            if pi["status"] not in _PI_MUTABLE:
                raise self._unexpected_state(pi, "confirm", _PI_MUTABLE)
            self._apply_card(
                self.owner_of(pi_id), pi, re.sub(r"[\s-]", "", card), None, raise_on_decline=False
            )
            return copy.deepcopy(pi)

        result: JSONDict = self._locked(run)
        return result

    def complete_authentication(self, pi_id: str, success: bool) -> JSONDict:
        """Finish (or fail) the 3DS challenge of a PaymentIntent in ``requires_action``."""

        def run() -> JSONDict:
            pi = self.objects[pi_id]
            self._authenticate_pi(self.owner_of(pi_id), pi, success, None)
            return copy.deepcopy(pi)

        result: JSONDict = self._locked(run)
        return result

    def pay_checkout_session(self, cs_id: str, card: str = "4242424242424242") -> JSONDict:
        """Pay a hosted Checkout Session; raises :class:`EmulatorError` (402) if the card is declined."""

        def run() -> JSONDict:
            session = self.objects[cs_id]
            declined = self._pay_session(session, card)
            if declined is not None:
                raise EmulatorError(402, {"type": "card_error", "code": "card_declined", "message": declined})
            return copy.deepcopy(session)

        result: JSONDict = self._locked(run)
        return result

    def expire_checkout_session(self, cs_id: str) -> JSONDict:
        """Expire an open Checkout Session (emits ``checkout.session.expired``)."""

        def run() -> JSONDict:
            session = self.objects[cs_id]
            return self._expire_session(session, _Ctx(self.owner_of(cs_id), False, None, None))

        result: JSONDict = self._locked(run)
        return result

    def checkout_page_data(self, cs_id: str) -> tuple[JSONDict, list[JSONDict]] | None:
        """The session and its line items for the hosted page (``None`` if unknown)."""

        def run() -> tuple[JSONDict, list[JSONDict]] | None:
            session = self.objects.get(cs_id)
            if session is None or session.get("object") != "checkout.session":
                return None
            self._maybe_expire(session)
            return copy.deepcopy(session), copy.deepcopy(self._lines[cs_id])

        result: tuple[JSONDict, list[JSONDict]] | None = self._locked(run)
        return result

    def pay_checkout_page(self, cs_id: str, card: str) -> tuple[JSONDict, str | None]:
        """Hosted-page payment: ``(session, decline message or None)``."""

        def run() -> tuple[JSONDict, str | None]:
            session = self.objects[cs_id]
            declined = self._pay_session(session, card)
            return copy.deepcopy(session), declined

        result: tuple[JSONDict, str | None] = self._locked(run)
        return result
