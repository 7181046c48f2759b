"""The Refund resource: created against a charge, listed, and made pending, settled or failed as Stripe's test
cards make them."""

from __future__ import annotations

import copy

from stripe.params import RefundCreateParams, RefundListParams

from stripe_emulator import money, shapes
from stripe_emulator.base import Ctx, JSONDict, invalid, merge_metadata
from stripe_emulator.cards import CARD_OUTCOMES
from stripe_emulator.disputes import Disputes
from stripe_emulator.shapes import new_id
from stripe_emulator.store import created_in, page_of


class Refunds(Disputes):
    """The Refund API."""

    def _create_refund(self, raw: JSONDict, ctx: Ctx) -> JSONDict:
        params = self._validate(raw, RefundCreateParams)
        acct = ctx.account
        if "payment_intent" in params:
            pi = self._find(acct, "payment_intent", params["payment_intent"], "payment_intent")
            if pi["status"] != "succeeded" or not pi.get("latest_charge"):
                raise invalid(
                    f"This PaymentIntent ({pi['id']}) does not have a successful charge to refund.",
                    "payment_intent",
                )
            charge = self.objects[pi["latest_charge"]]
        elif "charge" in params:
            charge = self._find(acct, "charge", params["charge"], "charge")
            if charge["status"] != "succeeded":
                raise invalid("This charge cannot be refunded because it failed.", "charge")
        else:
            raise invalid(
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
            raise invalid(
                f"Charge {charge['id']} has been charged back; cannot issue a refund.", code="charge_disputed"
            )
        remaining = charge["amount"] - charge["amount_refunded"]
        if remaining <= 0:
            raise invalid(f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded")
        amount = params.get("amount", remaining)
        if amount <= 0:
            raise invalid("Invalid positive integer", "amount", "parameter_invalid")
        if amount > remaining:
            raise invalid(
                f"Refund amount ({money.format_amount(amount, charge['currency'])}) is greater "
                "than unrefunded "
                f"amount on charge ({money.format_amount(remaining, charge['currency'])})",
                "amount",
                "amount_too_large",
            )
        outcome = CARD_OUTCOMES.get(self._card_of_charge.get(charge["id"], ""))
        status = "pending" if outcome is not None and outcome.refund == "pending" else "succeeded"
        re_id = new_id("re_")
        txn = self._balance_transaction(acct, -amount, charge["currency"], re_id, "refund", "refund")
        refund = shapes.refund(
            re_id=re_id,
            charge=charge,
            amount=amount,
            created=self.now(),
            metadata=merge_metadata({}, params.get("metadata", {})),
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

    def _list_refunds(self, raw: JSONDict, ctx: Ctx) -> JSONDict:
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
        refunds = created_in(refunds, params.get("created"))
        made = {r["id"]: i for i, r in enumerate(refunds)}  # insertion order: the order they were made in
        refunds.sort(key=lambda r: (r["created"], made[r["id"]]), reverse=True)
        page, has_more = page_of(refunds, params, "refund")
        return shapes.list_object(copy.deepcopy(page), "/v1/refunds", has_more)

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

    # ------------------------------------------------------------------ test-driving helpers

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
