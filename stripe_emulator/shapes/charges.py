"""Charges, their balance transactions, refunds and disputes."""

from __future__ import annotations

from stripe_emulator.shapes.common import JSONDict, address


def charge(
    *,
    ch_id: str,
    pi: JSONDict,
    pm: JSONDict,
    created: int,
    balance_transaction: str | None,
    failure_code: str | None,
    failure_message: str | None,
    decline_code: str | None,
    three_d_secure: bool,
    receipt_url: str,
) -> JSONDict:
    failed = failure_code is not None
    if pm["type"] == "sepa_debit":
        bank = pm["sepa_debit"]
        details: JSONDict = {
            "sepa_debit": {
                "bank_code": bank["bank_code"],
                "branch_code": bank["branch_code"],
                "country": bank["country"],
                "expected_debit_date": None,
                "fingerprint": bank["fingerprint"],
                "last4": bank["last4"],
                "mandate": None,
            },
            "type": "sepa_debit",
        }
        pm = {
            **pm,
            "card": {
                "brand": None,
                "checks": {},
                "country": None,
                "exp_month": None,
                "exp_year": None,
                "fingerprint": None,
                "funding": None,
                "last4": None,
            },
        }
    else:
        details = {}
    card = pm["card"]
    if failed:
        outcome = {
            "advice_code": "try_again_later" if decline_code == "insufficient_funds" else "do_not_try_again",
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "declined_by_network",
            "reason": decline_code,
            "risk_level": "normal",
            "risk_score": 20,
            "seller_message": "The bank did not return any further details with this decline.",
            "type": "issuer_declined",
        }
    else:
        outcome = {
            "advice_code": None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "approved_by_network",
            "reason": None,
            "risk_level": "normal",
            "risk_score": 20,
            "seller_message": "Payment complete.",
            "type": "authorized",
        }
    result: JSONDict = {
        "id": ch_id,
        "object": "charge",
        "amount": pi["amount"],
        "amount_captured": 0 if failed else pi["amount"],
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        "authorization_code": None if failed else "123456",
        "balance_transaction": balance_transaction,
        "billing_details": {"address": address(), "email": None, "name": None, "phone": None, "tax_id": None},
        "calculated_statement_descriptor": "STRIPE EMULATOR",
        "captured": not failed,
        "created": created,
        "currency": pi["currency"],
        "customer": pi.get("customer"),
        "description": pi.get("description"),
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": failure_code,
        "failure_message": failure_message,
        "fraud_details": {},
        "livemode": False,
        "metadata": dict(pi.get("metadata") or {}),
        "on_behalf_of": None,
        "outcome": outcome,
        "paid": not failed,
        "payment_intent": pi["id"],
        "payment_method": pm["id"],
        "payment_method_details": {
            "card": {
                "amount_authorized": None if failed else pi["amount"],
                "authorization_code": None if failed else "123456",
                "brand": card["brand"],
                "checks": dict(card["checks"]),
                "country": card["country"],
                "exp_month": card["exp_month"],
                "exp_year": card["exp_year"],
                "extended_authorization": {"status": "disabled"},
                "fingerprint": card["fingerprint"],
                "funding": card["funding"],
                "incremental_authorization": {"status": "unavailable"},
                "installments": None,
                "last4": card["last4"],
                "mandate": None,
                "multicapture": {"status": "unavailable"},
                "network": card["brand"],
                "network_token": {"used": False},
                "network_transaction_id": None if failed else "emulator0000001",
                "overcapture": {"maximum_amount_capturable": pi["amount"], "status": "unavailable"},
                "regulated_status": "unregulated",
                "three_d_secure": (
                    {
                        "authentication_flow": "challenge",
                        "electronic_commerce_indicator": "05",
                        "exemption_indicator": None,
                        "result": "authenticated",
                        "result_reason": None,
                        "transaction_id": "emulator-3ds",
                        "version": "2.2.0",
                    }
                    if three_d_secure
                    else None
                ),
                "wallet": None,
            },
            "type": "card",
        },
        "presentment_details": None,
        "radar_options": {},
        "receipt_email": pi.get("receipt_email"),
        "receipt_number": None,
        "receipt_url": receipt_url,
        "refunded": False,
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": pi.get("statement_descriptor"),
        "statement_descriptor_suffix": pi.get("statement_descriptor_suffix"),
        "status": "failed" if failed else "succeeded",
        "transfer": None,
        "transfer_data": None,
        "transfer_group": None,
    }
    if details:
        result["payment_method_details"] = details
    return result


