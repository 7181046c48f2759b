"""The in-memory Stripe API emulator (development/test-only code, not a payment processor).

:class:`Emulator` answers Stripe v1 API calls from memory: ``handle(method, path, headers,
body)`` takes the raw request the SDK would send and returns ``(status, headers, body)``.
State lives in plain dicts guarded by one re-entrant lock. Events are signed like Stripe's
webhooks and either handed to ``emulator.deliver`` synchronously or POSTed by a background
worker when ``emulator.webhook_base`` is set.

Answers are shaped like API version ``2026-10-28.endive`` (see :mod:`stripe_emulator.shapes`), and
Checkout's amounts follow Stripe's documented rules (see :mod:`stripe_emulator.amounts`).

Only the standard library and ``stripe`` are imported here: nothing of the shop (its currency rules are
Stripe's own, in :mod:`stripe_emulator.money`).
"""

from __future__ import annotations

import base64
import copy
import fnmatch
import hashlib
import hmac
import json
import queue
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import stripe
from stripe.params import (
    CouponCreateParams,
    DisputeCloseParams,
    DisputeUpdateParams,
    EventListParams,
    PaymentIntentCancelParams,
    PaymentIntentCaptureParams,
    PaymentIntentConfirmParams,
    PaymentIntentCreateParams,
    PaymentIntentListParams,
    PaymentIntentUpdateParams,
    RefundCreateParams,
    RefundListParams,
    TaxRateCreateParams,
)
from stripe.params.checkout import SessionCreateParams, SessionExpireParams, SessionListParams

from stripe_emulator import amounts, money, shapes, state
from stripe_emulator.params import check_params, decode_form
from stripe_emulator.shapes import new_id as _new_id

__all__ = [
    "API_VERSION",
    "CARD_OUTCOMES",
    "DEFAULT_ENABLED_EVENTS",
    "Emulator",
    "EmulatorAccount",
    "EmulatorError",
    "Headers",
    "sign_payload",
]

API_VERSION: str = stripe.api_version
JSONDict = dict[str, Any]
Deliver = Callable[["EmulatorAccount", bytes, str], int]

_AUTH_FAILURE_MESSAGE = (
    "We are unable to authenticate your payment method. "
    "Please choose a different payment method and try again."
)
INVALID_NUMBER_MESSAGE = "Your card number is invalid."


@dataclass(frozen=True)
class CardOutcome:
    """What confirming with a test card does (https://docs.stripe.com/testing)."""

    result: str  # "succeeded" | "declined" | "requires_action"
    brand: str = "visa"
    code: str | None = None
    decline_code: str | None = None
    message: str | None = None
    #: After the payment succeeds: a dispute with this reason is opened at once.
    dispute: str | None = None
    #: What a refund of the charge does: "succeeded" (default), "pending" (then succeeds), or
    #: "fails" (starts as succeeded, fails later: see ``Emulator.fail_refund``).
    refund: str = "succeeded"


_GENERIC_DECLINE = CardOutcome(
    "declined", "visa", "card_declined", "generic_decline", "Your card was declined."
)


def _declined(code: str, decline_code: str, message: str) -> CardOutcome:
    return CardOutcome("declined", "visa", code, decline_code, message)


#: The test cards of https://docs.stripe.com/testing that a Payment Element can take, and what they do; any
#: other valid number is a generic decline.
CARD_OUTCOMES: dict[str, CardOutcome] = {
    # "Cards by brand": each one succeeds.
    "4242424242424242": CardOutcome("succeeded", "visa"),
    "4000056655665556": CardOutcome("succeeded", "visa"),  # debit
    "5555555555554444": CardOutcome("succeeded", "mastercard"),
    "2223003122003222": CardOutcome("succeeded", "mastercard"),  # 2-series
    "5200828282828210": CardOutcome("succeeded", "mastercard"),  # debit
    "5105105105105100": CardOutcome("succeeded", "mastercard"),  # prepaid
    "378282246310005": CardOutcome("succeeded", "amex"),
    "371449635398431": CardOutcome("succeeded", "amex"),
    "6011111111111117": CardOutcome("succeeded", "discover"),
    "6011000990139424": CardOutcome("succeeded", "discover"),
    "3056930009020004": CardOutcome("succeeded", "diners"),
    "36227206271667": CardOutcome("succeeded", "diners"),  # 14 digits
    "3566002020360505": CardOutcome("succeeded", "jcb"),
    "6200000000000005": CardOutcome("succeeded", "unionpay"),
    # "Declined payments".
    "4000000000000002": _GENERIC_DECLINE,
    "4000000000009995": _declined("card_declined", "insufficient_funds", "Your card has insufficient funds."),
    "4000000000009987": _declined("card_declined", "lost_card", "Your card was declined."),
    "4000000000009979": _declined("card_declined", "stolen_card", "Your card was declined."),
    "4000000000000069": _declined("expired_card", "expired_card", "Your card has expired."),
    "4000000000000127": _declined(
        "incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."
    ),
    "4000000000000119": _declined(
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
    # "Authentication and setup": 3D Secure asked on every payment ("always authenticate"), or unless the
    # card was set up for future payments ("authenticate unless set up"; this shop never sets cards up).
    "4000002760003184": CardOutcome("requires_action", "visa"),
    "4000002500003155": CardOutcome("requires_action", "visa"),
    "4000000000003220": CardOutcome("requires_action", "visa"),  # 3D Secure 2, required
    # "Disputes": "the charge succeeds, then is disputed" for the reason given.
    "4000000000000259": CardOutcome("succeeded", "visa", dispute="fraudulent"),
    "4000000000002685": CardOutcome("succeeded", "visa", dispute="product_not_received"),
    "4000000000001976": CardOutcome("succeeded", "visa", dispute="inquiry"),
    # "Refunds": "its status begins as pending ... transitions to succeeded" / "begins as succeeded and
    # transitions to failed".
    "4000000000007726": CardOutcome("succeeded", "visa", refund="pending"),
    "4000000000005126": CardOutcome("succeeded", "visa", refund="fails"),
}

#: Stripe's test PaymentMethod ids (https://docs.stripe.com/testing, "PaymentMethods" tabs), mapped to the
#: card number they stand for.
TEST_PAYMENT_METHODS: dict[str, str] = {
    "pm_card_visa": "4242424242424242",
    "pm_card_visa_debit": "4000056655665556",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_amex": "378282246310005",
    "pm_card_discover": "6011111111111117",
    "pm_card_jcb": "3566002020360505",
    "pm_card_unionpay": "6200000000000005",
    "pm_card_visa_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_visa_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_visa_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_visa_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
    "pm_card_chargeDeclinedProcessingError": "4000000000000119",
    "pm_card_authenticationRequired": "4000002760003184",
    "pm_card_authenticationRequiredOnSetup": "4000002500003155",
    "pm_card_createDispute": "4000000000000259",
    "pm_card_createDisputeProductNotReceived": "4000000000002685",
    "pm_card_createDisputeInquiry": "4000000000001976",
    "pm_card_pendingRefund": "4000000000007726",
    "pm_card_refundFail": "4000000000005126",
}

#: Stripe's test IBANs for SEPA Direct Debit (https://docs.stripe.com/testing, "Bank debits"): the payment stays
#: ``processing`` for days, then "transitions from processing to succeeded" or "to requires_payment_method".
#: The emulator waits for ``Emulator.settle_bank_debit`` instead of days.
TEST_IBANS: dict[str, str] = {
    "DE89370400440532013000": "succeeds",
    "DE62370400440532013001": "fails",
    "AT611904300234573201": "succeeds",
    "AT861904300235473202": "fails",
}

#: An object id in an API path (``pi_3Nx...``, ``cs_test_...``), replaced by ``{id}`` in :attr:`Emulator.calls`.
_ID_IN_PATH = re.compile(r"(?<=/)[a-z]+_(?=[a-z_]*[A-Z0-9])[A-Za-z0-9_]+(?=/|$)")
_PI_MUTABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
_PI_CANCELABLE = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
)
_DISPUTE_OPEN = ("warning_needs_response", "warning_under_review", "needs_response", "under_review")


#: What the webhook endpoint listens to unless told otherwise: every event, as ``stripe listen`` forwards
#: them without ``--events`` (a dashboard endpoint has no default: its ``enabled_events`` are chosen when it is
#: made). Stripe sends an endpoint only the events it is enabled for: whoever starts the emulator for an
#: application passes that application's list (``enabled_events=[...]``, CLI ``--enabled-events a,b``).
DEFAULT_ENABLED_EVENTS: tuple[str, ...] = ("*",)


