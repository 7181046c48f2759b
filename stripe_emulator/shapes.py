"""The objects the emulator answers with, shaped like Stripe's API version ``2026-10-28.endive``.

Each builder returns a plain JSON-ready dict carrying every attribute Stripe sends for that object at the top
level (``None`` where Stripe sends ``null``), with the enum values this API version knows. The attribute lists
follow the typed resource classes that ship with ``stripe`` (``stripe.PaymentIntent``,
``stripe.checkout.Session``, ...); ``stripe_emulator/tests/test_contract.py`` checks every answer against
them. Attributes Stripe only sends when asked (``expand[]``: a Checkout Session's ``line_items`` and
``total_details.breakdown``, a charge's ``refunds``, a line item's ``taxes`` and ``discounts``) are added by
the emulator when expanded, never by default.

Development/test-only code; imports only the standard library.
"""

from __future__ import annotations

import secrets
import string
from typing import Any

JSONDict = dict[str, Any]

_ID_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


def address() -> JSONDict:
    return {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}


def payment_intent(
    *,
    pi_id: str,
    amount: int,
    currency: str,
    created: int,
    client_secret: str,
    metadata: JSONDict,
    description: str | None,
    receipt_email: str | None,
    automatic_payment_methods: JSONDict | None,
    capture_method: str,
    confirmation_method: str,
    setup_future_usage: str | None,
    statement_descriptor: str | None,
    statement_descriptor_suffix: str | None,
    customer: str | None,
) -> JSONDict:
    return {
        "id": pi_id,
        "object": "payment_intent",
        "allowed_payment_method_types": None,
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": automatic_payment_methods,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": capture_method,
        "client_secret": client_secret,
        "confirmation_method": confirmation_method,
        "created": created,
        "currency": currency,
        "customer": customer,
        "customer_account": None,
        "description": description,
        "excluded_payment_method_types": None,
        "hooks": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": metadata,
        "next_action": None,
        "on_behalf_of": None,
        "payment_details": None,
        "payment_method": None,
        "payment_method_configuration_details": (
            {"id": "pmc_emulator_default", "parent": None} if automatic_payment_methods else None
        ),
        "payment_method_options": {
            "card": {
                "installments": None,
                "mandate_options": None,
                "network": None,
                "request_three_d_secure": "automatic",
            }
        },
        # The request parameter is gone in endive, but Stripe still sends the list in its answers.
        "payment_method_types": ["card"],
        "payment_record": None,
        "presentment_details": None,
        "processing": None,
        "receipt_email": receipt_email,
        "review": None,
        "setup_future_usage": setup_future_usage,
        "shipping": None,
        "source": None,
        "statement_descriptor": statement_descriptor,
        "statement_descriptor_suffix": statement_descriptor_suffix,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
    }