def balance_transaction(
    *,
    txn_id: str,
    amount: int,
    fee: int,
    currency: str,
    created: int,
    source: str,
    kind: str,
    reporting_category: str,
    description: str | None,
) -> JSONDict:
    fee_details = (
        [
            {
                "amount": fee,
                "application": None,
                "currency": currency,
                "description": "Stripe processing fees",
                "type": "stripe_fee",
            }
        ]
        if fee
        else []
    )
    return {
        "id": txn_id,
        "object": "balance_transaction",
        "amount": amount,
        "available_on": created + 2 * 86400,
        "balance_type": "payments",
        "created": created,
        "currency": currency,
        "description": description,
        "exchange_rate": None,
        "fee": fee,
        "fee_details": fee_details,
        "net": amount - fee,
        "reporting_category": reporting_category,
        "source": source,
        "status": "pending",
        "type": kind,
    }


def refund(
    *,
    re_id: str,
    charge: JSONDict,
    amount: int,
    created: int,
    metadata: JSONDict,
    reason: str | None,
    status: str,
    balance_transaction: str | None,
) -> JSONDict:
    return {
        "id": re_id,
        "object": "refund",
        "amount": amount,
        "balance_transaction": balance_transaction,
        "charge": charge["id"],
        "created": created,
        "currency": charge["currency"],
        "customer": charge.get("customer"),
        "customer_account": None,
        "description": None,
        "destination_details": {
            "card": {
                "reference": None,
                "reference_status": "pending",
                "reference_type": "acquirer_reference_number",
                "type": "refund",
            },
            "type": "card",
        },
        "failure_balance_transaction": None,
        "failure_reason": None,
        "instructions_email": None,
        "metadata": metadata,
        "next_action": None,
        "payment_intent": charge["payment_intent"],
        "payment_method": charge["payment_method"],
        "pending_reason": "processing" if status == "pending" else None,
        "presentment_details": None,
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": status,
        "transfer_reversal": None,
    }


def dispute(
    *,
    du_id: str,
    charge: JSONDict,
    created: int,
    reason: str,
    balance_transactions: list[JSONDict],
) -> JSONDict:
    evidence_keys = [
        "access_activity_log",
        "billing_address",
        "cancellation_policy",
        "cancellation_policy_disclosure",
        "cancellation_rebuttal",
        "customer_communication",
        "customer_email_address",
        "customer_name",
        "customer_purchase_ip",
        "customer_signature",
        "duplicate_charge_documentation",
        "duplicate_charge_explanation",
        "duplicate_charge_id",
        "product_description",
        "receipt",
        "refund_policy",
        "refund_policy_disclosure",
        "refund_refusal_explanation",
        "service_date",
        "service_documentation",
        "shipping_address",
        "shipping_carrier",
        "shipping_date",
        "shipping_documentation",
        "shipping_tracking_number",
        "uncategorized_file",
        "uncategorized_text",
    ]
    evidence: JSONDict = dict.fromkeys(evidence_keys)
    evidence["enhanced_evidence"] = {}
    card = charge["payment_method_details"]["card"]
    return {
        "id": du_id,
        "object": "dispute",
        "amount": charge["amount"],
        "balance_transactions": balance_transactions,
        "charge": charge["id"],
        "created": created,
        "currency": charge["currency"],
        "enhanced_eligibility_types": [],
        "evidence": evidence,
        "evidence_details": {
            # Stripe gives about a week to answer before the card network's deadline.
            "due_by": created + 7 * 86400,
            "enhanced_eligibility": {},
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
            "submission_method": "not_submitted",
        },
        "intended_submission_method": None,
        "is_charge_refundable": False,
        "livemode": False,
        "metadata": {},
        "network_reason_code": "10.4" if reason == "fraudulent" else "13.1",
        "payment_intent": charge.get("payment_intent"),
        "payment_method_details": {
            "card": {
                "brand": card["brand"],
                "case_type": "chargeback",
                "network": card["network"],
                "network_reason_code": "10.4" if reason == "fraudulent" else "13.1",
            },
            "type": "card",
        },
        "reason": reason,
        "status": "needs_response",
    }
