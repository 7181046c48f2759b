"""What paying a PaymentIntent does: the payment method, the charge, the card's outcome (succeeded,
declined, 3D Secure), a SEPA Direct Debit that settles later, and the dispute a test card asks for."""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Sequence

from stripe_emulator import shapes
from stripe_emulator.base import Ctx, EmulatorAccount, EmulatorError, JSONDict, invalid
from stripe_emulator.cards import (
    AUTH_FAILURE_MESSAGE,
    CARD_OUTCOMES,
    GENERIC_DECLINE,
    TEST_IBANS,
    CardOutcome,
)
from stripe_emulator.disputes import Disputes
from stripe_emulator.shapes import new_id

PI_MUTABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
PI_CANCELABLE = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
)


class Charges(Disputes):
    """Charges and payment methods of PaymentIntents."""

    def _unexpected_state(self, pi: JSONDict, action: str, allowed: Sequence[str]) -> EmulatorError:
        past = {"cancel": "canceled", "confirm": "confirmed", "update": "updated", "capture": "captured"}.get(
            action, f"{action}ed"
        )
        exc = invalid(
            f"You cannot {action} this PaymentIntent because it has a status of {pi['status']}. "
            f"Only a PaymentIntent with one of the following statuses may be {past}: "
            f"{', '.join(allowed)}.",
            code="payment_intent_unexpected_state",
        )
        exc.error["payment_intent"] = shapes.present(pi)
        return exc

    def _make_payment_method(
        self, account: EmulatorAccount, card_number: str, outcome: CardOutcome
    ) -> JSONDict:
        pm = shapes.payment_method(
            pm_id=new_id("pm_"),
            created=self.now(),
            card_number=card_number,
            brand=outcome.brand,
            exp_year=time.gmtime(self.now()).tm_year + 3,
        )
        self._card_of_pm[pm["id"]] = card_number
        return self._store(account, pm)

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
        ch_id = new_id("ch_")
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

    def _apply_bank_debit(self, account: EmulatorAccount, pi: JSONDict, iban: str, ctx: Ctx | None) -> None:
        """Pay ``pi`` by SEPA Direct Debit: the charge is ``pending`` and the PaymentIntent ``processing`` until
        ``settle_bank_debit`` (https://docs.stripe.com/payments/sepa-debit/accept-a-payment: "the
        PaymentIntent's status ... is processing" until the debit succeeds or fails)."""
        iban = re.sub(r"\s", "", iban).upper()
        if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}", iban):
            raise invalid(
                "The IBAN you provided appears to be invalid.",
                "payment_method_data[sepa_debit][iban]",
                "invalid_bank_account_iban",
            )
        pm = self._store(
            account,
            shapes.sepa_debit_payment_method(pm_id=new_id("pm_"), created=self.now(), iban=iban),
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

    def _apply_card(
        self,
        account: EmulatorAccount,
        pi: JSONDict,
        card_number: str,
        ctx: Ctx | None,
        *,
        raise_on_decline: bool,
    ) -> None:
        outcome = CARD_OUTCOMES.get(card_number, GENERIC_DECLINE)
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
        self, account: EmulatorAccount, pi: JSONDict, ctx: Ctx | None, *, three_d_secure: bool
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
        self, account: EmulatorAccount, pi: JSONDict, success: bool, ctx: Ctx | None
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
            "message": AUTH_FAILURE_MESSAGE,
            "network_advice_code": None,
            "network_decline_code": None,
            "payment_method": copy.deepcopy(self.objects.get(pi.get("payment_method") or "")),
            "type": "card_error",
        }
        self._emit(account, "payment_intent.payment_failed", pi, ctx)
