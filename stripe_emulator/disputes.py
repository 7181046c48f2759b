"""Disputes: opened by a test card or ``open_dispute``, answered with evidence, closed won or lost."""

from __future__ import annotations

import copy

from stripe.params import DisputeUpdateParams

from stripe_emulator import shapes
from stripe_emulator.base import Ctx, EmulatorAccount, JSONDict, invalid, merge_metadata
from stripe_emulator.events import Events
from stripe_emulator.shapes import new_id

DISPUTE_OPEN = ("warning_needs_response", "warning_under_review", "needs_response", "under_review")


class Disputes(Events):
    """The dispute resource."""

    def _open_dispute(self, account: EmulatorAccount, charge: JSONDict, reason: str) -> JSONDict:
        if charge["status"] != "succeeded":
            raise invalid(f"Charge {charge['id']} did not succeed: it cannot be disputed.", "charge")
        du_id = new_id("du_")
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

    def _update_dispute(self, dispute: JSONDict, raw: JSONDict, ctx: Ctx | None) -> JSONDict:
        params = self._validate(raw, DisputeUpdateParams)
        if dispute["status"] not in DISPUTE_OPEN:
            raise invalid(
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
            dispute["metadata"] = merge_metadata(dispute["metadata"], params["metadata"])
        if params.get("submit", True) and "evidence" in params:
            previous["status"] = dispute["status"]
            dispute["status"] = "under_review"
            dispute["evidence_details"]["submission_count"] += 1
            dispute["evidence_details"]["submission_method"] = "manual"
        self._emit(account, "charge.dispute.updated", dispute, ctx, previous_attributes=previous)
        return copy.deepcopy(dispute)

    def _close_dispute(self, dispute: JSONDict, *, won: bool, ctx: Ctx | None) -> JSONDict:
        if dispute["status"] not in DISPUTE_OPEN:
            raise invalid(
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