def payment_method(*, pm_id: str, created: int, card_number: str, brand: str, exp_year: int) -> JSONDict:
    return {
        "id": pm_id,
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": address(),
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "card": {
            "brand": brand,
            "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": None},
            "country": "US",
            "display_brand": brand,
            "exp_month": 12,
            "exp_year": exp_year,
            "fingerprint": "emu" + card_number[-8:],
            "funding": "credit",
            "generated_from": None,
            "last4": card_number[-4:],
            "networks": {"available": [brand], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": created,
        "customer": None,
        "customer_account": None,
        "livemode": False,
        "metadata": {},
        "radar_options": {},
        "type": "card",
    }


def sepa_debit_payment_method(*, pm_id: str, created: int, iban: str) -> JSONDict:
    return {
        "id": pm_id,
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {"address": address(), "email": None, "name": None, "phone": None, "tax_id": None},
        "created": created,
        "customer": None,
        "customer_account": None,
        "livemode": False,
        "metadata": {},
        "radar_options": {},
        "sepa_debit": {
            "bank_code": iban[4:12],
            "branch_code": "",
            "country": iban[:2],
            "fingerprint": "emu" + iban[-8:],
            "generated_from": {"charge": None, "setup_attempt": None},
            "last4": iban[-4:],
        },
        "type": "sepa_debit",
    }


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


def coupon(
    *,
    coupon_id: str,
    created: int,
    percent_off: float | None,
    amount_off: int | None,
    currency: str | None,
    duration: str,
    duration_in_months: int | None,
    max_redemptions: int | None,
    metadata: JSONDict,
    name: str | None,
    redeem_by: int | None,
) -> JSONDict:
    return {
        "id": coupon_id,
        "object": "coupon",
        "amount_off": amount_off,
        "created": created,
        "currency": currency,
        "duration": duration,
        "duration_in_months": duration_in_months,
        "livemode": False,
        "max_redemptions": max_redemptions,
        "metadata": metadata,
        "name": name,
        "percent_off": percent_off,
        "redeem_by": redeem_by,
        "times_redeemed": 0,
        "valid": True,
    }


def tax_rate(
    *,
    txr_id: str,
    created: int,
    active: bool,
    country: str | None,
    description: str | None,
    display_name: str,
    percentage: float,
    inclusive: bool,
    jurisdiction: str | None,
    metadata: JSONDict,
    state: str | None,
    tax_type: str | None,
) -> JSONDict:
    return {
        "id": txr_id,
        "object": "tax_rate",
        "active": active,
        "country": country,
        "created": created,
        "description": description,
        "display_name": display_name,
        "effective_percentage": percentage,
        "flat_amount": None,
        "inclusive": inclusive,
        "jurisdiction": jurisdiction,
        "jurisdiction_level": None,
        "livemode": False,
        "metadata": metadata,
        "percentage": percentage,
        "rate_type": "percentage",
        "state": state,
        "tax_type": tax_type,
    }


def discount(*, di_id: str, coupon_id: str, checkout_session: str, start: int) -> JSONDict:
    """A Discount (endive): the coupon is under ``source``, not at the top level."""
    return {
        "id": di_id,
        "object": "discount",
        "checkout_session": checkout_session,
        "customer": None,
        "customer_account": None,
        "end": None,
        "invoice": None,
        "invoice_item": None,
        "promotion_code": None,
        "source": {"coupon": coupon_id, "type": "coupon"},
        "start": start,
        "subscription": None,
        "subscription_item": None,
    }


def price(*, price_id: str, product_id: str, currency: str, unit_amount: int, created: int) -> JSONDict:
    """The inline price Checkout makes from ``line_items[].price_data`` (inactive, one-time)."""
    return {
        "id": price_id,
        "object": "price",
        "active": False,
        "billing_scheme": "per_unit",
        "created": created,
        "currency": currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": None,
        "metadata": {},
        "nickname": None,
        "product": product_id,
        "recurring": None,
        "tax_behavior": "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": str(unit_amount),
    }


def checkout_session(
    *,
    cs_id: str,
    created: int,
    expires_at: int,
    currency: str,
    amount_subtotal: int,
    amount_total: int,
    total_details: JSONDict,
    discounts: list[JSONDict],
    params: JSONDict,
    url: str,
) -> JSONDict:
    return {
        "id": cs_id,
        "object": "checkout.session",
        "adaptive_pricing": {"enabled": False},
        "after_expiration": None,
        "allow_promotion_codes": params.get("allow_promotion_codes"),
        "allowed_payment_method_types": None,
        "amount_subtotal": amount_subtotal,
        "amount_total": amount_total,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": params.get("billing_address_collection"),
        "branding_settings": None,
        "cancel_url": params.get("cancel_url"),
        "client_reference_id": params.get("client_reference_id"),
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": created,
        "currency": currency,
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": None,
        "customer_account": None,
        "customer_creation": params.get("customer_creation", "if_required"),
        "customer_details": None,
        "customer_email": params.get("customer_email"),
        "discounts": discounts,
        "excluded_payment_method_types": None,
        "expires_at": expires_at,
        "integration_identifier": None,
        "invoice": None,
        "invoice_creation": {
            "enabled": False,
            "invoice_data": {
                "account_tax_ids": None,
                "custom_fields": None,
                "description": None,
                "footer": None,
                "issuer": None,
                "metadata": {},
                "rendering_options": None,
            },
        },
        "livemode": False,
        "locale": params.get("locale"),
        "managed_payments": None,
        "metadata": params.get("metadata", {}),
        "mode": params.get("mode", "payment"),
        "name_collection": None,
        "optional_items": None,
        "origin_context": None,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "if_required",
        "payment_method_configuration_details": {"id": "pmc_emulator_default", "parent": None},
        "payment_method_options": {"card": {"request_three_d_secure": "automatic"}},
        # Gone as a request parameter in endive, still sent in answers.
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "presentment_details": None,
        "recovered_from": None,
        "redirect_on_completion": None,
        "return_url": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": params.get("submit_type"),
        "subscription": None,
        "success_url": params.get("success_url"),
        "tax_id_collection": {"enabled": False, "required": "never"},
        "total_details": total_details,
        "ui_mode": params.get("ui_mode", "hosted_page"),
        "url": url,
        "wallet_options": None,
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


def list_object(data: list[JSONDict], url: str, has_more: bool = False) -> JSONDict:
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


#: Top-level fields API version ``2026-10-28.endive`` marks optional but not nullable (``field?: T`` in the
#: types of Stripe's Node library for that version, ``stripe@23.1.0``): Stripe leaves such a field out when it
#: has no value, and never sends it as ``null``.
OPTIONAL_NOT_NULLABLE: dict[str, frozenset[str]] = {
    "payment_intent": frozenset({"amount_details", "hooks", "payment_details", "presentment_details"}),
    "checkout.session": frozenset(
        {
            "branding_settings",
            "excluded_payment_method_types",
            "line_items",
            "name_collection",
            "phone_number_collection",
            "presentment_details",
            "redirect_on_completion",
            "return_url",
            "tax_id_collection",
        }
    ),
    "charge": frozenset({"authorization_code", "level3", "presentment_details", "radar_options", "transfer"}),
    "refund": frozenset(
        {
            "description",
            "destination_details",
            "failure_balance_transaction",
            "failure_reason",
            "instructions_email",
            "next_action",
            "pending_reason",
            "presentment_details",
        }
    ),
    "event": frozenset({"account", "context"}),
}


def present(value: Any) -> Any:
    """``value`` as Stripe sends it: in every object it contains, the optional non-nullable fields without a
    value are left out rather than sent as ``null`` (see ``OPTIONAL_NOT_NULLABLE``)."""
    if isinstance(value, list):
        return [present(v) for v in value]
    if not isinstance(value, dict):
        return value
    absent = OPTIONAL_NOT_NULLABLE.get(str(value.get("object")), frozenset())
    return {k: present(v) for k, v in value.items() if not (v is None and k in absent)}