def card_number_is_valid(number: str) -> bool:
    """A card number Stripe.js would accept: 12 to 19 digits passing the Luhn check."""
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for i, ch in enumerate(reversed(number)):
        digit = int(ch)
        if i % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def redirect_status(pi_status: str) -> str:
    """The ``redirect_status`` Stripe puts on the return URL for a PaymentIntent in ``pi_status``."""
    if pi_status in ("succeeded", "requires_capture"):
        return "succeeded"
    if pi_status == "processing":
        return "processing"
    return "failed"


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
        #: Whether Stripe saves this answer for the request's idempotency key (see ``_saved``).
        self.saved: bool | None = None

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


_API_ERROR: JSONDict = {
    "type": "api_error",
    "message": "An unknown error occurred (injected by the emulator).",
}


def _saved(exc: EmulatorError) -> bool:
    """Whether Stripe saves this refusal for its idempotency key: not when the request failed validation (a
    parameter missing, unknown or invalid, an unknown URL), since no endpoint began executing; yes otherwise
    (a decline, a refusal of the object's state, an object not found, a 500)."""
    code = str(exc.error.get("code") or "")
    if code.startswith("parameter_") or code in ("amount_too_small", "amount_too_large"):
        return False
    return not (exc.status in (400, 404) and not code and exc.error.get("type") == "invalid_request_error")


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


def _created_in(objects: list[JSONDict], created: Any) -> list[JSONDict]:
    """A list's ``created`` filter: an exact timestamp, or ``gt``/``gte``/``lt``/``lte`` bounds."""
    if isinstance(created, int):
        return [o for o in objects if o["created"] == created]
    if isinstance(created, dict):
        checks: dict[str, Callable[[int, int], bool]] = {
            "gt": lambda a, b: a > b,
            "gte": lambda a, b: a >= b,
            "lt": lambda a, b: a < b,
            "lte": lambda a, b: a <= b,
        }
        for op, bound in created.items():
            objects = [o for o in objects if checks[op](o["created"], bound)]
    return objects


def _page_of(objects: list[JSONDict], params: JSONDict, kind: str) -> tuple[list[JSONDict], bool]:
    """One page of a list, newest first, as Stripe pages it: ``limit`` (1-100, default 10) after
    ``starting_after`` or before ``ending_before`` (not both); whether more follow."""
    if "starting_after" in params and "ending_before" in params:
        raise _invalid("You may only specify one of these parameters: ending_before, starting_after.")
    limit = params.get("limit", 10)
    if not 1 <= limit <= 100:
        raise _invalid("limit must be between 1 and 100.", "limit")
    ids = [o["id"] for o in objects]
    if "starting_after" in params:
        if params["starting_after"] not in ids:
            raise _missing(kind, params["starting_after"], "starting_after")
        rest = objects[ids.index(params["starting_after"]) + 1 :]
        return rest[:limit], len(rest) > limit
    if "ending_before" in params:
        if params["ending_before"] not in ids:
            raise _missing(kind, params["ending_before"], "ending_before")
        before = objects[: ids.index(params["ending_before"])]
        return before[-limit:], len(before) > limit
    return objects[:limit], len(objects) > limit


