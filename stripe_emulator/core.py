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
import json
import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from stripe.params import DisputeCloseParams, PaymentIntentListParams
from stripe.params.checkout import SessionExpireParams, SessionListParams

from stripe_emulator import shapes
from stripe_emulator.base import API_VERSION, Ctx, EmulatorAccount, EmulatorError, Headers, JSONDict, invalid
from stripe_emulator.cards import CARD_OUTCOMES, redirect_status
from stripe_emulator.coupons import Coupons
from stripe_emulator.params import decode_form
from stripe_emulator.reading import Reading
from stripe_emulator.refunds import Refunds
from stripe_emulator.shapes import new_id
from stripe_emulator.state import IdempotentEntry
from stripe_emulator.webhooks import DEFAULT_ENABLED_EVENTS, sign_payload

__all__ = [
    "API_VERSION",
    "CARD_OUTCOMES",
    "DEFAULT_ENABLED_EVENTS",
    "Emulator",
    "EmulatorAccount",
    "EmulatorError",
    "Headers",
    "redirect_status",
    "sign_payload",
]

#: An object id in an API path (``pi_3Nx...``, ``cs_test_...``), replaced by ``{id}`` in :attr:`Emulator.calls`.
_ID_IN_PATH = re.compile(r"(?<=/)[a-z]+_(?=[a-z_]*[A-Z0-9])[A-Za-z0-9_]+(?=/|$)")


def _mask(key: str) -> str:
    return f"{key[:8]}{'*' * max(len(key) - 12, 4)}{key[-4:]}" if len(key) > 12 else "****"


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


class Emulator(Reading, Refunds, Coupons):
    """In-memory Stripe API for the given accounts (one per currency). Thread-safe (one lock).

    Each resource lives in its own module (:mod:`~stripe_emulator.intents`, :mod:`~stripe_emulator.checkout`,
    :mod:`~stripe_emulator.refunds`, :mod:`~stripe_emulator.disputes`, :mod:`~stripe_emulator.events`,
    :mod:`~stripe_emulator.coupons`) on the shared :class:`~stripe_emulator.store.Store`; this class answers
    HTTP requests and routes them.
    """

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
        request_id = new_id("req_", 14)
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
                invalid("Invalid request body: expected application/x-www-form-urlencoded.")
            )
        try:
            account, publishable = self._authenticate(hdrs)
        except EmulatorError as exc:
            return error_response(exc)
        ctx = Ctx(account, publishable, request_id, idem_key if method == "POST" else None)
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
                self._idempotency[(account.currency.lower(), ctx.idempotency_key)] = IdempotentEntry(
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
            raise invalid(
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
        raise invalid(f"Invalid API Key provided: {_mask(key)}", code="api_key_invalid", status=401)

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

    def _route(self, method: str, path: str, params: JSONDict, ctx: Ctx) -> tuple[int, JSONDict]:
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

    def _route_secret(self, method: str, path: str, params: JSONDict, ctx: Ctx) -> JSONDict:
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
        raise invalid(
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/.",
            status=404,
        )

    def _route_publishable(self, method: str, path: str, params: JSONDict, ctx: Ctx) -> JSONDict:
        """The few calls Stripe.js may make with a publishable key plus the PaymentIntent's client_secret."""
        m = self._PI_RE.match(path)
        if m is None or (method == "GET" and m.group(2)) or (method == "POST" and m.group(2) is None):
            raise invalid(
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
            raise invalid("Missing required param: client_secret.", "client_secret", "parameter_missing")
        if secret != pi["client_secret"]:
            raise invalid(
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
        raise invalid("This API call cannot be made with a publishable API key.", status=401)

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
