"""PaymentIntents and their payment methods (cards, SEPA debits)."""

from __future__ import annotations

from stripe_emulator.shapes.common import JSONDict, address


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