class Emulator:
    """In-memory Stripe API for the given accounts (one per currency). Thread-safe (one lock)."""

    def __init__(
        self,
        accounts: Sequence[EmulatorAccount],
        base_url: str = "http://127.0.0.1:12111",
        *,
        webhook_base: str | None = None,
        clock: Callable[[], float] = time.time,
        enabled_events: Sequence[str] = DEFAULT_ENABLED_EVENTS,
    ) -> None:
        if not accounts:
            raise ValueError("the emulator needs at least one account")
        self.accounts: dict[str, EmulatorAccount] = {a.currency.lower(): a for a in accounts}
        self.base_url = base_url.rstrip("/")
        self.webhook_base: str | None = webhook_base
        self.deliver: Deliver | None = None
        self.clock = clock
        #: The event types the webhook endpoint listens to, like a Stripe webhook endpoint's
        #: ``enabled_events`` (``*`` wildcards; ``["*"]`` for all). Every event is recorded and listed by
        #: ``GET /v1/events`` either way; only these are sent to ``deliver`` or ``webhook_base``.
        self.enabled_events: tuple[str, ...] = tuple(enabled_events)
        self.objects: dict[str, JSONDict] = {}
        self.events: dict[str, list[JSONDict]] = {c: [] for c in self.accounts}
        #: ``(event_id, status)`` for every delivery attempt (0 = connection error).
        self.deliveries: list[tuple[str, int]] = []
        #: ``event_id -> True`` once delivered (a 2xx answer), ``False`` while its last attempt failed.
        self.delivered: dict[str, bool] = {}
        self._owner: dict[str, str] = {}
        # What a Checkout Session's answer leaves out unless expanded, and what its hosted page shows.
        self._lines: dict[str, list[JSONDict]] = {}
        self._line_includes: dict[str, dict[str, dict[str, list[JSONDict]]]] = {}
        self._line_products: dict[str, list[tuple[str, str | None]]] = {}
        self._breakdowns: dict[str, JSONDict] = {}
        self._session_coupon: dict[str, JSONDict] = {}
        self._session_params: dict[str, JSONDict] = {}
        self._card_of_pm: dict[str, str] = {}
        self._iban_of_pm: dict[str, str] = {}
        self._card_of_charge: dict[str, str] = {}
        self._refunds_of_charge: dict[str, list[str]] = {}
        self._session_intents: set[str] = set()
        #: What shoppers typed in a hosted Checkout page's email field, by session.
        self._collected_emails: dict[str, str] = {}
        self._idempotency: dict[tuple[str, str], _IdempotentEntry] = {}
        self._lock = threading.RLock()
        self._outbox: list[tuple[EmulatorAccount, JSONDict]] = []
        self._queue: queue.Queue[tuple[EmulatorAccount, JSONDict] | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._by_secret = {a.secret_key: a for a in accounts}
        self._by_publishable = {a.publishable_key: a for a in accounts}
        #: ``"METHOD /v1/route"`` (ids replaced by ``{id}``) -> how many API calls were answered.
        self.calls: dict[str, int] = {}
        #: Where the state is written after every change (``keep_state_in``); ``None``: memory only.
        self.state_file: Path | None = None

    # ------------------------------------------------------------------ small helpers

    def now(self) -> int:
        return int(self.clock())

    def get(self, object_id: str) -> JSONDict:
        """A copy of any stored object (raises ``KeyError`` if unknown)."""
        with self._lock:
            return copy.deepcopy(self.objects[object_id])

    def stats(self) -> JSONDict:
        """What a load test reads: objects stored by kind (``payment_intent``, ``checkout.session``, ...) and
        API calls answered by route."""
        with self._lock:
            kinds: dict[str, int] = {}
            for obj in self.objects.values():
                kinds[str(obj.get("object"))] = kinds.get(str(obj.get("object")), 0) + 1
            return {"objects": kinds, "calls": dict(self.calls)}

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
                if self.state_file is not None:
                    state.save(self, self.state_file)
        self._dispatch(outbox)
        return result

    def keep_state_in(self, path: Path) -> bool:
        """Keep the emulator's state in ``path`` from now on, starting from what it holds (``True`` if it held
        a state of these accounts). See :mod:`stripe_emulator.state`."""
        with self._lock:
            restored = state.load(self, path)
            self.state_file = path
            state.save(self, path)
        return restored

    # ------------------------------------------------------------------ events & webhooks

    def _emit(
        self,
        account: EmulatorAccount,
        event_type: str,
        obj: JSONDict,
        ctx: _Ctx | None,
        previous_attributes: JSONDict | None = None,
    ) -> JSONDict:
        data: JSONDict = {"object": shapes.present(obj)}
        if previous_attributes is not None:
            data["previous_attributes"] = previous_attributes
        event: JSONDict = {  # no "account" or "context": optional, and this is no Connect account's event
            "id": _new_id("evt_"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": 1 if self._delivers(event_type) else 0,
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

    def _delivers(self, event_type: str) -> bool:
        """Whether an event of this type goes to the webhook endpoint."""
        if self.deliver is None and not self.webhook_base:
            return False
        return any(fnmatch.fnmatchcase(event_type, pattern) for pattern in self.enabled_events)

    def _record_delivery(self, event: JSONDict, status: int) -> None:
        with self._lock:
            self.deliveries.append((event["id"], status))
            ok = 200 <= status < 300
            self.delivered[event["id"]] = ok
            if ok:
                event["pending_webhooks"] = 0

    def _dispatch(self, outbox: list[tuple[EmulatorAccount, JSONDict]]) -> None:
        for account, event in outbox:
            if not self._delivers(event["type"]):
                continue
            if self.deliver is not None:
                payload = json.dumps(event, indent=2).encode("utf-8")
                status = self.deliver(account, payload, sign_payload(payload, account.webhook_secret))
                self._record_delivery(event, status)
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
            self._record_delivery(event, status)
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
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes | str | None = b"",
        *,
        inject: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer one API request: ``(status, headers, json body bytes)``.

        ``inject`` makes Stripe fail the request with a 500: ``"500"`` before it did anything, ``"500_after"``
        after it did what was asked (the object exists, the answer says otherwise). Either answer is saved for
        the request's idempotency key and replayed, as Stripe does.
        """
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
        call = f"{method} {_ID_IN_PATH.sub('{id}', route_path)}"
        with self._lock:
            self.calls[call] = self.calls.get(call, 0) + 1

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
            saved = True
            try:
                if inject == "500":
                    raise EmulatorError(500, _API_ERROR)
                status, result = self._route(method, route_path, params, ctx)
                response = (status, out_headers, json.dumps(result, indent=2).encode("utf-8"))
                if inject == "500_after":
                    response = error_response(EmulatorError(500, _API_ERROR))
            except EmulatorError as exc:
                response = error_response(exc)
                saved = exc.saved if exc.saved is not None else _saved(exc)
            if ctx.idempotency_key and saved:
                # Stripe saves the first answer of a request that began executing, 500s included, and replays
                # it for the same key; a request refused by validation saved nothing
                # (https://docs.stripe.com/api/idempotent_requests).
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

    _PI_RE = re.compile(r"^/v1/payment_intents/([^/]+)(?:/(confirm|cancel|capture|emulator_authenticate))?$")
    _CS_RE = re.compile(r"^/v1/checkout/sessions/([^/]+)(?:/(expire|line_items))?$")
    _DU_RE = re.compile(r"^/v1/disputes/([^/]+)(?:/(close))?$")
    _SIMPLE_RE = re.compile(
        r"^/v1/(coupons|tax_rates|refunds|charges|events|payment_methods|balance_transactions)/([^/]+)$"
    )
    _KINDS = {
        "coupons": "coupon",
        "tax_rates": "tax_rate",
        "refunds": "refund",
        "charges": "charge",
        "events": "event",
        "payment_methods": "payment_method",
        "balance_transactions": "balance_transaction",
    }

    def _route(self, method: str, path: str, params: JSONDict, ctx: _Ctx) -> tuple[int, JSONDict]:
        if ctx.publishable:
            try:
                return 200, shapes.present(self._route_publishable(method, path, params, ctx))
            except EmulatorError as exc:
                raise self._public_error(exc) from None
        result = self._route_secret(method, path, params, ctx)
        expand = params.get("expand") or []
        if not isinstance(expand, list):
            expand = [expand]
        return 200, shapes.present(self._render(ctx.account, result, [str(e) for e in expand]))

    def _route_secret(self, method: str, path: str, params: JSONDict, ctx: _Ctx) -> JSONDict:
        acct = ctx.account
        if method == "POST":
            if path == "/v1/payment_intents":
                return self._create_payment_intent(params, ctx)
            if path == "/v1/checkout/sessions":
                return self._create_checkout_session(params, ctx)
            if path == "/v1/coupons":
                return self._create_coupon(params, ctx)
            if path == "/v1/tax_rates":
                return self._create_tax_rate(params, ctx)
            if path == "/v1/refunds":
                return self._create_refund(params, ctx)
            m = self._PI_RE.match(path)
            if m:
                pi = self._find(acct, "payment_intent", m.group(1))
                action = m.group(2)
                if action is None:
                    return self._update_payment_intent(pi, params, ctx)
                if action == "confirm":
                    return self._confirm_api(pi, params, ctx)
                if action == "capture":
                    return self._capture_payment_intent(pi, params, ctx)
                if action == "cancel":
                    return self._cancel_payment_intent(pi, params, ctx)
                return self._authenticate_api(pi, params, ctx)
            m = self._CS_RE.match(path)
            if m and m.group(2) == "expire":
                session = self._find(acct, "checkout.session", m.group(1))
                self._validate(params, SessionExpireParams)
                return self._expire_session(session, ctx)
            m = self._DU_RE.match(path)
            if m:
                dispute = self._find(acct, "dispute", m.group(1))
                if m.group(2) == "close":
                    self._validate(params, DisputeCloseParams)
                    return self._close_dispute(dispute, won=False, ctx=ctx)
                return self._update_dispute(dispute, params, ctx)
        elif method == "GET":
            if path == "/v1/events":
                return self._list_events(params, ctx)
            if path == "/v1/refunds":
                return self._list_refunds(params, ctx)
            if path == "/v1/payment_intents":
                return self._list_of_kind("payment_intent", path, PaymentIntentListParams, params, ctx)
            if path == "/v1/checkout/sessions":
                return self._list_of_kind("checkout.session", path, SessionListParams, params, ctx)
            m = self._PI_RE.match(path)
            if m and m.group(2) is None:
                self._only_expand(params)
                return copy.deepcopy(self._find(acct, "payment_intent", m.group(1)))
            m = self._CS_RE.match(path)
            if m:
                session = self._find(acct, "checkout.session", m.group(1))
                self._maybe_expire(session)
                if m.group(2) == "line_items":
                    self._only_params(params, ("expand", "limit", "starting_after", "ending_before"))
                    return self._line_items_list(session["id"])
                self._only_expand(params)
                return copy.deepcopy(session)
            m = self._DU_RE.match(path)
            if m and m.group(2) is None:
                self._only_expand(params)
                return copy.deepcopy(self._find(acct, "dispute", m.group(1)))
            m = self._SIMPLE_RE.match(path)
            if m:
                self._only_expand(params)
                return copy.deepcopy(self._find(acct, self._KINDS[m.group(1)], m.group(2)))
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

    #: What a PaymentIntent read with a publishable key carries: the fields of Stripe.js's ``PaymentIntent`` type
    #: (``@stripe/stripe-js`` 10.2.1, ``dist/api/payment-intents.d.ts``), and nothing else (no metadata, no
    #: customer, no charges).
    PUBLISHABLE_FIELDS = (
        "id", "object", "amount", "canceled_at", "cancellation_reason", "capture_method", "client_secret",
        "confirmation_method", "created", "currency", "description", "last_payment_error", "livemode",
        "next_action", "payment_method", "payment_method_types", "receipt_email", "setup_future_usage",
        "shipping", "status",
    )  # fmt: skip
    #: Its ``last_payment_error``, and an error answered to a publishable key (Stripe.js's ``StripeError``).
    PUBLISHABLE_ERROR_FIELDS = (
        "type", "charge", "code", "decline_code", "doc_url", "message", "param", "request_log_url",
        "payment_intent", "payment_method",
    )  # fmt: skip

    @classmethod
    def _public_pi(cls, pi: JSONDict) -> JSONDict:
        """The subset of a PaymentIntent Stripe returns to publishable-key callers."""
        public = {k: copy.deepcopy(pi[k]) for k in cls.PUBLISHABLE_FIELDS if k in pi}
        error = public.get("last_payment_error")
        if isinstance(error, dict):
            public["last_payment_error"] = {
                k: v for k, v in error.items() if k in cls.PUBLISHABLE_ERROR_FIELDS and k != "payment_intent"
            }
        return public

    @classmethod
    def _public_error(cls, exc: EmulatorError) -> EmulatorError:
        """An error as a publishable-key caller sees it: its PaymentIntent reduced to what Stripe.js shows."""
        error = {k: v for k, v in exc.error.items() if k in cls.PUBLISHABLE_ERROR_FIELDS}
        if isinstance(error.get("payment_intent"), dict):
            error["payment_intent"] = cls._public_pi(error["payment_intent"])
        public = EmulatorError(exc.status, error)
        public.saved = exc.saved
        return public

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
    def _only_params(params: Mapping[str, Any], allowed: Sequence[str]) -> None:
        for key in params:
            if key not in allowed:
                raise _invalid(f"Received unknown parameter: {key}", key, "parameter_unknown")

    @classmethod
    def _only_expand(cls, params: Mapping[str, Any]) -> None:
        cls._only_params(params, ("expand",))

    # ------------------------------------------------------------------ expand

    def _render(self, account: EmulatorAccount, obj: JSONDict, expand: Sequence[str]) -> JSONDict:
        """``obj`` with the paths named in ``expand`` expanded, as Stripe's ``expand[]`` does.

        A path is dotted (``latest_charge.payment_method``); a list object's items are reached with
        ``data.`` (``data.taxes`` on a Checkout Session's line items). Ids of stored objects become the
        objects; the fields Stripe only includes on request (a session's ``line_items`` and
        ``total_details.breakdown``, a charge's ``refunds``, a line item's ``taxes`` and ``discounts``) are
        added. Anything else answers Stripe's "This property cannot be expanded" error.
        """
        result = copy.deepcopy(obj)
        for path in expand:
            self._expand(account, result, path.split("."), path)
        return result

    def _includable(self, account: EmulatorAccount, node: JSONDict, key: str) -> Any:
        """A field Stripe leaves out unless expanded, or ``KeyError``."""
        kind = node.get("object")
        if kind == "checkout.session" and key == "line_items":
            return self._line_items_list(node["id"])
        if kind == "charge" and key == "refunds":
            ids = self._refunds_of_charge.get(node["id"], [])
            data = [copy.deepcopy(self.objects[i]) for i in reversed(ids)]
            return shapes.list_object(data, f"/v1/charges/{node['id']}/refunds")
        if kind == "item" and key in ("taxes", "discounts"):
            for includes in self._line_includes.values():
                if node["id"] in includes:
                    return copy.deepcopy(includes[node["id"]][key])
        raise KeyError(key)

    def _expand(self, account: EmulatorAccount, node: Any, parts: list[str], path: str) -> None:
        if node is None:
            return
        if isinstance(node, list):
            for item in node:
                self._expand(account, item, parts, path)
            return
        if not isinstance(node, dict):
            raise _invalid(f"This property cannot be expanded ({path}).", "expand")
        key, rest = parts[0], parts[1:]
        if node.get("object") == "list" and key == "data":
            for item in node.get("data", []):
                if rest:
                    self._expand(account, item, rest, path)
            return
        if node.get("object") == "checkout.session" and key == "total_details" and rest == ["breakdown"]:
            if node.get("total_details") is not None:
                node["total_details"]["breakdown"] = copy.deepcopy(self._breakdowns[node["id"]])
            return
        if key not in node:
            try:
                node[key] = self._includable(account, node, key)
            except KeyError:
                raise _invalid(f"This property cannot be expanded ({path}).", "expand") from None
        value = node[key]
        if isinstance(value, str):
            target = self.objects.get(value)
            if target is None or self._owner.get(value) != account.currency.lower():
                raise _invalid(f"This property cannot be expanded ({path}).", "expand")
            node[key] = value = copy.deepcopy(target)
        elif not rest and not isinstance(value, dict | list) and value is not None:
            raise _invalid(f"This property cannot be expanded ({path}).", "expand")
        if rest:
            self._expand(account, value, rest, path)

    # ------------------------------------------------------------------ amounts

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
        apm = params.get("automatic_payment_methods")
        if apm is None or apm.get("enabled", True):
            apm = {"allow_redirects": (apm or {}).get("allow_redirects", "always"), "enabled": True}
        else:
            apm = None
        pi = shapes.payment_intent(
            pi_id=pi_id,
            amount=amount,
            currency=currency,
            created=self.now(),
            client_secret=f"{pi_id}_secret_{_new_id('', 25)}",
            metadata=_merge_metadata({}, params.get("metadata", {})),
            description=params.get("description"),
            receipt_email=params.get("receipt_email"),
            automatic_payment_methods=apm,
            capture_method=params.get("capture_method", "automatic_async"),
            confirmation_method=params.get("confirmation_method", "automatic"),
            setup_future_usage=params.get("setup_future_usage"),
            statement_descriptor=params.get("statement_descriptor"),
            statement_descriptor_suffix=params.get("statement_descriptor_suffix"),
            customer=params.get("customer"),
        )
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
        past = {"cancel": "canceled", "confirm": "confirmed", "update": "updated", "capture": "captured"}.get(
            action, f"{action}ed"
        )
        exc = _invalid(
            f"You cannot {action} this PaymentIntent because it has a status of {pi['status']}. "
            f"Only a PaymentIntent with one of the following statuses may be {past}: "
            f"{', '.join(allowed)}.",
            code="payment_intent_unexpected_state",
        )
        exc.error["payment_intent"] = shapes.present(pi)
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
        for key in (
            "description",
            "receipt_email",
            "statement_descriptor",
            "statement_descriptor_suffix",
            "setup_future_usage",
        ):
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
        bank = (params.get("payment_method_data") or {}).get("sepa_debit")
        if card_number is None and isinstance(bank, dict):
            self._apply_bank_debit(ctx.account, pi, str(bank.get("iban", "")), ctx)
            return copy.deepcopy(pi)
        if card_number is None:
            card_number = self._card_from_params(params, required=False)
        if card_number is None and pi.get("payment_method"):
            card_number = self._card_from_params({"payment_method": pi["payment_method"]}, required=True)
        if card_number is None:
            self._card_from_params({}, required=True)
        assert card_number is not None
        if not card_number_is_valid(card_number):
            raise EmulatorError(
                402,
                {
                    "type": "card_error",
                    "code": "invalid_number",
                    "message": INVALID_NUMBER_MESSAGE,
                    "param": "number",
                    "doc_url": "https://docs.stripe.com/error-codes/invalid-number",
                },
            )
        if "receipt_email" in params:
            pi["receipt_email"] = params["receipt_email"] or None
        self._apply_card(ctx.account, pi, card_number, ctx, raise_on_decline=True)
        return copy.deepcopy(pi)

    def _make_payment_method(
        self, account: EmulatorAccount, card_number: str, outcome: CardOutcome
    ) -> JSONDict:
        pm = shapes.payment_method(
            pm_id=_new_id("pm_"),
            created=self.now(),
            card_number=card_number,
            brand=outcome.brand,
            exp_year=time.gmtime(self.now()).tm_year + 3,
        )
        self._card_of_pm[pm["id"]] = card_number
        return self._store(account, pm)

    def _balance_transaction(
        self, account: EmulatorAccount, amount: int, currency: str, source: str, kind: str, category: str
    ) -> JSONDict:
        """A balance transaction (the emulator charges no fees)."""
        txn = shapes.balance_transaction(
            txn_id=_new_id("txn_"),
            amount=amount,
            fee=0,
            currency=currency,
            created=self.now(),
            source=source,
            kind=kind,
            reporting_category=category,
            description=None,
        )
        return self._store(account, txn)

    def _make_charge(
        self,
        account: EmulatorAccount,
        pi: JSONDict,
        failure: CardOutcome | None,
        *,
        three_d_secure: bool,
        uncaptured: bool = False,
        pending: bool = False,
    ) -> JSONDict:
        ch_id = _new_id("ch_")
        pm = self.objects[pi["payment_method"]]
        txn = None
        if failure is None and not uncaptured and not pending:
            txn = self._balance_transaction(account, pi["amount"], pi["currency"], ch_id, "charge", "charge")
        charge = shapes.charge(
            ch_id=ch_id,
            pi=pi,
            pm=pm,
            created=self.now(),
            balance_transaction=txn["id"] if txn else None,
            failure_code=failure.code if failure else None,
            failure_message=failure.message if failure else None,
            decline_code=failure.decline_code if failure else None,
            three_d_secure=three_d_secure,
            receipt_url=f"{self.base_url}/receipts/{ch_id}",
        )
        if uncaptured:
            charge.update(captured=False, amount_captured=0)
        if pending:
            charge.update(status="pending", paid=False)
        self._card_of_charge[ch_id] = self._card_of_pm.get(pm["id"], "")
        return self._store(account, charge)

    def _apply_bank_debit(self, account: EmulatorAccount, pi: JSONDict, iban: str, ctx: _Ctx | None) -> None:
        """Pay ``pi`` by SEPA Direct Debit: the charge is ``pending`` and the PaymentIntent ``processing`` until
        ``settle_bank_debit`` (https://docs.stripe.com/payments/sepa-debit/accept-a-payment: "the
        PaymentIntent's status ... is processing" until the debit succeeds or fails)."""
        iban = re.sub(r"\s", "", iban).upper()
        if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}", iban):
            raise _invalid(
                "The IBAN you provided appears to be invalid.",
                "payment_method_data[sepa_debit][iban]",
                "invalid_bank_account_iban",
            )
        pm = self._store(
            account,
            shapes.sepa_debit_payment_method(pm_id=_new_id("pm_"), created=self.now(), iban=iban),
        )
        self._iban_of_pm[pm["id"]] = iban
        pi.update(payment_method=pm["id"], last_payment_error=None, next_action=None, status="processing")
        charge = self._make_charge(account, pi, None, three_d_secure=False, uncaptured=False, pending=True)
        pi["latest_charge"] = charge["id"]
        self._emit(account, "charge.pending", charge, ctx)
        self._emit(account, "payment_intent.processing", pi, ctx)

    def _settle_bank_debit(self, account: EmulatorAccount, pi: JSONDict) -> None:
        if pi["status"] != "processing":
            raise self._unexpected_state(pi, "settle", ("processing",))
        charge = self.objects[pi["latest_charge"]]
        outcome = TEST_IBANS.get(self._iban_of_pm.get(pi["payment_method"] or "", ""), "succeeds")
        session = next(
            (
                o
                for o in self.objects.values()
                if o.get("object") == "checkout.session" and o.get("payment_intent") == pi["id"]
            ),
            None,
        )
        if outcome == "succeeds":
            txn = self._balance_transaction(
                account, pi["amount"], pi["currency"], charge["id"], "charge", "charge"
            )
            charge.update(status="succeeded", paid=True, balance_transaction=txn["id"])
            self._emit(account, "charge.succeeded", charge, None)
            self._emit(
                account, "charge.updated", charge, None, previous_attributes={"balance_transaction": None}
            )
            pi.update(status="succeeded", amount_received=pi["amount"])
            self._emit(account, "payment_intent.succeeded", pi, None)
            if session is not None:
                session["payment_status"] = "paid"
                self._emit(account, "checkout.session.async_payment_succeeded", session, None)
            return
        message = "The customer's account has insufficient funds to cover this payment."
        charge.update(status="failed", paid=False, failure_code="insufficient_funds", failure_message=message)
        self._emit(account, "charge.failed", charge, None)
        pi.update(
            status="requires_payment_method",
            last_payment_error={
                "advice_code": None,
                "charge": charge["id"],
                "code": "payment_method_provider_decline",
                "decline_code": "insufficient_funds",
                "doc_url": "https://docs.stripe.com/error-codes/payment-method-provider-decline",
                "message": message,
                "network_advice_code": None,
                "network_decline_code": None,
                "payment_method": copy.deepcopy(self.objects[pi["payment_method"]]),
                "type": "invalid_request_error",
            },
        )
        self._emit(account, "payment_intent.payment_failed", pi, None)
        if session is not None:
            self._emit(account, "checkout.session.async_payment_failed", session, None)

    def _capture_payment_intent(self, pi: JSONDict, raw: JSONDict, ctx: _Ctx) -> JSONDict:
        """``POST /v1/payment_intents/{id}/capture``: only a PaymentIntent in ``requires_capture``, for at most
        what it holds (https://docs.stripe.com/api/payment_intents/capture)."""
        params = self._validate(raw, PaymentIntentCaptureParams)
        if pi["status"] != "requires_capture":
            raise self._unexpected_state(pi, "capture", ("requires_capture",))
        amount = int(params.get("amount_to_capture") or pi["amount_capturable"])
        if not 0 < amount <= pi["amount_capturable"]:
            raise _invalid(
                f"The amount_to_capture ({amount}) must be positive and at most the amount capturable "
                f"({pi['amount_capturable']}).",
                "amount_to_capture",
                "amount_too_large",
            )
        charge = self.objects[pi["latest_charge"]]
        txn = self._balance_transaction(ctx.account, amount, pi["currency"], charge["id"], "charge", "charge")
        charge.update(captured=True, amount_captured=amount, balance_transaction=txn["id"])
        if amount < charge["amount"]:  # the rest of the hold is released: refunded, as Stripe reports it
            charge.update(amount_refunded=charge["amount"] - amount)
        pi.update(status="succeeded", amount_received=amount, amount_capturable=0)
        self._emit(ctx.account, "charge.captured", charge, ctx)
        self._emit(ctx.account, "payment_intent.succeeded", pi, ctx)
        return copy.deepcopy(pi)

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
            self._succeed(account, pi, ctx, three_d_secure=False)
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
            charge = self._make_charge(account, pi, outcome, three_d_secure=False)
            self._emit(account, "charge.failed", charge, ctx)
            pi["latest_charge"] = charge["id"]
            pi["status"] = "requires_payment_method"
            error: JSONDict = {
                "advice_code": charge["outcome"]["advice_code"],
                "charge": charge["id"],
                "code": outcome.code,
                "decline_code": outcome.decline_code,
                "doc_url": "https://docs.stripe.com/error-codes/card-declined",
                "message": outcome.message,
                "network_advice_code": None,
                "network_decline_code": None,
                "payment_method": copy.deepcopy(pm),
                "type": "card_error",
            }
            pi["last_payment_error"] = error
            self._emit(account, "payment_intent.payment_failed", pi, ctx)
            if raise_on_decline:
                api_error = dict(copy.deepcopy(error))
                api_error["payment_intent"] = shapes.present(pi)
                raise EmulatorError(402, api_error)

    def _succeed(
        self, account: EmulatorAccount, pi: JSONDict, ctx: _Ctx | None, *, three_d_secure: bool
    ) -> None:
        manual = pi.get("capture_method") == "manual"
        charge = self._make_charge(account, pi, None, three_d_secure=three_d_secure, uncaptured=manual)
        self._emit(account, "charge.succeeded", charge, ctx)
        if manual:
            # https://docs.stripe.com/payments/place-a-hold-on-a-payment-method: authorized, held until captured.
            pi.update(
                status="requires_capture",
                amount_capturable=pi["amount"],
                latest_charge=charge["id"],
                last_payment_error=None,
                next_action=None,
            )
            self._emit(account, "payment_intent.amount_capturable_updated", pi, ctx)
            return
        pi.update(
            status="succeeded",
            amount_received=pi["amount"],
            latest_charge=charge["id"],
            last_payment_error=None,
            next_action=None,
        )
        self._emit(account, "payment_intent.succeeded", pi, ctx)
        outcome = CARD_OUTCOMES.get(self._card_of_charge.get(charge["id"], ""))
        # A Checkout Session's payment is disputed after the session completes (see _complete_session).
        if outcome is not None and outcome.dispute and pi["id"] not in self._session_intents:
            self._open_dispute(account, charge, outcome.dispute)

    def _authenticate_pi(
        self, account: EmulatorAccount, pi: JSONDict, success: bool, ctx: _Ctx | None
    ) -> None:
        if pi["status"] != "requires_action":
            raise self._unexpected_state(pi, "authenticate", ("requires_action",))
        pi["next_action"] = None
        if success:
            self._succeed(account, pi, ctx, three_d_secure=True)
            return
        pi["status"] = "requires_payment_method"
        pi["last_payment_error"] = {
            "advice_code": None,
            "code": "payment_intent_authentication_failure",
            "decline_code": None,
            "doc_url": "https://docs.stripe.com/error-codes/payment-intent-authentication-failure",
            "message": _AUTH_FAILURE_MESSAGE,
            "network_advice_code": None,
            "network_decline_code": None,
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
        if pi["status"] == "requires_capture":  # the hold is released: Stripe reports the charge refunded
            held = self.objects[pi["latest_charge"]]
            held.update(amount_refunded=held["amount"], refunded=True)
        pi.update(
            status="canceled",
            canceled_at=self.now(),
            cancellation_reason=params.get("cancellation_reason", "requested_by_customer"),
            amount_capturable=0,
            next_action=None,
        )
        self._emit(ctx.account, "payment_intent.canceled", pi, ctx)
        return copy.deepcopy(pi)

    # ------------------------------------------------------------------ disputes

    def _open_dispute(self, account: EmulatorAccount, charge: JSONDict, reason: str) -> JSONDict:
        if charge["status"] != "succeeded":
            raise _invalid(f"Charge {charge['id']} did not succeed: it cannot be disputed.", "charge")
        du_id = _new_id("du_")
        # An inquiry (https://docs.stripe.com/disputes/how-disputes-work#inquiries) asks questions before any
        # chargeback: no funds are withdrawn and the charge can still be refunded.
        inquiry = reason == "inquiry"
        withdrawals = (
            []
            if inquiry
            else [
                self._balance_transaction(
                    account, -charge["amount"], charge["currency"], du_id, "adjustment", "dispute"
                )
            ]
        )
        dispute = shapes.dispute(
            du_id=du_id,
            charge=charge,
            created=self.now(),
            reason="general" if inquiry else reason,
            balance_transactions=copy.deepcopy(withdrawals),
        )
        if inquiry:
            dispute.update(status="warning_needs_response", is_charge_refundable=True)
        self._store(account, dispute)
        charge["disputed"] = True
        self._emit(account, "charge.dispute.created", dispute, None)
        if not inquiry:
            self._emit(account, "charge.dispute.funds_withdrawn", dispute, None)
        return dispute

    def _open_dispute_of(self, charge: JSONDict) -> JSONDict | None:
        """The charge's dispute that took its funds and is not settled yet, if any."""
        for obj in self.objects.values():
            if (
                obj.get("object") == "dispute"
                and obj["charge"] == charge["id"]
                and obj["status"] in ("needs_response", "under_review")
            ):
                return obj
        return None

    def _update_dispute(self, dispute: JSONDict, raw: JSONDict, ctx: _Ctx | None) -> JSONDict:
        params = self._validate(raw, DisputeUpdateParams)
        if dispute["status"] not in _DISPUTE_OPEN:
            raise _invalid(
                f"This dispute is already closed (status {dispute['status']}).", code="dispute_already_closed"
            )
        previous: JSONDict = {}
        account = self.accounts[self._owner[dispute["id"]]]
        if "evidence" in params:
            previous["evidence"] = copy.deepcopy(dispute["evidence"])
            for key, value in params["evidence"].items():
                if key in dispute["evidence"] and key != "enhanced_evidence":
                    dispute["evidence"][key] = value or None
            dispute["evidence_details"]["has_evidence"] = True
        if "metadata" in params:
            previous["metadata"] = copy.deepcopy(dispute["metadata"])
            dispute["metadata"] = _merge_metadata(dispute["metadata"], params["metadata"])
        if params.get("submit", True) and "evidence" in params:
            previous["status"] = dispute["status"]
            dispute["status"] = "under_review"
            dispute["evidence_details"]["submission_count"] += 1
            dispute["evidence_details"]["submission_method"] = "manual"
        self._emit(account, "charge.dispute.updated", dispute, ctx, previous_attributes=previous)
        return copy.deepcopy(dispute)

    def _close_dispute(self, dispute: JSONDict, *, won: bool, ctx: _Ctx | None) -> JSONDict:
        if dispute["status"] not in _DISPUTE_OPEN:
            raise _invalid(
                f"This dispute is already closed (status {dispute['status']}).", code="dispute_already_closed"
            )
        account = self.accounts[self._owner[dispute["id"]]]
        previous = {"status": dispute["status"]}
        dispute["status"] = "won" if won else "lost"
        if won:
            reinstated = self._balance_transaction(
                account,
                dispute["amount"],
                dispute["currency"],
                dispute["id"],
                "adjustment",
                "dispute_reversal",
            )
            dispute["balance_transactions"].append(copy.deepcopy(reinstated))
        self._emit(account, "charge.dispute.closed", dispute, ctx, previous_attributes=previous)
        if won:
            self._emit(account, "charge.dispute.funds_reinstated", dispute, ctx)
        return copy.deepcopy(dispute)

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
        coupon_id = params.get("id") or _new_id("", 8)
        if coupon_id in self.objects:
            raise _invalid("Coupon already exists.", "id", "resource_already_exists")
        coupon = shapes.coupon(
            coupon_id=coupon_id,
            created=self.now(),
            percent_off=float(percent) if percent is not None else None,
            amount_off=amount_off,
            currency=params["currency"].lower() if amount_off is not None else None,
            duration=params.get("duration", "once"),
            duration_in_months=params.get("duration_in_months"),
            max_redemptions=params.get("max_redemptions"),
            metadata=_merge_metadata({}, params.get("metadata", {})),
            name=params.get("name"),
            redeem_by=params.get("redeem_by"),
        )
        return copy.deepcopy(self._store(ctx.account, coupon))

    def _create_tax_rate(self, raw: JSONDict, ctx: _Ctx) -> JSONDict:
        params = self._validate(raw, TaxRateCreateParams)
        percentage = Decimal(params["percentage"])
        if not (Decimal(0) <= percentage <= Decimal(100)):
            raise _invalid("percentage must be between 0 and 100.", "percentage")
        rate = shapes.tax_rate(
            txr_id=_new_id("txr_"),
            created=self.now(),
            active=params.get("active", True),
            country=params.get("country"),
            description=params.get("description"),
            display_name=params["display_name"],
            percentage=float(percentage),
            inclusive=params["inclusive"],
            jurisdiction=params.get("jurisdiction"),
            metadata=_merge_metadata({}, params.get("metadata", {})),
            state=params.get("state"),
            tax_type=params.get("tax_type"),
        )
        return copy.deepcopy(self._store(ctx.account, rate))

    # ------------------------------------------------------------------ checkout sessions

    def _create_checkout_session(self, raw: JSONDict, ctx: _Ctx) -> JSONDict:
        params = self._validate(raw, SessionCreateParams)
        acct = ctx.account
        mode = params.get("mode", "payment")
        if mode != "payment":
            raise _invalid("The emulator only supports Checkout Sessions with mode=payment.", "mode")
        if params.get("ui_mode", "hosted_page") != "hosted_page":
            raise _invalid("The emulator only supports ui_mode=hosted_page (the hosted page).", "ui_mode")
        if not params.get("success_url"):
            raise _invalid("Missing required param: success_url.", "success_url", "parameter_missing")
        items = params.get("line_items") or []
        if not items:
            raise _invalid("Missing required param: line_items.", "line_items", "parameter_missing")
        currency: str | None = None
        lines: list[amounts.LineIn] = []
        products: list[tuple[str, str | None]] = []
        rates_of_line: list[list[JSONDict]] = []
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
            products.append((product["name"], product.get("description")))
            rates_of_line.append(rates)
            lines.append(
                amounts.LineIn(
                    unit_amount=unit_amount,
                    quantity=quantity,
                    rates=tuple(
                        amounts.RateIn(r["id"], Decimal(str(r["percentage"])), r["inclusive"]) for r in rates
                    ),
                )
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
        priced = amounts.price_session(
            currency,
            lines,
            percent_off=Decimal(str(coupon["percent_off"])) if coupon and coupon["percent_off"] else None,
            amount_off=coupon["amount_off"] if coupon else None,
        )
        minimum = money.minimum_amount(currency)
        if 0 < priced.amount_total < minimum:
            raise _invalid(
                "The Checkout Session's total amount due must add up to at least "
                f"{money.format_amount(minimum, currency)} {currency}",
                "line_items",
                "amount_too_small",
            )
        if priced.amount_total > money.MAXIMUM_AMOUNT:
            raise _invalid(
                "The Checkout Session's total amount due is too large.", "line_items", "amount_too_large"
            )
        cs_id = _new_id("cs_test_", 58)
        discount = (
            shapes.discount(di_id=_new_id("di_"), coupon_id=coupon["id"], checkout_session=cs_id, start=now)
            if coupon is not None
            else None
        )
        rate_objects = {r["id"]: r for rates in rates_of_line for r in rates}
        line_items: list[JSONDict] = []
        includes: dict[str, dict[str, list[JSONDict]]] = {}
        for line, priced_line, rates, (name, _description) in zip(
            lines, priced.lines, rates_of_line, products, strict=True
        ):
            li_id = _new_id("li_")
            line_items.append(
                {
                    "id": li_id,
                    "object": "item",
                    "adjustable_quantity": None,
                    "amount_discount": priced_line.amount_discount,
                    "amount_subtotal": priced_line.amount_subtotal,
                    "amount_tax": priced_line.amount_tax,
                    "amount_total": priced_line.amount_total,
                    "currency": currency,
                    "description": name,
                    "metadata": {},
                    "price": shapes.price(
                        price_id=_new_id("price_"),
                        product_id=_new_id("prod_"),
                        currency=currency,
                        unit_amount=line.unit_amount,
                        created=now,
                    ),
                    "quantity": line.quantity,
                }
            )
            includes[li_id] = {
                "discounts": (
                    [{"amount": priced_line.amount_discount, "discount": copy.deepcopy(discount)}]
                    if discount is not None and priced_line.amount_discount
                    else []
                ),
                "taxes": [
                    {
                        "amount": tax.amount,
                        "rate": copy.deepcopy(rate),
                        "taxability_reason": None,
                        "taxable_amount": tax.taxable_amount,
                    }
                    for tax, rate in zip(priced_line.taxes, rates, strict=True)
                ],
            }
        breakdown = {
            "discounts": (
                [{"amount": priced.amount_discount, "discount": copy.deepcopy(discount)}]
                if discount is not None
                else []
            ),
            "taxes": [
                {
                    "amount": amount,
                    "rate": copy.deepcopy(rate_objects[rate_id]),
                    "taxability_reason": None,
                    "taxable_amount": taxable,
                }
                for rate_id, (amount, taxable) in priced.tax_by_rate().items()
            ],
        }
        session = shapes.checkout_session(
            cs_id=cs_id,
            created=now,
            expires_at=expires_at,
            currency=currency,
            amount_subtotal=priced.amount_subtotal,
            amount_total=priced.amount_total,
            total_details={
                "amount_discount": priced.amount_discount,
                "amount_shipping": 0,
                "amount_tax": priced.amount_tax,
            },
            discounts=[{"coupon": coupon["id"], "promotion_code": None}] if coupon else [],
            params={**params, "metadata": _merge_metadata({}, params.get("metadata", {}))},
            url=f"{self.base_url}/checkout/{cs_id}",
        )
        self._store(acct, session)
        self._lines[cs_id] = line_items
        self._line_includes[cs_id] = includes
        self._line_products[cs_id] = products
        self._breakdowns[cs_id] = breakdown
        if coupon is not None:
            self._session_coupon[cs_id] = coupon
        self._session_params[cs_id] = params
        return copy.deepcopy(session)

    def _line_items_list(self, cs_id: str) -> JSONDict:
        return shapes.list_object(
            copy.deepcopy(self._lines[cs_id]), f"/v1/checkout/sessions/{cs_id}/line_items"
        )

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

    def _session_intent(self, session: JSONDict) -> JSONDict:
        """The session's PaymentIntent, created on the first payment attempt (as Checkout does)."""
        account = self.accounts[self._owner[session["id"]]]
        pi_id = session.get("payment_intent")
        if pi_id is None:
            params = self._session_params[session["id"]]
            pid = params.get("payment_intent_data") or {}
            pi = self._create_payment_intent(
                {
                    "amount": session["amount_total"],
                    "currency": session["currency"],
                    "metadata": pid.get("metadata") or {},
                    **({"description": pid["description"]} if pid.get("description") else {}),
                    **({"receipt_email": email} if (email := self._session_email(session)) else {}),
                },
                _Ctx(account, False, None, None),
            )
            session["payment_intent"] = pi["id"]
            pi_id = pi["id"]
            self._session_intents.add(pi_id)
        return self.objects[pi_id]

    def _session_email(self, session: JSONDict) -> str | None:
        return session.get("customer_email") or self._collected_emails.get(session["id"])

    def _collect_email(self, session: JSONDict, email: str | None) -> None:
        """The address the shopper typed on the hosted page (ignored when ``customer_email`` was given)."""
        if email and not session.get("customer_email") and session["status"] == "open":
            self._collected_emails[session["id"]] = email

    def _complete_session(self, session: JSONDict, payment_status: str = "paid") -> None:
        account = self.accounts[self._owner[session["id"]]]
        email = self._session_email(session)
        session.update(
            status="complete",
            payment_status=payment_status,
            url=None,
            customer_details={
                "address": shapes.address(),
                "business_name": None,
                "email": email,
                "individual_name": None,
                "name": None,
                "phone": None,
                "tax_exempt": "none",
                "tax_ids": [],
            },
        )
        self._emit(account, "checkout.session.completed", session, None)
        pi = self.objects.get(session.get("payment_intent") or "")
        charge = self.objects.get((pi or {}).get("latest_charge") or "")
        outcome = CARD_OUTCOMES.get(self._card_of_charge.get((charge or {}).get("id", ""), ""))
        if charge is not None and outcome is not None and outcome.dispute and not charge["disputed"]:
            self._open_dispute(account, charge, outcome.dispute)

    def _pay_session(self, session: JSONDict, card_number: str, authenticate: bool | None) -> JSONDict:
        """Pay an open session with a test card, as its hosted page does.

        Answers ``{"status": "complete" | "declined" | "invalid_number" | "requires_action", "message": ...}``.
        A card that asks for authentication waits for ``authenticate`` (``True``: completed, ``False``:
        failed, ``None``: the hosted page shows the step and calls :meth:`_authenticate_session` later).
        """
        self._maybe_expire(session)
        if session["status"] != "open":
            raise _invalid(
                f"This Checkout Session is {session['status']}.", code="checkout_session_unexpected_state"
            )
        account = self.accounts[self._owner[session["id"]]]
        card_number = re.sub(r"[\s-]", "", card_number)
        if session["amount_total"] == 0:
            session.update(status="complete", payment_status="no_payment_required", url=None)
            self._emit(account, "checkout.session.completed", session, None)
            return {"status": "complete", "message": None}
        if not card_number_is_valid(card_number):
            return {"status": "invalid_number", "message": INVALID_NUMBER_MESSAGE}
        pi = self._session_intent(session)
        if pi["status"] == "requires_action":
            # A new card replaces the one still waiting for its authentication.
            pi.update(status="requires_payment_method", next_action=None)
        self._apply_card(account, pi, card_number, None, raise_on_decline=False)
        if pi["status"] == "requires_action":
            if authenticate is None:
                return {"status": "requires_action", "message": None}
            return self._authenticate_session(session, authenticate)
        if pi["status"] != "succeeded":
            message = (pi.get("last_payment_error") or {}).get("message") or "Your card was declined."
            return {"status": "declined", "message": str(message)}
        self._complete_session(session)
        return {"status": "complete", "message": None}

    def _authenticate_session(self, session: JSONDict, success: bool) -> JSONDict:
        pi = self._session_intent(session)
        account = self.accounts[self._owner[session["id"]]]
        self._authenticate_pi(account, pi, success, None)
        if pi["status"] != "succeeded":
            return {"status": "declined", "message": _AUTH_FAILURE_MESSAGE}
        self._complete_session(session)
        return {"status": "complete", "message": None}

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
        if self._open_dispute_of(charge) is not None or (
            charge["disputed"]
            and any(
                o.get("object") == "dispute" and o["charge"] == charge["id"] and o["status"] == "lost"
                for o in self.objects.values()
            )
        ):
            # https://docs.stripe.com/error-codes/charge-disputed
            raise _invalid(
                f"Charge {charge['id']} has been charged back; cannot issue a refund.", code="charge_disputed"
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
        outcome = CARD_OUTCOMES.get(self._card_of_charge.get(charge["id"], ""))
        status = "pending" if outcome is not None and outcome.refund == "pending" else "succeeded"
        re_id = _new_id("re_")
        txn = self._balance_transaction(acct, -amount, charge["currency"], re_id, "refund", "refund")
        refund = shapes.refund(
            re_id=re_id,
            charge=charge,
            amount=amount,
            created=self.now(),
            metadata=_merge_metadata({}, params.get("metadata", {})),
            reason=params.get("reason"),
            status=status,
            balance_transaction=txn["id"],
        )
        self._store(acct, refund)
        self._refunds_of_charge.setdefault(charge["id"], []).append(re_id)
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        self._emit(acct, "refund.created", refund, ctx)
        self._emit(acct, "charge.refunded", charge, ctx)
        return copy.deepcopy(refund)

    def _list_refunds(self, raw: JSONDict, ctx: _Ctx) -> JSONDict:
        """``GET /v1/refunds``: the account's refunds, newest first, of one charge or PaymentIntent if asked."""
        params = self._validate(raw, RefundListParams)
        account = ctx.account.currency.lower()
        refunds = [
            o
            for o in self.objects.values()
            if o.get("object") == "refund" and self._owner.get(o["id"]) == account
        ]
        if "charge" in params:
            refunds = [r for r in refunds if r["charge"] == params["charge"]]
        if "payment_intent" in params:
            refunds = [r for r in refunds if r["payment_intent"] == params["payment_intent"]]
        refunds = _created_in(refunds, params.get("created"))
        made = {r["id"]: i for i, r in enumerate(refunds)}  # insertion order: the order they were made in
        refunds.sort(key=lambda r: (r["created"], made[r["id"]]), reverse=True)
        page, has_more = _page_of(refunds, params, "refund")
        return shapes.list_object(copy.deepcopy(page), "/v1/refunds", has_more)

    def _list_of_kind(self, kind: str, url: str, typed: type, raw: JSONDict, ctx: _Ctx) -> JSONDict:
        """``GET /v1/payment_intents``, ``GET /v1/checkout/sessions``: the account's objects of that kind, newest
        first, filtered by ``created`` (https://docs.stripe.com/api/payment_intents/list,
        https://docs.stripe.com/api/checkout/sessions/list); a session's ``status`` and ``payment_intent``
        filters too."""
        params = self._validate(raw, typed)
        unsupported = set(params) - {
            "created",
            "limit",
            "starting_after",
            "ending_before",
            "expand",
            "status",
        }
        unsupported -= {"payment_intent"} if kind == "checkout.session" else set()
        if unsupported:
            raise _invalid(f"The emulator does not filter lists by {sorted(unsupported)}.")
        account = ctx.account.currency.lower()
        found = [
            o
            for o in self.objects.values()
            if o.get("object") == kind and self._owner.get(o["id"]) == account
        ]
        if kind == "checkout.session":
            for session in found:
                self._maybe_expire(session)
            if "status" in params:
                found = [o for o in found if o["status"] == params["status"]]
            if "payment_intent" in params:
                found = [o for o in found if o.get("payment_intent") == params["payment_intent"]]
        found = _created_in(found, params.get("created"))
        made = {o["id"]: i for i, o in enumerate(found)}
        found.sort(key=lambda o: (o["created"], made[o["id"]]), reverse=True)
        page, has_more = _page_of(found, params, kind)
        return shapes.list_object(copy.deepcopy(page), url, has_more)

    def _set_refund_status(self, refund: JSONDict, status: str, failure_reason: str | None = None) -> None:
        account = self.accounts[self._owner[refund["id"]]]
        previous = {"status": refund["status"]}
        refund["status"] = status
        refund["pending_reason"] = None
        if status == "failed":
            charge = self.objects[refund["charge"]]
            charge["amount_refunded"] -= refund["amount"]
            charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
            txn = self._balance_transaction(
                account,
                refund["amount"],
                refund["currency"],
                refund["id"],
                "refund_failure",
                "refund_failure",
            )
            refund["failure_balance_transaction"] = txn["id"]
            refund["failure_reason"] = failure_reason
            previous["failure_reason"] = None
        self._emit(account, "refund.updated", refund, None, previous_attributes=previous)
        self._emit(account, "charge.refund.updated", refund, None, previous_attributes=previous)
        if status == "failed":
            self._emit(account, "refund.failed", refund, None)

    # ------------------------------------------------------------------ events

    def _list_events(self, raw: JSONDict, ctx: _Ctx) -> JSONDict:
        params = self._validate(raw, EventListParams)
        events = list(reversed(self.events[ctx.account.currency.lower()]))
        if "type" in params:
            pattern = re.escape(params["type"]).replace(r"\*", ".*")
            events = [e for e in events if re.fullmatch(pattern, e["type"])]
        if "types" in params:
            events = [e for e in events if e["type"] in params["types"]]
        if "delivery_success" in params:
            # Events whose webhook delivery succeeded (True) or did not succeed (False); events never sent
            # to an endpoint are neither.
            wanted = params["delivery_success"]
            events = [e for e in events if e["id"] in self.delivered and self.delivered[e["id"]] is wanted]
        page, has_more = _page_of(_created_in(events, params.get("created")), params, "event")
        return shapes.list_object(copy.deepcopy(page), "/v1/events", has_more)

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

    def pay_by_bank_debit(self, pi_id: str, iban: str = "DE89370400440532013000") -> JSONDict:
        """Confirm a PaymentIntent with a SEPA Direct Debit, as the Payment Element would: it is ``processing``."""

        def run() -> JSONDict:
            pi = self.objects[pi_id]
            if pi["status"] not in _PI_MUTABLE:
                raise self._unexpected_state(pi, "confirm", _PI_MUTABLE)
            self._apply_bank_debit(self.owner_of(pi_id), pi, iban, None)
            return copy.deepcopy(pi)

        result: JSONDict = self._locked(run)
        return result

    def settle_bank_debit(self, payment_intent_or_session_id: str) -> JSONDict:
        """The bank answers a processing debit: it succeeds or fails by its test IBAN (``TEST_IBANS``), with
        ``checkout.session.async_payment_succeeded`` / ``_failed`` when a Checkout Session took it."""

        def run() -> JSONDict:
            obj = self.objects[payment_intent_or_session_id]
            pi = self.objects[obj["payment_intent"]] if obj["object"] == "checkout.session" else obj
            self._settle_bank_debit(self.owner_of(pi["id"]), pi)
            return copy.deepcopy(pi)

        result: JSONDict = self._locked(run)
        return result

    def pay_checkout_session_by_bank_debit(
        self, cs_id: str, iban: str = "DE89370400440532013000"
    ) -> JSONDict:
        """Pay a hosted Checkout Session by SEPA Direct Debit: the session completes with ``payment_status``
        ``unpaid`` (https://docs.stripe.com/payments/checkout/fulfill-orders: delayed notification payment
        methods), and the money is known only after ``settle_bank_debit``."""

        def run() -> JSONDict:
            session = self.objects[cs_id]
            self._maybe_expire(session)
            if session["status"] != "open":
                raise _invalid(
                    f"This Checkout Session is {session['status']}.", code="checkout_session_unexpected_state"
                )
            pi = self._session_intent(session)
            self._apply_bank_debit(self.owner_of(cs_id), pi, iban, None)
            self._complete_session(session, payment_status="unpaid")
            return copy.deepcopy(session)

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

    def pay_checkout_session(
        self,
        cs_id: str,
        card: str = "4242424242424242",
        *,
        authenticate: bool = True,
        email: str | None = None,
    ) -> JSONDict:
        """Pay a hosted Checkout Session; raises :class:`EmulatorError` (402) if the card is declined.

        A card asking for authentication completes it (``authenticate=True``) or fails it. ``email`` is what
        the shopper types in Checkout's email field (Checkout asks for it unless ``customer_email`` was given).
        """

        def run() -> JSONDict:
            session = self.objects[cs_id]
            self._collect_email(session, email)
            outcome = self._pay_session(session, card, authenticate)
            if outcome["status"] != "complete":
                code = "invalid_number" if outcome["status"] == "invalid_number" else "card_declined"
                raise EmulatorError(402, {"type": "card_error", "code": code, "message": outcome["message"]})
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

    def checkout_page_data(self, cs_id: str) -> JSONDict | None:
        """What the hosted page shows: the session, its lines, breakdown, coupon (``None`` if unknown)."""

        def run() -> JSONDict | None:
            session = self.objects.get(cs_id)
            if session is None or session.get("object") != "checkout.session":
                return None
            self._maybe_expire(session)
            pi = self.objects.get(session.get("payment_intent") or "")
            return copy.deepcopy(
                {
                    "session": session,
                    "lines": self._lines[cs_id],
                    "products": self._line_products[cs_id],
                    "breakdown": self._breakdowns[cs_id],
                    "coupon": self._session_coupon.get(cs_id),
                    "awaiting_authentication": bool(pi and pi["status"] == "requires_action"),
                }
            )

        result: JSONDict | None = self._locked(run)
        return result

    def pay_checkout_page(self, cs_id: str, card: str, *, email: str | None = None) -> JSONDict:
        """Hosted-page payment: ``{"status", "message", "session"}``; 3DS cards wait for authentication."""

        def run() -> JSONDict:
            session = self.objects[cs_id]
            self._collect_email(session, email)
            outcome = self._pay_session(session, card, None)
            return {**outcome, "session": copy.deepcopy(session)}

        result: JSONDict = self._locked(run)
        return result

    def authenticate_checkout_page(self, cs_id: str, success: bool) -> JSONDict:
        """Hosted-page authentication step: complete (``True``) or fail it."""

        def run() -> JSONDict:
            session = self.objects[cs_id]
            self._maybe_expire(session)
            if session["status"] != "open":
                raise _invalid(f"This Checkout Session is {session['status']}.")
            outcome = self._authenticate_session(session, success)
            return {**outcome, "session": copy.deepcopy(session)}

        result: JSONDict = self._locked(run)
        return result

    def _charge_of(self, payment_intent_or_charge_id: str) -> JSONDict:
        obj = self.objects[payment_intent_or_charge_id]
        if obj["object"] == "payment_intent":
            if not obj.get("latest_charge") or obj["status"] != "succeeded":
                raise ValueError(f"{obj['id']} has no successful charge")
            obj = self.objects[obj["latest_charge"]]
        if obj["object"] != "charge":
            raise ValueError(f"{payment_intent_or_charge_id} is neither a PaymentIntent nor a charge")
        return obj

    def open_dispute(self, payment_intent_or_charge_id: str, reason: str = "fraudulent") -> JSONDict:
        """The cardholder disputes the payment: ``charge.dispute.created`` and ``.funds_withdrawn``."""

        def run() -> JSONDict:
            charge = self._charge_of(payment_intent_or_charge_id)
            account = self.accounts[self._owner[charge["id"]]]
            return copy.deepcopy(self._open_dispute(account, charge, reason))

        result: JSONDict = self._locked(run)
        return result

    def close_dispute(self, dispute_id: str, won: bool) -> JSONDict:
        """The card network decides: ``charge.dispute.closed`` (and ``.funds_reinstated`` when won)."""

        def run() -> JSONDict:
            return self._close_dispute(self.objects[dispute_id], won=won, ctx=None)

        result: JSONDict = self._locked(run)
        return result

    def fail_refund(self, refund_id: str, reason: str = "expired_or_canceled_card") -> JSONDict:
        """The refund fails later, as Stripe's 4000 0000 0000 5126 does: ``refund.updated``, ``refund.failed``."""

        def run() -> JSONDict:
            refund = self.objects[refund_id]
            if refund["status"] not in ("pending", "succeeded"):
                raise ValueError(f"refund {refund_id} is {refund['status']}; it cannot fail now")
            self._set_refund_status(refund, "failed", reason)
            return copy.deepcopy(refund)

        result: JSONDict = self._locked(run)
        return result

    def settle_refund(self, refund_id: str) -> JSONDict:
        """A pending refund succeeds (``refund.updated``)."""

        def run() -> JSONDict:
            refund = self.objects[refund_id]
            if refund["status"] != "pending":
                raise ValueError(f"refund {refund_id} is {refund['status']}, not pending")
            self._set_refund_status(refund, "succeeded")
            return copy.deepcopy(refund)

        result: JSONDict = self._locked(run)
        return result
