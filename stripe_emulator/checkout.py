"""The Checkout Session resource: created with its lines, taxes and coupon priced by Stripe's rules
(:mod:`stripe_emulator.amounts`), paid on the hosted page, completed or expired."""

from __future__ import annotations

import copy
import re
from decimal import Decimal

from stripe.params.checkout import SessionCreateParams

from stripe_emulator import amounts, checkout_lines, shapes
from stripe_emulator.base import (
    Ctx,
    EmulatorAccount,
    EmulatorError,
    JSONDict,
    invalid,
    merge_metadata,
    missing,
)
from stripe_emulator.cards import (
    AUTH_FAILURE_MESSAGE,
    CARD_OUTCOMES,
    INVALID_NUMBER_MESSAGE,
    card_number_is_valid,
)
from stripe_emulator.charges import PI_CANCELABLE
from stripe_emulator.intents import PaymentIntents
from stripe_emulator.shapes import new_id


class CheckoutSessions(PaymentIntents):
    """The Checkout Session API and its hosted page."""

    def _create_checkout_session(self, raw: JSONDict, ctx: Ctx) -> JSONDict:
        """``POST /v1/checkout/sessions``: its lines read and priced, its coupon applied, nothing paid yet."""
        params = self._validate(raw, SessionCreateParams)
        checkout_lines.check_session_params(params)
        asked = self._read_line_items(ctx.account, params["line_items"])
        assert asked.currency is not None
        currency = asked.currency
        coupon = self._discount_coupon(ctx.account, params, currency)
        now = self.now()
        expires_at = checkout_lines.expires_at(params, now)
        priced = checkout_lines.price(asked, currency, coupon)
        cs_id = new_id("cs_test_", 58)
        discount = (
            shapes.discount(di_id=new_id("di_"), coupon_id=coupon["id"], checkout_session=cs_id, start=now)
            if coupon is not None
            else None
        )
        items, includes = checkout_lines.line_items(asked, currency, priced, discount, now)
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
            params={**params, "metadata": merge_metadata({}, params.get("metadata", {}))},
            url=f"{self.base_url}/checkout/{cs_id}",
        )
        self._store(ctx.account, session)
        self._lines[cs_id] = items
        self._line_includes[cs_id] = includes
        self._line_products[cs_id] = asked.products
        self._breakdowns[cs_id] = checkout_lines.breakdown(asked, priced, discount)
        if coupon is not None:
            self._session_coupon[cs_id] = coupon
        self._session_params[cs_id] = params
        return copy.deepcopy(session)

    def _read_line_items(self, account: EmulatorAccount, items: list[JSONDict]) -> checkout_lines.LinesIn:
        """The ``line_items`` of a create request, checked in order: each one with ``price_data`` in the
        session's one currency, a quantity, and tax rates of this account."""
        asked = checkout_lines.LinesIn()
        for i, item in enumerate(items):
            param = f"line_items[{i}]"
            if "price" in item:
                raise missing("price", str(item["price"]), f"{param}[price]")
            pdata = item.get("price_data")
            if not pdata:
                raise invalid(
                    f"Missing required param: {param}[price_data].",
                    f"{param}[price_data]",
                    "parameter_missing",
                )
            line_currency = self._check_currency(pdata["currency"], f"{param}[price_data][currency]")
            if asked.currency is None:
                asked.currency = line_currency
            elif line_currency != asked.currency:
                raise invalid("All line items must use the same currency.", f"{param}[price_data][currency]")
            unit_amount = checkout_lines.check_price_data(param, pdata)
            quantity = checkout_lines.check_quantity(param, item)
            rates = [
                copy.deepcopy(self._find(account, "tax_rate", rid, f"{param}[tax_rates][{j}]"))
                for j, rid in enumerate(item.get("tax_rates") or [])
            ]
            product = pdata["product_data"]
            asked.products.append((product["name"], product.get("description")))
            asked.rates.append(rates)
            asked.lines.append(
                amounts.LineIn(
                    unit_amount=unit_amount,
                    quantity=quantity,
                    rates=tuple(
                        amounts.RateIn(r["id"], Decimal(str(r["percentage"])), r["inclusive"]) for r in rates
                    ),
                )
            )
        return asked

    def _discount_coupon(self, account: EmulatorAccount, params: JSONDict, currency: str) -> JSONDict | None:
        """The coupon of ``discounts[0]`` (at most one, in the session's currency when it takes an amount off)."""
        coupon: JSONDict | None = None
        discounts = params.get("discounts") or []
        if len(discounts) > 1:
            raise invalid("You may only specify one discount.", "discounts")
        if discounts:
            entry = discounts[0]
            if "coupon" not in entry:
                raise invalid("The emulator only supports discounts[0][coupon].", "discounts[0]")
            coupon = copy.deepcopy(self._find(account, "coupon", entry["coupon"], "discounts[0][coupon]"))
            if coupon["amount_off"] is not None and coupon["currency"] != currency:
                raise invalid(
                    f"The coupon currency ({coupon['currency']}) must match the currency "
                    f"of the session ({currency}).",
                    "discounts[0][coupon]",
                )
        if params.get("allow_promotion_codes") and coupon:
            raise invalid(
                "You may only specify one of these parameters: allow_promotion_codes, discounts.", "discounts"
            )
        return coupon

    def _line_items_list(self, cs_id: str) -> JSONDict:
        return shapes.list_object(
            copy.deepcopy(self._lines[cs_id]), f"/v1/checkout/sessions/{cs_id}/line_items"
        )

    def _maybe_expire(self, session: JSONDict) -> None:
        if session["status"] == "open" and session["expires_at"] <= self.now():
            self._expire(session, None)

    def _expire(self, session: JSONDict, ctx: Ctx | None) -> None:
        session["status"] = "expired"
        session["url"] = None
        pi_id = session.get("payment_intent")
        account = self.accounts[self._owner[session["id"]]]
        if pi_id and self.objects[pi_id]["status"] in PI_CANCELABLE:
            pi = self.objects[pi_id]
            pi.update(status="canceled", canceled_at=self.now(), cancellation_reason="abandoned")
            self._emit(account, "payment_intent.canceled", pi, ctx)
        self._emit(account, "checkout.session.expired", session, ctx)

    def _expire_session(self, session: JSONDict, ctx: Ctx) -> JSONDict:
        self._maybe_expire(session)
        if session["status"] != "open":
            raise invalid(
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
                Ctx(account, False, None, None),
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
            raise invalid(
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
            return {"status": "declined", "message": AUTH_FAILURE_MESSAGE}
        self._complete_session(session)
        return {"status": "complete", "message": None}

    # ------------------------------------------------------------------ test-driving helpers

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
                raise invalid(
                    f"This Checkout Session is {session['status']}.", code="checkout_session_unexpected_state"
                )
            pi = self._session_intent(session)
            self._apply_bank_debit(self.owner_of(cs_id), pi, iban, None)
            self._complete_session(session, payment_status="unpaid")
            return copy.deepcopy(session)

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
            return self._expire_session(session, Ctx(self.owner_of(cs_id), False, None, None))

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
                raise invalid(f"This Checkout Session is {session['status']}.")
            outcome = self._authenticate_session(session, success)
            return {**outcome, "session": copy.deepcopy(session)}

        result: JSONDict = self._locked(run)
        return result
