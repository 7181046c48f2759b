"""The PaymentIntent resource: create, update, confirm, capture, cancel, and the test-driving helpers that play
the shopper's browser and the bank."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from stripe.params import (
    PaymentIntentCancelParams,
    PaymentIntentCaptureParams,
    PaymentIntentConfirmParams,
    PaymentIntentCreateParams,
    PaymentIntentUpdateParams,
)

from stripe_emulator import shapes
from stripe_emulator.base import Ctx, EmulatorError, JSONDict, invalid, merge_metadata, missing
from stripe_emulator.cards import INVALID_NUMBER_MESSAGE, TEST_PAYMENT_METHODS, card_number_is_valid
from stripe_emulator.charges import PI_CANCELABLE, PI_MUTABLE, Charges
from stripe_emulator.shapes import new_id


class PaymentIntents(Charges):
    """The PaymentIntent API."""

    def _create_payment_intent(self, raw: JSONDict, ctx: Ctx) -> JSONDict:
        params = self._validate(raw, PaymentIntentCreateParams)
        currency = self._check_currency(params["currency"])
        amount = self._check_amount(params["amount"], currency)
        pi_id = new_id("pi_")
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
            client_secret=f"{pi_id}_secret_{new_id('', 25)}",
            metadata=merge_metadata({}, params.get("metadata", {})),
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

    def _update_payment_intent(self, pi: JSONDict, raw: JSONDict, ctx: Ctx) -> JSONDict:
        params = self._validate(raw, PaymentIntentUpdateParams)
        if pi["status"] not in PI_MUTABLE:
            raise self._unexpected_state(pi, "update", PI_MUTABLE)
        currency = self._check_currency(params["currency"]) if "currency" in params else pi["currency"]
        if "amount" in params:
            pi["amount"] = self._check_amount(params["amount"], currency)
        pi["currency"] = currency
        if "metadata" in params:
            pi["metadata"] = merge_metadata(pi["metadata"], params["metadata"])
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
            raise missing("payment_method", pm, "payment_method")
        if required:
            raise invalid(
                "You cannot confirm this PaymentIntent because it's missing a payment method. To confirm the "
                "PaymentIntent, either provide a payment_method or payment_method_data "
                "(payment_method_data[card][number] in the emulator).",
                "payment_method",
                "payment_intent_unexpected_state",
            )
        return None

    def _confirm_api(self, pi: JSONDict, raw: JSONDict, ctx: Ctx) -> JSONDict:
        raw = dict(raw)
        card_number: str | None = None
        pmd = raw.get("payment_method_data")
        if isinstance(pmd, dict) and "card" in pmd:
            # Raw card numbers are a test-mode/Stripe.js affair the SDK types don't model.
            pmd = dict(pmd)
            card = pmd.pop("card")
            if not isinstance(card, dict) or not card.get("number"):
                raise invalid(
                    "Missing required param: payment_method_data[card][number].",
                    "payment_method_data[card][number]",
                    "parameter_missing",
                )
            card_number = re.sub(r"[\s-]", "", str(card["number"]))
            if pmd.get("type", "card") != "card":
                raise invalid(
                    "payment_method_data[type] must be card when passing card details.",
                    "payment_method_data[type]",
                )
            # billing_details & co. of a raw-card payment_method_data are accepted and ignored.
            raw.pop("payment_method_data")
        params = self._validate(raw, PaymentIntentConfirmParams)
        if pi["status"] not in PI_MUTABLE:
            raise self._unexpected_state(pi, "confirm", PI_MUTABLE)
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

    def _capture_payment_intent(self, pi: JSONDict, raw: JSONDict, ctx: Ctx) -> JSONDict:
        """``POST /v1/payment_intents/{id}/capture``: only a PaymentIntent in ``requires_capture``, for at most
        what it holds (https://docs.stripe.com/api/payment_intents/capture)."""
        params = self._validate(raw, PaymentIntentCaptureParams)
        if pi["status"] != "requires_capture":
            raise self._unexpected_state(pi, "capture", ("requires_capture",))
        amount = int(params.get("amount_to_capture") or pi["amount_capturable"])
        if not 0 < amount <= pi["amount_capturable"]:
            raise invalid(
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

    def _authenticate_api(self, pi: JSONDict, raw: JSONDict, ctx: Ctx) -> JSONDict:
        unknown = [k for k in raw if k != "success"]
        if unknown:
            raise invalid(f"Received unknown parameter: {unknown[0]}", unknown[0], "parameter_unknown")
        success = str(raw.get("success", "true")).lower() not in ("false", "0", "")
        self._authenticate_pi(ctx.account, pi, success, ctx)
        return copy.deepcopy(pi)

    def _cancel_payment_intent(self, pi: JSONDict, raw: JSONDict, ctx: Ctx) -> JSONDict:
        params = self._validate(raw, PaymentIntentCancelParams)
        if pi["status"] not in PI_CANCELABLE:
            raise self._unexpected_state(pi, "cancel", PI_CANCELABLE)
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
    # ------------------------------------------------------------------ test-driving helpers

    def confirm_payment_intent(self, pi_id: str, card: str = "4242424242424242") -> JSONDict:
        """Confirm like the shopper's browser would; declines are recorded on the PI, not raised."""

        def run() -> JSONDict:
            pi = self.objects[pi_id]
            if pi["status"] not in PI_MUTABLE:
                raise self._unexpected_state(pi, "confirm", PI_MUTABLE)
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
            if pi["status"] not in PI_MUTABLE:
                raise self._unexpected_state(pi, "confirm", PI_MUTABLE)
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

    def complete_authentication(self, pi_id: str, success: bool) -> JSONDict:
        """Finish (or fail) the 3DS challenge of a PaymentIntent in ``requires_action``."""

        def run() -> JSONDict:
            pi = self.objects[pi_id]
            self._authenticate_pi(self.owner_of(pi_id), pi, success, None)
            return copy.deepcopy(pi)

        result: JSONDict = self._locked(run)
        return result
